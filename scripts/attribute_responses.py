"""Rule attribute_responses: greedy responses and attribution matrices of one model, one shard."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab.interpret.jobs import attribute_job  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    attribute_job(snakemake.input.prompts, snakemake.output.attributions, snakemake.params.job)  # noqa: F821
