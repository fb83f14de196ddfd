"""Post-training scaling law P = a * D^(1/b), fitted by least squares on log P vs log D."""

from __future__ import annotations

import numpy as np


def floor_zeros(scores, n_test, zero_floor: float = 0.5) -> np.ndarray:
    """Documented zero rule: a score of 0 (no item right) cannot be logged; it is raised to
    ``zero_floor / n_test``, i.e. half an item right, below every observable positive score."""
    scores, n_test = np.asarray(scores, float), np.broadcast_to(np.asarray(n_test, float), np.shape(scores))
    return np.where(scores > 0, scores, zero_floor / n_test)


def fit(train_sizes, scores, level: float = 0.95) -> dict:
    """OLS of log P = log a + (1/b) log D (statsmodels). Returns a, b with confidence intervals
    (the intervals of log a and of the slope 1/b, transformed), R^2 and the slope itself."""
    import statsmodels.api as sm

    D, P = np.asarray(train_sizes, float), np.asarray(scores, float)
    if (P <= 0).any():
        raise ValueError("scores must be positive: apply floor_zeros first")
    out = {"n_points": len(D), "a": np.nan, "a_low": np.nan, "a_high": np.nan, "b": np.nan, "b_low": np.nan,
           "b_high": np.nan, "slope": np.nan, "slope_low": np.nan, "slope_high": np.nan, "r2": np.nan, "note": ""}
    if len(D) < 3 or np.ptp(np.log(D)) == 0:
        out["note"] = "fewer than 3 distinct sizes"
        return out
    if np.ptp(np.log(P)) == 0:
        out["note"] = "constant scores (e.g. all 0): no power law to fit"
        return out
    model = sm.OLS(np.log(P), sm.add_constant(np.log(D))).fit()
    ci = np.asarray(model.conf_int(alpha=1 - level))  # rows: const, log D; columns: low, high
    (c_lo, c_hi), (s_lo, s_hi) = ci[0], ci[1]
    intercept, slope = model.params
    out.update(a=float(np.exp(intercept)), a_low=float(np.exp(c_lo)), a_high=float(np.exp(c_hi)),
               slope=float(slope), slope_low=float(s_lo), slope_high=float(s_hi), r2=float(model.rsquared),
               b=float(1 / slope) if slope != 0 else np.inf)
    # b = 1/slope: the interval maps to [1/s_hi, 1/s_lo] when it excludes 0, else b is unbounded
    if s_lo > 0 or s_hi < 0:
        out.update(b_low=float(min(1 / s_lo, 1 / s_hi)), b_high=float(max(1 / s_lo, 1 / s_hi)))
    else:
        out.update(b_low=-np.inf, b_high=np.inf)
    return out


def predict(a: float, b: float, train_sizes) -> np.ndarray:
    return a * np.asarray(train_sizes, float) ** (1 / b)
