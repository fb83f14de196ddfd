"""Linear mixed-effects models: outcome ~ predictor with random intercepts.

``crossed`` is study A's model: random intercepts for base model and task (crossed: every base
model meets every task), their cell (base model x task, which carries the shared base score) and
the tuned model (nested in its base model), fitted by REML with
statsmodels MixedLM as variance components over a single all-rows group (the documented way to
express crossed effects in statsmodels). A fit that did not converge, or that ends on a singular
Hessian, is reported as such: its estimates are kept under ``unconverged_*`` keys for diagnosis and
the finding keys (slope, se, p, CI) stay NaN, so no summary can print them as a result.
"""

from __future__ import annotations

import warnings

import numpy as np

FINDING = ("slope", "se", "p", "ci_low", "ci_high")
# a variance component holding at most this share of the total variance in a fit that did not
# converge is taken to be on the boundary (zero) and left out of the refit
BOUNDARY_SHARE = 0.01


def _clean(frame, columns):
    used = frame.dropna(subset=list(columns))
    dropped = len(frame) - len(used)
    return used, ([f"{dropped} row(s) with a missing (NaN) value left out"] if dropped else [])


def _fit(model, out: dict, predictor: str, notes: list) -> dict:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            # L-BFGS first (fast); if it fails, as gradient methods can with a variance component on
            # the boundary (zero), statsmodels retries with Powell (derivative-free)
            fit = model.fit(reml=True, method=["lbfgs", "powell"])
        except (np.linalg.LinAlgError, ValueError) as err:
            notes.append(f"fit failed: {err}")
            out["note"] = "; ".join(notes)
            return out
    trouble = sorted({str(w.message).split("\n")[0] for w in caught
                      if "converge" in str(w.message).lower() or "hessian" in str(w.message).lower()
                      or "boundary" in str(w.message).lower() or "singular" in str(w.message).lower()})
    ci = fit.conf_int().loc[predictor]
    est = {"slope": float(fit.params[predictor]), "se": float(fit.bse[predictor]),
           "p": float(fit.pvalues[predictor]), "ci_low": float(ci.iloc[0]), "ci_high": float(ci.iloc[1])}
    # the final optimizer's flag decides (an earlier method's failure is only a warning), unless the
    # Hessian is singular there, which leaves the standard errors meaningless
    converged = bool(fit.converged) and np.isfinite(est["se"]) and not any("hessian" in t.lower() for t in trouble)
    out["converged"] = converged
    out["warnings"] = trouble
    out["variances"] = {name: float(v) for name, v in zip(fit.model.exog_vc.names, fit.vcomp)} \
        if fit.model.k_vc > 0 else {"group": float(np.asarray(fit.cov_re)[0, 0])}
    out["residual_var"] = float(fit.scale)
    if "group" in out["variances"]:
        out["group_var"] = out["variances"]["group"]
    if converged:
        out.update(est)
    else:
        out.update({f"unconverged_{k}": v for k, v in est.items()})
        notes.append("the mixed model did not converge (" + ("; ".join(trouble) or "optimizer flag") +
                     "): no estimate is reported")
    out["note"] = "; ".join(notes)
    return out


