"""FFN: principal components of each layer's down projection, explained by words.

W = down_proj^T (one row per neuron), centred over neurons; SVD W = U S V^T; explained
variance S^2 / (rows - 1), normalised to sum 1; each component (a row of V^T) is projected
onto the L2-normalised output embeddings of the vocabulary words and explained by the top-50
words by |projection| (the authors' ``ffn_explain``). A component's category is the category
whose word list has the most of its top words (none when no word matches; the first listed
category wins ties); the authors asked ChatGPT instead.
"""

from __future__ import annotations

import pandas as pd

from itlab.interpret.weights import down_projection, num_layers


def components(model, out_embeddings, words: list[str], top_k: int = 50, rank: int | None = None) -> pd.DataFrame:
    import torch

    eo = torch.nn.functional.normalize(out_embeddings.float(), dim=-1)
    k = min(top_k, len(words))
    rows = []
    for layer in range(num_layers(model)):
        w = down_projection(model, layer)
        centred = w - w.mean(dim=0, keepdim=True)
        _, s, vh = torch.linalg.svd(centred.double(), full_matrices=False)
        var = s ** 2 / (w.shape[0] - 1)
        var = (var / var.sum()).tolist()
        n = len(var) if rank is None else min(rank, len(var))
        top = torch.topk((vh[:n].float() @ eo.T).abs(), k, dim=-1).indices.tolist()
        rows += [{"layer": layer, "component": c + 1, "explained_variance": var[c],
                  "top_words": "|||".join(words[i] for i in top[c])} for c in range(n)]
    return pd.DataFrame(rows)


def categorise(top_words: str, categories: dict[str, list[str]]) -> str:
    found = {w.lower() for w in top_words.split("|||")}
    hits = {c: len(found & {w.lower() for w in ws}) for c, ws in categories.items()}
    best = max(hits, key=lambda c: hits[c]) if hits else None
    return best if best is not None and hits[best] > 0 else "none"


def category_shares(frame: pd.DataFrame, categories: dict[str, list[str]], group_size: int) -> pd.DataFrame:
    """Share of components per category, over all layers (group = all) and per layer group."""
    f = frame.assign(category=frame.top_words.map(lambda t: categorise(t, categories)))
    names = list(categories) + ["none"]
    rows = []
    for group, part in [("all", f)] + [(str(g), p) for g, p in f.groupby(f.layer // group_size)]:
        for c in names:
            rows.append({"group": group, "category": c, "share": float((part.category == c).mean()),
                         "components": len(part)})
    return pd.DataFrame(rows)
