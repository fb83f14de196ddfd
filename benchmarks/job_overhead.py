"""Fixed per-job cost of the workflow's heavy rules: what each job's process pays before it
does any work (interpreter start + the imports its script and the package pull in).

Each phase runs in a fresh interpreter, so caches of one phase never help the next; every
phase is timed as wall seconds and CPU seconds (user+sys of the child, from getrusage), and
the CPU seconds are the number to compare on a loaded machine. Phases are cumulative in the
order listed per job kind (e.g. "transformers.AutoModelForCausalLM" includes torch).

    .venv/bin/python benchmarks/job_overhead.py            # all phases, 1 repeat
    .venv/bin/python benchmarks/job_overhead.py -r 3       # median of 3
    .venv/bin/python benchmarks/job_overhead.py --tune results/logs/tune_model/X/train_args.json
        # also times one real launch (launcher -> torchrun -> DeepSpeed workers) of that run,
        # cut to --max-steps (default 2), into scratch output/log folders

Run before and after a change to the import structure: same script, same machine, one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Library import phases (each in its own interpreter, cumulative costs of that import alone).
LIBRARIES = {
    "python -c pass": "pass",
    "torch": "import torch",
    "transformers": "import transformers",
    "transformers.AutoModelForCausalLM": "from transformers import AutoModelForCausalLM",
    "deepspeed": "import deepspeed",
    "lm_eval": "import lm_eval",
    "lm_eval.models.huggingface.HFLM": "from lm_eval.models.huggingface import HFLM",
}

# What each job kind's process imports before its first line of work (its script's imports,
# or for tune_model's three process levels, each level's module).
JOBS = {
    "tune_model: launcher (snakemake script process)": "import itlab.train.launch, itlab.grid, itlab.hub, itlab.scripting",
    "tune_model: worker (itlab.train + model loading)": (
        "import itlab.train.loop, torch, torch.distributed, deepspeed; "
        "from itlab.models import load_model, load_tokenizer; "
        "from transformers import AutoModelForCausalLM"
    ),
    "evaluate_model": "import torch; from itlab import hub; from itlab.evaluate import run",
    "attribute_responses / explain_weights": "from itlab.interpret.jobs import attribute_job, weights_job",
    "measure_responses": "import torch; from itlab.response_metrics import measure",
}


def timed(argv: list[str], env: dict | None = None, cwd: Path | None = None) -> tuple[float, float, int]:
    """(wall s, CPU s of the child tree, return code) of one subprocess."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        print(f"  ! {' '.join(argv[:4])}... exited {proc.returncode}: {proc.stderr.strip()[-300:]}", file=sys.stderr)
    return wall, cpu, proc.returncode


def phase(code: str, repeats: int) -> tuple[float, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    runs = [timed([sys.executable, "-c", code], env=env, cwd=ROOT) for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def tune_once(train_args: Path, processes: int, max_steps: int) -> tuple[float, float]:
    """One real launch of a recorded tune_model run, into scratch output/log folders; it runs
    in the workflow folder the run came from (<root>/results/logs/tune_model/<run>/), read-only."""
    train_args = train_args.resolve()
    workdir = train_args.parents[4]
    args = json.loads(train_args.read_text())
    scratch = Path(tempfile.mkdtemp(prefix="job_overhead_"))
    try:
        args["output_dir"] = str(scratch / "out")
        args["log_dir"] = str(scratch / "log")
        args.pop("checkpoint_dir", None)
        if max_steps:  # the fixed cost: a few steps of the recorded run
            args["max_steps"] = max_steps
        copy = scratch / "train_args.json"
        copy.write_text(json.dumps(args))
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        code = (
            "import json, sys; from itlab.train.args import TrainArguments; from itlab.train.launch import launch; "
            f"sys.exit(launch(TrainArguments.from_dict(json.load(open({str(copy)!r}))), {processes}))"
        )
        wall, cpu, _ = timed([sys.executable, "-c", code], env=env, cwd=workdir)
        return wall, cpu
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-r", "--repeats", type=int, default=1)
    parser.add_argument("--tune", type=Path, help="train_args.json of a finished tune_model run to launch once")
    parser.add_argument("--processes", type=int, default=2, help="worker processes of the --tune launch")
    parser.add_argument("--max-steps", type=int, default=2, help="steps of the --tune launch (0: the run's own)")
    parser.add_argument("--only", choices=["libraries", "jobs", "tune"], help="run one group of phases")
    opts = parser.parse_args(argv)
    load = os.getloadavg()[0]
    print(f"# load average {load:.2f} on {os.cpu_count()} cores; CPU s = user+sys of the child")
    print(f"{'phase':58s} {'wall_s':>7s} {'cpu_s':>7s}")
    groups = {"libraries": LIBRARIES, "jobs": JOBS}
    for group, phases in groups.items():
        if opts.only not in (None, group):
            continue
        if group == "jobs":
            print("# per job kind: the process's imports before its first line of work")
        for name, code in phases.items():
            wall, cpu = phase(code, opts.repeats)
            print(f"{name:58s} {wall:7.2f} {cpu:7.2f}")
    if opts.tune and opts.only in (None, "tune"):
        wall, cpu = tune_once(opts.tune, opts.processes, opts.max_steps)
        steps = f"{opts.max_steps} steps" if opts.max_steps else "all steps"
        print(f"{f'tune_model: one launch ({steps}, {opts.processes} processes)':58s} {wall:7.2f} {cpu:7.2f}")


if __name__ == "__main__":
    main()
