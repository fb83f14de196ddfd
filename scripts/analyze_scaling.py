"""Rule analyze_scaling: power-law fits per base model and task, figure and summary of study E."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
import pandas as pd  # noqa: E402

from itlab.analysis import scaling as study  # noqa: E402
from itlab.io import write_table, write_text  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    s = snakemake.params.study  # noqa: F821
    table = pd.read_csv(snakemake.input.table, sep="\t")  # noqa: F821
    metrics = {task: v["metric"] for task, v in snakemake.params.scoring.items()} | s["metrics"]  # noqa: F821
    points = study.points(table, metrics, s["zero_floor"])
    fits = study.fits(points)
    write_table(snakemake.output.points, points)  # noqa: F821
    write_table(snakemake.output.fits, fits)  # noqa: F821
    study.figure(points, fits, snakemake.output.figure)  # noqa: F821
    write_text(snakemake.output.summary, study.summary(points, fits, s["zero_floor"]))  # noqa: F821
