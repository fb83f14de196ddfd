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
            rows.append({**common, "model": f"tuned/{base}", "kind": "tuned", "study": "inherent_limits",
                         "condition": "tuned_zero_shot",
                         "score": score + 0.05, "mixture": "all"})
    p = inherent_limits.pairs(pd.DataFrame(rows))
    assert len(p) == 6 and (p.tuned - p.base_icl).round(6).eq(0.05).all()
    corr = inherent_limits.correlations(p, 200, 0).set_index(["scope", "group", "method"])
    assert corr.loc[("model", "tuned/a", "pearson"), "r"] == pytest.approx(1.0)


def _study_a_table(rng, tuned_fn=None, metrics=None):
    """3 base models x 6 tasks x 2 mixtures; task t5 held out; each task scored on several metrics."""
    rows, metrics = [], metrics or {}
    for b, base in enumerate(("fa-s", "fa-m", "fb-s")):
        for k in range(6):
            task = f"t{k}"
            common = dict(base_model=base, family=base[:2], size=base[3:], task=task, cluster=f"c{k % 3}",
                          heldout=task == "t5", n=50, seed=1, mixture=None)
            icl, zero = 0.1 + 0.1 * k + 0.05 * b, 0.05 * k
            for metric in ("exact_match", "rouge_l", "bleu"):
                bump = 0.0 if metric == metrics.get(task, "exact_match") else 0.3  # other metrics differ
                for cond, s in (("base_k_shot", icl), ("base_zero_shot", zero)):
                    rows.append({**common, "model": f"base/{base}", "kind": "base", "condition": cond,
                                 "metric": metric, "score": s + bump})
                for mix in ("m1", "m2"):
                    s = tuned_fn(base, mix, k, icl) if tuned_fn else icl + 0.1 + rng.normal(0, 0.02)
                    rows.append({**common, "model": f"tuned/{base}-{mix}", "kind": "tuned", "study": "inherent_limits",
                                 "mixture": mix,
                                 "condition": "tuned_zero_shot", "metric": metric, "score": s + bump})
    return pd.DataFrame(rows)


def test_inherent_limits_pairs_only_study_a_tuned_models():
    """In the five-study DAG the scores table holds every study's tuned models; study A's
    correlation and tuning effect are over its own (a union run pooled E's single-task and C's
    teacher-tuned models into them: llama-l counted 7 tuned models instead of 1)."""
    table = _study_a_table(np.random.default_rng(0))
    others = table[table.kind == "tuned"].copy()
    others["study"], others["score"] = "scaling", 1.0
    others["model"] = others.model + "-e"
    mixed = pd.concat([table, others], ignore_index=True)
    p, own = inherent_limits.pairs(mixed, {}), inherent_limits.pairs(table, {})
    assert set(p.model) == set(own.model) and not p.model.str.endswith("-e").any()
    pd.testing.assert_frame_equal(p, own)


def test_inherent_limits_uses_each_tasks_metric_and_chance():
    rng = np.random.default_rng(0)
    metrics = {"t1": "rouge_l", "t2": "bleu"}
    scoring = {"t1": {"metric": "rouge_l"}, "t2": {"metric": "bleu"}, "t3": {"chance": 0.5}}
    p = inherent_limits.pairs(_study_a_table(rng, metrics=metrics), scoring)
    assert len(p) == 3 * 2 * 6 and set(p[p.task == "t2"].metric) == {"bleu"}
    row = p[(p.base_model == "fa-m") & (p.task == "t2")].iloc[0]
    assert row.base_icl == pytest.approx(0.1 + 0.2 + 0.05) and row.base_zero == pytest.approx(0.1)  # BLEU's row
    t3 = p[p.task == "t3"]
    assert (t3.tuned_adj == t3.tuned - 0.5).all() and (p[p.task != "t3"].chance == 0).all()
    corr = inherent_limits.correlations(p, 300, 0)
    pooled = corr[(corr.scope == "pooled") & (corr.method == "pearson")].iloc[0]
    assert pooled.units == "6 tasks x 3 base models" and pooled.n == 36 and pooled.inference.startswith("two-way")
    means = corr[(corr.scope == "task means") & (corr.method == "pearson")].iloc[0]
    tm = inherent_limits.task_means(p)
    assert means.n == 6 and means.r == pytest.approx(np.corrcoef(tm.base_icl, tm.tuned)[0, 1])
    assert np.isnan(corr[corr.scope == "pooled"].p_holm).all()  # no Holm family of one
    text = inherent_limits.summary(p, corr, inherent_limits.mixed_model(p), _study_a_table(rng))
    assert "| t2 | bleu | 0 |" in text and "| t3 | exact_match | 0.5 |" in text
    assert "6 tasks x 3 base models" in text


