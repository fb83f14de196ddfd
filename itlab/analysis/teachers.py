"""Study C (Xu et al. 2024, "Larger Models' Paradox"): which teacher's responses make the best
student, and which metric of the responses predicts it.

One row per (student, generator): the mean reward per reward model, L (the base student's mean
per-token loss on the responses), IFD and perplexity under the student and under a fixed
reference model, the mean response length, CAR = r / (1 + beta * L), and AP, the tuned student's
score. Each metric is ranked against AP across generators (Spearman rho), per student and
averaged over students, with percentile-bootstrap intervals that resample generators.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from itlab.papers import study
from itlab.report import _plt, save
from itlab.stats.correlation import correlate

# Table 4 of the paper: Spearman rho with AP, averaged over its five students (itlab.papers).
PAPER_TABLE4 = study("teachers")["table4"]
# Lower perplexity, IFD and loss mean "more compatible with the scorer": the metric's ranking of
# teachers is by the negated value (the sign convention of the paper's table is our reading).
LOWER_IS_BETTER = ("ifd_", "ppl_", "loss_")


def car(reward, loss, beta: float):
    """Compatibility-adjusted reward: r / (1 + beta * L)."""
    return np.asarray(reward, float) / (1.0 + beta * np.asarray(loss, float))


def orientation(metric: str) -> int:
    return -1 if metric.startswith(LOWER_IS_BETTER) else 1


# ---- inputs ------------------------------------------------------------------------------------
def generator_scores(per_record: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """generator -> mean of every reward column (``reward:<name>``) and of ``length``."""
    rows = []
    for gen, frame in sorted(per_record.items()):
        cols = [c for c in frame.columns if c.startswith("reward:") or c == "length"]
        rows.append({"generator": gen, **{c: float(frame[c].mean()) for c in cols}, "n_responses": len(frame)})
    return pd.DataFrame(rows)


def ap_from_scores(table: pd.DataFrame, runs: dict[str, dict], metric: str = "exact_match") -> pd.DataFrame:
    """AP of each tuned student (embedded scale): its mean ``metric`` over the evaluation tasks."""
    rows = []
    for model, meta in runs.items():
        sub = table[(table.model == model) & (table.metric == metric)]
        if len(sub):
            rows.append({"student": meta["student"], "generator": meta["generator"], "ap": float(sub.score.mean()),
                         "ap_tasks": int(sub.task.nunique())})
    return pd.DataFrame(rows, columns=["student", "generator", "ap", "ap_tasks"])


def ap_from_judge(judged: dict[str, pd.DataFrame], runs: dict[str, dict], benchmarks: list[str]) -> pd.DataFrame:
    """AP at paper scale: the mean of the judged benchmarks' scores (AE2 LC win rate, Arena-Hard)."""
    rows = []
    for model, frame in judged.items():
        scores = frame.set_index("benchmark").score
        rows.append({"student": runs[model]["student"], "generator": runs[model]["generator"],
                     "ap": float(np.mean([scores[b] for b in benchmarks])), "ap_tasks": len(benchmarks)})
    return pd.DataFrame(rows, columns=["student", "generator", "ap", "ap_tasks"])


def teacher_table(gen_scores: pd.DataFrame, metrics: dict[str, pd.DataFrame], ap: pd.DataFrame,
                  reference: str, car_reward: str, beta: float) -> pd.DataFrame:
    """One row per (student, generator): rewards, length, L, IFD/perplexity (student, reference), CAR, AP."""
    ref = metrics[reference].set_index("generator")
    rows = []
    for r in ap.itertuples():
        student = metrics[r.student].set_index("generator")
        g = gen_scores.set_index("generator").loc[r.generator]
        row = {"student": r.student, "generator": r.generator, "ap": r.ap,
               **{c: g[c] for c in gen_scores.columns if c.startswith("reward:") or c == "length"},
               "loss_student": student.loc[r.generator, "loss"], "ifd_student": student.loc[r.generator, "ifd"],
               "ppl_student": student.loc[r.generator, "ppl"], "ifd_reference": ref.loc[r.generator, "ifd"],
               "ppl_reference": ref.loc[r.generator, "ppl"]}
        row["car"] = float(car(row[f"reward:{car_reward}"], row["loss_student"], beta))
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["student", "generator"]).reset_index(drop=True)


def metric_columns(table: pd.DataFrame) -> list[str]:
    fixed = ["ifd_reference", "ifd_student", "ppl_reference", "ppl_student", "loss_student", "length", "car"]
    return sorted(c for c in table.columns if c.startswith("reward:")) + [c for c in fixed if c in table]


