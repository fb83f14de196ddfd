"""Rule download_task (paper scale): a mirrored hub data set formatted as itlab records.
Reads the mirror only (offline); a data set without a test split gets one carved from its
training split (test_from_train)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab import hub  # noqa: E402
from itlab.data import carve_test, load_hub_task  # noqa: E402
from itlab.io import write_jsonl  # noqa: E402
from itlab.scripting import logged, one_line_errors  # noqa: E402

with logged(snakemake), one_line_errors():  # noqa: F821
    hub.offline()
    p, task = snakemake.params, snakemake.wildcards.task  # noqa: F821
    spec, key = p.spec, f"data.hub_tasks.{snakemake.wildcards.task}"  # noqa: F821
    manifest = hub.read_manifest(p.folder, standin=p.standin)
    train = hub.load_split(p.folder, spec["train_split"], f"{key}.train_split")
    if spec.get("test_from_train"):
        train, test = carve_test(train, spec["test_from_train"], task, p.seed, f"{key}.test_from_train")
    else:
        test = hub.load_split(p.folder, spec["test_split"], f"{key}.test_split")
    for split, rows, path in (("train", train, snakemake.output.train), ("test", test, snakemake.output.test)):  # noqa: F821
        limit = None if split == "train" else p.max_items
        n = write_jsonl(path, load_hub_task(task, spec, split, limit, seed=p.seed, rows=rows))
        print(f"[itlab] {task} {split}: {n} records from {manifest['id']}@{manifest['commit']}")
