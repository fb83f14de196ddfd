"""Study D (Wu et al. 2023): instruction scores base vs tuned, followed vs unfollowed responses,
attention-head word shares and FFN component categories, with the paper's numbers beside.

Reads attribution files in the ``itlab.interpret.matrices`` format (any origin), the heads'
word counts and the FFN components of each model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from itlab.interpret import density as dens
from itlab.interpret import matrices
from itlab.papers import study

# The paper's Tables 1 and 2 (LLaMA-7B vs Vicuna-7B; itlab.papers); sets named as the authors' prompt ids.
_SETS = study("behavior_shift")["sets"]
SET_NAMES = {k: s["name"] for k, s in _SETS.items()}
PAPER_TUNED_VS_BASE = {k: (s["base"], s["tuned"], s["p"]) for k, s in _SETS.items()}
PAPER_FOLLOWED = {k: (s["unfollowed"], s["followed"]) for k, s in _SETS.items()}  # Vicuna-7B


def score_records(records, pair: str, side: str, threshold: int = dens.THRESHOLD) -> pd.DataFrame:
    """One row per prompt: the instruction score (0 for an empty response), followed, and
    why a prompt cannot be scored (its instruction span was not found in its tokens)."""
    rows = []
    for r in records:
        empty = len(r["output_tokens"]) == 0
        ok = r["instruction_mask"] is not None
        score = dens.score_matrix(r["matrix"], r["instruction_mask"], r["kind"], threshold) if ok else np.nan
        rows.append({"prompt": r["id"], "set": r["set"], "pair": pair, "side": side, "model": r["model"],
                     "instruction_score": score, "followed": r.get("followed"),
                     "output_tokens": len(r["output_tokens"]), "empty_response": empty,
                     "span_error": r.get("span_error") or "", "response": r["response"]})
    return pd.DataFrame(rows)


def read_scores(files: dict, threshold: int = dens.THRESHOLD) -> pd.DataFrame:
    """files: {(pair, side): [attribution files]} -> the per-prompt table."""
    parts = [score_records((rec for f in paths for rec in matrices.read(f)), pair, side, threshold)
             for (pair, side), paths in files.items()]
    return pd.concat(parts, ignore_index=True)


def _welch_less(a, b) -> tuple[float, float]:
    if len(a) < 2 or len(b) < 2:
        return np.nan, np.nan
    res = stats.ttest_ind(a, b, equal_var=False, alternative="less")
    return float(res.statistic), float(res.pvalue)


def _welch_interval(base, tuned, level: float = 0.95) -> dict:
    """Two-sided Welch interval of mean(tuned) - mean(base) (the scorecard's interval)."""
    if len(base) < 2 or len(tuned) < 2:
        return {"ci_low": np.nan, "ci_high": np.nan}
    ci = stats.ttest_ind(tuned, base, equal_var=False).confidence_interval(level)
    return {"ci_low": float(ci.low), "ci_high": float(ci.high)}


def tuned_vs_base(table: pd.DataFrame) -> pd.DataFrame:
    """Per pair and prompt set: Welch one-sided test that the base score is lower."""
    ok = table[table.span_error == ""]
    rows = []
    for (pair, pset), g in ok.groupby(["pair", "set"]):
        base = g[g.side == "base"].instruction_score.to_numpy()
        tuned = g[g.side == "tuned"].instruction_score.to_numpy()
        t, p = _welch_less(base, tuned)
        # the same prompts go to both models: the paired test (not in the paper) is reported beside
        both = g.pivot_table(index="prompt", columns="side", values="instruction_score").dropna()
        paired = (stats.ttest_rel(both["base"], both["tuned"], alternative="less").pvalue
                  if {"base", "tuned"} <= set(both.columns) and len(both) > 1 else np.nan)
        rows.append({"pair": pair, "set": pset, "n_base": len(base), "n_tuned": len(tuned),
                     "base_mean": base.mean() if len(base) else np.nan,
                     "tuned_mean": tuned.mean() if len(tuned) else np.nan, "t": t, "p": p,
                     "n_paired": len(both), "p_paired": float(paired), **_welch_interval(base, tuned)})
    return pd.DataFrame(rows)


def followed_vs_unfollowed(table: pd.DataFrame, min_output_tokens: int) -> pd.DataFrame:
    """Per model and prompt set: Welch one-sided test that unfollowed responses score lower.
    Responses without a label (no rating, rating <= 0) or shorter than min_output_tokens are dropped."""
    ok = table[(table.span_error == "") & table.followed.notna() & (table.output_tokens >= min_output_tokens)]
    rows = []
    for (pair, side, pset), g in ok.groupby(["pair", "side", "set"]):
        fol = g[g.followed.astype(int) == 1].instruction_score.to_numpy()
        unf = g[g.followed.astype(int) == 0].instruction_score.to_numpy()
        t, p = _welch_less(unf, fol)
        rows.append({"pair": pair, "side": side, "set": pset, "n_unfollowed": len(unf), "n_followed": len(fol),
                     "unfollowed_mean": unf.mean() if len(unf) else np.nan,
                     "followed_mean": fol.mean() if len(fol) else np.nan, "t": t, "p": p})
    return pd.DataFrame(rows)


def _fmt(x, digits=4):
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) < 1e-3 else f"{x:.{digits}f}"


