"""Study A (Bigoulaeva et al. 2025): do tuned scores track the base model's in-context scores?"""

from __future__ import annotations

import numpy as np
import pandas as pd

from itlab.stats.correlation import correlate, holm
from itlab.stats.mixed import random_intercept

PAPER = ("Bigoulaeva et al. (2025) report a significant positive correlation between instruction-tuned "
         "and base in-context scores; secondary summaries quote Spearman 0.851 and an average above 0.87 "
         "(unverified).")


def pairs(table: pd.DataFrame, icl="base_k_shot", tuned="tuned_zero_shot", metric="exact_match") -> pd.DataFrame:
    """One row per tuned model x task: its score and its base model's ICL and zero-shot scores."""
    t = table[table.metric == metric]
    base = t[t.kind == "base"].pivot_table(index=["base_model", "task"], columns="condition", values="score")
    tuned_rows = t[(t.kind == "tuned") & (t.condition == tuned)]
    out = tuned_rows.merge(base.reset_index(), on=["base_model", "task"], how="inner")
    out = out.rename(columns={"score": "tuned"})
    out["base_icl"] = out[icl]
    out["base_zero"] = out.get("base_zero_shot", np.nan)
    keep = ["model", "base_model", "family", "size", "mixture", "seed", "task", "cluster", "heldout",
            "tuned", "base_icl", "base_zero"]
    return out[keep].sort_values(["model", "task"]).reset_index(drop=True)


def correlations(p: pd.DataFrame, n_boot: int, seed: int) -> pd.DataFrame:
    """Per tuned model, per mixture and pooled; Holm-corrected within each (scope, method)."""
    rows = []
    scopes = [("pooled", "all", p)] + [("mixture", m, g) for m, g in p.groupby("mixture")] + \
             [("family", f, g) for f, g in p.groupby("family")] + [("model", m, g) for m, g in p.groupby("model")]
    for scope, name, g in scopes:
        for method in ("pearson", "spearman"):
            rows.append({"scope": scope, "group": name, **correlate(g.base_icl, g.tuned, method, n_boot, seed)})
    out = pd.DataFrame(rows)
    out["p_holm"] = np.nan
    for _, idx in out.groupby(["scope", "method"]).groups.items():
        out.loc[idx, "p_holm"] = holm(out.loc[idx, "p"])
    return out


def mixed_model(p: pd.DataFrame) -> dict:
    return random_intercept(p, "tuned", "base_icl", "base_model")


def scatter(p: pd.DataFrame, path) -> None:
    from itlab.report import _plt, save

    plt = _plt()
    families = sorted(p.family.unique())
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 3.8), squeeze=False)
    for ax, fam in zip(axes[0], families):
        g = p[p.family == fam]
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


def pval(p: float) -> str:
    """A p-value for humans: underflow to 0 is shown as a bound, not as 'p = 0'."""
    return "p < 1e-300" if p == 0 else f"p = {p:.2g}"


def summary(p: pd.DataFrame, corr: pd.DataFrame, mixed: dict, table: pd.DataFrame) -> str:
    def fmt(row):
        return (f"{row.r:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}], {pval(row.p)}, Holm-corrected "
                f"{pval(row.p_holm)}, n = {row.n}")

    pooled = corr[corr.scope == "pooled"].set_index("method")
    means = table[table.metric == "exact_match"].groupby(["kind", "condition"]).score.mean().unstack()
    lines = ["# Study A: inherent limits of instruction tuning", "",
             f"Tuned models: {p.model.nunique()}; base models: {p.base_model.nunique()}; tasks: {p.task.nunique()} "
             f"({p[p.heldout].task.nunique()} held out of every mixture).", "",
             "## Tuned score vs base in-context score, across tasks", "",
             f"- Pooled Pearson r = {fmt(pooled.loc['pearson'])}",
             f"- Pooled Spearman rho = {fmt(pooled.loc['spearman'])}",
             f"- Mixed model `{mixed['formula']}`: slope {mixed['slope']:.3f} (95% CI {mixed['ci_low']:.3f} to "
             f"{mixed['ci_high']:.3f}, {pval(mixed['p'])}, {mixed['groups']} base models)", "",
             f"Paper: {PAPER}", "",
             "## Per tuned model", "", "| model | method | r | 95% CI | p (Holm) | n |", "|---|---|---|---|---|---|"]
    for row in corr[corr.scope == "model"].itertuples():
        lines.append(f"| {row.group} | {row.method} | {row.r:.3f} | [{row.ci_low:.3f}, {row.ci_high:.3f}] | "
                     f"{row.p_holm:.2g} | {row.n} |")
    lines += ["", "## Mean exact match by condition", "", means.round(3).to_markdown() if hasattr(means, "to_markdown")
              else means.round(3).to_string(), "",
              "Figure: `tuned_vs_icl.png`; all correlations: `correlations.tsv`; per-pair data: `pairs.tsv`."]
    return "\n".join(lines) + "\n"
