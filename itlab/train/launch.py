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
from itlab.train.loop import EXIT_PREEMPTED, checkpoint_dir, complete_checkpoints, is_done, log_dir

RDZV_PORT = 29400


# Signals torchrun forwards to its workers. SIGURG is the profile's pre-timeout warning
# (sbatch --signal=URG@N); SIGUSR1 a by-hand one. Either makes the workers checkpoint.
SIGNALS = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1,SIGURG"
# The variables that describe the job (kept for a nested srun); every other SLURM_* one
# describes the step the launcher runs in (the plugin's `srun -n1`) and would make a nested
# srun inherit one task on one node (SLURM_NTASKS, SLURM_NNODES, SLURM_STEP_*, binding...).
_JOB_VARS = ("SLURM_JOB_", "SLURM_JOBID", "SLURM_CONF", "SLURM_CLUSTER_NAME", "SLURM_SUBMIT_")


def srun_env(env, allocation: dict | None = None) -> dict:
    """The environment of a nested srun: job-level SLURM_* variables only, with the job's
    node list and count from ``allocation`` (``job_allocation``): inside the plugin's
    one-task step even SLURM_JOB_NODELIST names that step's single node."""
    out = {k: v for k, v in env.items() if not k.startswith("SLURM_") or k.startswith(_JOB_VARS)}
    if allocation:
        out.update(SLURM_JOB_NODELIST=allocation["NodeList"], SLURM_JOB_NUM_NODES=allocation["NumNodes"])
    return out


def job_allocation(job_id: str) -> dict:
    """The job's fields as the controller has them (scontrol show job -o)."""
    res = subprocess.run(["scontrol", "show", "job", "-o", str(job_id)], capture_output=True, text=True, check=True)
    return dict(f.split("=", 1) for f in res.stdout.split() if "=" in f)


def head_address(env) -> str:
    """The rendezvous host of a multi-node run: the first node of the allocation, as the
    address Slurm itself reaches it at (NodeAddr; the host name on most clusters)."""
    if env.get("ITLAB_HEAD_NODE"):
        return env["ITLAB_HEAD_NODE"]
    head = subprocess.run(["scontrol", "show", "hostnames", env["SLURM_JOB_NODELIST"]], capture_output=True,
                          text=True, check=True).stdout.split()[0]
    node = subprocess.run(["scontrol", "show", "node", "-o", head], capture_output=True, text=True).stdout
    addr = next((f.split("=", 1)[1] for f in node.split() if f.startswith("NodeAddr=")), "")
    return addr or head


# A one-process run is its own rank 0: the launcher starts the worker itself (torchrun's start
# cost 2-2.7 s of CPU per job on the embedded ladder, whose jobs are seconds long). Port 0: the
# process group's store binds any free port, so parallel jobs never collide.
SINGLE_PROCESS_ENV = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1", "GROUP_RANK": "0",
                      "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "0"}


def command(args_file: str, processes: int, nodes: int = 1, env=None, shutdown_grace: int = 900) -> list[str]:
    """The launch command. One process: the worker itself (run it with ``SINGLE_PROCESS_ENV``).
    One node: ``torchrun --standalone`` (it picks a free port, so parallel jobs never collide).
    Several nodes: one torchrun per node through a nested srun, meeting at the first node of
    the allocation. The nested srun runs inside the executor plugin's own one-task step, so it
    needs ``--overlap`` (else it waits for the CPUs that step holds, forever) and explicit task
    counts (run it with ``srun_env``).
    torchrun waits ``shutdown_grace`` seconds for the workers' checkpoint after a signal
    (its own default is 30 s) and ignores a repeated signal meanwhile (see ``torchrun``)."""
    env = os.environ if env is None else env
    module = ["-m", "itlab.train", "--args", str(args_file)]
    if processes == 1 and nodes == 1:
        return [sys.executable] + module
    torchrun = [sys.executable, "-m", "itlab.train.launch", f"--nproc_per_node={processes}",
                f"--shutdown-timeout={int(shutdown_grace)}", f"--signals-to-handle={SIGNALS}"]
    if nodes == 1:
        return torchrun[:3] + ["--standalone"] + torchrun[3:] + module
    if "SLURM_JOB_ID" not in env:
        raise RuntimeError(f"a {nodes}-node run must be launched inside a Slurm allocation")
    head = head_address(env)
    return (["srun", "--overlap", f"--nodes={nodes}", f"--ntasks={nodes}", "--ntasks-per-node=1",
             "--kill-on-bad-exit=1"] + torchrun
            + [f"--nnodes={nodes}", "--rdzv_backend=c10d", f"--rdzv_endpoint={head}:{RDZV_PORT}",
               f"--rdzv_id={env['SLURM_JOB_ID']}"] + module)


def torchrun(argv=None) -> None:
    """torchrun, except that a second signal does not cut the workers' grace period short.

    Under Slurm one event signals every process of the step: torchrun, the workers and the
    launcher (which forwards it too), and srun forwards it again to a nested step. torchrun
    turns each signal into an exception, so a repeat arriving while it waits for its workers
    aborts the wait and the workers die mid-checkpoint. Here only the first one counts."""
    from torch.distributed.elastic.multiprocessing import api

    raise_first = api._terminate_process_handler
    seen = []

    def once(signum, frame):
        if not seen:
            seen.append(signum)
            raise_first(signum, frame)

    api._terminate_process_handler = once
    from torch.distributed.run import main

    main(argv)


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


