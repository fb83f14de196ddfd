import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


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
