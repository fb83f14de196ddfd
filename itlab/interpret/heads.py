"""Attention heads: which words each head's query and key dimensions respond to.

Per layer and head, with the input norm's weight folded into W_q and W_k: for every head
dimension, the top-K vocabulary words by |E W_q| and by |E W_k| (E: the words' input
embeddings). A word's count in a head is the number of these top-K lists (dimensions x
{query, key}) that contain it. The authors go on to pair query and key words with GloVe
similarity and keep pairs recurring across dimensions; GloVe cannot be downloaded here, so
words are counted directly (README, study D).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from itlab.interpret.weights import num_layers, query_key


def word_counts(model, embeddings, words: list[str], targets, top_k: int) -> pd.DataFrame:
    """Rows (layer, head, word, count) for every target word (zeros included)."""
    import torch

    index = {w: i for i, w in enumerate(words)}
    target_ids = [(w, index[w]) for w in sorted(set(targets)) if w in index]
    k = min(top_k, len(words))
    rows = []
    for layer in range(num_layers(model)):
        q, kk = query_key(model, layer)  # (heads, hidden, head_dim)
        for head in range(q.shape[0]):
            counts = np.zeros(len(words), dtype=np.int64)
            for w in (q[head], kk[head]):
                act = (embeddings @ w).abs().T  # (head_dim, words)
                top = torch.topk(act, k, dim=-1).indices.reshape(-1).numpy()
                counts += np.bincount(top, minlength=len(words))
            rows += [(layer, head, word, int(counts[i])) for word, i in target_ids]
    return pd.DataFrame(rows, columns=["layer", "head", "word", "count"])


def rise_shares(base: pd.DataFrame, tuned: pd.DataFrame, words, group_size: int) -> pd.DataFrame:
    """Per layer group and word: the share of heads whose count rose after tuning, among
    heads where it changed (ties are skipped, as in the authors' analysis)."""
    m = base.merge(tuned, on=["layer", "head", "word"], suffixes=("_base", "_tuned"))
    m = m[m.word.isin(set(words)) & (m.count_base != m.count_tuned)]
    m = m.assign(group=m.layer // group_size, rose=(m.count_tuned > m.count_base).astype(float))
    return m.groupby(["group", "word"], as_index=False).agg(share=("rose", "mean"), heads=("rose", "size"))


def compare_groups(base, tuned, instruction, general, group_size: int, layers: int) -> pd.DataFrame:
    """Per layer group: mean share for instruction vs general words and the Welch t-test
    (two-sided, as in the authors' analysis) between the two sets of per-word shares."""
    ins, gen = rise_shares(base, tuned, instruction, group_size), rise_shares(base, tuned, general, group_size)
    rows = []
    for g in range((layers + group_size - 1) // group_size):
        a, b = ins[ins.group == g].share.to_numpy(), gen[gen.group == g].share.to_numpy()
        t, p = (stats.ttest_ind(a, b, equal_var=False) if len(a) > 1 and len(b) > 1 else (np.nan, np.nan))
        rows.append({"group": g, "layers": f"{g * group_size}-{min(layers, (g + 1) * group_size) - 1}",
                     "instruction_share": a.mean() if len(a) else np.nan, "instruction_words": len(a),
                     "general_share": b.mean() if len(b) else np.nan, "general_words": len(b),
                     "t": float(t), "p": float(p)})
    return pd.DataFrame(rows)
