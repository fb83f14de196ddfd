"""Rule build_mixture: examples-proportional mixture of task training splits, capped per task."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

from itlab.data import build_mixture  # noqa: E402
from itlab.io import read_jsonl, write_jsonl  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    p = snakemake.params  # noqa: F821
    name = snakemake.wildcards.mixture  # noqa: F821
    # the rule's inputs are the member tasks' training splits (rules/common.smk: mixture_members)
    train = {Path(f).parent.name: read_jsonl(f) for f in snakemake.input}  # noqa: F821
    records = build_mixture(train, p.mixture, p.seed, name)
    write_jsonl(snakemake.output[0], records)  # noqa: F821
    print(f"mixture {name}: {len(records)} examples", dict(Counter(r["task"] for r in records)))
