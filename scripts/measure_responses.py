"""Rule measure_responses: loss, IFD and perplexity of every generator's responses under one scorer."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab import hub  # noqa: E402

hub.offline()  # hub models and data sets come from the mirror only
import torch  # noqa: E402

from itlab.io import write_table  # noqa: E402
from itlab.response_metrics import measure  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    p = snakemake.params  # noqa: F821
    torch.set_num_threads(snakemake.threads)  # noqa: F821
    s = p.settings
    table = measure(p.model_dir, dict(zip(p.generators, snakemake.input.responses)), s["max_len"],  # noqa: F821
                    s["batch_size"], p.trust_remote_code, "cuda" if p.device == "cuda" else "cpu",
                    s.get("max_records"))
    write_table(snakemake.output[0], table)  # noqa: F821
