"""The paper path's first-day failures (issue 10): each test fails on the code it guards against.

QLoRA's dependency and a real 4-bit run on CPU, 70B evaluation on several GPUs with the
experiment's resources, code benchmarks (HF_ALLOW_CODE_EVAL, lm-eval's metric keys), the
condition's shots for lm-eval's own tasks, and the memory of small study-E runs.
"""

import ast
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, snakemake


def _yaml(path):
    return yaml.safe_load((ROOT / path).read_text())


def _pins(lines):
    return {m.group(1).lower(): m.group(2) for m in (re.match(r"^\s*-?\s*([A-Za-z0-9_.-]+)==([^\s#]+)", l) for l in lines) if m}


def _env_pins(name):
    deps = yaml.safe_load((ROOT / f"envs/{name}.yaml").read_text())["dependencies"]
    return _pins(next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d))


# ---- 1. QLoRA ------------------------------------------------------------------------------
DATA_ENV_ONLY = {"load_hub_task"}  # itlab.data functions that run in download_task (envs/data.yaml)


def _imports(paths):
    """Top-level module names imported anywhere (including inside functions) in these files."""
    names = set()
    for path in paths:
        tree = ast.parse(path.read_text())
        for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name in DATA_ENV_ONLY]:
            fn.body = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"itlab", "__future__"}


def test_train_env_holds_every_import_of_the_training_code_and_bitsandbytes():
    from importlib.metadata import packages_distributions

    dists = packages_distributions()
    files = [*(ROOT / "itlab/train").glob("*.py"), *(ROOT / f"itlab/{m}.py" for m in ("models", "data", "io", "scripting")),
             ROOT / "scripts/tune_model.py", ROOT / "scripts/pretrain_model.py"]
    train, req = _env_pins("train"), _pins((ROOT / "requirements.txt").read_text().splitlines())
    for module in sorted(_imports(files)):
        assert module in dists, f"{module} is imported by the training code but not installed"
        for dist in dists[module]:
            assert dist.lower() in train, f"{dist} (import {module}) missing from envs/train.yaml"
            assert train[dist.lower()] == req.get(dist.lower()), f"{dist}: envs/train.yaml vs requirements.txt"
    # QLoRA (quantize_4bit) loads through transformers' BitsAndBytesConfig: bitsandbytes is a
    # runtime dependency nothing imports by name
    qlora = [p.name for p in sorted((ROOT / "experiments").glob("*.yaml"))
             if any(r.get("lora", {}).get("quantize_4bit") for r in (_yaml(p).get("recipes") or {}).values())]
    assert qlora, "a paper config uses QLoRA"
    assert "bitsandbytes" in train and train["bitsandbytes"] == req.get("bitsandbytes"), qlora
    import bitsandbytes

    assert bitsandbytes.__version__ == req["bitsandbytes"]


@pytest.mark.slow
def test_qlora_4bit_tuning_runs_on_cpu_through_the_launcher(tmp_path):
    """A tiny llama tuned with 4-bit QLoRA through itlab.train.launch (the tune_model code
    path): the base is loaded as bitsandbytes Linear4bit layers, the adapter trains, and the
    export merges into a full-precision reload."""
    import torch

    from itlab import io, models
    from itlab.train.args import TrainArguments
    from itlab.train.launch import launch

    docs = ["Question: what is one plus one?\nAnswer: two"] * 20
    tok = models.train_tokenizer(docs, 120, tmp_path / "base")
    models.build_model("llama", {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "intermediate_size": 128},
                       tok, 0).save_pretrained(tmp_path / "base")
    io.write_jsonl(tmp_path / "train.jsonl", [{"id": str(i), "prompt": f"repeat {i}", "answer": f"{i} {i}"} for i in range(16)])
    args = TrainArguments(model_path=str(tmp_path / "base"), train_file=str(tmp_path / "train.jsonl"),
                          output_dir=str(tmp_path / "run"), objective="sft", chat=True, max_seq_len=64,
                          global_batch_size=4, per_device_batch_size=2, learning_rate=1e-3, epochs=1,
                          zero_stage=2, lora_r=8, lora_alpha=16, lora_dropout=0.0, quantize_4bit=True,
                          checkpoint_every=100)
    log = (tmp_path / "log.txt").open("w")
    code = launch(args, processes=1, nodes=1, device="cpu", log=log)
    log.close()
    text = (tmp_path / "log.txt").read_text()
    assert code == 0, text[-4000:]
    assert "Linear4bit" in text  # the loop reports how the base was quantized
    done = json.loads((tmp_path / "run/DONE.json").read_text())
    assert done["steps"] >= 1 and done["final_loss"] == done["final_loss"]  # not NaN
    tuned = models.load_model(str(tmp_path / "run/model"))
    base = models.load_model(str(tmp_path / "base"))
    assert all(p.dtype == torch.float32 for p in tuned.parameters())  # merged into full precision
    diff = max((a - b).abs().max().item() for a, b in zip(tuned.parameters(), base.parameters()))
    assert diff > 0  # the adapter learnt something and was merged


