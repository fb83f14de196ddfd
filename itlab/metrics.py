"""Generation metrics of itlab's lm-eval tasks: exact match, SQuAD token F1 and ROUGE-L.

Small, dependency-free, and called per document by lm-eval through ``process_results``.
"""

from __future__ import annotations

import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(prediction.strip().lower() == gold.strip().lower())


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = normalize(prediction).split(), normalize(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def _lcs(a: list, b: list) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, gold: str) -> float:
    """ROUGE-L F-measure (beta = 1) over lower-cased whitespace tokens."""
    pred, ref = prediction.lower().split(), gold.lower().split()
    if not pred or not ref:
        return float(pred == ref)
    lcs = _lcs(pred, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def process_results(doc: dict, results: list) -> dict:
    prediction, gold = results[0], str(doc["answer"])
    return {"exact_match": exact_match(prediction, gold), "f1": token_f1(prediction, gold),
            "rouge_l": rouge_l(prediction, gold)}
