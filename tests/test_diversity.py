"""Study B mechanisms: where the switch point lies relative to the grid, the rewriting data that
keeps answer and string aligned, and the prompt template's validation."""

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from itlab.analysis.diversity import switch, switch_line
from itlab.config import ConfigError, validate
from itlab.data import markov_cell
from itlab.stats.switch import accuracy_at, logistic_switch
from itlab.tasks.markov import MarkovParams, rewrite, sample_string

GRID = [8, 32, 128, 320]


def _items(true_switch, b1=2.5, models_per_cell=3, items=100, seed=0):
    """Per-item correctness simulated from a logistic in log I, several trained models per I."""
    rng = np.random.default_rng(seed)
    b0 = -b1 * np.log(true_switch)
    rows = []
    for i in GRID:
        for m in range(models_per_cell):
            p = accuracy_at(b0, b1, i)
            rows += [{"model": f"I{i}-m{m}", "num_rules": i, "examples_per_rule": 16,
                      "correct": float(rng.random() < p)} for _ in range(items)]
    return pd.DataFrame(rows)


def test_switch_inside_the_grid_counts_cells_on_both_sides():
    it = _items(true_switch=60)  # between I = 32 and I = 128
    r = logistic_switch(it.num_rules, it.correct, cluster=it.model)
    assert 32 < r["switch"] < 128
    assert (r["grid_below"], r["grid_above"]) == (2, 2)
    assert "extrapolation" not in r["note"]
    line = switch_line(switch(it).iloc[0])
    assert "inside the grid (2 value(s) of I below it, 2 above)" in line


@pytest.mark.parametrize("true_switch,below,above", [(2000, 4, 0), (2, 0, 4)])
def test_switch_beyond_the_grid_is_flagged_as_extrapolation(true_switch, below, above):
    it = _items(true_switch=true_switch, b1=1.5, items=300)
    r = logistic_switch(it.num_rules, it.correct, cluster=it.model)
    assert np.isfinite(r["switch"]) and not GRID[0] <= r["switch"] <= GRID[-1]
    assert (r["grid_below"], r["grid_above"]) == (below, above)
    assert "extrapolation" in r["note"]
    assert "outside the grid" in switch_line(switch(it).iloc[0])


def test_rewritten_strings_keep_their_drawn_length():
    """z has exactly its drawn length, so with |x| = |y| the answer's i-th letter sits under z's
    i-th letter (the earlier generator drew each filler piece up to the whole length, so z of
    'length 8' ran from 2 to 14 letters and a small model never learned to copy it)."""
    p = MarkovParams(alphabet="abcdefghij", x_len=(1, 2), y_len=(1, 2), z_len=(8, 8), noop_rate=0.3)
    rng = random.Random(5)
    for _ in range(300):
        x = "".join(rng.choice(p.alphabet) for _ in range(rng.randint(*p.x_len)))
        noop = rng.random() < 0.3
        z = sample_string(rng, p, x, noop)
        assert len(z) == 8 and (x in z) != noop
        if len(x) == 1:  # a one-letter rule to a one-letter output: same length, one letter changed
            out = rewrite(x, "!", z)
            assert len(out) == 8 and sum(a != b for a, b in zip(out, z)) == (0 if noop else 1)
    several = MarkovParams(z_len=(10, 10), occurrences=(3,))
    zs = [sample_string(rng, several, "ab", False) for _ in range(100)]
    assert {len(z) for z in zs} == {10} and all(z.count("ab") >= 3 for z in zs)


def test_template_formats_the_prompt_and_unseen_rules_stay_unseen():
    p = MarkovParams(alphabet="abcdefghijklmnopqrst", x_len=(1, 1), y_len=(1, 1), z_len=(8, 8))
    train, test = markov_cell(32, 4, 40, 100, 1, p, 0.0, "{x}>{y}:{z}")
    r = test[0]
    assert r["prompt"] == f"{r['inputs']['x']}>{r['inputs']['y']}:{r['inputs']['z']}"
    assert not {t["rule"] for t in train} & {t["rule"] for t in test}
    assert len({t["rule"] for t in train}) == 32 and len(train) == 128


