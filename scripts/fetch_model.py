"""Rule fetch_model (local: needs the network, or none in stand-in mode): one hub model into the mirror."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab.mirror import ensure_model  # noqa: E402
from itlab.scripting import logged, one_line_errors  # noqa: E402

with logged(snakemake), one_line_errors():  # noqa: F821
    p = snakemake.params  # noqa: F821
    rec = ensure_model(p.entry, p.folder, p.standin, p.seed)
    print(f"[itlab] {rec['id']}@{rec['revision']} (commit {rec['commit']}, standin={rec['standin']}): "
          f"{'fetched' if rec.get('fetched_now') else 'already in the mirror, nothing downloaded'}; "
          f"content {rec['content_sha256'][:16]}")
