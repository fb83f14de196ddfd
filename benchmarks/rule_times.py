"""Where a finished run spent its time, per rule: jobs, summed job seconds, the share of
all job seconds, and the mean and longest job. Read from a results folder after a run.

Job seconds come from Snakemake's benchmark files (``<results>/benchmarks/<rule>/*.tsv``,
column ``s``) for the rules that write one, and from the Snakemake run log (start and
finish stamps of every job) for the others; the log also gives the run's wall clock, so
the table shows how much parallelism the run got (job seconds / wall seconds).

    python benchmarks/rule_times.py [--results results] [--log .snakemake/log/<file>.log]
"""

from __future__ import annotations

import argparse
import csv
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAMP = re.compile(r"^\[(\w{3} \w{3}\s+\d+ \d\d:\d\d:\d\d \d{4})\]$")
START = re.compile(r"^(?:local)?rule (\w+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FINISH = re.compile(r"^Finished job(?:id)?:? (\d+)")


def benchmark_seconds(results: Path) -> dict[str, list[float]]:
    """Rule -> seconds of each job, from Snakemake's benchmark TSVs."""
    out: dict[str, list[float]] = defaultdict(list)
    for tsv in sorted((results / "benchmarks").glob("**/*.tsv")):
        rule = tsv.relative_to(results / "benchmarks").parts[0]
        rule = rule[:-4] if rule.endswith(".tsv") else rule
        with tsv.open() as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        if rows:
            out[rule].append(float(rows[-1]["s"]))
    return out


def log_seconds(log: Path) -> tuple[dict[str, list[float]], float]:
    """Rule -> seconds of each job (finish stamp - start stamp), and the run's wall seconds."""
    stamp, first, last = None, None, None
    pending: dict[str, tuple[str, datetime]] = {}
    rule = None
    out: dict[str, list[float]] = defaultdict(list)
    for line in log.read_text().splitlines():
        if m := STAMP.match(line.strip()):
            stamp = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
            first = first or stamp
            last = stamp
        elif m := START.match(line.strip()):
            rule = (m.group(1), stamp)
        elif (m := JOBID.match(line)) and rule:
            pending[m.group(1)] = rule
            rule = None
        elif (m := FINISH.match(line.strip())) and m.group(1) in pending:
            name, began = pending.pop(m.group(1))
            out[name].append((stamp - began).total_seconds())
    wall = (last - first).total_seconds() if first else 0.0
    return out, wall


def newest_log(workdir: Path) -> Path | None:
    """The newest Snakemake log of the run started in ``workdir`` (Snakemake writes it there)."""
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime)
    return logs[-1] if logs else None


def table(bench: dict[str, list[float]], logged: dict[str, list[float]], wall: float) -> str:
    rules = {**logged, **bench}  # a benchmark file is more precise than log stamps (1 s resolution)
    total = sum(sum(v) for v in rules.values()) or 1.0
    lines = [f"{'rule':22s} {'jobs':>5s} {'job s':>9s} {'share':>6s} {'mean s':>8s} {'max s':>8s}  source"]
    for name, secs in sorted(rules.items(), key=lambda kv: -sum(kv[1])):
        src = "benchmark" if name in bench else "log"
        lines.append(f"{name:22s} {len(secs):5d} {sum(secs):9.1f} {sum(secs) / total:6.1%} "
                     f"{sum(secs) / len(secs):8.1f} {max(secs):8.1f}  {src}")
    lines.append(f"{'all jobs':22s} {sum(map(len, rules.values())):5d} {total:9.1f}")
    if wall:
        lines.append(f"wall clock of the run (log): {wall:.0f} s; job seconds / wall = {total / wall:.2f} "
                     "(parallel jobs on the cores)")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=ROOT / "results", help="results_dir of the run")
    ap.add_argument("--log", type=Path, default=None,
                    help="Snakemake log of the run (default: the newest of the current directory's run)")
    a = ap.parse_args(argv)
    bench = benchmark_seconds(a.results)
    log = a.log or newest_log(Path.cwd())
    logged, wall = log_seconds(log) if log else ({}, 0.0)
    if not bench and not logged:
        raise SystemExit(f"no benchmark files under {a.results}/benchmarks and no Snakemake log: run the workflow first")
    print(f"results: {a.results}; log: {log}")
    print(table(bench, logged, wall))


if __name__ == "__main__":
    main()
