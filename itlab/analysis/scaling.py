"""Study E (Raghavendra, Nath & Hendryx 2024): task score vs number of fine-tuning examples."""

from __future__ import annotations

import numpy as np
import pandas as pd

from itlab.papers import study
from itlab.stats.powerlaw import fit, floor_zeros, predict

# Table 7 of the paper: P = a * D^(1/b) (itlab.papers)
PAPER_TABLE7 = pd.DataFrame(study("scaling")["fits"], columns=["task", "model", "a", "b"])


def points(table: pd.DataFrame, metrics: dict, zero_floor: float) -> pd.DataFrame:
    """One row per (base model, task, size, seed): the tuned model's score on its task."""
    t = table[(table.study == "scaling") & (table.kind == "tuned") & (table.condition == "tuned_zero_shot")]
    t = t[t.task == t.train_task]
    t = t[t.apply(lambda r: r.metric == metrics.get(r.task, "exact_match"), axis=1)]
    out = t[["base_model", "family", "size", "task", "train_size", "seed", "metric", "score", "n"]].copy()
    out["train_size"] = out.train_size.astype(int)
    out["score_floored"] = floor_zeros(out.score, out.n, zero_floor)
    return out.sort_values(["base_model", "task", "train_size", "seed"]).reset_index(drop=True)


def fits(p: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (base, task), g in p.groupby(["base_model", "task"]):
        rows.append({"base_model": base, "task": task, "zeros": int((g.score == 0).sum()),
                     **fit(g.train_size, g.score_floored)})
    return pd.DataFrame(rows)


def figure(p: pd.DataFrame, f: pd.DataFrame, path) -> None:
    from itlab.report import _plt, save

    plt = _plt()
    tasks = sorted(p.task.unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for base, g in p[p.task == task].groupby("base_model"):
            line = ax.scatter(g.train_size, g.score_floored, s=20, label=base)
            r = f[(f.base_model == base) & (f.task == task)].iloc[0]
            if np.isfinite(r.b):
                xs = np.geomspace(g.train_size.min(), g.train_size.max(), 50)
                ax.plot(xs, predict(r.a, r.b, xs), color=line.get_facecolor()[0], lw=1,
                        label=f"a={r.a:.3g}, b={r.b:.3g}, R²={r.r2:.2f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("fine-tuning examples D")
        ax.set_ylabel("score P (zeros floored)")
        ax.set_title(task)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, path)


def summary(p: pd.DataFrame, f: pd.DataFrame, zero_floor: float) -> str:
    def num(v):
        return "n/a" if not np.isfinite(v) else f"{v:.3g}"

    def ci(lo, hi):
        return "n/a" if np.isnan(lo) or np.isnan(hi) else f"[{lo:.3g}, {hi:.3g}]"

    lines = ["# Study E: post-training scaling law P = a * D^(1/b)", "",
             f"{p.base_model.nunique()} base models x {p.task.nunique()} tasks x "
             f"{p.train_size.nunique()} nested training-set sizes ({', '.join(map(str, sorted(p.train_size.unique())))}); "
             f"least squares on log P vs log D; scores of 0 raised to {zero_floor}/n_test before taking logs.", "",
             "| base model | task | a | 95% CI | b | 95% CI | R^2 | zeros | note |", "|---|---|---|---|---|---|---|---|---|"]
    for r in f.itertuples():
        lines.append(f"| {r.base_model} | {r.task} | {num(r.a)} | {ci(r.a_low, r.a_high)} | {num(r.b)} | "
                     f"{ci(r.b_low, r.b_high)} | {num(r.r2)} | {r.zeros} | {r.note} |")
    lines += ["", "## The paper's Table 7 (scores in %, so a is on a 0-100 scale)", "",
              PAPER_TABLE7.to_markdown(index=False), "",
              "Scores here are fractions (0-1): compare b (the exponent) directly, and a x 100 with the paper's a.",
              "", "Figure: `scaling.png`; points: `points.tsv`; fits: `fits.tsv`."]
    return "\n".join(lines) + "\n"
