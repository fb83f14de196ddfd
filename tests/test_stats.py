"""Statistics against independent computations and known answers."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from itlab.stats.cluster import bootstrap_correlation, cluster_counts, two_way_replicates
from itlab.stats.correlation import correlate, format_p, holm
from itlab.stats.mixed import crossed, random_intercept


def test_pearson_and_spearman_match_scipy_on_hand_made_data():
    x = [0.1, 0.4, 0.35, 0.8, 0.9, 0.2, 0.55]
    y = [0.05, 0.3, 0.5, 0.7, 0.95, 0.1, 0.4]
    p = correlate(x, y, "pearson")
    s = correlate(x, y, "spearman")
    assert p["r"] == pytest.approx(stats.pearsonr(x, y).statistic)
    assert p["p"] == pytest.approx(stats.pearsonr(x, y).pvalue)
    assert s["r"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert s["p"] == pytest.approx(stats.spearmanr(x, y).pvalue)
    assert p["ci_low"] <= p["r"] <= p["ci_high"]


def test_known_answers():
    x = np.arange(10.0)
    assert correlate(x, 3 * x + 1, "pearson")["r"] == pytest.approx(1.0)
    assert correlate(x, np.exp(x), "spearman")["r"] == pytest.approx(1.0)  # monotone
    assert correlate(x, -x, "spearman")["r"] == pytest.approx(-1.0)
    # hand computation: x = 1,2,3 ; y = 1,3,2 -> r = 0.5
    assert correlate([1, 2, 3], [1, 3, 2], "pearson")["r"] == pytest.approx(0.5)
    assert np.isnan(correlate(x, np.ones(10), "pearson")["r"])  # constant: undefined
    assert correlate(x[:6], x[:6], "spearman")["p"] == pytest.approx(2 / 720)  # exact bound, not p = 0


def test_fisher_interval_covers_at_small_n():
    """Seeded simulation at study A's per-model size (n = 14 tasks), rho 0.6 and 0.85: the 95%
    Fisher-z interval covers rho in 93-97% of 1,000 replications each (the percentile bootstrap
    of pairs covered 91-92% here)."""
    n, reps = 14, 1000
    rng = np.random.default_rng(2024)
    for rho in (0.6, 0.85):
        cov = [[1, rho], [rho, 1]]
        data = rng.multivariate_normal([0, 0], cov, size=(reps, n))
        covered = 0
        for d in data:
            res = correlate(d[:, 0], d[:, 1], "pearson")
            covered += res["ci_low"] <= rho <= res["ci_high"]
        assert 0.93 <= covered / reps <= 0.97, (rho, covered)


def test_correlation_leaves_out_nan_pairs_and_says_so():
    x = [0.1, 0.4, np.nan, 0.8, 0.9, 0.2, 0.55, 0.3]
    y = [0.05, 0.3, 0.5, 0.7, np.nan, 0.1, 0.4, 0.35]
    keep = [0, 1, 3, 5, 6, 7]
    res = correlate(x, y, "pearson")
    assert res["n"] == 6 and "2 pair(s)" in res["note"]
    assert res["r"] == pytest.approx(stats.pearsonr(np.take(x, keep), np.take(y, keep)).statistic)
    const = correlate([1, 2, 3, 4, 5], [2, 2, 2, 2, 2])
    assert np.isnan(const["r"]) and "constant" in const["note"]


def test_p_values_never_round_across_a_threshold():
    assert format_p(0.04999) == "p = 0.04999" and format_p(0.0499999) == "p < 0.05"
    assert format_p(0.0099) == "p = 0.0099" and format_p(0.012) == "p = 0.012"
    assert format_p(0.0) == "p < 1e-300" and format_p(float("nan")) == "p n/a"


def test_holm_matches_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = holm([0.01, np.nan, 0.02])
    assert np.isnan(out[1]) and out[0] == pytest.approx(0.02) and out[2] == pytest.approx(0.02)
    assert np.isnan(holm([0.03])).all()  # a family of one is not corrected (and not called Holm)


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


# ---- study A: clustered inference ---------------------------------------------------------
def _paper_layout(rng, beta=0.0, sims=1, B=4, T=21, M=90):
    """Study A at the paper's layout: 90 tuned models (on 4 base models) x 21 tasks = 1,890 rows,
    84 distinct base scores; base and tuned scores each with base-model, task (and tuned-model)
    random effects; tuned = independent part + beta * base score."""
    bm = np.arange(M) % B
    base = 0.4 + rng.normal(0, .08, (sims, B, 1)) + rng.normal(0, .15, (sims, 1, T)) + rng.normal(0, .05, (sims, B, T))
    tuned = (0.4 + rng.normal(0, .08, (sims, B, 1))[:, bm] + rng.normal(0, .15, (sims, 1, T))
             + rng.normal(0, .03, (sims, M, 1)) + rng.normal(0, .05, (sims, M, T)))
    tuned = tuned + beta * (base[:, bm] - 0.4)
    return base[:, bm].reshape(sims, -1), tuned.reshape(sims, -1), np.repeat(bm, T), np.tile(np.arange(T), M)


def test_two_way_bootstrap_replicates_equal_explicit_resamples():
    """Independent check: a replicate's weighted r equals r of the data set built by repeating
    each row (its base model drawn w_a times) x (its task drawn w_b times)."""
    rng = np.random.default_rng(1)
    x, y, a, b = _paper_layout(rng, 0.3, 1, B=3, T=6, M=9)
    x, y = x[0], y[0]
    for method, fn in (("pearson", stats.pearsonr), ("spearman", stats.spearmanr)):
        state = np.random.default_rng(5)
        reps = two_way_replicates(x, y, a, b, 3, 6, method, 4, state)
        state = np.random.default_rng(5)
        wa, wb = cluster_counts(3, 4, state), cluster_counts(6, 4, state)
        for k in range(4):
            w = (wa[k, a] * wb[k, b]).astype(int)
            assert reps[k] == pytest.approx(fn(np.repeat(x, w), np.repeat(y, w)).statistic, abs=1e-9)


def test_pooled_test_holds_its_level_at_the_paper_layout():
    """400 seeded data sets with tuned independent of base: the two-way cluster bootstrap rejects
    in at most 7%; the row-level Pearson test (n = 1,890) rejects in most of them."""
    rng = np.random.default_rng(12)
    xs, ys, a, b = _paper_layout(rng, 0.0, 400)
    rejected = naive = 0
    for i, (x, y) in enumerate(zip(xs, ys)):
        res = bootstrap_correlation(x, y, a, b, "pearson", n_boot=1000, seed=i)
        rejected += res["p"] < 0.05
        naive += stats.pearsonr(x, y).pvalue < 0.05
        assert res["units"] == "21 tasks x 4 base models" and res["n"] == 1890
    assert rejected / 400 <= 0.07, rejected
    assert naive / 400 > 0.5, naive


def test_pooled_test_detects_a_real_effect():
    rng = np.random.default_rng(13)
    xs, ys, a, b = _paper_layout(rng, 1.0, 60)
    detected = sum(bootstrap_correlation(x, y, a, b, "pearson", n_boot=1000, seed=i)["p"] < 0.05
                   for i, (x, y) in enumerate(zip(xs, ys)))
    assert detected / 60 >= 0.8, detected


def test_bootstrap_correlation_notes_nan_and_constant():
    rng = np.random.default_rng(2)
    x, y, a, b = _paper_layout(rng, 0.5, 1, B=3, T=8, M=6)
    x, y = x[0].copy(), y[0].copy()
    y[[0, 5]] = np.nan
    res = bootstrap_correlation(x, y, a, b, n_boot=200)
    assert res["n"] == len(x) - 2 and "2 row(s)" in res["note"] and np.isfinite(res["r"])
    flat = bootstrap_correlation(x, np.full_like(x, 0.3), a, b, n_boot=200)
    assert np.isnan(flat["r"]) and "constant tuned" in flat["note"]


def _crossed_frame(rng, B=4, T=10, M=12, slope=0.5):
    bm = np.arange(M) % B
    base = 0.4 + rng.normal(0, .08, (B, 1)) + rng.normal(0, .15, (1, T)) + rng.normal(0, .05, (B, T))
    tuned = (0.3 + rng.normal(0, .08, (B, 1))[bm] + rng.normal(0, .15, (1, T)) + rng.normal(0, .03, (M, 1))
             + rng.normal(0, .05, (M, T)) + slope * base[bm])
    return pd.DataFrame({"tuned": tuned.ravel(), "base_icl": base[bm].ravel(),
                         "base_model": np.repeat(bm, T).astype(str),
                         "task": np.tile(np.arange(T), M).astype(str), "model": np.repeat(np.arange(M), T).astype(str)})


def test_crossed_mixed_model_recovers_slope_and_reports_nan_rows():
    frame = _crossed_frame(np.random.default_rng(4))
    frame.loc[[3, 7], "tuned"] = np.nan
    res = crossed(frame, "tuned", "base_icl")
    assert res["converged"] and res["n"] == len(frame) - 2 and "2 row(s)" in res["note"]
    assert res["levels"] == {"base_model": 4, "task": 10, "base_model_x_task": 40, "model": 12}
    assert res["ci_low"] <= 0.5 <= res["ci_high"] and res["variances"]["task"] > 0.005
    ri = random_intercept(frame, "tuned", "base_icl", "base_model")  # NaN rows: a note, not a PatsyError
    assert ri["n"] == len(frame) - 2 and "2 row(s)" in ri["note"]


def test_mixed_model_leaves_out_a_grouping_the_data_cannot_identify():
    """One tuned model per base model (the embedded ladder): (1 | model) splits the rows exactly as
    (1 | base_model) does and each base_model:task cell holds one row, so neither variance is
    identifiable. The fit leaves both out, says so, and equals the fit without them."""
    frame = _crossed_frame(np.random.default_rng(5), B=6, T=13, M=6)
    res = crossed(frame, "tuned", "base_icl")
    reduced = crossed(frame, "tuned", "base_icl", nested=(), interaction=False)
    assert res["converged"] and reduced["converged"]
    assert res["formula"] == reduced["formula"] == "tuned ~ base_icl + (1 | base_model) + (1 | task)"
    assert "(1 | model) left out: the same grouping of the rows as (1 | base_model)" in res["note"]
    assert "(1 | base_model:task) left out: one row per level" in res["note"]
    assert res["slope"] == pytest.approx(reduced["slope"], rel=1e-9) and res["se"] == pytest.approx(reduced["se"])


def test_unconverged_mixed_model_prints_no_estimate(monkeypatch):
    from statsmodels.regression.mixed_linear_model import MixedLM

    fit = MixedLM.fit
    monkeypatch.setattr(MixedLM, "fit", lambda self, **kw: fit(self, **{**kw, "maxiter": 1, "method": ["bfgs"]}))
    res = crossed(_crossed_frame(np.random.default_rng(4)), "tuned", "base_icl")
    assert not res["converged"] and np.isnan(res["slope"]) and np.isnan(res["p"])
    assert np.isfinite(res["unconverged_slope"]) and "did not converge" in res["note"]


# ---- study B: model-clustered switch -------------------------------------------------------
def test_switch_interval_covers_with_per_model_quality():
    """Seeded simulation: 7 values of I x 4 trained models x 100 items, switch at I = 400, and each
    trained model with its own logit offset (SD 0.5, then 1.0). Clustering by model keeps the 95%
    interval's coverage at >= 90% of 200 data sets; treating items as independent does not."""
    grid, seeds, items, true = np.array([100, 200, 300, 400, 600, 1000, 2000]), 4, 100, 400.0
    b1 = 2.0
    b0 = -b1 * np.log(true)
    rng = np.random.default_rng(21)
    I = np.repeat(grid, seeds)
    item_I, model = np.repeat(I, items), np.repeat(np.arange(len(I)), items)
    for sd in (0.5, 1.0):
        clustered = naive = 0
        for _ in range(200):
            p = 1 / (1 + np.exp(-(b0 + b1 * np.log(I) + rng.normal(0, sd, len(I)))))  # per-model quality
            y = (rng.random((len(I), items)) < p[:, None]).ravel()
            r = logistic_switch(item_I, y, cluster=model)
            clustered += r["switch_low"] <= true <= r["switch_high"]
            r = logistic_switch(item_I, y)
            naive += r["switch_low"] <= true <= r["switch_high"]
        assert clustered / 200 >= 0.9, (sd, clustered)
        assert naive / 200 < 0.8, (sd, naive)


