"""Pearson/Spearman correlation with percentile-bootstrap confidence intervals, and Holm's correction."""

from __future__ import annotations

import numpy as np
from scipy import stats


def _r(x, y, method: str) -> float:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")  # undefined for a constant variable
    if method == "pearson":
        return float(np.corrcoef(x, y)[0, 1])
    if method == "spearman":
        return float(np.corrcoef(stats.rankdata(x), stats.rankdata(y))[0, 1])
    raise ValueError(f"unknown correlation method {method!r}")


def correlate(x, y, method: str = "pearson", n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """r, its two-sided p-value (scipy), and a bootstrap CI from resampling (x, y) pairs."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    out = {"method": method, "n": n, "r": float("nan"), "p": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
    if n < 3:
        return out
    r = _r(x, y, method)
    if np.isnan(r):
        return out
    test = stats.pearsonr(x, y) if method == "pearson" else stats.spearmanr(x, y)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    boots = np.array([_r(x[i], y[i], method) for i in idx])
    boots = boots[~np.isnan(boots)]
    alpha = (1 - level) / 2
    lo, hi = (np.quantile(boots, [alpha, 1 - alpha]) if len(boots) else (np.nan, np.nan))
    out.update(r=r, p=float(test.pvalue), ci_low=float(lo), ci_high=float(hi))
    return out


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN entries stay NaN and are not counted)."""
    p = np.asarray(pvalues, float)
    adjusted = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        from statsmodels.stats.multitest import multipletests

        adjusted[ok] = multipletests(p[ok], method="holm")[1]
    return adjusted
