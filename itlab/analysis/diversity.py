"""Study B (Zhang, Wang & Charton 2024): generalization to unseen rewrite rules vs the number
of distinct training rules I and examples per rule S."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from itlab.papers import study
from itlab.stats.switch import accuracy_at, logistic_switch

# Table 1 of the paper: accuracy on unseen rules by occurrences of x in z and rules in training (itlab.papers)
PAPER_TABLE1 = pd.DataFrame(study("diversity")["table1"]["rows"], columns=study("diversity")["table1"]["columns"])


def items(samples: dict[str, str], metadata: dict) -> pd.DataFrame:
    """Per test item of every Markov cell: I, S, seed, rewrite or no-op, correct."""
    rows = []
    for model, path in samples.items():
        meta = metadata["models"][model]
        if "num_rules" not in meta:  # the code arm
            continue
        for line in Path(path).read_text().splitlines():
            s = json.loads(line)
            rows.append({"model": model, "num_rules": meta["num_rules"], "examples_per_rule": meta["examples_per_rule"],
                         "seed": meta["seed"], "kind": "no-op" if s["inputs"]["noop"] == "True" else "rewrite",
                         "correct": float(s["exact_match"])})
    return pd.DataFrame(rows)


def cell_accuracy(it: pd.DataFrame) -> pd.DataFrame:
    overall = it.groupby(["num_rules", "examples_per_rule"]).correct.agg(accuracy="mean", n="size")
    split = it.pivot_table(index=["num_rules", "examples_per_rule"], columns="kind", values="correct", aggfunc="mean")
    split.columns = [f"accuracy_{c.replace('-', '')}" for c in split.columns]
    return overall.join(split).reset_index()


def switch(it: pd.DataFrame) -> pd.DataFrame:
    """Logistic switch point in I, pooled over S and per S; intervals clustered by trained model
    (the items of one model share its quality).

    The headline (first) row is fitted on the rewrite items alone: a no-op is answered by copying
    z, which a model does at every I, so no-ops put a floor (their share, the no-op rate) under
    the accuracy of all items. The logistic runs from 0 to 1, so with that floor it fits a flatter
    slope and its P = 0.5 point moves with the no-op rate, a knob of the data rather than of
    generalisation. Rows on all items follow for comparison."""
    kinds = [("rewrites", it[it.kind == "rewrite"])] if "kind" in it and (it.kind == "rewrite").any() else []
    rows = []
    for items, sub in kinds + [("all", it)]:
        rows.append({"items": items, "examples_per_rule": "all",
                     **logistic_switch(sub.num_rules, sub.correct, cluster=sub.model)})
        for s, g in sub.groupby("examples_per_rule"):
            if g.num_rules.nunique() > 1:
                rows.append({"items": items, "examples_per_rule": s,
                             **logistic_switch(g.num_rules, g.correct, cluster=g.model)})
    return pd.DataFrame(rows)


def _which(p) -> str:
    return "rewrite items (no-ops left out)" if p.get("items") == "rewrites" else "all items"


def switch_line(p) -> str:
    """The pooled switch in words: a number only when there is one, else the stated reason."""
    if not np.isfinite(p.switch):
        return f"Switch point (logistic fit of correctness of {_which(p)} on log I, P = 0.5): none. {p.note}"
    interval = (f"[{p.switch_low:.0f}, {p.switch_high:.0f}] (95% CI, Fieller, clustered by trained model, "
                f"{p.clusters} models)" if np.isfinite(p.switch_low) else "(no bounded interval)")
    where = (f"inside the grid ({p.grid_below:.0f} value(s) of I below it, {p.grid_above:.0f} above)"
             if p.grid_below > 0 and p.grid_above > 0 else "outside the grid")
    return (f"Switch point (logistic fit of correctness of {_which(p)} on log I, P = 0.5): "
            f"I* = {p.switch:.0f} {interval}, "
            f"slope {p.b1:.2f}, {where}; the fitted curve is at most {p.max_gap:.2f} from the observed accuracy "
            f"at any I. {p.note[:1].upper() + p.note[1:]}")


def figures(cells: pd.DataFrame, it: pd.DataFrame, sw: pd.DataFrame, heatmap_path, curve_path) -> None:
    from itlab.report import _plt, save

    plt = _plt()
    grid = cells.pivot(index="examples_per_rule", columns="num_rules", values="accuracy")
    fig, ax = plt.subplots(figsize=(1.2 * grid.shape[1] + 2.5, 0.6 * grid.shape[0] + 2))
    im = ax.imshow(grid.values, vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="auto")
    ax.set_xticks(range(grid.shape[1]), grid.columns)
    ax.set_yticks(range(grid.shape[0]), grid.index)
    for (i, j), v in np.ndenumerate(grid.values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < 0.5 else "k", fontsize=8)
    ax.set_xlabel("distinct training rules I")
    ax.set_ylabel("examples per rule S")
    ax.set_title("exact match on unseen rules")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    save(fig, heatmap_path)

    fig, ax = plt.subplots(figsize=(5, 3.6))
    by_i = it.groupby("num_rules").correct.mean()
    ax.plot(by_i.index, by_i.values, "o", mfc="none", label="accuracy, all items (all S)")
    pooled = sw.iloc[0]
    if pooled.get("items") == "rewrites":
        rw = it[it.kind == "rewrite"].groupby("num_rules").correct.mean()
        ax.plot(rw.index, rw.values, "o", label="accuracy, rewrites (all S)")
    if np.isfinite(pooled.b1):
        xs = np.geomspace(by_i.index.min(), by_i.index.max(), 100)
        ax.plot(xs, accuracy_at(pooled.b0, pooled.b1, xs), "k-", lw=1, label=f"logistic fit ({_which(pooled)})")
        if np.isfinite(pooled.switch) and np.isfinite(pooled.switch_low):
            ax.axvspan(pooled.switch_low, pooled.switch_high, color="orange", alpha=0.2,
                       label=f"switch {pooled.switch:.0f} [{pooled.switch_low:.0f}, {pooled.switch_high:.0f}]")
    ax.set_xscale("log")
    ax.set_xticks(by_i.index, [f"{i:g}" for i in by_i.index], fontsize=7)  # the grid's I, no minor labels
    ax.set_xticks([], minor=True)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("distinct training rules I")
    ax.set_ylabel("exact match, unseen rules")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, curve_path)


def _md(frame: pd.DataFrame, **kw) -> str:
    """A markdown table in which a missing value reads 'n/a' (its reason is in the row's note)."""
    frame = frame.round(3)
    return frame.astype(object).where(frame.notna(), "n/a").to_markdown(**kw)


def summary(cells: pd.DataFrame, sw: pd.DataFrame, code: pd.DataFrame | None) -> str:
    table = cells.pivot(index="examples_per_rule", columns="num_rules", values="accuracy")
    table.columns = [f"I={c}" for c in table.columns]
    p = sw.iloc[0]
    lines = ["# Study B: instruction diversity (Markov rewriting)", "",
             "Exact match on test items whose rules never occur in training, by distinct training rules I "
             "(columns) and examples per rule S (rows):", "", _md(table), "",
             "Split by kind (a no-op leaves z unchanged):", "",
             _md(cells, index=False), "",
             switch_line(p), "",
             _md(sw, index=False), "",
             "Paper (Table 1, accuracy on unseen rules; the switch is reported near 400 rules; < 300 never "
             "generalize, >= 1,000 always do):", "", PAPER_TABLE1.to_markdown(index=False), ""]
    if code is not None and len(code):
        lines += ["## Code arm: general-data share vs code benchmarks", "", _md(code, index=False), ""]
    lines += ["Figures: `heatmap.png`, `switch.png`; data: `cells.tsv`, `switch.tsv`."]
    return "\n".join(lines) + "\n"


def code_arm(table: pd.DataFrame) -> pd.DataFrame:
    t = table[(table.study == "diversity") & table.mixture.notna()]
    return t.pivot_table(index=["base_model", "mixture"], columns=["task", "metric"], values="score").reset_index() \
        if len(t) else pd.DataFrame()
