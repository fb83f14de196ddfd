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


# ---- study E: power law -------------------------------------------------------------------
from itlab.stats.powerlaw import fit, floor_zeros, predict  # noqa: E402


def test_power_law_fit_is_exact_on_noiseless_points():
    D = np.array([10, 30, 100, 300, 1000, 3000])
    res = fit(D, predict(19.47, 7.66, D))
    assert res["a"] == pytest.approx(19.47) and res["b"] == pytest.approx(7.66) and res["r2"] == pytest.approx(1.0)


def test_power_law_fit_recovers_known_a_and_b_within_intervals():
    """Noisy synthetic points (multiplicative log-normal noise): the 95% intervals of a and b
    cover the true values in about 95% of seeded replications, and the estimates are close."""
    a, b = 8.14, 4.97
    D = np.geomspace(10, 7000, 8)
    rng = np.random.default_rng(7)
    covered_a = covered_b = 0
    reps = 300
    for _ in range(reps):
        P = predict(a, b, D) * np.exp(rng.normal(0, 0.05, len(D)))
        r = fit(D, P)
        covered_a += r["a_low"] <= a <= r["a_high"]
        covered_b += r["b_low"] <= b <= r["b_high"]
    assert 0.9 <= covered_a / reps <= 0.99 and 0.9 <= covered_b / reps <= 0.99
    r = fit(D, predict(a, b, D) * np.exp(rng.normal(0, 0.05, len(D))))
    assert abs(r["a"] - a) / a < 0.15 and abs(r["b"] - b) / b < 0.15


def test_power_law_matches_numpy_polyfit():
    D = np.array([8, 16, 32, 64, 128, 256])
    P = np.array([0.02, 0.05, 0.06, 0.12, 0.2, 0.31])
    slope, intercept = np.polyfit(np.log(D), np.log(P), 1)
    r = fit(D, P)
    assert r["slope"] == pytest.approx(slope) and r["a"] == pytest.approx(np.exp(intercept))


def test_zero_rule():
    assert floor_zeros([0.0, 0.25], 100).tolist() == [0.005, 0.25]
    with pytest.raises(ValueError, match="floor_zeros"):
        fit([1, 2, 3], [0.0, 0.1, 0.2])


# ---- study B: switch point ----------------------------------------------------------------
from itlab.stats.switch import accuracy_at, logistic_switch  # noqa: E402


def test_switch_point_recovered_from_simulated_items():
    """Items simulated from a known logistic in log I with its switch at I = 400: the fitted
    switch is close and its interval covers 400 in about 95% of seeded replications."""
    true_switch, b1 = 400.0, 3.0
    b0 = -b1 * np.log(true_switch)
    grid = np.array([100, 200, 300, 400, 500, 1000, 2000])
    rng = np.random.default_rng(11)
    covered, reps = 0, 200
    for _ in range(reps):
        I = np.repeat(grid, 150)
        y = rng.random(len(I)) < accuracy_at(b0, b1, I)
        r = logistic_switch(I, y)
        covered += r["switch_low"] <= true_switch <= r["switch_high"]
    assert 0.9 <= covered / reps <= 0.99
    assert abs(r["switch"] - true_switch) / true_switch < 0.2 and r["b1"] > 0


def test_switch_point_matches_independent_newton_fit():
    rng = np.random.default_rng(3)
    I = np.repeat([50, 100, 200, 400, 800], 80)
    y = (rng.random(len(I)) < accuracy_at(-12.0, 2.2, I)).astype(float)
    X = np.column_stack([np.ones(len(I)), np.log(I)])
    beta = np.zeros(2)
    for _ in range(50):  # Newton-Raphson on the logistic log-likelihood
        p = 1 / (1 + np.exp(-X @ beta))
        beta += np.linalg.solve(X.T @ (X * (p * (1 - p))[:, None]), X.T @ (y - p))
    r = logistic_switch(I, y)
    assert r["b0"] == pytest.approx(beta[0], rel=1e-4) and r["b1"] == pytest.approx(beta[1], rel=1e-4)
    assert r["switch"] == pytest.approx(np.exp(-beta[0] / beta[1]), rel=1e-4)


def test_switch_point_degenerate_inputs():
    assert np.isnan(logistic_switch([10, 20, 30], [0, 0, 0])["switch"])
    assert "no variation" in logistic_switch([10, 10], [0, 1])["note"]


def test_power_law_constant_scores_have_no_fit():
    r = fit([8, 16, 32, 64], floor_zeros([0, 0, 0, 0], 100))
    assert np.isnan(r["b"]) and "constant" in r["note"]
