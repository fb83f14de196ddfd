"""Rule synthesize_tasks: train/validation/test splits of every synthetic task."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab.data import synthesize_task  # noqa: E402
from itlab.io import write_json, write_jsonl  # noqa: E402
from itlab.tasks import TaskParams  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    p = snakemake.params  # noqa: F821
    counts = {}
    for task in p.tasks:
        splits = synthesize_task(task, p.splits, p.seed, TaskParams(**p.generator))
        for split, records in splits.items():
            path = next(f for f in snakemake.output.splits if f.endswith(f"/{task}/{split}.jsonl"))  # noqa: F821
            write_jsonl(path, records)
        counts[task] = {s: len(r) for s, r in splits.items()}
        print(task, counts[task])
    write_json(snakemake.output.manifest, counts)  # noqa: F821
