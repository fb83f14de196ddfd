"""Rule analyze_inherent_limits: clustered correlations (raw and chance-adjusted), crossed mixed
models, the tuned-vs-base effect table, figure and summary of study A."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
import pandas as pd  # noqa: E402

from itlab.analysis import inherent_limits as study  # noqa: E402
from itlab.io import write_json, write_table, write_text  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    s, seed = snakemake.params.study, snakemake.params.seed  # noqa: F821
    table = pd.read_csv(snakemake.input.table, sep="\t")  # noqa: F821
    pairs = study.pairs(table, snakemake.params.scoring)  # noqa: F821
    corr = study.correlations(pairs, s["bootstrap"], seed)
    corr_adj = study.correlations(pairs, s["bootstrap"], seed, adjusted=True)
    mixed, mixed_adj = study.mixed_model(pairs), study.mixed_model(pairs, adjusted=True)
    effect = study.tuning_effect(pairs, s["bootstrap"], seed)
    out = snakemake.output  # noqa: F821
    write_table(out.pairs, pairs)
    write_table(out.tuning_effect, effect)
    write_json(out.mixed_model, {"raw": mixed, "chance_adjusted": mixed_adj})
    study.scatter(pairs, snakemake.output.figure)  # noqa: F821
    write_table(snakemake.output.correlations, pd.concat([corr, corr_adj], ignore_index=True))  # noqa: F821
    text = study.summary(pairs, corr, mixed, table, corr_adj, mixed_adj, effect)
    write_text(snakemake.output.summary, text)  # noqa: F821
