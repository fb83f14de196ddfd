"""Evaluation through lm-evaluation-harness.

Each (task, condition) becomes a generated task YAML over local JSONL files (a benchmark
declared, not coded); each evaluation job loads its model once and runs all its pairs in
at most two batched ``simple_evaluate`` calls (plain prompts, then chat-templated ones).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import yaml

from itlab.grid import CONDITIONS


PROCESS_RESULTS = "itlab_metrics.process_results"  # written as a !function tag
METRICS_MODULE = "from itlab.metrics import process_results  # noqa: F401\n"


def _dump(spec: dict) -> str:
    """YAML text of a task, with process_results as lm-eval's !function tag."""
    text = yaml.safe_dump(spec, sort_keys=False)
    return text.replace(f"process_results: {PROCESS_RESULTS}", f"process_results: !function {PROCESS_RESULTS}")


def task_name(task: str, condition: str) -> str:
    return f"itlab__{task}__{condition}"


def task_yaml(task: str, condition: str, files: dict, k_shot: int, max_new_tokens: int) -> dict:
    """An lm-eval generate_until task: greedy, stop at a newline, exact match after stripping."""
    _, few, chat = CONDITIONS[condition]
    spec = {
        "task": task_name(task, condition),
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(Path(files["test"]).resolve()),
                                          "train": str(Path(files["fewshot"]).resolve())}},
        "test_split": "test",
        "fewshot_split": "train",
        "num_fewshot": k_shot if few else 0,
        "output_type": "generate_until",
        # chat conditions put the bare instruction in the user turn, as in tuning;
        # base conditions use the plain "Answer:" format of the pretraining corpus
        "doc_to_text": "{{prompt}}" if chat else "{{prompt}}\nAnswer:",
        "doc_to_target": "{{answer}}",
        "target_delimiter": " ",
        "fewshot_delimiter": "\n\n",
        "fewshot_config": {"sampler": "first_n"},
        "generation_kwargs": {"until": ["\n"], "do_sample": False, "max_gen_toks": max_new_tokens},
        "filter_list": [{"name": "strip", "filter": [{"function": "remove_whitespace"}, {"function": "take_first"}]}],
        # exact match, token F1 and ROUGE-L per document (itlab.metrics via METRICS_MODULE)
        "process_results": PROCESS_RESULTS,
        "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True}
                        for m in ("exact_match", "f1", "rouge_l")],
        "metadata": {"version": 1.0},
    }
    return spec


def harness_spec(manager, name: str, folder: str | Path) -> dict:
    """An lm-eval harness task (its own YAML: prompts, filters, metrics) pointed at its
    mirrored data set (the arrow files of save_to_disk), so that it never reaches the hub."""
    from lm_eval.tasks._yaml_loader import load_yaml

    entry = manager.task_index[name]
    cfg = load_yaml(entry.yaml_path, resolve_func=True)
    folder = Path(folder).resolve()
    files = {p.name: str(p / "*.arrow") for p in sorted(folder.iterdir()) if p.is_dir() and any(p.glob("*.arrow"))}
    cfg.update(dataset_path="arrow", dataset_name=None, dataset_kwargs={"data_files": files})
    return cfg


def run(model_dir: str, items: list[tuple[str, str]], files: dict[str, dict], k_shot: int, batch_size: int,
        max_new_tokens: int, max_items: int, out_dir: str | Path, trust_remote_code: bool = False,
        lm_eval_tasks: dict[str, str] | None = None, device: str = "cpu", allow_code_execution: bool = False,
        harness_data: dict[str, str] | None = None):
    """Evaluate one model on (task, condition) pairs; write samples.jsonl and return a score table."""
    import pandas as pd

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"[itlab] evaluating {model_dir} on {len(items)} (task, condition) pairs", flush=True)
    work = Path(tempfile.mkdtemp(prefix=".lmeval.", dir=out_dir))
    os.environ.setdefault("HF_DATASETS_CACHE", str(work / "datasets"))  # per job: parallel jobs never share a cache
    if Path(model_dir).is_dir():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    lm_eval_tasks = lm_eval_tasks or {}
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager

        names = {}
        (work / "itlab_metrics.py").write_text(METRICS_MODULE)
        for task, cond in items:
            if task in lm_eval_tasks:  # paper scale: an lm-eval task of the harness itself
                names[(task, cond)] = lm_eval_tasks[task]
                continue
            spec = task_yaml(task, cond, files[task], k_shot, max_new_tokens)
            (work / f"{spec['task']}.yaml").write_text(_dump(spec))
            names[(task, cond)] = spec["task"]
        manager = TaskManager(include_path=str(work), include_defaults=bool(lm_eval_tasks))
        # harness tasks read their data set from the mirror (harness_data: lm-eval task -> folder)
        specs = {n: harness_spec(manager, n, f) for n, f in (harness_data or {}).items()}
        lm = HFLM(pretrained=model_dir, batch_size=batch_size, device=device, trust_remote_code=trust_remote_code,
                  max_length=None)
        rows, samples = [], []
        for chat in (False, True):
            group = [(t, c) for (t, c) in items if CONDITIONS[c][2] == chat]
            if not group:
                continue
            res = lm_eval.simple_evaluate(model=lm, tasks=[specs.get(n, n) for n in sorted({names[p] for p in group})],
                                          task_manager=manager,
                                          limit=max_items, log_samples=True, apply_chat_template=chat,
                                          fewshot_as_multiturn=chat and any(CONDITIONS[c][1] for _, c in group),
                                          random_seed=0, numpy_random_seed=0, torch_random_seed=0,
                                          fewshot_random_seed=0, bootstrap_iters=0,
                                          confirm_run_unsafe_code=allow_code_execution)
            for task, cond in group:
                name = names[(task, cond)]
                result = res["results"][name]
                n = res["n-samples"][name]["effective"]
                for key, value in result.items():
                    if "," not in key or "stderr" in key or not isinstance(value, (int, float)):
                        continue
                    metric_name, filt = key.split(",", 1)
                    metric = metric_name if filt in ("none", "strip") else key  # e.g. gsm8k's exact_match,flexible-extract
                    rows.append({"task": task, "condition": cond, "metric": metric,
                                 "score": float(value), "n": int(n)})
                for s in res["samples"].get(name, []):
                    samples.append({"task": task, "condition": cond, "doc_id": s["doc_id"],
                                    "id": s["doc"].get("id"), "target": s["target"],
                                    "response": s["filtered_resps"][0] if s["filtered_resps"] else "",
                                    "exact_match": s.get("exact_match"), "f1": s.get("f1"), "rouge_l": s.get("rouge_l"),
                                    "inputs": s["doc"].get("inputs")})
        from itlab.io import write_jsonl

        write_jsonl(out_dir / "samples.jsonl", samples)
        return pd.DataFrame(rows, columns=["task", "condition", "metric", "score", "n"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
