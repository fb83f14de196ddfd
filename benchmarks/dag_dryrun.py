"""Seconds to dry-run each paper-scale config and their union (experiments/all-studies.yaml),
against a bare Snakefile with the same number of trivial jobs, measured in one run. The ratio
is the cost of itlab's config validation, grid expansion and input functions on top of
Snakemake's own DAG building. Wall seconds, and CPU seconds (user + system of the snakemake
process), which stay meaningful on a machine shared with other work. Goal for the union
(issue 16): <= 5 s and <= 1.3x the bare Snakefile. A second baseline, "bare script", is the
same Snakefile with ``script:`` instead of ``shell:``: Snakemake reads each script job's source
(and evaluates its params) in a dry-run, a cost per job that every itlab rule pays (they are all
scripts) and a shell-only Snakefile does not; the ratio to it is itlab's own share. A third,
"bare shaped", gives its one rule the directives an itlab job rule has (an input function, log,
benchmark, two params functions, eight resources functions, threads, conda, script), each a
trivial function: what Snakemake itself spends on that rule shape, with no itlab code at all.

Seconds are the minimum over ``--repeats`` rounds; each round runs itlab's dry-run and every
baseline once, back to back (after one warm-up dry-run), so all sides are timed over the same
span of the machine's speed. "round ratio" is the median over rounds of itlab's wall seconds
over the bare Snakefile's in the same round.

    python benchmarks/dag_dryrun.py [--repeats 3] [--only all-studies] [--breakdown]

``--breakdown`` profiles one dry-run of each config and of its bare Snakefile (cProfile on the
process's CPU clock, so the seconds are inflated by the profiler but comparable between the
two) and prints where the difference goes, by phase: parsing the workflow (rules and config),
resolving each job's inputs (Job objects and their input files, one per input edge), Snakemake's
per-job check of ``script:`` sources and conda envs, the needrun pass (file times), and the
share of all that spent in itlab's own code (rules/*.smk functions, itlab/).
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
BARE_SHAPED = """
N = {n}
def inputs(w): return {{"a": "in.txt"}}
def spec(w): return {{"x": int(w.i)}}
def res(w): return int(w.i) % 3 + 1
rule all:
    input: expand("out/{{i}}.txt", i=range(N))
rule make:
    input: unpack(inputs)
    output: "out/{{i}}.txt"
    log: "logs/{{i}}.log"
    benchmark: "benchmarks/{{i}}.tsv"
    params: spec=spec, other=lambda w: w.i
    threads: 1
    resources: mem_mb=res, runtime=res, gpu=res, cpus_per_task=res, a=res, b=res, c=res, d=res
    conda: "env.yaml"
    script: "make.py"
"""


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


PHASES = {  # phase -> (file suffix, line, function) of the profiled call that holds it
    "parse workflow": ("Snakefile", 1, "<module>"),
    "resolve jobs + inputs": ("snakemake/dag.py", 1159, "update"),
    "script sources": ("snakemake/script/__init__.py", 1361, "get_source"),
    "conda env specs": ("snakemake/dag.py", 380, "update_conda_envs"),
    "needrun (file times)": ("snakemake/dag.py", 1411, "update_needrun"),
}
PROFILE = """import cProfile, runpy, sys, time
out = sys.argv[1]; sys.argv = ["snakemake", *sys.argv[2:]]
prof = cProfile.Profile(time.process_time); prof.enable()
try:
    runpy.run_module("snakemake", run_name="__main__")
except SystemExit:
    pass
