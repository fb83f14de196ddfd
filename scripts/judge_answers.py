"""Rule judge_answers: AlpacaEval 2 / Arena-Hard scores of one tuned student (the judge's key
comes from the environment only; a served local judge needs none)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab import hub  # noqa: E402

hub.offline()  # benchmarks, the served judge and the GLM's data come from the mirror only
from itlab.io import read_jsonl, write_table  # noqa: E402
from itlab.judge import judge_answers  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    p = snakemake.params  # noqa: F821
    table = judge_answers(read_jsonl(snakemake.input.answers), p.judge, snakemake.wildcards.run,  # noqa: F821
                          glm_cache=p.glm_cache, device="cuda" if p.device == "cuda" else "cpu",
                          trust_remote_code=p.trust_remote_code)
    write_table(snakemake.output[0], table)  # noqa: F821
    print(table.to_string())
