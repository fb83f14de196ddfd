"""Study A (Bigoulaeva et al. 2025): do tuned scores track the base model's in-context scores?

Rows are tuned model x task, but they are not independent units: every tuned model of one base
model shares that base model's scores, and every row of a task shares the task. Pooled,
per-mixture and per-family correlations therefore use a two-way cluster bootstrap over base
models and tasks (itlab.stats.cluster) and report the units (tasks x base models); the
correlation over task means (one point per task, n = tasks) is reported beside them, and a mixed
model with crossed random effects (base model, task; tuned model nested) is fitted and printed
only when it converged. Everything is done on the raw score of each task's metric and on the
chance-adjusted score (score minus the task's chance rate).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from itlab.results import DEFAULT_METRIC
from itlab.stats.cluster import bootstrap_correlation
from itlab.stats.correlation import correlate, format_p, holm
from itlab.stats.mixed import crossed

PAPER = ("Bigoulaeva et al. (2025) report a significant positive correlation between instruction-tuned "
         "and base in-context scores; secondary summaries quote Spearman 0.851 and an average above 0.87 "
         "(unverified).")


def pairs(table: pd.DataFrame, scoring: dict | None = None, icl="base_k_shot", tuned="tuned_zero_shot") -> pd.DataFrame:
    """One row per tuned model x task: its score and its base model's ICL and zero-shot scores, each
    on the task's own metric (``scoring[task]["metric"]``, default exact match; all on a 0-1 scale),
    and the same minus the task's chance rate (``*_adj``). Tuned models of study A only: in a
    composed DAG the scores table also holds other studies' (E's single-task, C's teacher-tuned)."""
    scoring = scoring or {}
    metric_of = {t: scoring.get(t, {}).get("metric", DEFAULT_METRIC) for t in table.task.unique()}
    t = table[table.metric == table.task.map(metric_of)]
    base = t[t.kind == "base"].pivot_table(index=["base_model", "task"], columns="condition", values="score")
    tuned_rows = t[(t.kind == "tuned") & (t.study == "inherent_limits") & (t.condition == tuned)]
    out = tuned_rows.merge(base.reset_index(), on=["base_model", "task"], how="inner")
    out = out.rename(columns={"score": "tuned"})
    out["base_icl"] = out[icl] if icl in out else np.nan
    out["base_zero"] = out["base_zero_shot"] if "base_zero_shot" in out else np.nan
    out["chance"] = out.task.map(lambda k: float(scoring.get(k, {}).get("chance", 0.0)))
    for col in ("tuned", "base_icl", "base_zero"):
        out[f"{col}_adj"] = out[col] - out.chance
    keep = ["model", "base_model", "family", "size", "mixture", "seed", "task", "cluster", "heldout", "metric",
            "chance", "tuned", "base_icl", "base_zero", "tuned_adj", "base_icl_adj", "base_zero_adj"]
    return out[keep].sort_values(["model", "task"]).reset_index(drop=True)


def task_means(p: pd.DataFrame, suffix: str = "") -> pd.DataFrame:
    """One point per task: the mean tuned score over tuned models and the mean base ICL score over
    base models (each base model once, however many tuned models it has)."""
    tuned = p.groupby("task")[f"tuned{suffix}"].mean()
    base = p.drop_duplicates(["base_model", "task"]).groupby("task")[f"base_icl{suffix}"].mean()
    return pd.DataFrame({"tuned": tuned, "base_icl": base}).reset_index()