prof.disable(); prof.dump_stats(out)
"""


def breakdown(args, cwd, tmp) -> dict:
    """Profiled CPU seconds per phase (PHASES), itlab's own code and the total of one dry-run."""
    import pstats

    out = Path(tmp) / f"prof-{len(os.listdir(tmp))}.prof"
    script = Path(tmp) / "profile_snakemake.py"
    script.write_text(PROFILE)
    subprocess.run([sys.executable, str(script), str(out), "-n", "--quiet", "--cores", "1", *args], cwd=cwd,
                   capture_output=True, text=True, check=True)
    stats = pstats.Stats(str(out)).stats
    row = {name: 0.0 for name in PHASES}
    for (file, line, func), (_, _, tottime, cumtime, _) in stats.items():
        for name, (suffix, want_line, want_func) in PHASES.items():
            if file.endswith(suffix) and line == want_line and func == want_func:
                row[name] = max(row[name], cumtime)
    root = str(ROOT) + os.sep
    row["itlab code (self time)"] = sum(v[2] for (f, _, _), v in stats.items()
                                  if f.startswith(root) and f"{os.sep}site-packages{os.sep}" not in f)
    row["total"] = sum(v[2] for v in stats.values())
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", nargs="*", help="config names (e.g. all-studies); default: every paper config")
    ap.add_argument("--breakdown", action="store_true", help="profile one dry-run each: where the ratio goes")
    opt = ap.parse_args()
    configs = [c for c in CONFIGS if not opt.only or c.stem in opt.only]
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'config':34s} {'jobs':>5s} {'itlab s':>8s} {'bare s':>7s} {'ratio':>6s} {'itlab cpu':>9s} {'bare cpu':>8s} "
          f"{'ratio':>6s} {'script cpu':>10s} {'ratio':>6s} {'shaped cpu':>10s} {'ratio':>6s} {'shaped/bare':>11s} {'round ratio':>12s}")
    for cfg in configs:
        with tempfile.TemporaryDirectory() as tmp:
            args = ["--configfile", str(cfg), "--config", f"results_dir={tmp}/results"]
            jobs = dry_run(args, ROOT)[2]  # also the warm-up: every variant below runs warm
            baselines = {name: Path(tmp) / name for name in ("bare", "script", "shaped")}
            for name, text in (("bare", BARE), ("script", BARE_SCRIPT), ("shaped", BARE_SHAPED)):
                baselines[name].mkdir()
                (baselines[name] / "Snakefile").write_text(text.format(n=jobs - 1))
                (baselines[name] / "make.py").write_text("open(snakemake.output[0], 'w').close()\n")
                (baselines[name] / "in.txt").write_text("")
                (baselines[name] / "env.yaml").write_text("channels: [conda-forge]\ndependencies: [python=3.11]\n")
            # Round-robin: each round times itlab and every baseline once, back to back, so a
            # change in the machine's speed during the run falls on all sides alike.
            runs = {name: [] for name in ("itlab", *baselines)}
            for _ in range(opt.repeats):
                runs["itlab"].append(dry_run(args, ROOT))
                for name, folder in baselines.items():
                    runs[name].append(dry_run([], folder))
            best = {name: (min(r[0] for r in rs), min(r[1] for r in rs)) for name, rs in runs.items()}
            (ours, ours_cpu), (bare, bare_cpu) = best["itlab"], best["bare"]
            script_cpu, shaped_cpu = best["script"][1], best["shaped"][1]
            per_round = sorted(a[0] / b[0] for a, b in zip(runs["itlab"], runs["bare"]))
            parts = (breakdown(args, ROOT, tmp), breakdown([], baselines["bare"], tmp)) if opt.breakdown else None
        print(f"{str(cfg):34s} {jobs:5d} {ours:8.2f} {bare:7.2f} {ours / bare:6.2f} {ours_cpu:9.2f} {bare_cpu:8.2f} "
              f"{ours_cpu / bare_cpu:6.2f} {script_cpu:10.2f} {ours_cpu / script_cpu:6.2f} "
              f"{shaped_cpu:10.2f} {ours_cpu / shaped_cpu:6.2f} {shaped_cpu / bare_cpu:11.2f} "
              f"{per_round[len(per_round) // 2]:12.2f}", flush=True)
        if parts:
            print(f"  profiled CPU s (inflated by cProfile) {'itlab':>8s} {'bare':>7s} {'extra':>7s}")
            for name in parts[0]:
                ours_s, bare_s = parts[0][name], parts[1][name]
                print(f"  {name:37s} {ours_s:8.2f} {bare_s:7.2f} {ours_s - bare_s:7.2f}")


if __name__ == "__main__":
    main()
