"""benchmarks/gpu_mfu.py runs on a lent GPU only now and then: its paths (tuning through itlab's
launcher in bf16, batched forward and generation, study D's attribution) run here on the CPU
with tiny shapes, so the script a GPU session needs is known to work before the GPU is there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_path_of_the_gpu_benchmark_runs_on_the_cpu(tmp_path):
    out = tmp_path / "rows.json"
    res = subprocess.run([sys.executable, "benchmarks/gpu_mfu.py", "--smoke", "--recipes", "zero0-1.1b",
                          "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [r["part"] for r in rows] == ["eval", "eval"] + ["attribution"] * 3 + ["tune"]  # batch 1, 4, 4 in TF32
    assert not [r for r in rows if "error" in r]
    tune = rows[-1]
    assert tune["steps_timed"] == 2 and tune["trainable"] == tune["params"] > 0  # 3 steps, the first left out
    assert all(r["tokens_per_s"] > 0 for r in rows)
    assert "| tune | 1.1B llama, full, ZeRO-0" in res.stdout  # the table a GPU session reads