# ---- 3. 70B evaluation ---------------------------------------------------------------------
def _job_resources(dry_run: str, rule: str) -> dict:
    """wildcards -> resources of each job of a rule in a dry-run's listing."""
    out = {}
    for block in dry_run.split("\n\n"):
        if f"rule {rule}:" not in block:
            continue
        wildcards = re.search(r"^\s*wildcards: (.*)$", block, re.M).group(1)
        res = re.search(r"^\s*resources: (.*)$", block, re.M).group(1)
        out[wildcards] = dict(kv.split("=", 1) for kv in res.split(", "))
    return out


def test_slurm_dry_run_gives_70b_evaluation_the_experiments_gpus(tmp_path):
    """Under the Slurm profile, evaluation takes the experiment's resources (the profile no
    longer overrides them), and a 70B model gets its size's several GPUs."""
    res = snakemake("-n", "--profile", "profiles/slurm", "--configfile", "experiments/inherent-limits.yaml",
                    "--config", f"results_dir={tmp_path}")
    assert res.returncode == 0, res.stderr[-3000:]
    # a 70B model's evaluation runs in shards (sizes.70b.evaluate_shards), each on the size's GPUs
    jobs = {**_job_resources(res.stdout, "evaluate_model"), **_job_resources(res.stdout, "evaluate_shard")}
    for model in ("base/llama2-70b", "tuned/llama2-70b__mix-flan__qlora__seed-42"):
        assert int(jobs[f"model={model}, shard=0"]["gpu"]) * 80 >= 2 * 70, model  # bf16 weights on 80 GB GPUs
    cfg = _yaml("experiments/inherent-limits.yaml")
    big, small = cfg["sizes"]["70b"]["evaluate_resources"], cfg["resources"]["evaluate"]
    for model in ("base/llama2-70b", "tuned/llama2-70b__mix-flan__qlora__seed-42"):
        r = jobs[f"model={model}, shard={cfg['sizes']['70b']['evaluate_shards'] - 1}"]
        assert (int(r["gpu"]), int(r["mem_mb"]), r["slurm_partition"]) == (big["gpus"], big["mem_mb"], big["partition"])
    r = jobs["model=base/llama2-7b"]
    assert (int(r["gpu"]), int(r["mem_mb"]), int(r["runtime"])) == (small["gpus"], small["mem_mb"], small["runtime"])


def test_a_model_too_big_for_its_evaluation_gpus_is_a_config_error():
    from itlab.config import ConfigError, validate

    cfg = _yaml("experiments/inherent-limits.yaml")
    cfg["sizes"]["70b"]["evaluate_resources"]["gpus"] = 1  # 140 GB of bf16 weights on one 80 GB GPU
    with pytest.raises(ConfigError, match=r"sizes\.70b\.evaluate_resources\.gpus.*llama2-70b"):
        validate(cfg)
    del cfg["sizes"]["70b"]["evaluate_resources"]  # resources.evaluate (1 GPU) is not enough either
    with pytest.raises(ConfigError, match=r"sizes\.70b\.evaluate_resources'"):
        validate(cfg)


