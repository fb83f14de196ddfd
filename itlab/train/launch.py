"""Start a training run: one lock per run folder, then torchrun across the job's
processes on one node, or srun + torchrun across nodes under Slurm. No shell is involved:
config values travel in an arguments file, never on a command line."""

from __future__ import annotations

import fcntl
import shutil
import os
import signal
import subprocess
import sys
from pathlib import Path

from itlab.io import atomic_path
from itlab.train.args import TrainArguments
from itlab.train.loop import is_done

RDZV_PORT = 29400


def command(args_file: str, processes: int, nodes: int = 1, env=None) -> list[str]:
    """The launch command. One node: ``torchrun --standalone`` (it picks a free port, so
    parallel jobs never collide). Several nodes: one torchrun per node through srun, meeting
    at the first node of the allocation."""
    env = os.environ if env is None else env
    module = ["-m", "itlab.train", "--args", str(args_file)]
    torchrun = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}"]
    if nodes == 1:
        return torchrun[:3] + ["--standalone"] + torchrun[3:] + module
    if "SLURM_JOB_ID" not in env:
        raise RuntimeError(f"a {nodes}-node run must be launched inside a Slurm allocation")
    head = env.get("ITLAB_HEAD_NODE") or subprocess.run(
        ["scontrol", "show", "hostnames", env["SLURM_JOB_NODELIST"]], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    return (["srun", f"--nodes={nodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1"] + torchrun
            + [f"--nnodes={nodes}", "--rdzv_backend=c10d", f"--rdzv_endpoint={head}:{RDZV_PORT}",
               f"--rdzv_id={env['SLURM_JOB_ID']}"] + module)


def die_with_parent() -> None:
    """Linux: get SIGKILL when the parent process dies. Chained launcher -> torchrun -> workers,
    so killing a job's launcher never leaves orphan workers writing to the run folder
    (torchrun starts its workers in new sessions, out of reach of a process-group kill)."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _child_setup():
    die_with_parent()
    # torchrun has no SIGUSR1 handler (the default action kills it); ignoring it lets Slurm's
    # --signal=USR1@N reach the workers, which install their own handler and checkpoint.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)


def launch(args: TrainArguments, processes: int, nodes: int = 1, device: str = "cpu", log=None) -> int:
    """Run to completion (or to a preemption checkpoint); return the exit code."""
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    lock = open(out / ".lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RuntimeError(f"another process is already training {out} (requeued twice?); refusing to run twice")
    args = args.resolved()  # data content and model revision, hashed once for every worker
    if is_done(out, args):
        print(f"[itlab] {out} is already complete; not training again", file=log or sys.stdout, flush=True)
        return 0
    args_file = out / "train_args.json"
    args.save(args_file)
    root = str(Path(__file__).resolve().parents[2])  # the workers import itlab from this checkout
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    if device == "cpu":
        env["DS_ACCELERATOR"] = "cpu"
    cmd = command(str(args_file), processes, nodes, env)
    print(f"[itlab] launching: {' '.join(cmd)}", file=log or sys.stdout, flush=True)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT if log else None,
                            preexec_fn=_child_setup)

    def forward(signum, frame):  # a signal to this job step reaches the workers through torchrun
        proc.send_signal(signal.SIGTERM)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)}
    try:
        code = proc.wait()
        if code and is_done(out, args):  # DONE.json is written last: the run itself finished
            print(f"[itlab] launcher exited with {code} after the run completed; keeping the result",
                  file=log or sys.stdout, flush=True)
            return 0
        return code
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        lock.close()


def finish_without_training(args: TrainArguments) -> None:
    """A zero budget: export the starting model as the result (study B trains from scratch)."""
    import json

    from itlab.io import write_json

    out = Path(args.output_dir)
    with atomic_path(out / "model", directory=True) as tmp:
        shutil.copytree(args.model_path, tmp, dirs_exist_ok=True)
    params = json.loads((Path(args.model_path) / "config.json").read_text())
    write_json(out / "DONE.json", {"fingerprint": args.fingerprint(), "steps": 0, "tokens": 0, "final_loss": None,
                                   "eval_loss": None, "parameters": None, "architecture": params.get("model_type")})
