"""Rule fetch_behavior_file: download study D's prompt or ratings file and check its SHA-256."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab.interpret.prompts import fetch_checked  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    src = snakemake.params.source  # noqa: F821
    fetch_checked(src["url"], src["sha256"], snakemake.output.file)  # noqa: F821
