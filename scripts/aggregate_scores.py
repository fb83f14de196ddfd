"""Rule aggregate_scores: every evaluation job's scores joined with its run metadata into one
tidy table (one row per model x task x condition x metric)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab.io import write_table  # noqa: E402
from itlab.results import tidy_scores  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    table = tidy_scores(dict(snakemake.input.items()), snakemake.params.metadata)  # noqa: F821
    write_table(snakemake.output.table, table)  # noqa: F821
    print(f"{len(table)} rows")
