"""Fixed per-job cost: processes that only coordinate must not pay for the heavy libraries.

tune_model's Snakemake script process only takes the run lock, starts torchrun and waits for
it; importing torch there (1.8 CPU-s here), transformers or deepspeed would be paid once more
per tuning job on top of the workers' own imports (benchmarks/job_overhead.py measures it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "deepspeed", "lm_eval", "peft", "pandas")

# tune_model.py's own imports (scripts/tune_model.py), i.e. what the launcher process holds
LAUNCHER = "from itlab import hub; from itlab.grid import Grid, tune_checkpointing; " \
           "from itlab.scripting import logged; from itlab.train.args import TrainArguments; " \
           "from itlab.train.launch import launch, requeue_after_warning"


def heavy_modules_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_launcher_process_imports_no_heavy_library():
    assert heavy_modules_after(LAUNCHER) == []


def test_training_arguments_and_deepspeed_config_import_no_heavy_library():
    """The launcher builds the DeepSpeed config and fingerprints from these modules."""
    assert heavy_modules_after("import itlab.train.loop, itlab.train.args, itlab.train.flops") == []


def test_probe_detects_a_heavy_import():
    """The probe itself can fail: a module that imports torch is reported."""
    assert heavy_modules_after("import itlab.train.launch\nimport torch") == ["torch"]