# ---- statistics --------------------------------------------------------------------------------
def _rho(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def spearman_table(table: pd.DataFrame, metrics: list[str], n_boot: int = 2000, seed: int = 0,
                   level: float = 0.95) -> pd.DataFrame:
    """Spearman rho of each (oriented) metric vs AP, per student and averaged over students.

    Per student: the interval of itlab.stats.correlation (Bonett-Wright for Spearman). The
    average: a percentile bootstrap over generators, one resample of generators shared by all
    students (the students saw the same teachers)."""
    students = sorted(table.student.unique())
    gens = sorted(table.generator.unique())
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(gens), size=(n_boot, len(gens)))
    alpha = (1 - level) / 2
    rows = []
    for m in metrics:
        sign = orientation(m)
        wide = table.pivot(index="generator", columns="student", values=m).reindex(gens) * sign
        ap = table.pivot(index="generator", columns="student", values="ap").reindex(gens)
        per = {}
        for s in students:
            ok = wide[s].notna() & ap[s].notna()
            c = correlate(wide[s][ok].to_numpy(), ap[s][ok].to_numpy(), "spearman", level)
            per[s] = c["r"]
            rows.append({"metric": m, "student": s, "rho": c["r"], "ci_low": c["ci_low"], "ci_high": c["ci_high"],
                         "p": c["p"], "n_generators": int(ok.sum()), "sign": sign})
        boots = []
        for idx in draws:
            vals = [_rho(wide[s].to_numpy()[idx], ap[s].to_numpy()[idx]) for s in students]
            vals = [v for v in vals if not np.isnan(v)]
            if vals:
                boots.append(np.mean(vals))
        mean = np.nanmean(list(per.values())) if any(not np.isnan(v) for v in per.values()) else float("nan")
        lo, hi = np.quantile(boots, [alpha, 1 - alpha]) if boots else (np.nan, np.nan)
        rows.append({"metric": m, "student": "average", "rho": float(mean), "ci_low": float(lo), "ci_high": float(hi),
                     "p": float("nan"), "n_generators": len(gens), "sign": sign})
    return pd.DataFrame(rows)


def beta_grid(table: pd.DataFrame, car_reward: str, betas: list[float]) -> pd.DataFrame:
    """rho(CAR, AP) for each beta: per student and averaged (beta is not published)."""
    rows = []
    for beta in betas:
        t = table.assign(car=car(table[f"reward:{car_reward}"], table["loss_student"], beta))
        per = {s: _rho(g.car.to_numpy(), g.ap.to_numpy()) for s, g in t.groupby("student")}
        vals = [v for v in per.values() if not np.isnan(v)]
        rows.append({"beta": beta, **{f"rho:{s}": v for s, v in per.items()},
                     "rho_average": float(np.mean(vals)) if vals else float("nan")})
    return pd.DataFrame(rows)


def paradox(table: pd.DataFrame, generators: dict[str, dict]) -> pd.DataFrame:
    """Within each family of generators with a size: does the larger generator teach better?

    Per (student, family): Spearman rho of generator size vs AP, and the share of (smaller,
    larger) pairs in which the larger generator's student scores higher (ties count half)."""
    rows = []
    fams: dict[str, list[tuple[float, str]]] = {}
    for g, spec in generators.items():
        if spec.get("family") and spec.get("size_b") is not None and g in set(table.generator):
            fams.setdefault(spec["family"], []).append((float(spec["size_b"]), g))
    for fam, members in sorted(fams.items()):
        if len(members) < 2:
            continue
        members.sort()
        for s, sub in table.groupby("student"):
            ap = sub.set_index("generator").ap
            sizes = [size for size, g in members if g in ap]
            aps = [ap[g] for _, g in members if g in ap]
            wins = [1.0 if aps[j] > aps[i] else 0.5 if aps[j] == aps[i] else 0.0
                    for i in range(len(aps)) for j in range(i + 1, len(aps)) if sizes[j] > sizes[i]]
            rows.append({"student": s, "family": fam, "generators": " < ".join(g for _, g in members),
                         "ap_by_size": " < ".join(f"{a:.3f}" for a in aps),
                         "rho_size_ap": _rho(np.array(sizes), np.array(aps)),
                         "larger_better_share": float(np.mean(wins)) if wins else float("nan")})
    return pd.DataFrame(rows, columns=["student", "family", "generators", "ap_by_size", "rho_size_ap",
                                       "larger_better_share"])


