"""Seconds to dry-run each paper-scale config and their union (experiments/all-studies.yaml),
against a bare Snakefile with the same number of trivial jobs, measured in one run. The ratio
is the cost of itlab's config validation, grid expansion and input functions on top of
Snakemake's own DAG building. Wall seconds, and CPU seconds (user + system of the snakemake
process), which stay meaningful on a machine shared with other work. Goal for the union
(issue 16): <= 5 s and <= 1.3x the bare Snakefile. A second baseline, "bare script", is the
same Snakefile with ``script:`` instead of ``shell:``: Snakemake reads each script job's source
(and evaluates its params) in a dry-run, a cost per job that every itlab rule pays (they are all
scripts) and a shell-only Snakefile does not; the ratio to it is itlab's own share.

    python benchmarks/dag_dryrun.py [--repeats 3] [--only all-studies]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
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
BARE_SCRIPT = BARE.replace('shell: "touch {{output}}"', 'script: "make.py"')


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def dry_run(args, cwd) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, jobs) of one dry-run."""
    t0, c0 = time.perf_counter(), _cpu()
    res = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", *args], cwd=cwd,
                         capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - t0, _cpu() - c0
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    total = int(re.search(r"^total\s+(\d+)$", res.stdout, re.M).group(1))
    return seconds, cpu, total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="config names (e.g. all-studies); default: every paper config")
    opt = ap.parse_args()
    configs = [c for c in CONFIGS if not opt.only or c.stem in opt.only]
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'config':34s} {'jobs':>5s} {'itlab s':>8s} {'bare s':>7s} {'ratio':>6s} {'itlab cpu':>9s} {'bare cpu':>8s} "
          f"{'ratio':>6s} {'script cpu':>10s} {'ratio':>6s}")
    for cfg in configs:
        with tempfile.TemporaryDirectory() as tmp:
            args = ["--configfile", str(cfg), "--config", f"results_dir={tmp}/results"]
            runs = [dry_run(args, ROOT) for _ in range(opt.repeats)]
            ours, ours_cpu, jobs = min(r[0] for r in runs), min(r[1] for r in runs), runs[0][2]
            (Path(tmp) / "Snakefile").write_text(BARE.format(n=jobs - 1))
            bare_runs = [dry_run([], tmp) for _ in range(opt.repeats)]
            bare, bare_cpu = min(r[0] for r in bare_runs), min(r[1] for r in bare_runs)
            (Path(tmp) / "Snakefile").write_text(BARE_SCRIPT.format(n=jobs - 1))
            (Path(tmp) / "make.py").write_text("open(snakemake.output[0], 'w').close()\n")
            script_cpu = min(dry_run([], tmp)[1] for _ in range(opt.repeats))
        print(f"{str(cfg):34s} {jobs:5d} {ours:8.2f} {bare:7.2f} {ours / bare:6.2f} {ours_cpu:9.2f} {bare_cpu:8.2f} "
              f"{ours_cpu / bare_cpu:6.2f} {script_cpu:10.2f} {ours_cpu / script_cpu:6.2f}", flush=True)


if __name__ == "__main__":
    main()
