"""Rule report_pretraining: held-out loss of every built base model, as a table and a plot."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab.grid import Grid  # noqa: E402
from itlab.io import write_table  # noqa: E402
from itlab.report import plot_pretraining, pretraining_table  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    grid = Grid(snakemake.config)  # noqa: F821
    table = pretraining_table(dict(zip(snakemake.params.bases, snakemake.input.done)), grid)  # noqa: F821
    write_table(snakemake.output.table, table)  # noqa: F821
    plot_pretraining(table, snakemake.output.figure)  # noqa: F821
    print(table.to_string())
