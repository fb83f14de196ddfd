"""Study C at paper scale: AP = mean of AlpacaEval 2 (length-controlled win rate) and Arena-Hard,
both judged by one judge through the ``alpaca-eval`` package's annotator configs.

``answer_benchmarks`` lets a tuned student answer every benchmark prompt (batched generation,
one model load); ``judge_answers`` compares its answers with the benchmark's baseline answers.
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


def benchmark_prompts(name: str, spec: dict, max_items: int | None = None) -> list[dict]:
    from datasets import load_dataset

    ds = load_dataset(spec["dataset"], spec.get("subset"), split=spec.get("split", "eval"))
    if max_items is not None:
        ds = ds.select(range(min(max_items, len(ds))))
    return [{"benchmark": name, "instruction": row[spec["instruction_field"]],
             "baseline": row.get(spec.get("baseline_field", "output"))} for row in ds]


def answer(model_dir: str, judge: dict, generation: dict, seed: int, trust_remote_code: bool = False,
           device: str = "cpu") -> list[dict]:
    """Every benchmark prompt answered by one model (loaded once)."""
    from itlab.generate import generate_hf, generate_vllm, vllm_available

    prompts = [p for name, spec in sorted(judge["benchmarks"].items())
               for p in benchmark_prompts(name, spec, judge.get("max_items"))]
    texts = [p["instruction"] for p in prompts]
    sampling = {k: generation[k] for k in ("temperature", "top_p") if k in generation} \
        if generation.get("do_sample") else None
    if vllm_available() and device == "cuda":
        outputs = generate_vllm(model_dir, texts, judge["max_new_tokens"], sampling, trust_remote_code, seed)
    else:
        from itlab.models import load_model, load_tokenizer

        tok = load_tokenizer(model_dir, trust_remote_code=trust_remote_code)
        model = load_model(model_dir, trust_remote_code=trust_remote_code).to(device).eval()
        outputs = generate_hf(model, tok, texts, judge["max_new_tokens"], generation.get("batch_size", 32), sampling,
                              seed)
    return [{**p, "output": o} for p, o in zip(prompts, outputs)]


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