def test_inherent_limits_degenerate_model_and_nan_are_stated_not_nan():
    rng = np.random.default_rng(1)

    def tuned(base, mix, k, icl):
        if base == "fb-s" and mix == "m2":
            return 0.0  # a collapsed model: the same score on every task
        return np.nan if (base, mix, k) == ("fa-s", "m1", 3) else icl + 0.1 + rng.normal(0, 0.02)

    p = inherent_limits.pairs(_study_a_table(rng, tuned), {})
    corr = inherent_limits.correlations(p, 200, 0)
    dead = corr[(corr.scope == "model") & (corr.group == "tuned/fb-s-m2")]
    assert dead.note.str.contains("degenerate model: constant tuned scores").all() and dead.r.isna().all()
    nan_model = corr[(corr.scope == "model") & (corr.group == "tuned/fa-s-m1")].iloc[0]
    assert nan_model.n == 5 and "1 pair(s)" in nan_model.note
    pooled = corr[(corr.scope == "pooled")].iloc[0]
    assert pooled.n == 35 and "1 row(s)" in pooled.note
    mixed = inherent_limits.mixed_model(p)
    text = inherent_limits.summary(p, corr, mixed, _study_a_table(rng))
    import re

    assert not re.search(r"(?<![(\w])nan(?![)\w])", text.lower()) and "degenerate model" in text  # "(NaN)" is prose


def test_inherent_limits_tuning_effect_per_base_model():
    rng = np.random.default_rng(2)
    p = inherent_limits.pairs(_study_a_table(rng), {})
    eff = inherent_limits.tuning_effect(p, 500, 0).set_index(["base_model", "tasks"])
    g = p[(p.base_model == "fa-m") & ~p.heldout]
    hand = (g.tuned - g.base_zero).groupby(g.task).mean().mean()
    row = eff.loc[("fa-m", "held-in")]
    assert row.mean_diff == pytest.approx(hand) and row.n_tasks == 5 and row.ci_low <= hand <= row.ci_high
    out = eff.loc[("fa-m", "held-out")]
    assert out.n_tasks == 1 and "no interval" in out.note and np.isnan(out.ci_low)


def test_unconverged_mixed_model_is_not_printed_as_a_finding():
    p = inherent_limits.pairs(_study_a_table(np.random.default_rng(3)), {})
    corr = inherent_limits.correlations(p, 200, 0)
    mixed = {"formula": "tuned ~ base_icl + (1 | base_model) + (1 | task)", "converged": False, "slope": np.nan,
             "unconverged_slope": 0.731, "note": "the mixed model did not converge (x): no estimate is reported"}
    text = inherent_limits.summary(p, corr, mixed, pd.DataFrame())
    assert "0.731" not in text and "no estimate reported" in text


def test_diversity_switch_is_clustered_and_degenerate_curves_are_stated(tmp_path):
    """Items carry their trained model; a falling curve gets a note, no switch and no 'nan'."""
    import re

    samples, meta = {}, {"models": {}}
    for I in (10, 100, 1000):
        for seed in (1, 2):
            model = f"tuned/I{I}s{seed}"
            path = tmp_path / f"{model.split('/')[1]}.jsonl"
            right = {10: 150, 100: 100, 1000: 40}[I] + 10 * seed  # falls with I
            lines = [json.dumps({"inputs": {"noop": "False"}, "exact_match": float(i < right)}) for i in range(200)]
            path.write_text("\n".join(lines) + "\n")
            samples[model] = str(path)
            meta["models"][model] = {"num_rules": I, "examples_per_rule": 5, "seed": seed}
    it = diversity.items(samples, meta)
    sw = diversity.switch(it)
    assert sw.iloc[0].clusters == 6 and np.isnan(sw.iloc[0].switch) and "falls" in sw.iloc[0].note
    text = diversity.summary(diversity.cell_accuracy(it), sw, None)
    assert "none." in text and "falls" in text and not re.search(r"(?<![(\w])nan(?![)\w])", text.lower())


def test_inherent_limits_constant_base_scores_are_stated_as_degenerate_base():
    """A base model that writes no answer (0 in-context on every task) leaves its tuned models'
    correlation undefined: the note says why, the summary shows no 'nan'."""
    import re

    rng = np.random.default_rng(3)
    table = _study_a_table(rng)
    dead = (table.base_model == "fb-s") & (table.kind == "base")
    table.loc[dead, "score"] = 0.0
    p = inherent_limits.pairs(table, {})
    corr = inherent_limits.correlations(p, 100, 0)
    rows = corr[(corr.scope == "model") & (corr.group == "tuned/fb-s-m1")]
    assert rows.r.isna().all() and rows.note.str.contains("degenerate base model: constant in-context").all()
    text = inherent_limits.summary(p, corr, inherent_limits.mixed_model(p), table)
    assert "degenerate base model" in text and not re.search(r"(?<![(\w])nan(?![)\w])", text.lower())
