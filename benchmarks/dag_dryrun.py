"""Seconds to dry-run each paper-scale config, against a bare Snakefile with the same number
of trivial jobs, measured in one run. The ratio is the cost of itlab's config validation,
grid expansion and input functions on top of Snakemake's own DAG building.

    python benchmarks/dag_dryrun.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.relative_to(ROOT) for p in (ROOT / "experiments").glob("*.yaml") if not p.name.startswith("embedded"))

BARE = """
N = {n}
rule all:
    input: expand("out/{{i}}.txt", i=range(N))
rule make:
    output: "out/{{i}}.txt"
    shell: "touch {{output}}"
"""


def dry_run(args, cwd) -> tuple[float, int]:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", *args], cwd=cwd,
                         capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    total = int(re.search(r"^total\s+(\d+)$", res.stdout, re.M).group(1))
    return seconds, total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    opt = ap.parse_args()
    print(f"{'config':38s} {'jobs':>6s} {'itlab s':>8s} {'bare s':>8s} {'ratio':>6s}")
    for cfg in CONFIGS:
        with tempfile.TemporaryDirectory() as tmp:
            args = ["--configfile", str(cfg), "--config", f"results_dir={tmp}/results"]
            runs = [dry_run(args, ROOT) for _ in range(opt.repeats)]
            ours, jobs = min(r[0] for r in runs), runs[0][1]
            (Path(tmp) / "Snakefile").write_text(BARE.format(n=jobs - 1))
            bare = min(dry_run([], tmp)[0] for _ in range(opt.repeats))
        print(f"{str(cfg):38s} {jobs:6d} {ours:8.2f} {bare:8.2f} {ours / bare:6.2f}")


if __name__ == "__main__":
    main()
