"""Study analysis modules on hand-made results tables with known answers."""

import json

import numpy as np
import pandas as pd
import pytest

from itlab.analysis import diversity, inherent_limits, scaling
from itlab.grid import diversity_cells
from itlab.stats.powerlaw import predict


def _row(**kw):
    base = {"kind": "tuned", "study": "scaling", "condition": "tuned_zero_shot", "metric": "exact_match", "n": 100,
            "family": "llama", "size": "l", "seed": 1}
    return {**base, **kw}


def test_scaling_points_and_fits_recover_the_law():
    rows = []
    for base, (a, b) in {"llama-l": (0.02, 2.0), "neox-l": (0.01, 1.5)}.items():
        for d in (8, 16, 32, 64, 128, 256):
            rows.append(_row(model=f"tuned/{base}-{d}", base_model=base, task="uppercase", train_task="uppercase",
                             train_size=d, score=float(predict(a, b, d))))
    rows.append(_row(model="x", base_model="llama-l", task="add", train_task="uppercase", train_size=8, score=0.9))
    p = scaling.points(pd.DataFrame(rows), {}, 0.5)
    assert len(p) == 12  # the off-task evaluation is not a point of the law
    f = scaling.fits(p).set_index("base_model")
    assert f.loc["llama-l", "a"] == pytest.approx(0.02) and f.loc["neox-l", "b"] == pytest.approx(1.5)
    text = scaling.summary(p, f.reset_index(), 0.5)
    assert "19.47" in text and "| llama-l | uppercase |" in text


def test_scaling_zero_scores_are_floored():
    rows = [_row(model=f"m{d}", base_model="b", task="t", train_task="t", train_size=d, score=s)
            for d, s in [(8, 0.0), (16, 0.01), (32, 0.03)]]
    p = scaling.points(pd.DataFrame(rows), {}, 0.5)
    assert p.score_floored.tolist() == [0.005, 0.01, 0.03]
    assert scaling.fits(p).zeros.iloc[0] == 1


def test_diversity_cells_from_total_examples():
    assert diversity_cells({"num_rules": [200, 1000], "total_examples": 10**6, "seeds": [1]}) == \
        [(200, 5000, 1), (1000, 1000, 1)]
    assert len(diversity_cells({"num_rules": [8, 32], "examples_per_rule": [2, 8, 32], "seeds": [1, 2]})) == 12


def test_diversity_items_cells_and_switch(tmp_path):
    rng = np.random.default_rng(0)
    samples, meta = {}, {"models": {}}
    for I in (10, 100, 1000):
        for S in (5, 50):
            model = f"tuned/I{I}S{S}"
            path = tmp_path / f"I{I}S{S}.jsonl"
            p_right = 1 / (1 + np.exp(-(np.log(I) - np.log(100)) * 2))
            lines = [json.dumps({"inputs": {"noop": str(i % 5 == 0)}, "exact_match": float(rng.random() < p_right)})
                     for i in range(200)]
            path.write_text("\n".join(lines) + "\n")
            samples[model] = str(path)
            meta["models"][model] = {"num_rules": I, "examples_per_rule": S, "seed": 1}
    it = diversity.items(samples, meta)
    assert len(it) == 1200 and set(it.kind) == {"rewrite", "no-op"}
    cells = diversity.cell_accuracy(it)
    assert len(cells) == 6 and {"accuracy_rewrite", "accuracy_noop"} <= set(cells.columns)
    manual = it[(it.num_rules == 1000) & (it.examples_per_rule == 5)].correct.mean()
    assert cells.set_index(["num_rules", "examples_per_rule"]).loc[(1000, 5), "accuracy"] == pytest.approx(manual)
    sw = diversity.switch(it)
    assert sw.iloc[0].switch_low <= 100 <= sw.iloc[0].switch_high
    text = diversity.summary(cells, sw, None)
    assert "Switch point" in text and "2000 rules" in text


def test_inherent_limits_pairs_join_tuned_with_their_base():
    rows = []
    for base, icl in (("a", [0.1, 0.5, 0.9]), ("b", [0.2, 0.3, 0.4])):
        for task, score in zip(("t1", "t2", "t3"), icl):
            common = dict(base_model=base, family="f", size=base, task=task, cluster="c", heldout=False,
                          metric="exact_match", n=10, seed=1, mixture=None)
            rows.append({**common, "model": f"base/{base}", "kind": "base", "condition": "base_k_shot", "score": score})
            rows.append({**common, "model": f"base/{base}", "kind": "base", "condition": "base_zero_shot", "score": 0.0})
            rows.append({**common, "model": f"tuned/{base}", "kind": "tuned", "condition": "tuned_zero_shot",
                         "score": score + 0.05, "mixture": "all"})
    p = inherent_limits.pairs(pd.DataFrame(rows))
    assert len(p) == 6 and (p.tuned - p.base_icl).round(6).eq(0.05).all()
    corr = inherent_limits.correlations(p, 200, 0).set_index(["scope", "group", "method"])
    assert corr.loc[("model", "tuned/a", "pearson"), "r"] == pytest.approx(1.0)