def correlations(p: pd.DataFrame, n_boot: int, seed: int, adjusted: bool = False) -> pd.DataFrame:
    """Pooled, per mixture and per family: two-way cluster bootstrap (base models x tasks); over
    task means and per tuned model: Fisher-z intervals over tasks. Holm within each (scope, method)
    family of two or more."""
    sfx = "_adj" if adjusted else ""
    x, y = f"base_icl{sfx}", f"tuned{sfx}"
    rows = []
    clustered = [("pooled", "all", p)] + [("mixture", m, g) for m, g in p.groupby("mixture")] + \
                [("family", f, g) for f, g in p.groupby("family")]
    for scope, name, g in clustered:
        for method in ("pearson", "spearman"):
            rows.append({"scope": scope, "group": name, **bootstrap_correlation(
                g[x], g[y], g.base_model, g.task, method, n_boot, seed)})
    means = task_means(p, sfx)
    for method in ("pearson", "spearman"):
        rows.append({"scope": "task means", "group": "all", "units": f"{len(means)} tasks",
                     "inference": "Fisher z over task means", **correlate(means.base_icl, means.tuned, method)})
    for m, g in p.groupby("model"):
        for method in ("pearson", "spearman"):
            r = correlate(g[x], g[y], method)
            vals, base_vals = g[y].dropna(), g[x].dropna()
            if len(vals) == 0:
                r["note"] = "degenerate model: no tuned score (all missing)"
            elif np.ptp(vals) == 0:
                r["note"] = f"degenerate model: constant tuned scores (all {vals.iloc[0]:.3g})"
            elif len(base_vals) and np.ptp(base_vals) == 0:
                r["note"] = f"degenerate base model: constant in-context scores (all {base_vals.iloc[0]:.3g})"
            rows.append({"scope": "model", "group": m, "units": f"{r['n']} tasks", "inference": "Fisher z", **r})
    out = pd.DataFrame(rows)
    out["scores"] = "chance-adjusted" if adjusted else "raw"
    out["p_holm"] = np.nan
    for _, idx in out.groupby(["scope", "method"]).groups.items():
        out.loc[idx, "p_holm"] = holm(out.loc[idx, "p"])
    return out


def mixed_model(p: pd.DataFrame, adjusted: bool = False) -> dict:
    sfx = "_adj" if adjusted else ""
    return crossed(p, f"tuned{sfx}", f"base_icl{sfx}", ("base_model", "task"), ("model",))


def tuning_effect(p: pd.DataFrame, n_boot: int, seed: int, level: float = 0.95) -> pd.DataFrame:
    """Tuned score minus the base model's zero-shot score, per base model and held-in / held-out:
    the per-task mean difference (over that base model's tuned models), averaged over tasks, with a
    percentile bootstrap interval over tasks."""
    rng = np.random.default_rng(seed)
    rows = []
    for (base, heldout), g in p.groupby(["base_model", "heldout"]):
        d = (g.tuned - g.base_zero).groupby(g.task).mean().dropna()
        row = {"base_model": base, "tasks": "held-out" if heldout else "held-in", "n_tasks": len(d),
               "tuned_models": g.model.nunique(), "mean_diff": np.nan, "ci_low": np.nan, "ci_high": np.nan, "note": ""}
        if len(d) == 0:
            row["note"] = "no task with both scores"
        else:
            row["mean_diff"] = float(d.mean())
            if len(d) < 3:
                row["note"] = f"only {len(d)} task(s): no interval"
            else:
                boots = d.values[rng.integers(0, len(d), (n_boot, len(d)))].mean(1)
                row.update(ci_low=float(np.quantile(boots, (1 - level) / 2)),
                           ci_high=float(np.quantile(boots, 1 - (1 - level) / 2)))
        rows.append(row)
    return pd.DataFrame(rows)


def scatter(p: pd.DataFrame, path) -> None:
    from itlab.report import _plt, save

    plt = _plt()
    families = sorted(p.family.unique())
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 3.8), squeeze=False)
    for ax, fam in zip(axes[0], families):
        g = p[p.family == fam].dropna(subset=["base_icl", "tuned"])
        for size, gs in g.groupby("size"):
            ax.scatter(gs.base_icl, gs.tuned, s=18, label=f"{fam}-{size}", alpha=0.8)
        if g.base_icl.nunique() > 1:
            slope, icpt = np.polyfit(g.base_icl, g.tuned, 1)
            xs = np.linspace(g.base_icl.min(), g.base_icl.max(), 20)
            ax.plot(xs, icpt + slope * xs, "k--", lw=1, label=f"fit: slope {slope:.2f}")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
        ax.set_xlim(-0.03, 1.03)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("base model, in-context (k-shot) score")
        ax.set_ylabel("instruction-tuned score")
        ax.set_title(fam)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, path)


pval = format_p  # kept for callers of the old name


def _num(v, fmt=".3f") -> str:
    return "n/a" if v is None or not np.isfinite(v) else format(v, fmt)


def _corr_line(row) -> str:
    if not np.isfinite(row.r):
        return f"not estimable ({row.note or 'undefined'}), units: {row.units}"
    holm_part = f", Holm-corrected {format_p(row.p_holm)}" if np.isfinite(row.p_holm) else ""
    note = f"; note: {row.note}" if isinstance(row.note, str) and row.note else ""
    return (f"{row.r:.3f} [{_num(row.ci_low)}, {_num(row.ci_high)}], {format_p(row.p)}{holm_part} "
            f"({row.inference}; units: {row.units}; {row.n} rows){note}")


