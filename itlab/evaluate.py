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

from itlab.grid import CONDITIONS, SAMPLEGEN_TOKEN_FACTOR
from itlab.metrics import AGGREGATION, METRICS, metric_scale


PROCESS_RESULTS = "itlab_metrics.process_results"  # written as a !function tag
SAMPLER = "itlab_metrics.ItemShots"  # per-item in-context examples (itlab.shots)
# prompts and targets (itlab.shots): functions, never Jinja strings, which lm-eval recompiles per document
PROMPTS = {"base": "itlab_metrics.base_prompt", "chat": "itlab_metrics.chat_prompt", "target": "itlab_metrics.answer"}
METRICS_MODULE = ("from itlab.metrics import process_results  # noqa: F401\n"
                  "from itlab.shots import ItemShots, answer, base_prompt, chat_prompt  # noqa: F401\n")


def _dump(spec: dict) -> str:
    """YAML text of a task, with process_results, the sampler, the prompt and the target as
    lm-eval's !function tags."""
    text = yaml.safe_dump(spec, sort_keys=False)
    text = text.replace(f"sampler: {SAMPLER}", f"sampler: !function {SAMPLER}")
    for key in ("doc_to_text", "doc_to_target"):
        for name in PROMPTS.values():
            text = text.replace(f"{key}: {name}", f"{key}: !function {name}")
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
# generation runs to the end of the response (EOS) with a larger budget (SAMPLEGEN_TOKEN_FACTOR
# x max_new_tokens, defined in itlab.grid, whose plan estimate counts it), and the text after
# the last answer marker is scored.


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
        "doc_to_text": PROMPTS["chat" if chat else "base"],
        "doc_to_target": PROMPTS["target"],
        "target_delimiter": " ",
        "fewshot_delimiter": "\n\n",
        "fewshot_config": {"sampler": SAMPLER},
        "generation_kwargs": {"until": ["\n"], "do_sample": False, "max_gen_toks": max_new_tokens},
        "filter_list": [{"name": "strip", "filter": [{"function": "remove_whitespace"}, {"function": "take_first"}]}],
        # exact match, SQuAD F1, ROUGE-L per document and corpus BLEU (itlab.metrics via METRICS_MODULE)
        "process_results": PROCESS_RESULTS,
        "metric_list": [{"metric": m, "aggregation": AGGREGATION[m], "higher_is_better": True} for m in METRICS],
        "metadata": {"version": 1.0},
    }
    if answer_format == "samplegen":
        spec["generation_kwargs"].update(until=[], max_gen_toks=SAMPLEGEN_TOKEN_FACTOR * max_new_tokens)  # EOS only
        spec["filter_list"] = [{"name": "strip", "filter": [
            {"function": "regex", "regex_pattern": samplegen_pattern(), "group_select": -1, "fallback": ""},
            {"function": "take_first"}]}]
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


def _no_env_info(storage: dict) -> None:
    """Stands in for lm_eval.evaluator.add_env_info (see evaluate)."""


def metric_names(result: dict) -> dict[str, str]:
    """lm-eval result keys ("<metric>,<filter>") -> itlab metric names: the bare metric where
    one filter reports it (``pass@1,create_test`` -> ``pass@1``), the full key where several do
    (gsm8k's ``exact_match,strict-match`` and ``exact_match,flexible-extract``)."""
    keys = [k for k, v in result.items() if "," in k and "stderr" not in k and isinstance(v, (int, float))]
    filters: dict[str, int] = {}
    for k in keys:
        filters[k.split(",", 1)[0]] = filters.get(k.split(",", 1)[0], 0) + 1
    return {k: k.split(",", 1)[0] if filters[k.split(",", 1)[0]] == 1 else k for k in keys}


_TASK_LINE = re.compile(r"^[\"']?task[\"']?:[ \t]*['\"]?([^'\"\s#]+)['\"]?[ \t]*(?:#.*)?$", re.M)


