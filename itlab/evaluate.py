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
from itlab.metrics import AGGREGATION, METRICS, metric_scale


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
        # exact match, SQuAD F1, ROUGE-L per document and corpus BLEU (itlab.metrics via METRICS_MODULE)
        "process_results": PROCESS_RESULTS,
        "metric_list": [{"metric": m, "aggregation": AGGREGATION[m], "higher_is_better": True} for m in METRICS],
        "metadata": {"version": 1.0},
    }
    return spec


def hflm_kwargs(model_dir: str, batch_size: int, device: str, trust_remote_code: bool, gpus: int = 0) -> dict:
    """Arguments of lm-eval's HFLM: a model given more than one GPU is spread over them
    (``parallelize``: accelerate's device_map auto) instead of loaded whole on one."""
    kwargs = {"pretrained": model_dir, "batch_size": batch_size, "trust_remote_code": trust_remote_code,
              "max_length": None}
    if device == "cuda" and gpus > 1:
        kwargs.update(parallelize=True, device_map="auto")  # HFLM hands device_map to from_pretrained
    else:
        kwargs["device"] = device
    return kwargs


def metric_names(result: dict) -> dict[str, str]:
    """lm-eval result keys ("<metric>,<filter>") -> itlab metric names: the bare metric where
    one filter reports it (``pass@1,create_test`` -> ``pass@1``), the full key where several do
    (gsm8k's ``exact_match,strict-match`` and ``exact_match,flexible-extract``)."""
    keys = [k for k, v in result.items() if "," in k and "stderr" not in k and isinstance(v, (int, float))]
    filters: dict[str, int] = {}
    for k in keys:
        filters[k.split(",", 1)[0]] = filters.get(k.split(",", 1)[0], 0) + 1
    return {k: k.split(",", 1)[0] if filters[k.split(",", 1)[0]] == 1 else k for k in keys}


def runs_code(manager, name: str) -> bool:
    """Whether an lm-eval task executes model-written code (its config sets unsafe_code:
    humaneval, humaneval_plus, mbpp). Read from the task index, without importing the task."""
    entry = manager.task_index.get(name)
    return bool(entry is not None and entry.cfg and entry.cfg.get("unsafe_code"))


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
        gpus: int = 0, metrics: dict[str, str] | None = None, harness_data: dict[str, str] | None = None):
    """Evaluate one model on (task, condition) pairs; write samples.jsonl and return a score table.

    One ``simple_evaluate`` call per condition, with its number of shots (lm-eval's own tasks
    would otherwise run their default, e.g. gsm8k 5-shot, under every condition). ``metrics``
    (task -> metric) must each be reported, else a ValueError names the task and what was.
    """
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
        code = sorted({n for n in set(lm_eval_tasks.values()) if runs_code(manager, n)})
        if code and not allow_code_execution:
            raise ValueError(f"lm-eval task(s) {', '.join(code)} run model-written code: set "
                             "evaluation.allow_code_execution: true (only where jobs are sandboxed)")
        if code:  # lm-eval's code_eval metric refuses to run without it; set for these jobs only
            os.environ["HF_ALLOW_CODE_EVAL"] = "1"
        # harness tasks read their data set from the mirror (harness_data: lm-eval task -> folder)
        specs = {n: harness_spec(manager, n, f) for n, f in (harness_data or {}).items()}
        lm = HFLM(**hflm_kwargs(model_dir, batch_size, device, trust_remote_code, gpus))
        rows, samples = [], []
        for cond in sorted({c for _, c in items}):
            _, few, chat = CONDITIONS[cond]
            group = [(t, c) for (t, c) in items if c == cond]
            tasks = sorted({names[p] for p in group})
            res = lm_eval.simple_evaluate(model=lm, tasks=[specs.get(n, n) for n in tasks], task_manager=manager,
                                          num_fewshot=k_shot if few else 0,
                                          limit=max_items, log_samples=True, apply_chat_template=chat,
                                          fewshot_as_multiturn=chat and few,
                                          random_seed=0, numpy_random_seed=0, torch_random_seed=0,
                                          fewshot_random_seed=0, bootstrap_iters=0,
                                          confirm_run_unsafe_code=bool(set(tasks) & set(code)))
            for task, cond in group:
                name = names[(task, cond)]
                result = res["results"][name]
                n = res["n-samples"][name]["effective"]
                named = metric_names(result)
                for key, metric in named.items():
                    rows.append({"task": task, "condition": cond, "metric": metric,
                                 "score": float(result[key]) / metric_scale(metric), "n": int(n)})  # 0-1
                wanted = (metrics or {}).get(task)
                if wanted and wanted not in named.values():
                    raise ValueError(f"task {task} ({name}): the configured metric {wanted!r} is not among those "
                                     f"lm-eval reported: {', '.join(sorted(named.values()))}")
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
