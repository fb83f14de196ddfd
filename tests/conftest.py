import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# --scheduler greedy: Snakemake's default ILP scheduler starts the CBC solver at every
# scheduling round of a real run. In the study-A stand-in run (66 jobs, 285 s of CPU) 29 s of
# CPU went to processes other than the jobs' Python processes, mostly the solver; on 2 cores
# the greedy selection starts the same kind of jobs. The Slurm tests keep the default.
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--scheduler", "greedy"]


# `make test` runs the suite on pytest-xdist workers (one per core), and each worker builds its own
# module and session fixtures. Tests sharing an expensive one (a real workflow run, a reference
# training run, the stand-in mirror) go to one worker, so it is built once; the Slurm tests go
# to one worker too, since they share the one test cluster and time its jobs.
SHARED_FIXTURES = ("tiny_run", "tiny_cd_run", "tiny", "standin_models")
# Torch in a worker (and the training processes a test launches itself) would start one thread
# per core; with every core busy its threads wait on each other (a 300-step tuning test took
# 240 s beside another worker, 42 s alone). One thread each, as the workflow's own
# jobs get from Snakemake (OMP_NUM_THREADS = the rule's threads).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _is_quick(item) -> bool:
    return not (item.get_closest_marker("slow") or item.get_closest_marker("slurm")
                or any(f in item.fixturenames for f in SHARED_FIXTURES))


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("slurm"):
            item.add_marker(pytest.mark.xdist_group("slurm"))
            continue
        shared = [f for f in SHARED_FIXTURES if f in item.fixturenames]
        if shared:
            item.add_marker(pytest.mark.xdist_group(shared[0]))
    # Longest first: xdist hands out the groups (largest first), then the other tests in this
    # order, one at a time to whichever worker runs low. With the minutes-long workflow runs
    # queued before the ~340 quick tests (232 s in all), the quick ones fill in at the end and
    # neither worker is left alone with a long run while the other idles.
    items.sort(key=_is_quick)  # stable: collection order within each kind


@pytest.fixture(scope="session")
def default_config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


@pytest.fixture
def config(default_config) -> dict:
    return copy.deepcopy(default_config)


def snakemake(*args, cwd=ROOT, timeout=600, env=None):
    """Run snakemake in a subprocess (its own process, as a user would)."""
    return subprocess.run(SNAKEMAKE + list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def write_config(tmp_path, cfg, name="config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="session")
def tiny_cd_run(tmp_path_factory):
    """Tiny studies C and D run for real in one DAG (tests/configs/tiny-cd.yaml: one base-model
    chain for both), once per session: test_teachers_workflow and test_behavior_workflow read it.
    -> (results folder, config path, the snakemake result)."""
    tmp = tmp_path_factory.mktemp("cd")
    cfg = yaml.safe_load((ROOT / "tests/configs/tiny-cd.yaml").read_text())
    cfg["results_dir"] = str(tmp / "results")
    path = write_config(tmp, cfg)
    res = snakemake("--cores", "2", "--configfile", str(path), timeout=1800)
    return tmp / "results", path, res
