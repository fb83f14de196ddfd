"""The Slurm profile against a real Slurm cluster (started by .ci/run with
tools/slurm-cluster.sh): a full chain with a tuning job cancelled mid-run and resumed,
the sbatch line of a multi-GPU tuning job, and a failing job."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, snakemake, write_config

REQUIRED = os.environ.get("ITLAB_REQUIRE_SLURM") == "1"


def _slurm_ready() -> str | None:
    if not shutil.which("sinfo"):
        return "no Slurm client (sinfo) on this machine; start one with tools/slurm-cluster.sh start"
    res = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if res.returncode or not {"idle", "mixed", "allocated"} & set(res.stdout.split()):
        return f"no Slurm node is up (sinfo: {res.stdout.strip() or res.stderr.strip()})"
    return None


_reason = _slurm_ready()
if _reason and REQUIRED:
    raise RuntimeError(f"ITLAB_REQUIRE_SLURM=1 but {_reason}")
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(_reason is not None, reason=_reason or "")]

PROFILE = ["--profile", "profiles/slurm", "--workflow-profile", "tests/slurm-profile"]
# snakemake with the plugin's status checks at most 1 s apart (its back-off to 180 s made the
# chain wait for polls, not for Slurm): tests/slurm_snakemake.py
SLURM_SNAKEMAKE = [sys.executable, str(ROOT / "tests/slurm_snakemake.py")]


STEPS = yaml.safe_load((ROOT / "tests/configs/slurm.yaml").read_text())["recipes"]["default"]["max_steps"]


def _slurm_snakemake(*args, timeout=600, env=None):
    return subprocess.run(SLURM_SNAKEMAKE + list(args), cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def _config(tmp_path, **changes) -> tuple[dict, Path]:
    cfg = yaml.safe_load((ROOT / "tests/configs/slurm.yaml").read_text())
    cfg["results_dir"] = str(tmp_path / "results")
    for key, value in changes.items():
        cfg[key] = value
    return cfg, write_config(tmp_path, cfg)


def _slurm_args(tmp_path):
    return PROFILE + ["--slurm-logdir", str(tmp_path / "slurm-logs")]


def _our_jobs(rule: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i|%k|%T"], capture_output=True, text=True).stdout
    return [line.split("|")[0] for line in out.splitlines() if rule in line and "RUNNING" in line]


def _train_logs(run_dir: Path) -> Path:
    """The tuning job's training logs (metrics.jsonl, tensorboard/): logs/tune_model/<run>/."""
    return run_dir.parents[1] / "logs" / "tune_model" / run_dir.name


def _metrics_steps(run_dir: Path) -> int:
    f = _train_logs(run_dir) / "metrics.jsonl"
    return len(f.read_text().splitlines()) if f.exists() else 0


def _checkpoints(run_dir: Path) -> list[str]:
    """Complete checkpoints of a run: results_dir/checkpoints/tuned/<run>/ (not an output)."""
    ck = run_dir.parents[1] / "checkpoints" / "tuned" / run_dir.name
    return sorted(p.name for p in ck.glob("step-*") if (p / "COMPLETE").exists()) if ck.is_dir() else []


