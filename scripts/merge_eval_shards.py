"""Rule merge_eval_shards: a sharded model's evaluation outputs as one job's (eval/<model>/)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab.evaluate import merge_shards  # noqa: E402
from itlab.io import write_jsonl, write_table  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    scores, samples = merge_shards(snakemake.input.scores, snakemake.input.samples,  # noqa: F821
                                   snakemake.params.shards)  # noqa: F821
    write_jsonl(snakemake.output.samples, samples)  # noqa: F821
    write_table(snakemake.output.scores, scores)  # noqa: F821
    print(f"{len(snakemake.params.shards)} shards: {len(scores)} score rows, {len(samples)} samples")  # noqa: F821