def test_evaluation_spreads_a_model_over_several_gpus(monkeypatch, tmp_path):
    """HFLM gets parallelize (device_map auto) when the job has more than one GPU, one device
    otherwise; the script passes the job's gpu resource."""
    import lm_eval.models.huggingface as hf

    from itlab import evaluate

    seen = []

    class Stop(Exception):
        pass

    def fake_hflm(**kwargs):
        seen.append(kwargs)
        raise Stop

    monkeypatch.setattr(hf, "HFLM", fake_hflm)
    for gpus in (4, 1):
        with pytest.raises(Stop):
            evaluate.run("some/model", [], {}, 0, 8, 8, 10, tmp_path, device="cuda", gpus=gpus)
    assert seen[0]["parallelize"] is True and seen[0]["device_map"] == "auto" and "device" not in seen[0]
    assert seen[1]["device"] == "cuda" and not seen[1].get("parallelize")
    # every argument is one lm-eval 0.4.13's HFLM takes (device_map: read from its kwargs when loading)
    import inspect

    monkeypatch.undo()
    named = set(inspect.signature(hf.HFLM.__init__).parameters)
    assert set(seen[0]) - named == {"device_map"} and 'kwargs.get("device_map")' in inspect.getsource(hf.HFLM._create_model)
    assert "gpus=snakemake.resources.gpu" in (ROOT / "scripts/evaluate_model.py").read_text()


# ---- 6. memory of small study-E runs -------------------------------------------------------
def test_model_state_memory_matches_a_hand_count():
    from itlab.grid import model_state_gb

    bf16 = {"bf16": True, "zero_stage": 3, "offload_optimizer": False, "offload_params": False}
    # 13B, ZeRO-3, 2 GPUs: 13e9 x (2 + 2 + 12) bytes = 208 GB in all, 104 GB per GPU
    assert model_state_gb(13, bf16, world=2, nodes=1)["gpu"] == pytest.approx(104)
    # ZeRO-2 on 8 GPUs: weights replicated (26 GB), gradients + Adam sharded (13 x 14 / 8)
    assert model_state_gb(13, {**bf16, "zero_stage": 2}, world=8, nodes=1)["gpu"] == pytest.approx(26 + 22.75)
    off = model_state_gb(13, {**bf16, "offload_optimizer": True}, world=2, nodes=1)
    assert off == pytest.approx({"gpu": 26, "cpu_per_node": 156})
    assert model_state_gb(70, bf16, world=4, nodes=1, lora={"quantize_4bit": True})["gpu"] == pytest.approx(38.5)


def test_small_study_e_runs_fit_their_gpus():
    """Runs with <= 100 examples (global batch 2) run on 2 GPUs; a 13B full fine-tune there
    needs ZeRO-3 optimizer offload to fit 80 GB GPUs (counted here independently)."""
    from itlab.config import validate
    from itlab.grid import Grid, tune_arguments, tune_launch

    cfg = validate(_yaml("experiments/scaling.yaml"))
    grid = Grid(cfg)
    for run_id, run in grid.runs.items():
        size = cfg["sizes"][grid.base_models[run.base].size]
        args, launch = tune_arguments(grid, run_id), tune_launch(grid, run_id)
        world = launch["processes"] * launch["nodes"]
        per_param = 2 + 2 + (0 if args["offload_optimizer"] else 12)  # bf16 weights, grads; Adam on GPU or CPU
        gpu_gb = size["resources"].get("gpu_mem_gb", 80)
        assert args["zero_stage"] == 3 and size["params_b"] * per_param / world <= gpu_gb, run_id
    small = "llama2-13b__sub-gsm8k-n10__full__seed-1"
    assert tune_launch(grid, small)["processes"] == 2 and tune_arguments(grid, small)["offload_optimizer"]
    assert not tune_arguments(grid, "llama2-13b__sub-gsm8k-n300__full__seed-1")["offload_optimizer"]  # 8 GPUs: fits