def summary(table, tvb, fvu, heads, ffn, min_output_tokens: int) -> str:
    lines = ["# Study D: behavior shift after instruction tuning (Wu et al. 2023)", "",
             f"{table.prompt.nunique()} prompts x {table.pair.nunique()} pairs (base, tuned); "
             "gradient x input attribution of each response token to each prompt token (fp32, target p, BOS "
             "excluded), scaled per output token to 0..10, entries <= 7 dropped, density L1/L4, instruction "
             "score = sum of densities over instruction tokens / log2(2 + their number).", "",
             "## Instruction score, tuned vs base (Welch one-sided: base < tuned)", "",
             "| pair | set | n base | n tuned | base | tuned | t | p | paired p | paper base | paper tuned | paper p |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in tvb.itertuples():
        pb, pt, pp = PAPER_TUNED_VS_BASE.get(r.set, (None, None, None))
        lines.append(f"| {r.pair} | {SET_NAMES.get(r.set, r.set)} | {r.n_base} | {r.n_tuned} | "
                     f"{_fmt(r.base_mean)} | {_fmt(r.tuned_mean)} | {_fmt(r.t, 3)} | {_fmt(r.p, 3)} | "
                     f"{_fmt(r.p_paired, 3)} | {_fmt(pb)} | {_fmt(pt)} | {_fmt(pp, 2)} |")
    lines += ["", "p: Welch one-sided, as the paper (responses treated as independent samples); paired p: "
              "one-sided paired t-test over prompts scored under both models (the design is paired).", "",
              "Paper (Tables 1-2, LLaMA-7B -> Vicuna-7B, base -> tuned): " + "; ".join(
                  f"{SET_NAMES[k]} {b:.4f} -> {t:.4f} (p {p:g})" for k, (b, t, p) in PAPER_TUNED_VS_BASE.items())
              + ". Vicuna-7B unfollowed -> followed: " + "; ".join(
                  f"{SET_NAMES[k]} {u:.4f} -> {f:.4f}" for k, (u, f) in PAPER_FOLLOWED.items())
              + ". Embedded prompt sets are task clusters, so only the direction compares."]
    lines += ["", f"## Followed vs unfollowed responses (Welch one-sided: unfollowed < followed; outputs of "
              f"fewer than {min_output_tokens} tokens and unlabelled responses dropped)", ""]
    if len(fvu):
        lines += ["| pair | model | set | n unfollowed | n followed | unfollowed | followed | t | p | "
                  "paper (Vicuna) unfollowed | followed |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in fvu.itertuples():
            pu, pf = PAPER_FOLLOWED.get(r.set, (None, None))
            lines.append(f"| {r.pair} | {r.side} | {SET_NAMES.get(r.set, r.set)} | {r.n_unfollowed} | {r.n_followed} | "
                         f"{_fmt(r.unfollowed_mean)} | {_fmt(r.followed_mean)} | {_fmt(r.t, 3)} | {_fmt(r.p, 3)} | "
                         f"{_fmt(pu)} | {_fmt(pf)} |")
    else:
        lines.append("No labelled responses (no task checker answers and no ratings file).")
    lines += ["", "## Attention heads: share of heads whose word count rose after tuning (Welch, two-sided)", "",
              "| pair | layers | instruction words | share | general words | share | t | p |",
              "|---|---|---|---|---|---|---|---|"]
    for r in heads.itertuples():
        lines.append(f"| {r.pair} | {r.layers} | {r.instruction_words} | {_fmt(r.instruction_share)} | "
                     f"{r.general_words} | {_fmt(r.general_share)} | {_fmt(r.t, 3)} | {_fmt(r.p, 3)} |")
    lines += ["", "Paper (Table 3, LLaMA-7B -> Vicuna-7B): instruction verbs rose in more heads than general "
              "verbs in the lower and middle layer groups.", "",
              "## FFN principal components per category (all layers)", "",
              "| pair | category | base | tuned |", "|---|---|---|---|"]
    allf = ffn[ffn.group == "all"]
    for (pair, cat), g in allf.groupby(["pair", "category"], sort=False):
        b = g[g.side == "base"].share.mean()
        t = g[g.side == "tuned"].share.mean()
        lines.append(f"| {pair} | {cat} | {_fmt(b, 3)} | {_fmt(t, 3)} |")
    bad = table[table.span_error != ""]
    empty = table[table.empty_response]
    lines += ["", "## Bad input", "",
              f"- prompts whose instruction span was not found in their tokens: {bad.prompt.nunique()} "
              f"({len(bad)} responses; excluded from the tests)"]
    for (pid, err), _ in bad.groupby(["prompt", "span_error"]):
        lines.append(f"  - `{pid}`: {err}")
    lines += [f"- empty responses (scored 0, as in the authors' code): {len(empty)}"]
    for r in empty.itertuples():
        lines.append(f"  - `{r.prompt}` ({r.model})")
    lines += ["", "Files: `scores.tsv` (per prompt), `tests.tsv`, `followed.tsv`, `heads.tsv`, `ffn.tsv`; "
              "figures `heatmaps.png`, `scores.png`, `heads.png`."]
    return "\n".join(lines) + "\n"


def heatmaps(files: dict, path, threshold: int = dens.THRESHOLD) -> None:
    """One attribution heat map (scaled 0..10) per prompt set: the first scorable prompt of
    the set, tuned model of the first pair."""
    from itlab.report import _plt, save

    plt = _plt()
    key = next((k for k in files if k[1] == "tuned"), next(iter(files)))
    chosen = {}
    for f in files[key]:
        for r in matrices.read(f):
            if r["set"] not in chosen and r["instruction_mask"] is not None and len(r["output_tokens"]):
                chosen[r["set"]] = r
    n = max(1, len(chosen))
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 5), squeeze=False)
    for ax, (pset, r) in zip(axes[0], sorted(chosen.items())):
        s = r["matrix"] if r["kind"] == "scaled" else dens.scale(r["matrix"])
        ax.imshow(s[:60, :40], aspect="auto", cmap="Reds", vmin=0, vmax=10)
        labels = [("*" if m else "") + t for t, m in zip(r["input_tokens"], r["instruction_mask"])][:60]
        ax.set_yticks(range(len(labels)), labels, fontsize=6)
        ax.set_xticks(range(min(40, len(r["output_tokens"]))), r["output_tokens"][:40], fontsize=6, rotation=90)
        ax.set_title(f"{r['model']}: {pset} / {r['id']}\n(* = instruction token)", fontsize=8)
    if not chosen:
        axes[0][0].text(0.5, 0.5, "no scorable response", ha="center")
    fig.tight_layout()
    save(fig, path)


