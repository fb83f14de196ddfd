"""Rule fetch_glm_files (local): the data file of AlpacaEval 2's length-controlled GLM
(tatsu-lab/alpaca_eval df_gamed.csv) into the mirror, or its stand-in."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab.judge import ensure_glm_files  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    p = snakemake.params  # noqa: F821
    rec = ensure_glm_files(p.folder, p.standin, p.seed)
    print(f"{rec['id']}/{rec['file']} @ {rec['commit']} (standin={rec['standin']})")
