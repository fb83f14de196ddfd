"""Rule generate_responses: one generator's responses to the instruction pool (one model load)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab import hub  # noqa: E402

hub.offline()  # hub models and data sets come from the mirror only
import torch  # noqa: E402

from itlab.generate import responses  # noqa: E402
from itlab.io import read_jsonl, write_jsonl  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    p = snakemake.params  # noqa: F821
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    pool = read_jsonl(snakemake.input.instructions) if "instructions" in snakemake.input.keys() else []  # noqa: F821
    out = responses(snakemake.wildcards.generator, p.spec, pool, p.seed, p.model_dir,  # noqa: F821
                    trust_remote_code=p.trust_remote_code, device="cuda" if p.device == "cuda" else "cpu")
    print(f"{write_jsonl(snakemake.output[0], out)} responses")  # noqa: F821
