"""Rule analyze_behavior_shift: instruction scores, tests, head and FFN comparisons of study D."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
from itlab.analysis import behavior_shift as study  # noqa: E402
from itlab.scripting import logged  # noqa: E402

with logged(snakemake):  # noqa: F821
    inp = snakemake.input  # noqa: F821
    keys = [tuple(k) for k in snakemake.params.models]  # noqa: F821
    attributions = {(p, s): list(getattr(inp, f"attr__{p}__{s}")) for p, s in keys}
    heads = {(p, s): getattr(inp, f"heads__{p}__{s}") for p, s in keys}
    ffn = {(p, s): getattr(inp, f"ffn__{p}__{s}") for p, s in keys}
    vocab = {(p, s): getattr(inp, f"vocab__{p}__{s}") for p, s in keys}
    study.run(attributions, heads, ffn, snakemake.params.settings, dict(snakemake.output.items()), vocab)  # noqa: F821
