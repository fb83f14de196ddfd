"""Rule select_instructions: study C's shared instruction pool (train-split prompts of held-in tasks)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab.generate import instruction_pool  # noqa: E402
from itlab.io import read_jsonl, write_jsonl  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    p = snakemake.params  # noqa: F821
    records = {t: read_jsonl(path) for t, path in zip(p.tasks, snakemake.input)}  # noqa: F821
    n = write_jsonl(snakemake.output[0], instruction_pool(records, p.per_task, p.seed))  # noqa: F821
    print(f"{n} instructions from {len(records)} tasks")
