"""Linear mixed-effects model: outcome ~ predictor with a random intercept per group."""

from __future__ import annotations

import warnings

import numpy as np


def random_intercept(frame, outcome: str, predictor: str, group: str) -> dict:
    """Fit by REML (statsmodels MixedLM); returns the fixed slope with its SE, p and 95% CI."""
    import statsmodels.formula.api as smf

    out = {"formula": f"{outcome} ~ {predictor} + (1 | {group})", "n": len(frame),
           "groups": int(frame[group].nunique()), "slope": np.nan, "se": np.nan, "p": np.nan,
           "ci_low": np.nan, "ci_high": np.nan, "group_var": np.nan, "converged": False}
    if len(frame) < 4 or frame[group].nunique() < 2 or frame[predictor].nunique() < 2:
        out["note"] = "too few observations or groups"
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = smf.mixedlm(f"{outcome} ~ {predictor}", frame, groups=frame[group]).fit(reml=True)
        except (np.linalg.LinAlgError, ValueError) as err:
            out["note"] = f"fit failed: {err}"
            return out
    ci = fit.conf_int().loc[predictor]
    out.update(slope=float(fit.params[predictor]), se=float(fit.bse[predictor]), p=float(fit.pvalues[predictor]),
               ci_low=float(ci[0]), ci_high=float(ci[1]), group_var=float(fit.cov_re.iloc[0, 0]),
               converged=bool(fit.converged))
    return out
