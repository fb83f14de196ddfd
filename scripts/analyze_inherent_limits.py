"""Rule analyze_inherent_limits: correlations, mixed model, figure and summary of study A."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from itlab.analysis import inherent_limits as study  # noqa: E402
from itlab.io import write_json, write_table, write_text  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    s = snakemake.params.study  # noqa: F821
    table = pd.read_csv(snakemake.input.table, sep="\t")  # noqa: F821
    pairs = study.pairs(table)
    corr = study.correlations(pairs, s["bootstrap"], snakemake.params.seed)  # noqa: F821
    mixed = study.mixed_model(pairs)
    out = Path(snakemake.output.summary).parent  # noqa: F821
    write_table(out / "pairs.tsv", pairs)
    write_json(out / "mixed_model.json", mixed)
    study.scatter(pairs, snakemake.output.figure)  # noqa: F821
    write_table(snakemake.output.correlations, corr)  # noqa: F821
    write_text(snakemake.output.summary, study.summary(pairs, corr, mixed, table))  # noqa: F821