def _mixed_line(mixed: dict) -> str:
    if not mixed.get("converged") or not np.isfinite(mixed.get("slope", np.nan)):
        return f"Mixed model `{mixed['formula']}`: no estimate reported ({mixed.get('note') or 'not fitted'})."
    return (f"Mixed model `{mixed['formula']}` (REML, converged): slope {mixed['slope']:.3f} (95% CI "
            f"{mixed['ci_low']:.3f} to {mixed['ci_high']:.3f}, {format_p(mixed['p'])}; "
            f"levels {mixed['levels']})" + (f"; note: {mixed['note']}" if mixed.get("note") else ""))


def _section(title: str, corr: pd.DataFrame, mixed: dict) -> list[str]:
    pooled = corr[corr.scope == "pooled"].set_index("method")
    means = corr[corr.scope == "task means"].set_index("method")
    lines = [f"## {title}", "",
             f"- Pooled Pearson r = {_corr_line(pooled.loc['pearson'])}",
             f"- Pooled Spearman rho = {_corr_line(pooled.loc['spearman'])}",
             f"- Over task means, Pearson r = {_corr_line(means.loc['pearson'])}",
             f"- Over task means, Spearman rho = {_corr_line(means.loc['spearman'])}",
             f"- {_mixed_line(mixed)}", "",
             "| scope | group | method | r | 95% CI | p | p (Holm) | units | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in corr[corr.scope.isin(["mixture", "family", "model"])].itertuples():
        lines.append(f"| {row.scope} | {row.group} | {row.method} | "
                     f"{_num(row.r) if np.isfinite(row.r) else 'not estimable'} | "
                     f"[{_num(row.ci_low)}, {_num(row.ci_high)}] | {format_p(row.p)} | "
                     f"{format_p(row.p_holm) if np.isfinite(row.p_holm) else '-'} | {row.units} | {row.note or ''} |")
    return lines + [""]


def summary(p: pd.DataFrame, corr: pd.DataFrame, mixed: dict, table: pd.DataFrame,
            corr_adj: pd.DataFrame | None = None, mixed_adj: dict | None = None,
            effect: pd.DataFrame | None = None) -> str:
    metrics = p.drop_duplicates("task")[["task", "metric", "chance", "heldout"]].sort_values("task")
    per_cond = p.groupby("task")[["base_zero", "base_icl", "tuned"]].mean().reset_index()
    lines = ["# Study A: inherent limits of instruction tuning", "",
             f"Tuned models: {p.model.nunique()}; base models: {p.base_model.nunique()}; tasks: {p.task.nunique()} "
             f"({p[p.heldout].task.nunique()} held out of every mixture). The independent units are the "
             f"{p.task.nunique()} tasks x {p.base_model.nunique()} base models, not the {len(p)} rows.", "",
             f"Paper: {PAPER}", ""]
    lines += _section("Tuned score vs base in-context score (each task's own metric)", corr, mixed)
    if corr_adj is not None:
        lines += _section("The same on chance-adjusted scores (score minus the task's chance rate)", corr_adj,
                          mixed_adj or {"formula": "tuned_adj ~ base_icl_adj", "converged": False})
    if effect is not None and len(effect):
        lines += ["## Tuned vs base zero-shot, per base model", "",
                  "Mean over tasks of (tuned - base zero-shot) on the task's metric; 95% percentile bootstrap "
                  "over tasks.", "",
                  "| base model | tasks | n tasks | tuned models | mean difference | 95% CI | note |",
                  "|---|---|---|---|---|---|---|"]
        for r in effect.itertuples():
            lines.append(f"| {r.base_model} | {r.tasks} | {r.n_tasks} | {r.tuned_models} | {_num(r.mean_diff)} | "
                         f"[{_num(r.ci_low)}, {_num(r.ci_high)}] | {r.note} |")
        lines.append("")
    table_rows = metrics.merge(per_cond, on="task")
    lines += ["## Metric, chance rate and mean score per task", "",
              "| task | metric | chance | held out | base zero-shot | base k-shot | tuned |",
              "|---|---|---|---|---|---|---|"]
    for r in table_rows.itertuples():
        lines.append(f"| {r.task} | {r.metric} | {r.chance:.3g} | {'yes' if r.heldout else 'no'} | "
                     f"{_num(r.base_zero)} | {_num(r.base_icl)} | {_num(r.tuned)} |")
    lines += ["", "Figure: `tuned_vs_icl.png`; all correlations: `correlations.tsv`; per-pair data: `pairs.tsv`; "
              "effects: `tuning_effect.tsv`."]
    return "\n".join(lines) + "\n"