def harness_task_folders(names, root: str | Path | None = None) -> list[Path] | None:
    """The folders of lm-eval's task tree whose YAMLs name these tasks (a top-level ``task:
    <name>`` line, the key quoted or not), for a TaskManager that indexes those folders (and
    their subfolders) instead of all ~14,000 YAMLs of lm-eval 0.4 (13.7 s of a 27 s evaluation
    job on 2 cores). Folders named like a task's prefix (``humaneval`` for ``humaneval_plus``)
    are read first, then the whole tree as text (~1 s). None when a name is not found that
    way (a group, a task list) or is defined in two of the folders read (which one lm-eval's
    full index keeps is its business): ``task_manager`` then indexes everything."""
    if root is None:
        import lm_eval.tasks

        root = Path(lm_eval.tasks.__file__).parent
    root, wanted, found = Path(root), set(names), {}

    def scan(files):
        for f in files:
            for m in _TASK_LINE.finditer(f.read_text(encoding="utf-8", errors="replace")):
                if m.group(1) in wanted:
                    found.setdefault(m.group(1), set()).add(f.parent)

    likely = [d for d in sorted(root.iterdir()) if d.is_dir() and any(n.startswith(d.name) for n in wanted)]
    scan(f for d in likely for f in sorted(d.rglob("*.yaml")))
    if wanted - set(found):
        scan(sorted(root.rglob("*.yaml")))
    if wanted - set(found) or any(len(dirs) > 1 for dirs in found.values()):
        return None
    return sorted({d for dirs in found.values() for d in dirs})


def task_manager(lm_eval_names=(), include=()):
    """lm-eval's TaskManager over the ``include`` folders (a job's generated task YAMLs; last,
    so their tasks win over any lm-eval task of the same name) and lm-eval's own tasks named
    in ``lm_eval_names``: only the folders defining them (``harness_task_folders``), its whole
    task tree when they cannot be found that way, none of it when no name is given."""
    from lm_eval.tasks import TaskManager

    folders = harness_task_folders(set(lm_eval_names)) if lm_eval_names else []
    return TaskManager(include_path=[*map(str, folders or []), *map(str, include)], include_defaults=folders is None)


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


def harness_samples(manager, specs: list, max_items: int | None, seed: int) -> dict[str, list[int]]:
    """Which documents of lm-eval's own tasks are evaluated: lm-eval task name -> doc indices
    into its evaluation split, a seeded shuffle of at most ``max_items`` (``itlab.data.subsample``,
    keyed by the lm-eval task's name, so every model and condition gets the same items),
    stratified by the target of multiple-choice tasks; never lm-eval's ``limit`` (its first rows).

    Sorted: lm-eval 0.4.13 walks the split in order keeping the selected rows and maps the
    n-th kept row back to ``samples[n]``. Tasks evaluated whole are left out (every row)."""
    from itlab.data import subsample

    if max_items is None:
        return {}
    out = {}
    for name, task in manager.load(list(specs))["tasks"].items():
        docs = task.eval_docs
        if max_items >= len(docs):
            continue
        labels = None
        if task.get_config("output_type") == "multiple_choice":
            labels = [str(task.doc_to_target(d)) for d in docs]
        out[name] = sorted(subsample(len(docs), max_items, seed, f"lm-eval/{name}", labels))
        print(f"[itlab] {name}: {max_items} of {len(docs)} documents (seed {seed}"
              f"{', stratified by target' if labels else ''}): {out[name]}", flush=True)
    return out


