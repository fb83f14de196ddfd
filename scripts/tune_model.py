"""Rule tune_model: launch one DeepSpeed tuning run (resumes from its newest checkpoint, kept
outside the declared outputs; its training logs go to the job's log folder)."""

import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab import hub  # noqa: E402
from itlab.grid import Grid, tune_checkpointing  # noqa: E402
from itlab.scripting import logged  # noqa: E402
from itlab.train.args import TrainArguments  # noqa: E402
from itlab.train.launch import launch, requeue_after_warning  # noqa: E402

with logged(snakemake):  # noqa: F821
    hub.offline()  # hub base models come from the mirror only
    # checkpointing settings come from the config, not from params (no rerun when they change)
    checkpointing = tune_checkpointing(Grid(snakemake.config), snakemake.wildcards.run)  # noqa: F821
    # training logs (metrics.jsonl, tensorboard/, arguments file, lock) in the job's log folder
    logs = str(Path(snakemake.log[0]).with_suffix(""))  # noqa: F821  logs/tune_model/<run>/
    args = TrainArguments.from_dict({**snakemake.params.args, **checkpointing, "log_dir": logs})  # noqa: F821
    code = launch(args, log=sys.stdout, **snakemake.params.launch)  # noqa: F821
    if code and requeue_after_warning(code, log=sys.stdout):
        raise SystemExit(f"tuning checkpointed before the time limit; job requeued (code {code})")
    if code:
        raise SystemExit(f"tuning exited with code {code}; rerun to resume from the last checkpoint")