def test_bad_template_names_the_key():
    cfg = yaml.safe_load(Path("experiments/embedded-diversity.yaml").read_text())
    base = yaml.safe_load(Path("config.yaml").read_text())
    merged = {**base, **cfg}
    validate(merged)  # the shipped config is valid
    for bad in ("{x}>{w}:{z}", "{x}>{y}", "{x}>{y}:{z"):
        merged["studies"]["diversity"]["template"] = bad
        with pytest.raises(ConfigError) as err:
            validate(merged)
        assert err.value.key == "studies.diversity.template"


def test_rule_space_counts_the_rules_and_bounds_the_grid():
    """The largest cell may use every rule the generator can draw except the test rules; one more
    fails validation naming studies.diversity.num_rules, before any job starts."""
    from itertools import product

    from itlab.tasks.markov import rule_space

    for alphabet, x_len, y_len in (("abcdefghijklmnopqrstuvwxyz", (1, 1), (1, 1)), ("abc", (1, 2), (0, 2)),
                                   ("abcd", (2, 3), (1, 2))):
        def strings(lo, hi, alphabet=alphabet):
            return ["".join(t) for n in range(lo, hi + 1) for t in product(alphabet, repeat=n)]
        brute = sum(x != y for x in strings(*x_len) for y in strings(*y_len))
        assert rule_space(MarkovParams(alphabet=alphabet, x_len=x_len, y_len=y_len)) == brute
    assert rule_space(MarkovParams(family="repeated")) is None
    cfg = yaml.safe_load(Path("experiments/embedded-diversity.yaml").read_text())
    merged = {**yaml.safe_load(Path("config.yaml").read_text()), **cfg}
    s = merged["studies"]["diversity"]
    top = 650 - s["test_rules"]  # 26 letters, one-letter rules: 26 * 25
    s["num_rules"] = [8, top]
    validate(merged)
    s["num_rules"] = [8, top + 1]
    with pytest.raises(ConfigError) as err:
        validate(merged)
    assert err.value.key == "studies.diversity.num_rules" and f"at most {top} training rules" in str(err.value)


def test_headline_switch_is_fitted_on_rewrites_not_on_copied_noops():
    """No-ops are answered by copying z at every I, so they lay a floor (their share) under the
    accuracy of all items and pull a 0-to-1 logistic's P = 0.5 point towards fewer rules. The
    headline switch is fitted on rewrite items alone and recovers their switch; the all-items rows
    stay in the table."""
    rng = np.random.default_rng(3)
    true_switch, b1 = 60, 2.0
    rows = []
    for i in GRID:
        for m in range(3):
            p = accuracy_at(-b1 * np.log(true_switch), b1, i)
            for _ in range(200):
                noop = rng.random() < 0.4
                rows.append({"model": f"I{i}-m{m}", "num_rules": i, "examples_per_rule": 16,
                             "kind": "no-op" if noop else "rewrite", "correct": float(noop or rng.random() < p)})
    sw = switch(pd.DataFrame(rows))
    head, everything = sw.iloc[0], sw[(sw["items"] == "all") & (sw.examples_per_rule == "all")].iloc[0]
    assert head["items"] == "rewrites" and head.n == sum(r["kind"] == "rewrite" for r in rows)
    assert abs(np.log(head.switch / true_switch)) < 0.2
    assert everything.switch < 0.7 * true_switch  # the floor drags the all-items fit down
    assert "rewrite items (no-ops left out)" in switch_line(head)


def test_max_gap_measures_how_far_the_curve_is_from_the_data():
    """max_gap is the largest |observed - fitted| accuracy over the grid's I: small when the data
    follow a logistic, large when a floor of copied no-ops is fitted with a 0-to-1 curve."""
    it = _items(true_switch=60, items=300)
    r = logistic_switch(it.num_rules, it.correct, cluster=it.model)
    observed = it.groupby("num_rules").correct.mean()
    fitted = accuracy_at(r["b0"], r["b1"], observed.index)
    assert r["max_gap"] == pytest.approx(np.max(np.abs(observed.values - fitted)), abs=1e-9) and r["max_gap"] < 0.05
    floored = it.assign(correct=np.where(np.arange(len(it)) % 5 < 2, 1.0, it.correct))  # 40% always right
    assert logistic_switch(floored.num_rules, floored.correct, cluster=floored.model)["max_gap"] > 0.1
