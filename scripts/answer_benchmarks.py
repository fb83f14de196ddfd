"""Rule answer_benchmarks: a tuned student's answers to the judged benchmarks' prompts."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab import hub  # noqa: E402

hub.offline()  # hub models and data sets come from the mirror only
from itlab.io import write_jsonl  # noqa: E402
from itlab.generate import answer  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    p = snakemake.params  # noqa: F821
    records = answer(p.model_dir, p.judge, p.generation, p.seed, p.trust_remote_code,
                     "cuda" if p.device == "cuda" else "cpu")
    print(f"{write_jsonl(snakemake.output[0], records)} answers")  # noqa: F821
