"""Rule build_subset: one of the nested subsets of a task's training split (study E)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab.data import nested_subsets  # noqa: E402
from itlab.io import read_jsonl, write_jsonl  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    w, p = snakemake.wildcards, snakemake.params  # noqa: F821
    n = int(w.n)
    subsets = nested_subsets(read_jsonl(snakemake.input[0]), sorted(set(p.sizes) | {n}), p.seed, w.task)  # noqa: F821
    write_jsonl(snakemake.output[0], subsets[n])  # noqa: F821
    print(f"{w.task}: subset of {n} examples")