def crossed(frame, outcome: str, predictor: str, crossed_groups=("base_model", "task"), nested=("model",),
            interaction: bool = True) -> dict:
    """REML fit of outcome ~ predictor + (1 | a) + (1 | b) + (1 | a:b) + (1 | nested...), a and b
    crossed. The a:b cell effect matters when the predictor is constant within a cell (study A:
    every tuned model of one base model shares that base model's score on a task), so rows of one
    cell are not counted as independent evidence about the slope. A grouping whose variance the
    data cannot identify is left out of the fit, with a note, and the formula shows the model
    fitted: one with a single level, one with a row per level (the residual), or one that splits
    the rows as an earlier one does (one tuned model per base model: model is base_model)."""
    import statsmodels.formula.api as smf

    a, b = crossed_groups
    if interaction and a in frame and b in frame:
        frame = frame.assign(**{f"{a}_x_{b}": frame[a].astype(str) + ":" + frame[b].astype(str)})
    groups = [g for g in (a, b, f"{a}_x_{b}" if interaction else None, *nested) if g and g in frame]

    def label(g):  # the interaction's column, as lme4 writes it
        return f"{a}:{b}" if g == f"{a}_x_{b}" else g

    frame, notes = _clean(frame, [outcome, predictor, *groups])
    out = {"formula": _formula(outcome, predictor, map(label, groups)), "n": len(frame),
           "levels": {g: int(frame[g].nunique()) for g in groups}, "converged": False,
           **{k: np.nan for k in FINDING}}
    out["groups"] = out["levels"].get(crossed_groups[0], 0)
    if len(frame) < 8 or frame[predictor].nunique() < 2 or frame[outcome].nunique() < 2:
        notes.append("too few observations, or a constant predictor or outcome: no mixed model")
        out["note"] = "; ".join(notes)
        return out
    vc = {}
    for g in groups:
        levels = frame[g].nunique()
        if levels < 2:
            notes.append(f"(1 | {label(g)}) left out: one level")
        elif levels == len(frame):
            notes.append(f"(1 | {label(g)}) left out: one row per level, the same as the residual")
        elif (same := next((h for h in vc if _same_partition(frame, g, h)), None)) is not None:
            # identical indicator columns: the two variances are not identifiable
            notes.append(f"(1 | {label(g)}) left out: the same grouping of the rows as (1 | {label(same)})")
        else:
            vc[g] = f"0 + C({g})"
    out["formula"] = _formula(outcome, predictor, map(label, vc))
    if not vc:
        notes.append("no random intercept left: no mixed model")
        out["note"] = "; ".join(notes)
        return out
    data = frame.assign(_all=1)
    while True:
        model = smf.mixedlm(f"{outcome} ~ {predictor}", data, groups="_all", vc_formula=vc, re_formula="0")
        res = _fit(model, dict(out), predictor, list(notes))
        # a fit that fails on a variance component at or next to zero (the boundary: a "singular"
        # fit, its Hessian not positive definite) is refitted without that component, as lme4's
        # singular fits are simplified; only when the fit failed, so a converged fit keeps them all
        total = sum(res.get("variances", {}).values()) + res.get("residual_var", 0.0)
        zero = [g for g, v in res.get("variances", {}).items() if v <= BOUNDARY_SHARE * total and g in vc]
        if res["converged"] or not zero or len(zero) == len(vc):
            return res
        for g in zero:
            del vc[g]
        shares = ", ".join(f"{label(g)} {res['variances'][g] / total:.2%}" for g in zero)
        notes.append(f"variance of {', '.join(map(label, zero))} estimated at or near 0 ({shares} of the total) "
                     "in a fit that did not converge: left out and refitted")
        out["formula"] = _formula(outcome, predictor, map(label, vc))


def _same_partition(frame, g: str, h: str) -> bool:
    """Whether groupings g and h split the rows identically (each level of one is one level of the other)."""
    return bool(frame.groupby(g)[h].nunique().max() == 1 and frame.groupby(h)[g].nunique().max() == 1)


def _formula(outcome: str, predictor: str, terms) -> str:
    """The model in lme4 notation, one random intercept per term (only those actually fitted)."""
    return f"{outcome} ~ {predictor}" + "".join(f" + (1 | {t})" for t in terms)


def random_intercept(frame, outcome: str, predictor: str, group: str) -> dict:
    """REML fit of outcome ~ predictor + (1 | group); returns the fixed slope with its SE, p and 95% CI."""
    import statsmodels.formula.api as smf

    frame, notes = _clean(frame, [outcome, predictor, group])
    out = {"formula": f"{outcome} ~ {predictor} + (1 | {group})", "n": len(frame),
           "groups": int(frame[group].nunique()), "converged": False, **{k: np.nan for k in FINDING}}
    if len(frame) < 4 or frame[group].nunique() < 2 or frame[predictor].nunique() < 2:
        notes.append("too few observations or groups")
        out["note"] = "; ".join(notes)
        return out
    return _fit(smf.mixedlm(f"{outcome} ~ {predictor}", frame, groups=frame[group]), out, predictor, notes)