def test_model_states_that_cannot_fit_are_a_config_error_naming_the_key():
    from itlab.config import ConfigError, validate

    cfg = _yaml("experiments/scaling.yaml")
    tune = cfg["sizes"]["70b"]["tune"]
    tune["offload_optimizer"] = False
    cfg["sizes"]["70b"]["resources"]["nodes"] = 1  # 70B full fine-tune on 8 GPUs: 140 GB per GPU
    with pytest.raises(ConfigError, match=r"sizes\.70b\.tune\.offload_optimizer.*~140 GB per GPU"):
        validate(cfg)
    tune["offload_optimizer"] = True  # fits the GPUs (35 GB) but Adam's 840 GB not the node
    cfg["sizes"]["70b"]["resources"]["mem_mb"] = 500000
    with pytest.raises(ConfigError, match=r"sizes\.70b\.resources\.mem_mb.*~840 GB per node"):
        validate(cfg)


# ---- 4. code benchmarks --------------------------------------------------------------------
@pytest.fixture(scope="module")
def lm_eval_tasks():
    """The index evaluation builds: the folders defining these tasks (itlab.evaluate.task_manager)."""
    from itlab import hub
    from itlab.evaluate import task_manager

    return task_manager(sorted(hub.harness_table()))


def test_code_tasks_are_recognised_from_lm_evals_own_configs(lm_eval_tasks):
    from itlab.evaluate import runs_code

    assert [runs_code(lm_eval_tasks, t) for t in ("humaneval", "humaneval_plus", "mbpp")] == [True] * 3
    assert [runs_code(lm_eval_tasks, t) for t in ("gsm8k", "ifeval", "no_such_task")] == [False] * 3
    # the filters lm-eval 0.4.13 reports them under: humaneval's pass@1 comes as "pass@1,create_test"
    assert [f["name"] for f in lm_eval_tasks.task_index["humaneval_plus"].cfg["filter_list"]] == ["create_test"]
    assert [f["name"] for f in lm_eval_tasks.task_index["gsm8k"].cfg["filter_list"]] == ["strict-match", "flexible-extract"]


class _Entry:
    def __init__(self, unsafe):
        self.cfg = {"unsafe_code": unsafe}


def _fake_harness(monkeypatch, results: dict, calls: list, managers: list | None = None):
    """HFLM, TaskManager and simple_evaluate stand-ins: lm-eval's own tasks need hub data.
    ``managers`` collects each TaskManager's keyword arguments."""
    import os

    import lm_eval
    import lm_eval.models.huggingface as hf
    import lm_eval.tasks

    class Manager:
        def __init__(self, **kwargs):
            (managers if managers is not None else []).append(kwargs)
            self.task_index = {"humaneval_plus": _Entry(True), "mbpp": _Entry(True), "gsm8k": _Entry(None)}

        def load(self, specs):  # the tasks' splits (7 rows: fewer than asked, so evaluated whole)
            return {"tasks": {s: type("Task", (), {"eval_docs": [{}] * 7})() for s in specs}}

    def simple_evaluate(**kwargs):
        calls.append({**kwargs, "HF_ALLOW_CODE_EVAL": os.environ.get("HF_ALLOW_CODE_EVAL")})
        return {"results": {t: results[t] for t in kwargs["tasks"]},
                "n-samples": {t: {"effective": 7} for t in kwargs["tasks"]}, "samples": {}}

    monkeypatch.setattr(os, "environ", dict(os.environ))  # run() sets the variable for its process
    os.environ.pop("HF_ALLOW_CODE_EVAL", None)
    monkeypatch.setattr(hf, "HFLM", lambda **kwargs: object())
    monkeypatch.setattr(lm_eval.tasks, "TaskManager", Manager)
    monkeypatch.setattr(lm_eval, "simple_evaluate", simple_evaluate)


