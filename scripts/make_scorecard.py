"""Rule make_scorecard: per study, our statistic beside the paper's number, its scale and a verdict
(results/scorecard.md; the rst copy is the first page of the Snakemake report)."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from pathlib import Path  # noqa: E402

from itlab import scorecard  # noqa: E402
from itlab.io import write_text  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    p, inp, out = snakemake.params, snakemake.input, snakemake.output  # noqa: F821
    numbers = scorecard.paper_numbers()
    stats = {s: inp[s] for s in inp.keys() if s in scorecard.STUDIES}
    rows = scorecard.build(p.studies, stats, p.scales, numbers, p.missing)
    write_text(out.markdown, scorecard.render(rows, numbers, p.title))
    intro = Path(inp.intro).read_text(encoding="utf-8")
    write_text(out.front_page, scorecard.render_rst(rows, intro, numbers, p.title))
