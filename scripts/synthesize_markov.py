"""Rule synthesize_markov: one cell of study B's grid (I rules x S examples) and its unseen-rule test set."""

import sys

sys.path.insert(0, f"{snakemake.scriptdir}/..")  # noqa: F821
import re  # noqa: E402

from itlab.data import markov_cell  # noqa: E402
from itlab.io import write_jsonl  # noqa: E402
from itlab.scripting import logged  # noqa: E402
from itlab.tasks.markov import MarkovParams  # noqa: E402

with logged(snakemake):  # noqa: F821
    s = snakemake.params.study  # noqa: F821
    rules, per_rule = map(int, re.fullmatch(r"markov-I(\d+)-S(\d+)", snakemake.wildcards.cell).groups())  # noqa: F821
    params = MarkovParams(alphabet=s["alphabet"], x_len=tuple(s["x_len"]), y_len=tuple(s["y_len"]),
                          z_len=tuple(s["z_len"]), noop_rate=s["noop_rate"], occurrences=tuple(s["occurrences"]),
                          family=s["family"], family_k=s["family_k"])
    train, test = markov_cell(rules, per_rule, s["test_rules"], s["test_examples"], snakemake.params.seed,  # noqa: F821
                              params, s["skew"], s.get("template"))
    write_jsonl(snakemake.output.train, train)  # noqa: F821
    write_jsonl(snakemake.output.test, test)  # noqa: F821
    print(f"{snakemake.wildcards.cell}: {len(train)} training, {len(test)} test examples")  # noqa: F821
