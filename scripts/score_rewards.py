"""Rule score_rewards: every reward model's score of each response of one generator, and its length."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab import hub  # noqa: E402

hub.offline()  # hub models and data sets come from the mirror only
from itlab.io import read_jsonl, write_table  # noqa: E402
from itlab.rewards import score  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    p = snakemake.params  # noqa: F821
    table = score(read_jsonl(snakemake.input[0]), p.reward_models, p.trust_remote_code,  # noqa: F821
                  "cuda" if p.device == "cuda" else "cpu")
    write_table(snakemake.output[0], table)  # noqa: F821
    print(table.describe().to_string())