def test_chain_with_tuning_job_cancelled_before_any_checkpoint_resumes(tmp_path):
    """scancel (SIGTERM to every process of the job's step: launcher, torchrun, workers)
    before any periodic checkpoint exists: the workers save at the step they reached within
    torchrun's grace period, the cancelled job fails the run, and the rerun resumes there."""
    cfg, path = _config(tmp_path)
    cfg["recipes"]["default"]["checkpoint_every"] = 1000  # beyond the run: no periodic checkpoint
    path = write_config(tmp_path, cfg)
    root = tmp_path / "results"
    run = "llama-s__mix-all__default__seed-1"
    run_dir = root / "tuned" / run
    # study A's chain up to its summary (the scorecard and the pretraining report run in the
    # local workflow tests: two fewer Slurm jobs here)
    target = str(root / "studies/inherent_limits/summary.md")
    cmd = [*SLURM_SNAKEMAKE, target, *_slurm_args(tmp_path), "--configfile", str(path)]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline, cancelled, seen = time.time() + 600, None, 0
    while time.time() < deadline and first.poll() is None:
        if not cancelled and _metrics_steps(run_dir) >= 3:
            jobs = _our_jobs("tune_model")
            if jobs:
                assert not _checkpoints(run_dir)
                seen = _metrics_steps(run_dir)
                subprocess.run(["scancel", *jobs], check=True)
                cancelled = jobs
        time.sleep(0.2)
    out = first.communicate(timeout=300)[0]
    assert cancelled, f"the tuning job was never seen running:\n{out[-4000:]}"
    assert first.returncode != 0, "a cancelled job must fail the run"
    assert not (run_dir / "DONE.json").exists()
    saved = _checkpoints(run_dir)
    assert len(saved) == 1 and int(saved[0].split("-")[1]) >= seen, (saved, seen)

    second = _slurm_snakemake(target, *_slurm_args(tmp_path), "--configfile", str(path), "--rerun-incomplete",
                              timeout=1500)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    log = (root / "logs/tune_model" / f"{run}.log").read_text()
    step = int(saved[0].split("-")[1])
    assert f"resumed from {saved[0]} at step {step}/{STEPS}" in log, log[-3000:]
    # synthesis -> tuning -> evaluation -> aggregation all went through Slurm
    assert (root / "tables/scores.tsv").exists() and (root / "studies/inherent_limits/summary.md").exists()
    slurm_logs = {p.relative_to(tmp_path / "slurm-logs").parts[0] for p in (tmp_path / "slurm-logs").rglob("*.log")}
    assert {"rule_synthesize_tasks", "rule_tune_model", "rule_evaluate_model", "rule_aggregate_scores"} <= slurm_logs


def _nodes() -> list[str]:
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T"], capture_output=True, text=True).stdout
    return sorted({l.split()[0] for l in out.splitlines() if l.split()[1] in ("idle", "mixed", "allocated")})