RESULTS = {"humaneval_plus": {"alias": "humaneval_plus", "pass@1,create_test": 0.25, "pass@1_stderr,create_test": "N/A"},
           "gsm8k": {"exact_match,strict-match": 0.1, "exact_match_stderr,strict-match": 0.01,
                     "exact_match,flexible-extract": 0.3, "exact_match_stderr,flexible-extract": 0.02}}


def test_code_jobs_allow_code_execution_and_keep_pass_at_1(monkeypatch, tmp_path):
    from itlab import evaluate

    calls, managers = [], []
    _fake_harness(monkeypatch, RESULTS, calls, managers)
    code = evaluate.run("m", [("self_align", "tuned_zero_shot")], {}, 0, 8, 8, 10, tmp_path / "a",
                        lm_eval_tasks={"self_align": "humaneval_plus"}, allow_code_execution=True,
                        metrics={"self_align": "pass@1"})
    assert calls[-1]["HF_ALLOW_CODE_EVAL"] == "1" and calls[-1]["confirm_run_unsafe_code"] is True
    assert code.to_dict("records") == [{"task": "self_align", "condition": "tuned_zero_shot", "metric": "pass@1",
                                        "score": 0.25, "n": 7}]
    import os

    os.environ.pop("HF_ALLOW_CODE_EVAL")
    math = evaluate.run("m", [("gsm8k", "tuned_zero_shot")], {}, 0, 8, 8, 10, tmp_path / "b",
                        lm_eval_tasks={"gsm8k": "gsm8k"}, allow_code_execution=True,
                        metrics={"gsm8k": "exact_match,flexible-extract"})
    assert calls[-1]["HF_ALLOW_CODE_EVAL"] is None and calls[-1]["confirm_run_unsafe_code"] is False  # only code jobs
    assert dict(zip(math.metric, math.score)) == {"exact_match,strict-match": 0.1, "exact_match,flexible-extract": 0.3}
    # each job indexes only the lm-eval folder defining its task, then its own work folder
    assert [(Path(m["include_path"][0]).name, m["include_defaults"]) for m in managers] == [("humaneval", False),
                                                                                          ("gsm8k", False)]
    assert all(Path(m["include_path"][-1]).name.startswith(".lmeval.") for m in managers)


def test_a_configured_metric_lm_eval_never_reports_is_an_error(monkeypatch, tmp_path):
    from itlab import evaluate

    _fake_harness(monkeypatch, RESULTS, [])
    with pytest.raises(ValueError, match=r"self_align.*'pass@10'.*pass@1"):
        evaluate.run("m", [("self_align", "tuned_zero_shot")], {}, 0, 8, 8, 10, tmp_path,
                     lm_eval_tasks={"self_align": "humaneval_plus"}, allow_code_execution=True,
                     metrics={"self_align": "pass@10"})
    with pytest.raises(ValueError, match="humaneval_plus.*evaluation.allow_code_execution"):
        evaluate.run("m", [("self_align", "tuned_zero_shot")], {}, 0, 8, 8, 10, tmp_path,
                     lm_eval_tasks={"self_align": "humaneval_plus"}, allow_code_execution=False)



