"""Rule analyze_diversity: heat-map over I x S, switch point, table beside the paper's Table 1."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
import pandas as pd  # noqa: E402

from itlab.analysis import diversity as study  # noqa: E402
from itlab.io import write_table, write_text  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    table = pd.read_csv(snakemake.input.table, sep="\t")  # noqa: F821
    it = study.items(dict(zip(snakemake.params.models, snakemake.input.samples)), snakemake.params.metadata)  # noqa: F821
    cells = study.cell_accuracy(it)
    sw = study.switch(it)
    write_table(snakemake.output.cells, cells)  # noqa: F821
    write_table(snakemake.output.switch, sw)  # noqa: F821
    study.figures(cells, it, sw, snakemake.output.heatmap, snakemake.output.curve)  # noqa: F821
    write_text(snakemake.output.summary, study.summary(cells, sw, study.code_arm(table)))  # noqa: F821