# the last signal that stopped a launch in this process (SIGURG: the pre-timeout warning)
RECEIVED: dict = {"signal": None}


def launch(args: TrainArguments, processes: int, nodes: int = 1, device: str = "cpu", log=None,
           shutdown_grace: int = 900) -> int:
    """Run to completion (or to a preemption checkpoint); return the exit code:
    ``EXIT_PREEMPTED`` when a signal stopped an unfinished run (it resumes when rerun)."""
    out, logs = Path(args.output_dir), log_dir(args)
    out.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    lock = open(logs / ".lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RuntimeError(f"another process is already training {out} (requeued twice?); refusing to run twice")
    args = args.resolved()  # data content and model revision, hashed once for every worker
    if is_done(out, args):
        print(f"[itlab] {out} is already complete; not training again", file=log or sys.stdout, flush=True)
        return 0
    for stale in out.glob(".model.*"):  # an export killed half-way (the job is rerun)
        shutil.rmtree(stale, ignore_errors=True)
    args_file = logs / "train_args.json"
    args.save(args_file)
    root = str(Path(__file__).resolve().parents[2])  # the workers import itlab from this checkout
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    if device == "cpu":
        env["DS_ACCELERATOR"] = "cpu"
    # DeepSpeed JIT-builds its ops into TORCH_EXTENSIONS_DIR (default ~/.cache/torch_extensions,
    # one folder per op behind one lock file): every environment that builds there with its
    # own paths rebuilds it, and the others wait on the lock. One folder per environment.
    env.setdefault("TORCH_EXTENSIONS_DIR", str(Path(sys.prefix) / "torch_extensions"))
    if nodes > 1 and "SLURM_JOB_ID" in env:
        env = srun_env(env, job_allocation(env["SLURM_JOB_ID"]))
        print("[itlab] nested srun environment: " + " ".join(f"{k}={v}" for k, v in sorted(env.items())
                                                           if k.startswith("SLURM_JOB_N")), file=log or sys.stdout, flush=True)
    cmd = command(str(args_file), processes, nodes, env, shutdown_grace)
    direct = processes == 1 and nodes == 1
    if direct:
        env.update(SINGLE_PROCESS_ENV)
    print(f"[itlab] launching: {' '.join(cmd)}", file=log or sys.stdout, flush=True)
    RECEIVED["signal"] = None
    # a worker started here gets its own session, as torchrun gives its workers: a terminal's
    # Ctrl-C reaches the launcher, which forwards it once
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT if log else None,
                            preexec_fn=_child_setup, start_new_session=direct)

    def forward(signum, frame):  # the workers checkpoint; torchrun waits shutdown_grace for them
        RECEIVED["signal"] = RECEIVED["signal"] or signal.Signals(signum)
        proc.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGURG, signal.SIGINT)}
    try:
        code = proc.wait()
        if code and is_done(out, args):  # DONE.json is written last: the run itself finished
            print(f"[itlab] launcher exited with {code} after the run completed; keeping the result",
                  file=log or sys.stdout, flush=True)
            return 0
        if code and RECEIVED["signal"]:
            ck = complete_checkpoints(out, args.fingerprint(), checkpoint_dir(args))
            print(f"[itlab] stopped by {RECEIVED['signal'].name}; newest checkpoint: "
                  f"{ck[-1].name if ck else 'none'}", file=log or sys.stdout, flush=True)
            return EXIT_PREEMPTED
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
        if args.init_model:  # the seeded model, as pretraining would have started from it
            from itlab.models import build_initial_model, load_tokenizer

            tokenizer = load_tokenizer(args.model_path, args.trust_remote_code)
            build_initial_model(args.init_model, tokenizer, args.seed).save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        else:
            shutil.copytree(args.model_path, tmp, dirs_exist_ok=True)
    params = json.loads((out / "model/config.json").read_text())
    write_json(out / "DONE.json", {"fingerprint": args.fingerprint(), "steps": 0, "tokens": 0, "final_loss": None,
                                   "eval_loss": None, "parameters": None, "architecture": params.get("model_type")})


def requeue_after_warning(code: int, log=None) -> bool:
    """After the pre-timeout warning (SIGURG/SIGUSR1) stopped the run at a checkpoint, put
    this Slurm job back in the queue (same job id, so it never runs twice at once); it
    resumes from the checkpoint. A cancel (SIGTERM) or any other failure is not requeued:
    Slurm requeues preempted jobs itself when they were submitted with --requeue."""
    job = os.environ.get("SLURM_JOB_ID")
    if code != EXIT_PREEMPTED or RECEIVED["signal"] not in (signal.SIGURG, signal.SIGUSR1) or not job:
        return False
    res = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    print(f"[itlab] requeued Slurm job {job} after {RECEIVED['signal'].name}"
          + ("" if res.returncode == 0 else f": FAILED ({res.stderr.strip()})"), file=log or sys.stdout, flush=True)
    return res.returncode == 0


if __name__ == "__main__":
    torchrun()
