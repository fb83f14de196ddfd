"""Switch point of generalization: a logistic fit of per-item correctness against log I.

Items of one trained model share that model's quality, so they are not independent: with
``cluster`` given (the trained model of each item) the covariance of the logistic coefficients is
the cluster-robust sandwich (CR1, G / (G - 1)) over trained models, and intervals use Student's t
with G - 2 degrees of freedom. The switch I* = exp(-b0 / b1) is where P = 0.5; its interval is
Fieller's for the ratio -b0 / b1 (mapped to I), which is bounded exactly when the slope is
significantly positive, so a flat or falling curve gets a note and no switch. (With a
symmetric per-model random effect on the logit, the population-averaged curve crosses 0.5 at the
same I as the per-model curve, so the marginal fit estimates the same switch.) Perfect separation
(every wrong item below some I, every right one above) has no maximum-likelihood fit: it is stated,
with the bracket of I in which the jump happens. ``grid_below`` / ``grid_above`` count the grid's
values of I on either side of the switch: it lies inside the grid only when both are positive
(otherwise the note calls it an extrapolation). ``max_gap``: the largest difference between the
observed accuracy at one value of I (all its items) and the fitted curve there, a check that a
logistic describes the data (a floor or a plateau it cannot follow shows up as a large gap).
"""

from __future__ import annotations

import numpy as np

_KEYS = ("b0", "b1", "b1_low", "b1_high", "switch", "switch_low", "switch_high", "grid_below", "grid_above", "max_gap")


def _newton(X, k, n, iters: int = 100):
    beta = np.zeros(X.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-X @ beta))
        H = X.T @ (X * (n * p * (1 - p))[:, None])
        step = np.linalg.solve(H, X.T @ (k - n * p))
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            return beta, H, True
    return beta, H, False


def _fieller(b0, b1, V, q):
    """Set of theta with (b0 + theta b1)^2 <= q^2 Var(b0 + theta b1): the interval of -b0/b1.
    Returns (low, high), or None when it is unbounded (the slope is not significantly nonzero)."""
    a = b1**2 - q**2 * V[1, 1]
    if a <= 0:
        return None
    b = 2 * (b0 * b1 - q**2 * V[0, 1])
    c = b0**2 - q**2 * V[0, 0]
    disc = b * b - 4 * a * c
    if disc < 0:
        return None
    roots = sorted(((-b - np.sqrt(disc)) / (2 * a), (-b + np.sqrt(disc)) / (2 * a)))
    return roots[0], roots[1]


def logistic_switch(num_rules, correct, cluster=None, level: float = 0.95) -> dict:
    """Logistic regression  P(correct) = sigmoid(b0 + b1 * log I)  fitted to 0/1 outcomes.

    ``cluster``: the trained model of each item (model-clustered intervals); without it the items
    are treated as independent (model-based covariance, normal quantiles).
    """
    from scipy import stats

    x = np.log(np.asarray(num_rules, float))
    y = np.asarray(correct, float)
    ok = np.isfinite(x) & np.isfinite(y)
    notes = [f"{int((~ok).sum())} item(s) with a missing (NaN) value left out"] if (~ok).any() else []
    x, y = x[ok], y[ok]
    groups = np.zeros(len(x), int) if cluster is None else \
        np.unique(np.asarray(cluster, dtype=object)[ok].astype(str), return_inverse=True)[1]
    n_clusters = int(groups.max()) + 1 if len(groups) else 0
    out = {"n": len(y), "clusters": n_clusters if cluster is not None else len(y),
           "inference": "cluster-robust (trained models), Fieller" if cluster is not None else "model-based, Fieller",
           **{k: np.nan for k in _KEYS}, "converged": False}

    def done(note):
        out["note"] = "; ".join(notes + ([note] if note else []))
        return out

    if len(y) == 0 or len(np.unique(x)) < 2 or y.min() == y.max():
        return done("no variation in I or in correctness: no switch can be located")
    if cluster is not None and n_clusters < 3:
        return done(f"only {n_clusters} trained model(s): no model-clustered interval")
    if x[y == 0].max() < x[y == 1].min() or x[y == 1].max() < x[y == 0].min():
        lo_side, hi_side = (x[y == 0], x[y == 1]) if x[y == 0].max() < x[y == 1].min() else (x[y == 1], x[y == 0])
        return done(f"perfect separation: every item is {'wrong' if lo_side is x[y == 0] else 'right'} up to "
                    f"I = {np.exp(lo_side.max()):.4g} and {'right' if lo_side is x[y == 0] else 'wrong'} from "
                    f"I = {np.exp(hi_side.min()):.4g}; the logistic fit has no finite estimate, the switch lies "
                    f"in that bracket")
    # aggregate to (cluster, I) cells: k right of n
    cells, cell_of = np.unique(np.column_stack([groups, x]), axis=0, return_inverse=True)
    cell_of = cell_of.ravel()
    k = np.bincount(cell_of, weights=y, minlength=len(cells))
    n = np.bincount(cell_of, minlength=len(cells)).astype(float)
    X = np.column_stack([np.ones(len(cells)), cells[:, 1]])
    beta, H, converged = _newton(X, k, n)
    if not converged or not np.all(np.isfinite(beta)):
        return done("the logistic fit did not converge: no switch reported")
    b0, b1 = beta
    bread = np.linalg.inv(H)
    if cluster is None:
        V, q = bread, stats.norm.ppf(0.5 + level / 2)
    else:
        p = 1 / (1 + np.exp(-X @ beta))
        per_cell = X * (k - n * p)[:, None]
        S = np.zeros((n_clusters, 2))
        np.add.at(S, cells[:, 0].astype(int), per_cell)
        V = n_clusters / (n_clusters - 1) * bread @ (S.T @ S) @ bread
        q = stats.t.ppf(0.5 + level / 2, n_clusters - 2)
    se_b1 = float(np.sqrt(V[1, 1]))
    levels, level_of = np.unique(x, return_inverse=True)  # how well the curve follows the data
    observed = np.bincount(level_of, weights=y) / np.bincount(level_of)
    out.update(b0=float(b0), b1=float(b1), b1_low=float(b1 - q * se_b1), b1_high=float(b1 + q * se_b1),
               max_gap=float(np.max(np.abs(observed - 1 / (1 + np.exp(-(b0 + b1 * levels)))))), converged=True)
    if b1 - q * se_b1 <= 0:
        trend = "falls" if b1 + q * se_b1 < 0 else "does not rise significantly"
        return done(f"accuracy {trend} with I (slope {b1:.3g}, {level:.0%} CI [{b1 - q * se_b1:.3g}, "
                    f"{b1 + q * se_b1:.3g}]): no switch point")
    interval = _fieller(b0, b1, V, q)
    log_switch = -b0 / b1
    grid = np.unique(x)
    out.update(switch=float(np.exp(log_switch)), grid_below=int((grid < log_switch).sum()),
               grid_above=int((grid > log_switch).sum()))
    if interval is None:
        return done("the switch interval is unbounded (Fieller): the slope is too uncertain")
    out.update(switch_low=float(np.exp(interval[0])), switch_high=float(np.exp(interval[1])))
    if not (out["grid_below"] and out["grid_above"]):
        notes.append("the switch lies outside the range of I in the grid: an extrapolation")
    return done("")


def accuracy_at(b0: float, b1: float, num_rules) -> np.ndarray:
    return 1 / (1 + np.exp(-(b0 + b1 * np.log(np.asarray(num_rules, float)))))