def score_figure(table: pd.DataFrame, path) -> None:
    """Distributions of instruction scores, base vs tuned, per pair and set."""
    from itlab.report import _plt, save

    plt = _plt()
    ok = table[table.span_error == ""]
    groups = sorted(ok.groupby(["pair", "set"]).groups)
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(3.2 * max(1, len(groups)), 3), squeeze=False)
    for ax, (pair, pset) in zip(axes[0], groups):
        g = ok[(ok.pair == pair) & (ok.set == pset)]
        data = [g[g.side == s].instruction_score.to_numpy() for s in ("base", "tuned")]
        ax.hist(data, bins=12, label=["base", "tuned"], alpha=0.8)
        ax.set_title(f"{pair}\n{SET_NAMES.get(pset, pset)}", fontsize=8)
        ax.set_xlabel("instruction score", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    save(fig, path)


def heads_figure(heads: pd.DataFrame, path) -> None:
    from itlab.report import _plt, save

    plt = _plt()
    pairs = sorted(heads.pair.unique())
    fig, axes = plt.subplots(1, max(1, len(pairs)), figsize=(4 * max(1, len(pairs)), 3), squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        g = heads[heads.pair == pair]
        x = np.arange(len(g))
        ax.bar(x - 0.2, g.instruction_share, 0.4, label="instruction words")
        ax.bar(x + 0.2, g.general_share, 0.4, label="general words")
        ax.set_xticks(x, g.layers)
        ax.axhline(0.5, color="grey", lw=0.5)
        ax.set_xlabel("layers")
        ax.set_ylabel("share of heads where count rose")
        ax.set_title(pair, fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    save(fig, path)


class VocabularyMismatch(ValueError):
    pass


def check_vocabularies(vocab_files: dict) -> None:
    """Heads and FFN are compared word by word: the base and tuned model of a pair must share
    a tokenizer vocabulary (as LLaMA/Vicuna and Mistral/Mistral-Instruct do) and explain the
    same words. vocab_files: {(pair, side): vocabulary.json written by the weights job}."""
    import json
    from pathlib import Path

    recs = {k: json.loads(Path(f).read_text()) for k, f in vocab_files.items()}
    for pair in sorted({p for p, _ in recs}):
        b, t = recs.get((pair, "base")), recs.get((pair, "tuned"))
        if b is None or t is None:
            continue
        if b["tokenizer_sha256"] != t["tokenizer_sha256"] or b["words"] != t["words"]:
            raise VocabularyMismatch(
                f"pair {pair}: the base and tuned tokenizers differ ({b['tokenizer_size']} vs {t['tokenizer_size']} "
                f"tokens, {len(b['words'])} vs {len(t['words'])} explained words); head and FFN word comparisons "
                "need one vocabulary")


def run(attributions: dict, heads_files: dict, ffn_files: dict, params: dict, out: dict,
        vocab_files: dict | None = None) -> None:
    """The whole analysis: attributions {(pair, side): [files]}, heads/ffn/vocabularies {(pair, side): file}."""
    from itlab.interpret import ffn as ffn_mod
    from itlab.interpret import heads as heads_mod
    from itlab.io import write_table, write_text

    if vocab_files:
        check_vocabularies(vocab_files)
    table = read_scores(attributions, params["threshold"])
    tvb = tuned_vs_base(table)
    fvu = followed_vs_unfollowed(table, params["min_output_tokens"])
    words = params["words"]
    head_rows, ffn_rows = [], []
    for pair in sorted({p for p, _ in heads_files}):
        base = pd.read_csv(heads_files[(pair, "base")], sep="\t", keep_default_na=False)
        tuned = pd.read_csv(heads_files[(pair, "tuned")], sep="\t", keep_default_na=False)
        layers = int(max(base.layer.max(), tuned.layer.max())) + 1
        h = heads_mod.compare_groups(base, tuned, words["instruction"], words["general"],
                                     params["heads_group"], layers)
        head_rows.append(h.assign(pair=pair))
        for side in ("base", "tuned"):
            comps = pd.read_csv(ffn_files[(pair, side)], sep="\t", keep_default_na=False)
            ffn_rows.append(ffn_mod.category_shares(comps, words["categories"], params["ffn_group"])
                            .assign(pair=pair, side=side))
    heads = pd.concat(head_rows, ignore_index=True)
    ffn = pd.concat(ffn_rows, ignore_index=True)
    write_table(out["scores"], table.drop(columns=["response"]))
    write_table(out["tests"], tvb)
    write_table(out["followed"], fvu)
    write_table(out["heads"], heads)
    write_table(out["ffn"], ffn)
    heatmaps(attributions, out["heatmaps"], params["threshold"])
    score_figure(table, out["scores_figure"])
    heads_figure(heads, out["heads_figure"])
    write_text(out["summary"], summary(table, tvb, fvu, heads, ffn, params["min_output_tokens"]))
