"""Evaluation through lm-evaluation-harness.

Each (task, condition) becomes a generated task YAML over local JSONL files (a benchmark
declared, not coded); each evaluation job loads its model once and runs all its pairs in
at most two batched ``simple_evaluate`` calls (plain prompts, then chat-templated ones).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import yaml

from itlab.grid import CONDITIONS


PROCESS_RESULTS = "itlab_metrics.process_results"  # written as a !function tag
SAMPLER = "itlab_metrics.ItemShots"  # per-item in-context examples (itlab.shots)
METRICS_MODULE = ("from itlab.metrics import process_results  # noqa: F401\n"
                  "from itlab.shots import ItemShots  # noqa: F401\n")


def _dump(spec: dict) -> str:
    """YAML text of a task, with process_results and the sampler as lm-eval's !function tags."""
    text = yaml.safe_dump(spec, sort_keys=False)
    text = text.replace(f"sampler: {SAMPLER}", f"sampler: !function {SAMPLER}")
    return text.replace(f"process_results: {PROCESS_RESULTS}", f"process_results: !function {PROCESS_RESULTS}")


def prepare_test(task: str, files: dict, k_shot: int, max_items: int | None, seed: int) -> list[dict]:
    """The evaluated items of a task: a seeded subsample of its test file (stratified by
    ``label`` where records carry one), each with its own ``k_shot`` in-context examples
    drawn from the few-shot file (``fewshot``; never the item itself)."""
    from itlab.data import fewshot_draws, subsample
    from itlab.io import read_jsonl

    test = list(read_jsonl(files["test"]))
    labels = [r["label"] for r in test] if test and all("label" in r for r in test) else None
    test = [test[i] for i in subsample(len(test), max_items, seed, task, labels)]
    if k_shot:
        pool = list(read_jsonl(files["fewshot"]))
        for item, draw in zip(test, fewshot_draws(test, pool, k_shot, seed, task)):
            item["fewshot"] = [{"prompt": pool[j]["prompt"], "answer": pool[j]["answer"]} for j in draw]
    return test


# SampleGen-tuned models answer over several lines (two generated examples, then the answer):
# generation runs to the end of the response (EOS) with a larger budget, and the text after the
# last answer marker is scored.
SAMPLEGEN_TOKEN_FACTOR = 4


def samplegen_pattern() -> str:
    from itlab.data import SAMPLEGEN_ANSWER

    marker = re.escape(SAMPLEGEN_ANSWER)
    return rf"(?s){marker}((?:(?!{marker}).)*)$"  # the text after the last marker


def task_name(task: str, condition: str) -> str:
    return f"itlab__{task}__{condition}"


def task_yaml(task: str, condition: str, files: dict, k_shot: int, max_new_tokens: int,
              answer_format: str = "regular") -> dict:
    """An lm-eval generate_until task: greedy, stop at a newline, exact match after stripping.

    ``answer_format="samplegen"`` (a model tuned on a SampleGen mixture): no newline stop, a
    budget of ``SAMPLEGEN_TOKEN_FACTOR`` x max_new_tokens, and the answer after the last marker.
    """
    _, few, chat = CONDITIONS[condition]
    spec = {
        "task": task_name(task, condition),
        "dataset_path": "json",
        # the prepared items (prepare_test): a seeded subsample carrying their own examples
        "dataset_kwargs": {"data_files": {"test": str(Path(files["test"]).resolve())}},
        "test_split": "test",
        "fewshot_split": "test",  # so that the sampler sees the item; it returns the item's own examples
        "num_fewshot": k_shot if few else 0,
        "output_type": "generate_until",
        # chat conditions put the bare instruction in the user turn, as in tuning;
        # base conditions use the plain "Answer:" format of the pretraining corpus
        "doc_to_text": "{{prompt}}" if chat else "{{prompt}}\nAnswer:",
        "doc_to_target": "{{answer}}",
        "target_delimiter": " ",
        "fewshot_delimiter": "\n\n",
        "fewshot_config": {"sampler": SAMPLER},
        "generation_kwargs": {"until": ["\n"], "do_sample": False, "max_gen_toks": max_new_tokens},
        "filter_list": [{"name": "strip", "filter": [{"function": "remove_whitespace"}, {"function": "take_first"}]}],
        # exact match, token F1 and ROUGE-L per document (itlab.metrics via METRICS_MODULE)
        "process_results": PROCESS_RESULTS,
        "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True}
                        for m in ("exact_match", "f1", "rouge_l")],
        "metadata": {"version": 1.0},
    }
    if answer_format == "samplegen":
        spec["generation_kwargs"].update(until=[], max_gen_toks=SAMPLEGEN_TOKEN_FACTOR * max_new_tokens)  # EOS only
        spec["filter_list"] = [{"name": "strip", "filter": [
            {"function": "regex", "regex_pattern": samplegen_pattern(), "group_select": -1, "fallback": ""},
            {"function": "take_first"}]}]
    return spec


def run(model_dir: str, items: list[tuple[str, str]], files: dict[str, dict], k_shot: int, batch_size: int,
        max_new_tokens: int, max_items: int, out_dir: str | Path, trust_remote_code: bool = False,
        lm_eval_tasks: dict[str, str] | None = None, device: str = "cpu", allow_code_execution: bool = False,
        answer_format: str = "regular", lm=None, seed: int = 0):
    """Evaluate one model on (task, condition) pairs; write samples.jsonl and return a score table.

    ``answer_format``: the format the model was tuned on (``samplegen``: see task_yaml);
    ``lm``: an lm-eval model object to use instead of loading ``model_dir`` (tests).
    Each task's items are a seeded (stratified) subsample of at most ``max_items``, each with
    its own seeded k-shot examples (``prepare_test``).
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

        from itlab.io import write_jsonl

        names = {}
        (work / "itlab_metrics.py").write_text(METRICS_MODULE)
        for task, cond in items:
            if task in lm_eval_tasks:  # paper scale: an lm-eval task of the harness itself
                names[(task, cond)] = lm_eval_tasks[task]
                continue
            prepared = work / f"{task}.test.jsonl"
            if not prepared.exists():
                write_jsonl(prepared, prepare_test(task, files[task], k_shot, max_items, seed))
            spec = task_yaml(task, cond, {"test": prepared}, k_shot, max_new_tokens, answer_format)
            (work / f"{spec['task']}.yaml").write_text(_dump(spec))
            names[(task, cond)] = spec["task"]
        manager = TaskManager(include_path=str(work), include_defaults=bool(lm_eval_tasks))
        if lm is None:
            lm = HFLM(pretrained=model_dir, batch_size=batch_size, device=device, trust_remote_code=trust_remote_code,
                      max_length=None)
        rows, samples = [], []
        for chat in (False, True):
            group = [(t, c) for (t, c) in items if CONDITIONS[c][2] == chat]
            if not group:
                continue
            res = lm_eval.simple_evaluate(model=lm, tasks=sorted({names[p] for p in group}), task_manager=manager,
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
        write_jsonl(out_dir / "samples.jsonl", samples)
        return pd.DataFrame(rows, columns=["task", "condition", "metric", "score", "n"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
