"""Tables and figures shared by the studies (matplotlib, headless)."""

from __future__ import annotations

import json
from pathlib import Path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def pretraining_table(done_files: dict[str, str], grid) -> "pd.DataFrame":
    import pandas as pd

    rows = []
    for base_id, path in done_files.items():
        bm = grid.base_models[base_id]
        d = json.loads(Path(path).read_text())
        rows.append({"base_model": base_id, "family": bm.family, "size": bm.size, "parameters": d.get("parameters"),
                     "pretrain_tokens": grid.cfg["sizes"][bm.size].get("pretrain_tokens"),
                     "tokens_seen": d.get("tokens"), "train_loss": d.get("final_loss"), "heldout_loss": d.get("eval_loss")})
    return pd.DataFrame(rows).sort_values(["family", "pretrain_tokens"]).reset_index(drop=True)


def plot_pretraining(table, path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for fam, sub in table.groupby("family"):
        ax.plot(sub["tokens_seen"], sub["heldout_loss"], marker="o", label=fam)
        for _, r in sub.iterrows():
            ax.annotate(r["size"], (r["tokens_seen"], r["heldout_loss"]), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("pretraining tokens seen")
    ax.set_ylabel("held-out loss")
    ax.set_title("Base-model ladder")
    ax.legend()
    fig.tight_layout()
    save(fig, path)


def save(fig, path) -> None:
    from itlab.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=120)
    _plt().close(fig)
