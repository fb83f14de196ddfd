"""Rule judge_answers: AlpacaEval 2 / Arena-Hard scores of one tuned student (the judge's key
comes from the environment only)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab.io import read_jsonl, write_table  # noqa: E402
from itlab.judge import judge_answers  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    table = judge_answers(read_jsonl(snakemake.input[0]), snakemake.params.judge,  # noqa: F821
                          snakemake.wildcards.run)  # noqa: F821
    write_table(snakemake.output[0], table)  # noqa: F821
    print(table.to_string())
