"""Rule explain_weights: attention-head word counts and FFN principal components of one model."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab.interpret.jobs import weights_job  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    out = snakemake.output  # noqa: F821
    weights_job(out.heads, out.ffn, snakemake.params.job, out.vocabulary)  # noqa: F821