# ---- outputs -----------------------------------------------------------------------------------
def figure(table: pd.DataFrame, metrics: list[str], path) -> None:
    """One panel per metric: metric vs AP, one colour per student."""
    plt = _plt()
    n = len(metrics)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    for ax, m in zip(axes.flat, metrics):
        for s, g in table.groupby("student"):
            ax.scatter(g[m], g.ap, s=22, label=s, alpha=0.8)
            for _, r in g.iterrows():
                ax.annotate(r["generator"], (r[m], r["ap"]), fontsize=6)
        ax.set_xlabel(m + (" (lower = better)" if orientation(m) < 0 else ""))
        ax.set_ylabel("AP")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Study C: metric of the teacher's responses vs the tuned student's AP")
    fig.tight_layout()
    save(fig, path)


def _fmt(x: float) -> str:
    return "n/a" if x is None or np.isnan(x) else f"{x:.3f}"


def summary(table: pd.DataFrame, rho: pd.DataFrame, betas: pd.DataFrame, par: pd.DataFrame, settings: dict) -> str:
    students = sorted(table.student.unique())
    lines = ["# Study C: teachers (Xu et al. 2024, \"Larger Models' Paradox\")", "",
             f"Students: {', '.join(students)}; generators: {table.generator.nunique()} "
             f"({', '.join(sorted(table.generator.unique()))}); AP: {settings['ap']}.", "",
             f"Reward models: {settings['rewards']}. CAR = r / (1 + beta * L) with r = reward `{settings['car_reward']}`,"
             f" beta = {settings['beta']} (config keys `studies.teachers.car.reward_model` and `.beta`: **the paper "
             "publishes neither beta nor the reward model inside CAR**; the beta grid below shows how much the choice "
             "matters). Reference model for IFD and perplexity: "
             f"`{settings['reference']}`. Lower IFD, perplexity and loss count as better (their rho is that of the "
             "negated value).", "",
             "## Spearman rho of each metric vs AP, across generators", "",
             "| metric | " + " | ".join(students) + " | average [95% bootstrap CI over generators] | paper (Table 4 avg.) |",
             "|---|" + "---|" * len(students) + "---|---|"]
    for m, g in rho.groupby("metric", sort=False):
        per = g.set_index("student")
        avg = per.loc["average"]
        paper_key = settings.get("paper_names", {}).get(m, m)
        table4 = PAPER_TABLE4.get(paper_key)
        paper = f"{table4['rho']:.3f} ({table4['name']})" if table4 else "-"
        lines.append(f"| {m} | " + " | ".join(_fmt(per.loc[s, "rho"]) for s in students)
                     + f" | {_fmt(avg.rho)} [{_fmt(avg.ci_low)}, {_fmt(avg.ci_high)}] | {paper} |")
    lines += ["", "## CAR: rho vs AP over a grid of beta (averaged over students)", "",
              "| beta | " + " | ".join(students) + " | average |", "|---|" + "---|" * len(students) + "---|"]
    for _, r in betas.iterrows():  # column names hold ':' (not attribute names)
        lines.append(f"| {r['beta']:g} | " + " | ".join(_fmt(r.get(f"rho:{s}", np.nan)) for s in students)
                     + f" | {_fmt(r['rho_average'])} |")
    lines += ["", "## The paradox: within a family, does the larger generator teach better?", ""]
    if len(par):
        lines += ["| student | family | generators (by size) | AP (by size) | rho(size, AP) | larger-better share |",
                  "|---|---|---|---|---|---|"]
        for r in par.itertuples():
            lines.append(f"| {r.student} | {r.family} | {r.generators} | {r.ap_by_size} | {_fmt(r.rho_size_ap)} | "
                         f"{_fmt(r.larger_better_share)} |")
        share = par.larger_better_share.mean()
        lines += ["", f"Share of (smaller, larger) pairs where the larger generator made the better student: "
                      f"{_fmt(share)} (the paper's claim: often not, i.e. well below 1)."]
    else:
        lines.append("No family has two generators of different sizes in this config.")
    shown = [m for m in metric_columns(table) if m != "loss_student"]
    lines += ["", "## Per (student, generator)", "", "| student | generator | AP | L | " + " | ".join(shown) + " |",
              "|---|---|---|---|" + "---|" * len(shown)]
    for _, r in table.iterrows():
        lines.append(f"| {r['student']} | {r['generator']} | {r['ap']:.3f} | {r['loss_student']:.3f} | "
                     + " | ".join(_fmt(float(r[m])) for m in shown) + " |")
    lines += ["", "Figure: `metrics_vs_ap.png`; tables: `table.tsv`, `spearman.tsv`, `car_beta.tsv`, `paradox.tsv`."]
    return "\n".join(lines) + "\n"
