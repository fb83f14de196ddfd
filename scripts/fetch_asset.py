"""Rule fetch_asset (local): what an lm-eval harness task loads at run time (the code_eval
metric script, nltk's punkt_tab) into the mirror, fetched or a stand-in."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab.hub_assets import ensure_asset  # noqa: E402
from itlab.scripting import logged, one_line_errors  # noqa: E402

with logged(snakemake), one_line_errors():  # noqa: F821
    p = snakemake.params  # noqa: F821
    rec = ensure_asset(p.entry, p.folder, p.standin, p.seed)
    print(f"[itlab] {rec['id']}@{rec['revision']} (commit {rec['commit']}, standin={rec['standin']}): "
          f"{'fetched' if rec.get('fetched_now') else 'already in the mirror, nothing downloaded'}")
