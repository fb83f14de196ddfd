"""Rule fetch_behavior_file (local): download study D's prompt or ratings file and check its SHA-256
(stand-in mode: copy its fixture)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab.interpret.prompts import fetch_checked, standin_file  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    src = snakemake.params.source  # noqa: F821
    if src.get("standin"):  # mirror.standin: the fixture of the file, nothing downloaded
        print(f"[itlab] stand-in of {src['url']}: {standin_file(src['url'], snakemake.output.file)}")  # noqa: F821
    else:
        fetch_checked(src["url"], src["sha256"], snakemake.output.file)  # noqa: F821
