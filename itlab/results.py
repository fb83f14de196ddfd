"""The one results table every study reads: one row per model x task x condition x metric."""

from __future__ import annotations

import pandas as pd

DEFAULT_METRIC = "exact_match"  # a task's metric unless data.scoring names another (itlab.metrics.scoring)

COLUMNS = ["model", "kind", "study", "base_model", "family", "size", "trainset", "mixture", "recipe", "seed",
           "train_task", "train_size", "num_rules", "examples_per_rule",
           "task", "cluster", "heldout", "condition", "metric", "score", "n"]


def tidy_scores(score_files: dict[str, str], metadata: dict) -> pd.DataFrame:
    frames = []
    for model, path in score_files.items():
        scores = pd.read_csv(path, sep="\t")
        for key, value in metadata["models"][model].items():
            scores[key] = value
        frames.append(scores)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    table["cluster"] = table["task"].map(metadata["clusters"]).fillna("rewriting")
    table["heldout"] = table["task"].isin(metadata["heldout"])
    for col in COLUMNS:
        if col not in table:
            table[col] = pd.NA
    return table[COLUMNS].sort_values(["model", "task", "condition", "metric"]).reset_index(drop=True)
