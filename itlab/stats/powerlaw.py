"""Post-training scaling law P = a * D^(1/b), fitted by least squares on log P vs log D."""

from __future__ import annotations

import numpy as np


def floor_zeros(scores, n_test, zero_floor: float = 0.5) -> np.ndarray:
    """Documented zero rule: a score of 0 (no item right) cannot be logged; it is raised to
    ``zero_floor / n_test``, i.e. half an item right, below every observable positive score."""
    scores, n_test = np.asarray(scores, float), np.broadcast_to(np.asarray(n_test, float), np.shape(scores))
    return np.where((scores > 0) | np.isnan(scores), scores, zero_floor / n_test)  # NaN stays missing


def fit(train_sizes, scores, level: float = 0.95) -> dict:
    """OLS of log P = log a + (1/b) log D (statsmodels). Returns a, b with confidence intervals
    (the intervals of log a and of the slope 1/b, transformed), R^2 and the slope itself."""
    import statsmodels.api as sm

    D, P = np.asarray(train_sizes, float), np.asarray(scores, float)
    ok = np.isfinite(D) & np.isfinite(P)
    missing = int((~ok).sum())
    D, P = D[ok], P[ok]
    if (P <= 0).any():
        raise ValueError("scores must be positive: apply floor_zeros first")
    out = {"n_points": len(D), "n_sizes": int(len(np.unique(D))), "a": np.nan, "a_low": np.nan, "a_high": np.nan,
           "b": np.nan, "b_low": np.nan, "b_high": np.nan, "slope": np.nan, "slope_low": np.nan, "slope_high": np.nan,
           "r2": np.nan, "note": f"{missing} point(s) with a missing (NaN) score left out" if missing else ""}

    def note(text):
        out["note"] = "; ".join(t for t in (out["note"], text) if t)
        return out

    if out["n_sizes"] < 3:  # a line through two sizes has no residual degrees of freedom for an interval
        return note(f"{out['n_sizes']} distinct size(s) ({len(D)} points): at least 3 are needed")
    if np.ptp(np.log(P)) == 0:
        return note("constant scores (e.g. all 0): no power law to fit")
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
        note("the slope's interval includes 0: b is unbounded")
    return out


def predict(a: float, b: float, train_sizes) -> np.ndarray:
    return a * np.asarray(train_sizes, float) ** (1 / b)