def test_switch_separation_and_flat_or_falling_curves_are_stated():
    I = np.repeat([100, 200, 400, 800], 50)
    model = np.repeat(np.arange(8), 25)
    sep = logistic_switch(I, (I >= 400).astype(float), cluster=model)
    assert np.isnan(sep["switch"]) and "perfect separation" in sep["note"] and "200" in sep["note"]
    rng = np.random.default_rng(0)
    falling = logistic_switch(I, rng.random(len(I)) < accuracy_at(12.0, -2.0, I), cluster=model)
    assert np.isnan(falling["switch"]) and "falls" in falling["note"] and falling["b1"] < 0
    flat = logistic_switch(I, rng.random(len(I)) < 0.5, cluster=model)
    assert np.isnan(flat["switch"]) and "no switch" in flat["note"]
    nan = logistic_switch(np.r_[I, 100], np.r_[(rng.random(len(I)) < accuracy_at(-12, 2, I)), np.nan],
                          cluster=np.r_[model, 0])
    assert "1 item(s)" in nan["note"]


# ---- study E: degenerate inputs ------------------------------------------------------------
def test_power_law_counts_distinct_sizes_and_notes_nan():
    r = fit([8, 8, 16, 16], [0.1, 0.12, 0.2, 0.22])  # 4 points, 2 sizes
    assert np.isnan(r["b"]) and "2 distinct size" in r["note"]
    D = np.array([8, 16, 32, 64, 128])
    r = fit(D, np.r_[predict(0.02, 2.0, D[:4]), np.nan])
    assert r["b"] == pytest.approx(2.0) and "1 point(s) with a missing" in r["note"] and r["n_points"] == 4
    assert np.isnan(floor_zeros([np.nan, 0.0], 100)[0])  # a missing score is not a zero


