"""Pearson/Spearman correlation with Fisher-z confidence intervals, Holm's correction, and p-values
for humans.

Interval: Fisher's z = atanh(r) is close to normal with SE 1/sqrt(n - 3) for Pearson r of bivariate
normal data; for Spearman rho the Bonett-Wright SE sqrt((1 + rho^2 / 2) / (n - 3)) is used. At the
sample sizes of the studies (n = 14 to 21 tasks) these cover at about the nominal level, where the
percentile bootstrap of (x, y) pairs undercovers (91-92% at n = 14, rho 0.6-0.85; see
tests/test_stats.py::test_fisher_interval_covers_at_small_n).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def format_p(p: float) -> str:
    """A p-value for humans: two significant digits, never rounded across 0.05 or 0.01 (0.04999 is
    'p = 0.0499', not 'p = 0.05'); underflow to 0 shown as a bound; NaN as 'p n/a'."""
    if p is None or not np.isfinite(p):
        return "p n/a"
    if p == 0:
        return "p < 1e-300"
    text = f"{p:.2g}"
    for cut in (0.05, 0.01, 0.001):
        if p < cut <= float(text):  # two digits would round across a conventional threshold
            text = f"{p:.4g}"
            if float(text) >= cut:
                return f"p < {cut:g}"
        return f"p = {text}"


def _r(x, y, method: str) -> float:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")  # undefined for a constant variable
    if method == "pearson":
        return float(np.corrcoef(x, y)[0, 1])
    if method == "spearman":
        return float(np.corrcoef(stats.rankdata(x), stats.rankdata(y))[0, 1])
    raise ValueError(f"unknown correlation method {method!r}")


def fisher_interval(r: float, n: int, method: str = "pearson", level: float = 0.95) -> tuple[float, float]:
    """Fisher-z interval of a correlation (Bonett-Wright variance for Spearman)."""
    if n < 4 or not np.isfinite(r):
        return float("nan"), float("nan")
    if abs(r) >= 1:
        return float(r), float(r)
    var = (1 + r**2 / 2) / (n - 3) if method == "spearman" else 1 / (n - 3)
    half = stats.norm.ppf(0.5 + level / 2) * np.sqrt(var)
    z = np.arctanh(r)
    return float(np.tanh(z - half)), float(np.tanh(z + half))


def correlate(x, y, method: str = "pearson", level: float = 0.95) -> dict:
    """r, its two-sided p-value (scipy) and a Fisher-z interval, over the pairs where both values are
    finite; ``n`` counts only those pairs and ``note`` says what was dropped or why r is undefined."""
    if method not in ("pearson", "spearman"):
        raise ValueError(f"unknown correlation method {method!r}")
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    dropped = int((~ok).sum())
    x, y = x[ok], y[ok]
    n = len(x)
    notes = [f"{dropped} pair(s) with a missing (NaN) score left out"] if dropped else []
    out = {"method": method, "n": n, "r": float("nan"), "p": float("nan"), "ci_low": float("nan"),
           "ci_high": float("nan")}
    if n < 3:
        notes.append(f"only {n} complete pair(s): no correlation")
    elif np.ptp(x) == 0 or np.ptp(y) == 0:
        notes.append("constant scores ({}): correlation undefined".format(
            " and ".join(v for v, a in (("x", x), ("y", y)) if np.ptp(a) == 0)))
    else:
        r = _r(x, y, method)
        test = stats.pearsonr(x, y) if method == "pearson" else stats.spearmanr(x, y)
        lo, hi = fisher_interval(r, n, method, level)
        p = float(test.pvalue)
        if method == "spearman" and n <= 10:  # the t approximation underflows at |rho| = 1; the exact
            p = max(p, 2 / math.factorial(n))  # permutation p-value is never below 2 / n!
        out.update(r=r, p=p, ci_low=lo, ci_high=hi)
        if n < 4:
            notes.append("n = 3: no interval")
    out["note"] = "; ".join(notes)
    return out


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN entries stay NaN and are not counted). A family of one
    is no family: its adjusted value is NaN (report the p itself)."""
    p = np.asarray(pvalues, float)
    adjusted = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.sum() > 1:
        from statsmodels.stats.multitest import multipletests

        adjusted[ok] = multipletests(p[ok], method="holm")[1]
    return adjusted
