"""Rule init_model: build a base model from its family x size config (seeded random weights),
the starting point of its pretraining."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab.io import atomic_path  # noqa: E402
from itlab.models import build_model, load_tokenizer  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    p = snakemake.params  # noqa: F821
    tokenizer = load_tokenizer(snakemake.input.tokenizer)  # noqa: F821
    model = build_model(p.architecture, p.model, tokenizer, p.seed)
    with atomic_path(snakemake.output.init, directory=True) as tmp:  # noqa: F821
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    print(f"built {p.architecture} with {sum(x.numel() for x in model.parameters())} parameters")
