"""Study C at paper scale: AP = mean of AlpacaEval 2 (length-controlled win rate) and Arena-Hard,
both judged by one judge through the ``alpaca-eval`` package's annotator configs.

A tuned student's answers come from ``itlab.generate.answer`` (rule ``answer_benchmarks``, in
the eval env); ``judge_answers`` compares its answers with the benchmark's baseline answers.
The judge's key comes only from the environment (``api_key_env``); an OpenAI-compatible local
server (vLLM) is reached through ``base_url_env``. Arena-Hard here is judged pairwise against
its baseline by the same alpaca-eval annotator (not Arena-Hard-Auto's own judging prompt).

With ``serve`` the job serves a local causal LM itself (``itlab.judge_server``, the stand-in of
a vLLM server) and the annotator's ``openai_completions`` decoder reaches it through
``OPENAI_BASE_URL``: no key, no network (stand-in runs serve the stand-in of a hub model).

The length-controlled win rate (alpaca-eval's GLM) reads ``df_gamed.csv`` of the data set
repository ``tatsu-lab/alpaca_eval`` (instruction difficulties, gamed baselines) through
``hf_hub_download``: the mirror holds it as a Hugging Face cache folder
(``fetch_glm_files``; a stand-in file of the same columns in stand-in mode), and alpaca-eval's
cache folder is pointed there. The GLM indexes instructions by their position in AlpacaEval,
so the answers must be AlpacaEval's first rows in order (``max_items`` keeps the first).
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class JudgeKeyMissing(RuntimeError):
    pass


GLM_REPO = "tatsu-lab/alpaca_eval"  # a data set repository
GLM_FILE = "df_gamed.csv"
METRIC_FUNCTIONS = {"length_controlled_winrate": "get_length_controlled_winrate", "win_rate": "get_winrate"}


def require_key(judge: dict) -> None:
    env = judge.get("api_key_env")
    if env and not judge.get("serve") and not os.environ.get(env):
        raise JudgeKeyMissing(f"rule judge_answers: the judge ({judge['annotator']}) needs its key in the environment "
                              f"variable {env} (config key studies.teachers.evaluation.judge.api_key_env); it is "
                              "never read from the config")


def _point_client(judge: dict, base_url: str | None) -> None:
    """The OpenAI client of alpaca-eval reads its endpoint and key from the environment (at import)."""
    if base_url:
        os.environ["OPENAI_BASE_URL"] = base_url
        os.environ.pop("OPENAI_API_BASE", None)
        if not os.environ.get("OPENAI_API_KEY"):  # the client insists on one; this process only
            os.environ["OPENAI_API_KEY"] = "local-server-needs-no-key"
        return
    env = judge.get("base_url_env")
    if env and os.environ.get(env):
        os.environ["OPENAI_BASE_URL"] = os.environ[env]
    key_env = judge.get("api_key_env")
    if key_env and key_env != "OPENAI_API_KEY" and os.environ.get(key_env):
        os.environ["OPENAI_API_KEY"] = os.environ[key_env]


def judge_answers(records: list[dict], judge: dict, model_name: str, glm_cache: str | None = None,
                  device: str = "cpu", trust_remote_code: bool = False):
    """One row per benchmark: the judged metric (LC win rate for AlpacaEval 2), in percent, and
    how many answers got a verdict."""
    import contextlib

    require_key(judge)
    serve = judge.get("serve")
    with contextlib.ExitStack() as stack:
        base_url = None
        if serve:
            from itlab.judge_server import ServedModel

            served = stack.enter_context(ServedModel(serve.get("location", serve["model"]),
                                                     serve.get("top_logprobs", 20), trust_remote_code, device))
            base_url = served.base_url
            print(f"judge: serving {serve['model']} at {base_url}")
        _point_client(judge, base_url)
        return _judge(records, judge, model_name, glm_cache)


def _judge(records: list[dict], judge: dict, model_name: str, glm_cache: str | None):
    import pandas as pd

    import alpaca_eval.constants  # the judge's own environment (envs/judge.yaml)
    from alpaca_eval import evaluate

    if glm_cache:  # where hf_hub_download finds df_gamed.csv (the mirror, offline)
        alpaca_eval.constants.DEFAULT_CACHE_DIR = glm_cache
    rows = []
    for name, spec in sorted(judge["benchmarks"].items()):
        recs = [r for r in records if r["benchmark"] == name]
        model_outputs = pd.DataFrame({"instruction": [r["instruction"] for r in recs],
                                      "output": [r["output"] for r in recs], "generator": model_name})
        reference = pd.DataFrame({"instruction": [r["instruction"] for r in recs],
                                  "output": [r["baseline"] for r in recs], "generator": "baseline"})
        lc = spec["metric"] == "length_controlled_winrate"
        # nothing is written into alpaca-eval's install folder: no annotation cache, no
        # leaderboard cache, no saved GLM weights
        board, annotations = evaluate(
            model_outputs=model_outputs, reference_outputs=reference, annotators_config=judge["annotator"],
            name=model_name, output_path=None, precomputed_leaderboard=None, is_cache_leaderboard=False,
            is_return_instead_of_print=True, fn_metric=METRIC_FUNCTIONS[spec["metric"]],
            metric_kwargs={"save_weights_dir": None} if lc else None, sort_by=spec["metric"],
            caching_path=None)
        row = board.loc[model_name]
        if spec["metric"] not in row:
            raise KeyError(f"alpaca-eval reported no {spec['metric']!r} for {name} (columns: {list(row.index)})")
        judged = int(pd.DataFrame(annotations)["preference"].notna().sum())
        rows.append({"benchmark": name, "metric": spec["metric"], "score": float(row[spec["metric"]]),
                     "win_rate": float(row["win_rate"]), "n": len(recs), "n_judged": judged})
    return pd.DataFrame(rows)


# ---- the GLM's data file in the mirror ------------------------------------------------------
def _repo_folder(cache: Path) -> Path:
    return cache / ("datasets--" + GLM_REPO.replace("/", "--"))


def fetch_glm_files(cache: str | Path, revision: str = "main") -> dict:
    """Download df_gamed.csv into ``cache`` (a Hugging Face cache folder), as alpaca-eval would."""
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(GLM_REPO, GLM_FILE, repo_type="dataset", revision=revision, cache_dir=str(cache),
                           token=os.environ.get("HF_TOKEN") or None)
    return {"id": GLM_REPO, "file": GLM_FILE, "revision": revision, "commit": Path(path).parent.name,
            "standin": False}


def standin_glm_files(cache: str | Path, seed: int = 0, n_instructions: int = 805) -> dict:
    """A stand-in df_gamed.csv with the columns alpaca-eval's GLM reads (index, model,
    preference, std_delta_len, instruction_difficulty, not_gamed_baseline: two length-gamed
    baselines per AlpacaEval instruction), in the cache layout hf_hub_download reads offline."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 1, n_instructions)
    frames = []
    for model, shift in (("gpt4_1106_preview_concise", -1.0), ("gpt4_1106_preview_verbose", 1.0)):
        delta = rng.normal(shift, 0.5, n_instructions)
        pref = 1 / (1 + np.exp(-(np.tanh(delta) + difficulty)))
        frames.append(pd.DataFrame({"index": np.arange(n_instructions), "model": model, "preference": pref,
                                    "std_delta_len": delta, "instruction_difficulty": difficulty,
                                    "not_gamed_baseline": False}))
    commit = "standin" + "0" * 33  # a 40-character revision name
    folder = _repo_folder(Path(cache))
    (folder / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
    pd.concat(frames).to_csv(folder / "snapshots" / commit / GLM_FILE, index=False)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    return {"id": GLM_REPO, "file": GLM_FILE, "revision": "standin", "commit": commit, "standin": True}


def ensure_glm_files(folder: str | Path, standin: bool, seed: int = 0) -> dict:
    """Rule fetch_glm_files: the GLM's data file in the mirror, built aside and renamed into place."""
    from itlab.hub import _atomic_dir, _write_manifest, read_manifest
    from itlab.io import write_json

    folder = Path(folder)
    if (folder / "FETCHED.json").exists():
        rec = json.loads((folder / "FETCHED.json").read_text())
        if bool(rec.get("standin")) == standin:
            write_json(folder / "MANIFEST.json", rec)
            return rec
    with _atomic_dir(folder) as tmp:
        info = standin_glm_files(tmp, seed) if standin else fetch_glm_files(tmp)
        rec = _write_manifest(tmp, {**info, "kind": "file"})
    write_json(folder / "MANIFEST.json", rec)
    read_manifest(folder, standin)
    return rec
