"""Rule build_corpus: the plain-text pretraining corpus (train and held-out documents)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from pathlib import Path  # noqa: E402

from itlab.data import DOC_SEPARATOR, build_corpus  # noqa: E402
from itlab.io import write_text  # noqa: E402
from itlab.scripting import logged  # noqa: E402
from itlab.tasks import TaskParams  # noqa: E402

with logged(snakemake):  # noqa: F821
    p, c = snakemake.params, snakemake.params.corpus  # noqa: F821
    params = TaskParams(**p.generator)
    train = build_corpus(p.tasks, c["documents"], c["demos_per_document"], c["filler_sentences"], p.seed, params, "train",
                         c["instructions"], c["task_weights"])
    train += [Path(f).read_text() for f in snakemake.input.extra]  # noqa: F821
    heldout = build_corpus(p.tasks, c["validation_documents"], c["demos_per_document"], c["filler_sentences"], p.seed,
                           params, "validation", c["instructions"], c["task_weights"])
    write_text(snakemake.output.train, DOC_SEPARATOR.join(train))  # noqa: F821
    write_text(snakemake.output.validation, DOC_SEPARATOR.join(heldout))  # noqa: F821
    print(f"{len(train)} training documents, {len(heldout)} held-out documents")
