"""Rule pretrain_model: build a base model from its family x size config (seeded random
weights) and pretrain it on the corpus for its token budget (same DeepSpeed loop as tuning,
objective lm). Checkpoints and training logs are kept outside the declared outputs, so a
failed job resumes."""

import sys
from pathlib import Path

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab.grid import checkpoint_folder  # noqa: E402
from itlab.scripting import logged  # noqa: E402
from itlab.train.args import TrainArguments  # noqa: E402
from itlab.train.launch import finish_without_training, launch  # noqa: E402

with logged(snakemake):  # noqa: F821
    smk = snakemake  # noqa: F821
    # where it checkpoints and logs is not part of the result: not in params (no rerun)
    where = {"checkpoint_dir": checkpoint_folder(smk.config, smk.wildcards.base, "base"),
             "log_dir": str(Path(smk.log[0]).with_suffix(""))}  # logs/pretrain_model/<base>/
    args = TrainArguments.from_dict({**smk.params.args, **where})
    if args.max_tokens == 0:  # budget 0: the seeded random model is the base model
        finish_without_training(args)
        sys.exit(0)
    code = launch(args, processes=1, device="cpu", log=sys.stdout)
    if code:
        raise SystemExit(f"pretraining exited with code {code}; rerun to resume from the last checkpoint")
