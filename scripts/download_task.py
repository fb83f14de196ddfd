"""Rule download_task (paper scale): a Hugging Face data set formatted as itlab records."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab.data import load_hub_task  # noqa: E402
from itlab.io import write_jsonl  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    spec = snakemake.params.spec  # noqa: F821
    for split, path in (("train", snakemake.output.train), ("test", snakemake.output.test)):  # noqa: F821
        limit = None if split == "train" else snakemake.params.max_items  # noqa: F821
        records = load_hub_task(snakemake.wildcards.task, spec, split, limit, seed=snakemake.params.seed)  # noqa: F821
        write_jsonl(path, records)