def run(model_dir: str, items: list[tuple[str, str]], files: dict[str, dict], k_shot: int, batch_size: int,
        max_new_tokens: int, max_items: int, out_dir: str | Path, trust_remote_code: bool = False,
        lm_eval_tasks: dict[str, str] | None = None, device: str = "cpu", allow_code_execution: bool = False,
        gpus: int = 0, metrics: dict[str, str] | None = None, harness_data: dict[str, str] | None = None,
        answer_format: str = "regular", lm=None, seed: int = 0):
    """Evaluate one model on (task, condition) pairs; write samples.jsonl and return a score table.

    One ``simple_evaluate`` call per condition, with its number of shots (lm-eval's own tasks
    would otherwise run their default, e.g. gsm8k 5-shot, under every condition). ``metrics``
    (task -> metric) must each be reported, else a ValueError names the task and what was.

    ``answer_format``: the format the model was tuned on (``samplegen``: see task_yaml);
    ``lm``: an lm-eval model object to use instead of loading ``model_dir`` (tests).
    Each task's items are a seeded (stratified) subsample of at most ``max_items``, each with
    its own seeded k-shot examples (``prepare_test``); lm-eval's own tasks get the same kind of
    subsample as an explicit document selection (``harness_samples``; samples.jsonl's
    ``doc_id`` is the index into the task's split) and their k-shot examples from lm-eval's
    sampler seeded with ``seed``.
    """
    import pandas as pd

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"[itlab] evaluating {model_dir} on {len(items)} (task, condition) pairs", flush=True)
    from itlab.io import remove_stale_temporaries

    remove_stale_temporaries(out_dir, ".lmeval.")  # a killed earlier attempt's work folder
    work = Path(tempfile.mkdtemp(prefix=".lmeval.", dir=out_dir))
    os.environ.setdefault("HF_DATASETS_CACHE", str(work / "datasets"))  # per job: parallel jobs never share a cache
    if Path(model_dir).is_dir():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    lm_eval_tasks = lm_eval_tasks or {}
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
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
        manager = task_manager(set(lm_eval_tasks.values()), [work])
        code = sorted({n for n in set(lm_eval_tasks.values()) if runs_code(manager, n)})
        if code and not allow_code_execution:
            raise ValueError(f"lm-eval task(s) {', '.join(code)} run model-written code: set "
                             "evaluation.allow_code_execution: true (only where jobs are sandboxed)")
        if code:  # lm-eval's code_eval metric refuses to run without it; set for these jobs only
            os.environ["HF_ALLOW_CODE_EVAL"] = "1"
        # harness tasks read their data set from the mirror (harness_data: lm-eval task -> folder)
        specs = {n: harness_spec(manager, n, f) for n, f in (harness_data or {}).items()}
        harness = sorted(set(lm_eval_tasks[t] for t, _ in items if t in lm_eval_tasks))
        chosen = harness_samples(manager, [specs.get(n, n) for n in harness], max_items, seed) if harness else {}
        if lm is None:
            lm = HFLM(**hflm_kwargs(model_dir, batch_size, device, trust_remote_code, gpus))
        # lm-eval's add_env_info collects torch's environment report (pip list, nvidia-smi, ...:
        # ~2 s of subprocesses per call) into a results key itlab never reads: skipped
        import lm_eval.evaluator

        lm_eval.evaluator.add_env_info = _no_env_info
        rows, samples = [], []
        for cond in sorted({c for _, c in items}):
            _, few, chat = CONDITIONS[cond]
            group = [(t, c) for (t, c) in items if c == cond]
            tasks = sorted({names[p] for p in group})
            res = lm_eval.simple_evaluate(model=lm, tasks=[specs.get(n, n) for n in tasks], task_manager=manager,
                                          num_fewshot=k_shot if few else 0,
                                          # itlab's tasks are prepared subsamples; lm-eval's own get theirs
                                          samples=chosen or None,  # keyed by leaf task; extra keys unused
                                          log_samples=True, apply_chat_template=chat,
                                          fewshot_as_multiturn=chat and few,
                                          random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
                                          fewshot_random_seed=seed, bootstrap_iters=0,
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
        write_jsonl(out_dir / "samples.jsonl", samples)
        return pd.DataFrame(rows, columns=["task", "condition", "metric", "score", "n"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def merge_shards(score_files: list, sample_files: list, shards: list[list]) -> tuple:
    """The outputs of a model's evaluation shards (itlab.grid.eval_shards) as the one job over
    all its pairs writes them: (score table, samples), ordered by condition, then task, each
    (task, condition) in its shard's own order (what ``run`` writes for the same pairs).

    ``shards``: each shard's (task, condition) pairs; a shard whose scores miss one of them or
    hold another pair is a ValueError naming the shard (a stale or foreign file)."""
    import pandas as pd

    from itlab.io import read_jsonl

    frames, samples = [], []
    for i, (scores, sample_file, pairs) in enumerate(zip(score_files, sample_files, shards, strict=True)):
        frame = pd.read_csv(scores, sep="\t", dtype={"task": str, "condition": str, "metric": str},
                            keep_default_na=False, na_values={"score": [""]})
        got, want = set(zip(frame.task, frame.condition)), {tuple(p) for p in pairs}
        if got != want:
            raise ValueError(f"evaluation shard {i} ({scores}): scores for {sorted(got - want)} not in the shard, "
                             f"none for {sorted(want - got)}")
        frames.append(frame)
        samples += read_jsonl(sample_file)
    table = pd.concat(frames, ignore_index=True)
    order = sorted(range(len(table)), key=lambda r: (table.condition[r], table.task[r]))  # stable: rows keep their order
    samples.sort(key=lambda s: (s["condition"], s["task"]))
    return table.iloc[order].reset_index(drop=True), samples
