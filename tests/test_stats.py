"""Statistics against independent computations and known answers."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from itlab.stats.correlation import correlate, holm
from itlab.stats.mixed import random_intercept


def test_pearson_and_spearman_match_scipy_on_hand_made_data():
    x = [0.1, 0.4, 0.35, 0.8, 0.9, 0.2, 0.55]
    y = [0.05, 0.3, 0.5, 0.7, 0.95, 0.1, 0.4]
    p = correlate(x, y, "pearson", n_boot=200)
    s = correlate(x, y, "spearman", n_boot=200)
    assert p["r"] == pytest.approx(stats.pearsonr(x, y).statistic)
    assert p["p"] == pytest.approx(stats.pearsonr(x, y).pvalue)
    assert s["r"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert s["p"] == pytest.approx(stats.spearmanr(x, y).pvalue)
    assert p["ci_low"] <= p["r"] <= p["ci_high"]


def test_known_answers():
    x = np.arange(10.0)
    assert correlate(x, 3 * x + 1, "pearson", n_boot=100)["r"] == pytest.approx(1.0)
    assert correlate(x, np.exp(x), "spearman", n_boot=100)["r"] == pytest.approx(1.0)  # monotone
    assert correlate(x, -x, "spearman", n_boot=100)["r"] == pytest.approx(-1.0)
    # hand computation: x = 1,2,3 ; y = 1,3,2 -> r = 0.5
    assert correlate([1, 2, 3], [1, 3, 2], "pearson", n_boot=100)["r"] == pytest.approx(0.5)
    assert np.isnan(correlate(x, np.ones(10), "pearson", n_boot=100)["r"])  # constant: undefined


def test_bootstrap_interval_covers_true_correlation():
    """Seeded simulation: bivariate normal with rho = 0.6, n = 60; the 95% percentile interval
    must cover rho in roughly 95% of 200 replications (binomial bounds for 200 trials)."""
    rho, n, reps = 0.6, 60, 200
    rng = np.random.default_rng(2024)
    cov = [[1, rho], [rho, 1]]
    covered = 0
    for i in range(reps):
        x, y = rng.multivariate_normal([0, 0], cov, size=n).T
        res = correlate(x, y, "pearson", n_boot=400, seed=i)
        covered += res["ci_low"] <= rho <= res["ci_high"]
    assert 0.88 <= covered / reps <= 0.99, covered


def test_holm_matches_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = holm([0.01, np.nan, 0.02])
    assert np.isnan(out[1]) and out[0] == pytest.approx(0.02) and out[2] == pytest.approx(0.02)


def test_mixed_model_recovers_slope_under_group_intercepts():
    rng = np.random.default_rng(0)
    rows = []
    for g in range(8):
        intercept = rng.normal(0, 1.0)
        for _ in range(25):
            x = rng.uniform(0, 1)
            rows.append({"g": f"m{g}", "x": x, "y": intercept + 2.0 * x + rng.normal(0, 0.1)})
    res = random_intercept(pd.DataFrame(rows), "y", "x", "g")
    assert res["ci_low"] <= 2.0 <= res["ci_high"] and abs(res["slope"] - 2.0) < 0.1
    assert res["groups"] == 8 and res["group_var"] > 0.3 and res["p"] < 1e-10
    # OLS ignoring groups is much noisier: the mixed model's interval is the narrower one
    import statsmodels.formula.api as smf

    ols = smf.ols("y ~ x", pd.DataFrame(rows)).fit()
    assert res["ci_high"] - res["ci_low"] < np.diff(ols.conf_int().loc["x"].values)[0]