def test_mixed_model_refits_without_a_component_estimated_at_zero(monkeypatch):
    """A singular fit (one variance at 0, Hessian not positive definite) is refitted without that
    component, and the summary's formula and note say so."""
    from itlab.stats import mixed

    calls = []
    real = mixed._fit

    def fake(model, out, predictor, notes):
        names = list(model.exog_vc.names)
        calls.append(names)
        if "base_model_x_task" in names:
            variances = {n: (0.0 if n == "base_model_x_task" else 0.01) for n in names}
            return {**out, "converged": False, "variances": variances,
                    "residual_var": 0.01, "note": "Hessian not positive definite"}
        return real(model, out, predictor, notes)

    monkeypatch.setattr(mixed, "_fit", fake)
    res = crossed(_crossed_frame(np.random.default_rng(4)), "tuned", "base_icl")
    assert "base_model_x_task" in calls[0] and "base_model_x_task" not in calls[1]
    assert res["converged"] and "base_model:task" not in res["formula"]
    assert "variance of base_model:task estimated at or near 0 (base_model:task 0.00%" in res["note"]


@pytest.mark.parametrize("converged", [False, True])
def test_mixed_model_drops_a_near_zero_component_only_from_a_failed_fit(monkeypatch, converged):
    """A component next to the boundary (0.2% of the variance, as study A's base_model on the
    embedded ladder) is left out when the fit failed on it, never from a fit that converged."""
    from itlab.stats import mixed

    calls = []
    real = mixed._fit

    def fake(model, out, predictor, notes):
        names = list(model.exog_vc.names)
        calls.append(names)
        if len(calls) == 1:
            variances = {n: (0.0002 if n == "base_model" else 0.03) for n in names}
            return {**out, "converged": converged, "variances": variances, "residual_var": 0.02, "note": ""}
        return real(model, out, predictor, notes)

    monkeypatch.setattr(mixed, "_fit", fake)
    res = crossed(_crossed_frame(np.random.default_rng(4)), "tuned", "base_icl")
    if converged:
        assert len(calls) == 1 and "(1 | base_model)" in res["formula"]
    else:
        assert "base_model" in calls[0] and "base_model" not in calls[1] and "(1 | base_model)" not in res["formula"]
        assert "variance of base_model estimated at or near 0 (base_model 0.18% of the total)" in res["note"]
