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
    jobs = _job_resources(res.stdout, "evaluate_model")
    for model in ("base/llama2-70b", "tuned/llama2-70b__mix-flan__qlora__seed-42"):
        assert int(jobs[f"model={model}"]["gpu"]) * 80 >= 2 * 70, model  # bf16 weights on 80 GB GPUs
    cfg = _yaml("experiments/inherent-limits.yaml")
    big, small = cfg["sizes"]["70b"]["evaluate_resources"], cfg["resources"]["evaluate"]
    for model in ("base/llama2-70b", "tuned/llama2-70b__mix-flan__qlora__seed-42"):
        r = jobs[f"model={model}"]
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
    assert seen[0]["parallelize"] is True and seen[0]["device_map_option"] == "auto" and "device" not in seen[0]
    assert seen[1]["device"] == "cuda" and not seen[1].get("parallelize")
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
