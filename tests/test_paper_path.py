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