# ---- 5. the condition's shots for lm-eval's own tasks --------------------------------------
@pytest.mark.slow
def test_harness_tasks_run_with_the_conditions_number_of_shots(monkeypatch, tmp_path):
    """A harness-style task (its own YAML defaults to 3 shots, as mbpp does; gsm8k: 5) run for
    real on a tiny model under base_zero_shot and base_k_shot: each condition is its own run
    with 0 and k shots, and its scores are filed under that condition."""
    import lm_eval
    import lm_eval.tasks

    from itlab import data, evaluate, io, models
    from itlab.tasks import TaskParams

    docs = data.build_corpus(["add"], 50, 4, 1, 1, TaskParams(), "train")
    tok = models.train_tokenizer(docs, 200, tmp_path / "m")
    models.build_model("llama", {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64},
                       tok, 0).save_pretrained(tmp_path / "m")
    for split, recs in data.synthesize_task("add", {"train": 10, "validation": 2, "test": 6}, 1, TaskParams()).items():
        io.write_jsonl(tmp_path / f"{split}.jsonl", recs)
    harness = tmp_path / "harness"
    harness.mkdir()
    # the task's items carry their own in-context examples (itlab.shots: 3, the most asked)
    io.write_jsonl(tmp_path / "items.jsonl", evaluate.prepare_test(
        "add", {"test": tmp_path / "test.jsonl", "fewshot": tmp_path / "train.jsonl"}, 3, None, 0))
    spec = evaluate.task_yaml("add", "base_zero_shot", {"test": tmp_path / "items.jsonl"}, 0, 4)
    spec.update(task="itlab_test_harness", num_fewshot=3)  # the task's own default
    (harness / "itlab_test_harness.yaml").write_text(evaluate._dump(spec))
    (harness / "itlab_metrics.py").write_text(evaluate.METRICS_MODULE)

    real_manager, real_evaluate, shots = lm_eval.tasks.TaskManager, lm_eval.simple_evaluate, []

    def manager(include_path=None, include_defaults=True, **kwargs):  # the harness task, not lm-eval's 200 MB index
        return real_manager(include_path=[*include_path, str(harness)], include_defaults=False, **kwargs)

    def spy(**kwargs):
        res = real_evaluate(**kwargs)
        shots.append(res["n-shot"]["itlab_test_harness"])
        return res

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", manager)
    monkeypatch.setattr(lm_eval, "simple_evaluate", spy)
    scores = evaluate.run(str(tmp_path / "m"), [("h", "base_zero_shot"), ("h", "base_k_shot")], {}, 2, 8, 4, 6,
                          tmp_path / "out", lm_eval_tasks={"h": "itlab_test_harness"})
    assert sorted(shots) == [0, 2]
    assert set(scores.condition) == {"base_zero_shot", "base_k_shot"} and (scores.n == 6).all()
    samples = [json.loads(l) for l in (tmp_path / "out/samples.jsonl").read_text().splitlines()]
    assert sorted({s["condition"] for s in samples}) == ["base_k_shot", "base_zero_shot"] and len(samples) == 12


# ---- found running the paper path: lm-eval tasks' own dependencies --------------------------
def test_eval_env_holds_what_the_configs_lm_eval_tasks_import(lm_eval_tasks):
    """ifeval (study E) imports langdetect and immutabledict, which lm-eval installs only as
    its [ifeval] extra; every module the named tasks' code imports is pinned in envs/eval.yaml."""
    from importlib.metadata import packages_distributions

    named = {h["lm_eval_task"] for p in sorted((ROOT / "experiments").glob("*.yaml"))
             for h in ((_yaml(p).get("data") or {}).get("hub_tasks") or {}).values() if "lm_eval_task" in h}
    assert {"ifeval", "humaneval_plus", "gsm8k", "humaneval", "mbpp"} <= named
    dists, env, req = packages_distributions(), _env_pins("eval"), _pins((ROOT / "requirements.txt").read_text().splitlines())
    needed = set()
    for task in sorted(named):
        folder = Path(lm_eval_tasks.task_index[task].yaml_path).parent
        needed |= _imports(sorted(folder.glob("*.py"))) - {"lm_eval"}
    assert {"langdetect", "immutabledict", "nltk"} <= needed  # ifeval's utilities
    assert all(env[d] == req.get(d) for d in env)
    for module in sorted(needed):
        assert module in dists, f"{module} (imported by an lm-eval task the configs name) is not installed"
        assert any(d.lower().replace("_", "-") in _installed_with(env) for d in dists[module]), \
            f"{module} is neither pinned in envs/eval.yaml nor installed with what is"


def _installed_with(pins: dict) -> set:
    """Distributions pip installs for these pins: them and their non-extra requirements, recursively."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement

    seen, todo = set(), list(pins)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = requires(name) or []
        except PackageNotFoundError:
            continue
        for r in map(Requirement, reqs):
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(r.name)
    return seen
