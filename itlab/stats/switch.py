"""Switch point of generalization: a logistic fit of per-item correctness against log I."""

from __future__ import annotations

import numpy as np


def logistic_switch(num_rules, correct, level: float = 0.95) -> dict:
    """Binomial GLM  P(correct) = sigmoid(b0 + b1 * log I), fitted to 0/1 outcomes (statsmodels).

    The switch point is the I at which P = 0.5: I* = exp(-b0 / b1); its interval comes from
    the delta method on log I* (so it is positive and asymmetric in I).
    """
    import statsmodels.api as sm
    from scipy import stats

    x = np.log(np.asarray(num_rules, float))
    y = np.asarray(correct, float)
    out = {"n": len(y), "b0": np.nan, "b1": np.nan, "switch": np.nan, "switch_low": np.nan, "switch_high": np.nan,
           "converged": False, "note": ""}
    if len(np.unique(x)) < 2 or y.min() == y.max():
        out["note"] = "no variation in I or in correctness: no switch can be located"
        return out
    try:
        fit = sm.GLM(y, sm.add_constant(x), family=sm.families.Binomial()).fit()
    except Exception as err:  # perfect separation and friends
        out["note"] = f"fit failed: {err}"
        return out
    b0, b1 = fit.params
    cov = np.asarray(fit.cov_params())
    log_switch = -b0 / b1
    grad = np.array([-1 / b1, b0 / b1**2])  # d(-b0/b1)/d(b0, b1)
    se = float(np.sqrt(grad @ cov @ grad))
    z = stats.norm.ppf(0.5 + level / 2)
    out.update(b0=float(b0), b1=float(b1), switch=float(np.exp(log_switch)), switch_low=float(np.exp(log_switch - z * se)),
               switch_high=float(np.exp(log_switch + z * se)), converged=bool(fit.converged))
    if not (min(x) <= log_switch <= max(x)):
        out["note"] = "the switch lies outside the range of I in the grid: an extrapolation"
    return out


def accuracy_at(b0: float, b1: float, num_rules) -> np.ndarray:
    return 1 / (1 + np.exp(-(b0 + b1 * np.log(np.asarray(num_rules, float)))))
