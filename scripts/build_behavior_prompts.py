"""Rule build_behavior_prompts: study D's prompts with their instruction spans (JSONL)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab.interpret.prompts import build_prompts  # noqa: E402
from itlab.io import write_jsonl  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    inp = snakemake.input  # noqa: F821
    prompts = build_prompts(snakemake.params.spec, inp.get("dataset"), inp.get("ratings"))  # noqa: F821
    n = write_jsonl(snakemake.output.prompts, prompts)  # noqa: F821
    print(f"{n} prompts; {sum('span_error' in p for p in prompts)} with an instruction span not found")
