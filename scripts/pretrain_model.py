"""Rule pretrain_model: build a base model from its family x size config, then pretrain it
on the corpus for its token budget (same DeepSpeed loop as tuning, objective lm)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from pathlib import Path  # noqa: E402

from itlab.io import atomic_path  # noqa: E402
from itlab.models import build_model, load_tokenizer  # noqa: E402
from itlab.scripting import logged  # noqa: E402
from itlab.train.args import TrainArguments  # noqa: E402
from itlab.train.launch import finish_without_training, launch  # noqa: E402

with logged(snakemake):  # noqa: F821
    p = snakemake.params  # noqa: F821
    args = TrainArguments.from_dict(p.args)
    init = Path(args.model_path)
    if not (init / "model.safetensors").exists():
        tokenizer = load_tokenizer(str(Path(snakemake.input.tokenizer).parent))  # noqa: F821
        model = build_model(p.architecture, p.model, tokenizer, p.seed)
        with atomic_path(init, directory=True) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        print(f"built {p.architecture} with {sum(x.numel() for x in model.parameters())} parameters")
    if args.max_tokens == 0:  # budget 0: the randomly initialised model is the base model
        finish_without_training(args)
        sys.exit(0)
    code = launch(args, processes=1, device="cpu", log=sys.stdout)
    if code:
        raise SystemExit(f"pretraining exited with code {code}; rerun to resume from the last checkpoint")
