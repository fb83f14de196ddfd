"""Rule train_tokenizer: a character or byte-level BPE tokenizer trained on the pretraining corpus, saved as a HF fast tokenizer."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from pathlib import Path  # noqa: E402

from itlab.data import DOC_SEPARATOR  # noqa: E402
from itlab.io import atomic_path  # noqa: E402
from itlab.models import train_tokenizer  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    docs = Path(snakemake.input.corpus).read_text().split(DOC_SEPARATOR)  # noqa: F821
    out = Path(snakemake.output.folder)  # noqa: F821
    with atomic_path(out, directory=True) as tmp:
        tok = train_tokenizer(docs, snakemake.params.vocab_size, tmp, kind=snakemake.params.kind)  # noqa: F821
    print(f"vocabulary of {len(tok)} tokens")
