"""Study C at paper scale: AP = mean of AlpacaEval 2 (length-controlled win rate) and Arena-Hard,
both judged by one judge through the ``alpaca-eval`` package's annotator configs.

A tuned student's answers come from ``itlab.generate.answer`` (rule ``answer_benchmarks``, in
the eval env); ``judge_answers`` compares its answers with the benchmark's baseline answers.
The judge's key comes only from the environment (``api_key_env``); an OpenAI-compatible local
server (vLLM) is reached through ``base_url_env``. Arena-Hard here is judged pairwise against
its baseline by the same alpaca-eval annotator (not Arena-Hard-Auto's own judging prompt).
"""

from __future__ import annotations

import os


class JudgeKeyMissing(RuntimeError):
    pass


def require_key(judge: dict) -> None:
    env = judge.get("api_key_env")
    if env and not os.environ.get(env):
        raise JudgeKeyMissing(f"rule judge_answers: the judge ({judge['annotator']}) needs its key in the environment "
                              f"variable {env} (config key studies.teachers.evaluation.judge.api_key_env); it is "
                              "never read from the config")


def judge_answers(records: list[dict], judge: dict, model_name: str):
    """One row per benchmark: the judged metric (LC win rate for AlpacaEval 2), in percent."""
    import pandas as pd

    require_key(judge)
    from alpaca_eval import evaluate  # the judge's own environment (envs/judge.yaml)

    rows = []
    for name, spec in sorted(judge["benchmarks"].items()):
        recs = [r for r in records if r["benchmark"] == name]
        model_outputs = pd.DataFrame({"instruction": [r["instruction"] for r in recs],
                                      "output": [r["output"] for r in recs], "generator": model_name})
        reference = pd.DataFrame({"instruction": [r["instruction"] for r in recs],
                                  "output": [r["baseline"] for r in recs], "generator": "baseline"})
        board, _ = evaluate(model_outputs=model_outputs, reference_outputs=reference,
                            annotators_config=judge["annotator"], is_return_instead_of_print=True,
                            output_path=None)
        row = board.loc[model_name]
        if spec["metric"] not in row:
            raise KeyError(f"alpaca-eval reported no {spec['metric']!r} for {name} (columns: {list(row.index)})")
        rows.append({"benchmark": name, "metric": spec["metric"], "score": float(row[spec["metric"]]),
                     "n": len(recs)})
    return pd.DataFrame(rows)