def test_two_node_tuning_run_warned_requeues_itself_resumes_and_exports(tmp_path):
    """A 2-node x 1-process (gloo) tuning run through the Slurm profile: the launcher's
    nested srun inside the plugin's step starts one torchrun per node; the pre-timeout
    warning (SIGURG, sent here by hand) comes before any periodic checkpoint; the workers
    save, the job requeues itself (same job id: never two copies at once), resumes from
    that step on both nodes and exports. One snakemake invocation, no manual rerun."""
    if len(_nodes()) < 2:
        if REQUIRED:
            raise RuntimeError("ITLAB_REQUIRE_SLURM=1 but the cluster has fewer than 2 nodes "
                               "(tools/slurm-cluster.sh start 2)")
        pytest.skip("needs a two-node cluster (tools/slurm-cluster.sh start 2)")
    cfg, _ = _config(tmp_path)
    cfg["sizes"]["s"]["tune"]["processes"] = 1
    cfg["sizes"]["s"]["resources"]["nodes"] = 2
    cfg["recipes"]["default"]["checkpoint_every"] = 1000
    cfg["sizes"]["s"]["pretrain_tokens"] = 4000  # the base model only has to exist
    path = write_config(tmp_path, cfg)
    root = tmp_path / "results"
    run = "llama-s__mix-all__default__seed-1"
    run_dir = root / "tuned" / run
    # the inputs locally; only the tuning job goes through Slurm
    prep = snakemake(f"{root}/data/trainsets/mix-all.jsonl", f"{root}/base/llama-s/DONE.json",
                     "--cores", "1", "--configfile", str(path), timeout=900)
    assert prep.returncode == 0, prep.stderr[-3000:]
    target = f"{root}/tuned/{run}/DONE.json"
    cmd = [*SLURM_SNAKEMAKE, target, *_slurm_args(tmp_path), "--configfile", str(path)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline, warned, seen = time.time() + 600, None, 0
    while time.time() < deadline and proc.poll() is None:
        if not warned and _metrics_steps(run_dir) >= 3:
            jobs = _our_jobs("tune_model")
            if jobs:
                assert not _checkpoints(run_dir)
                seen = _metrics_steps(run_dir)
                subprocess.run(["scancel", "--signal=URG", *jobs], check=True)
                warned = jobs
        time.sleep(0.2)
    out = proc.communicate(timeout=300)[0]
    assert warned, f"the tuning job was never seen running:\n{out[-4000:]}"
    assert proc.returncode == 0, out[-4000:]
    log = (root / "logs/tune_model" / f"{run}.log").read_text()
    # (the requeued attempt rewrote the rule's log: the requeue shows in Restarts=1 below)
    assert "srun --overlap --nodes=2" in log, log[-4000:]
    m = re.search(rf"resumed from step-(\d+) at step (\d+)/{STEPS}", log)
    assert m and int(m.group(1)) >= seen, log[-4000:]
    done = json.loads((run_dir / "DONE.json").read_text())
    assert done["world_size"] == 2 and done["steps"] == STEPS
    assert (run_dir / "model" / "model.safetensors").exists()
    steps = [json.loads(l)["step"] for l in (_train_logs(run_dir) / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))  # every step once: the requeued job resumed, never re-ran
    job = subprocess.run(["scontrol", "show", "job", warned[0]], capture_output=True, text=True).stdout
    assert "Restarts=1" in job and "NumNodes=2" in job, job


def test_sbatch_arguments_of_a_multi_gpu_tuning_job(tmp_path):
    """A 4-GPU tuning job of a hub model: the sbatch line must ask for 4 GPUs of the model's
    type, its CPUs, memory, time and partition, one task (torchrun starts the 4 processes:
    no per-GPU tasks), and the pre-timeout signal. The one-node cluster cannot run it; only
    the submission line is checked."""
    cfg, path = _config(tmp_path, device="cuda")
    cfg["families"] = {"llama2": {"hub": {"7b": "meta-llama/Llama-2-7b-hf"}}}
    cfg["base_models"] = {"llama2": ["7b"]}
    # no network here: the hub model's mirror entry is a stand-in (fetched locally, not on Slurm)
    cfg["mirror"] = {"dir": str(tmp_path / "mirror"), "standin": True}
    # global batch 8 = 4 GPUs x 2 rows: the job needs all 4 GPUs
    cfg["sizes"] = {"7b": {"params_b": 7, "tune": {"processes": 4, "zero_stage": 3, "bf16": True, "per_device_batch_size": 2},
                           "resources": {"gpus": 4, "gpu_model": "a100", "cpus_per_task": 32, "mem_mb": 256000,
                                         "runtime": 720, "partition": "gpu-test"}}}
    path = write_config(tmp_path, cfg)
    target = f"{cfg['results_dir']}/tuned/llama2-7b__mix-all__default__seed-1/DONE.json"
    prep = snakemake(f"{cfg['results_dir']}/data/trainsets/mix-all.jsonl", "--cores", "1", "--configfile", str(path))
    assert prep.returncode == 0, prep.stderr[-3000:]
    res = _slurm_snakemake(target, *_slurm_args(tmp_path), "--verbose", "--configfile", str(path), timeout=300)
    line = next(l for l in (res.stdout + res.stderr).splitlines() if "sbatch call:" in l)
    assert "--gpus=a100:4" in line
    assert "--cpus-per-task=32" in line and "--mem 256000" in line and "-t 720" in line
    assert "-p gpu-test" in line or "-p 'gpu-test'" in line
    assert "--signal=URG@1200" in line and "--requeue" in line  # the 70B-sized defaults
    assert "--ntasks-per-gpu" not in line and "--ntasks=" not in line  # one launcher, not one per GPU
    assert "--nodes=1" in line


def test_failing_job_fails_the_run_and_shows_its_log(tmp_path):
    cfg, _ = _config(tmp_path)
    # an empty local model folder (a hub id would now fail earlier, in the local fetch_model job)
    (tmp_path / "no-such-model").mkdir()
    cfg["families"]["ghost"] = {"local": {"s": str(tmp_path / "no-such-model")}}
    cfg["base_models"] = {"ghost": ["s"]}
    path = write_config(tmp_path, cfg)
    target = f"{cfg['results_dir']}/eval/base/ghost-s/scores.tsv"
    res = _slurm_snakemake(target, *_slurm_args(tmp_path), "--configfile", str(path), timeout=600,
                    env={"HF_HUB_OFFLINE": "1"})
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "Error in rule evaluate_model" in out
    # the job's own log, shown by show-failed-logs, says which model failed to load
    assert re.search(r"Logfile .*logs/evaluate_model/base/ghost-s.log:", out)
    assert f"[itlab] evaluating {tmp_path / 'no-such-model'}" in out
