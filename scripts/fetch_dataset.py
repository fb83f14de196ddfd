"""Rule fetch_dataset (local): one hub data set (with its subset) into the mirror, then every
task that reads it is checked against its schema."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab.mirror import ensure_dataset  # noqa: E402
from itlab.scripting import logged, one_line_errors  # noqa: E402

with logged(snakemake), one_line_errors():  # noqa: F821
    p = snakemake.params  # noqa: F821
    rec = ensure_dataset(p.entry, p.folder, p.standin, p.rows, p.seed)
    print(f"[itlab] {rec['id']} ({rec.get('subset')})@{rec['revision']} (commit {rec['commit']}, "
          f"standin={rec['standin']}): {'fetched' if rec.get('fetched_now') else 'already in the mirror, nothing downloaded'}; "
          f"splits {', '.join(rec['splits'])}; tasks checked: {', '.join(p.entry['tasks']) or 'none'}")
