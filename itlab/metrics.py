"""Generation metrics of itlab's lm-eval tasks, and which metric (and chance rate) scores each task.

Per document (lm-eval ``process_results``): exact match (strip, lower case); SQuAD token F1 as
lm-eval ships it (the official SQuAD v1.1 script, ``lm_eval.tasks.qasper.metrics``); ROUGE-L
F-measure as Google's ``rouge-score`` computes it (its tokenizer and LCS; computed here because
importing rouge-score imports nltk, 1.5 s of every evaluation job; a test checks equality on
random pairs); and BLEU, aggregated over the corpus by lm-eval's ``bleu``
aggregation, i.e. ``sacrebleu.corpus_bleu`` (a 0-100 score; ``itlab.evaluate`` divides it by 100 so
that every score in the results table is on a 0-1 scale).

Which metric a task is judged on, and its chance rate, come from one place: ``scoring(cfg)``.
Defaults follow the papers: accuracy over the answer choices (exact match of the choice string)
for classification, with chance 1 / len(choices); exact match otherwise (chance 0). Free-generation
tasks name theirs in ``data.scoring`` (SQuAD F1 for extractive QA, ROUGE-L for summarisation, BLEU
for translation and data-to-text).
"""

from __future__ import annotations

import re

from itlab.results import DEFAULT_METRIC

METRICS = ("exact_match", "f1", "rouge_l", "bleu")
AGGREGATION = {"exact_match": "mean", "f1": "mean", "rouge_l": "mean", "bleu": "bleu"}
SCALE = {"bleu": 100.0}  # sacrebleu reports 0-100; every other metric is 0-1


def metric_scale(metric: str) -> float:
    return SCALE.get(metric, 1.0)


def exact_match(prediction: str, gold: str) -> float:
    return float(prediction.strip().lower() == gold.strip().lower())


def normalize(text: str) -> str:
    """SQuAD normalisation (lm-eval's copy of the official script)."""
    from lm_eval.tasks.qasper.metrics import normalize_answer

    return normalize_answer(text)


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD v1.1 token F1 (lm-eval's copy of the official script); two empty strings agree."""
    from lm_eval.tasks.qasper.metrics import f1_abstractive

    if not normalize(prediction) and not normalize(gold):
        return 1.0
    return float(f1_abstractive([prediction], [gold]))


_NON_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """rouge-score's default tokenizer without stemming: lower case, runs of a-z0-9."""
    return _NON_ALPHANUMERIC.sub(" ", text.lower()).split()


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (one row of the dynamic programme at a time)."""
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0
        for j, y in enumerate(b, 1):
            diagonal, row[j] = row[j], diagonal + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def rouge_l(prediction: str, gold: str) -> float:
    """ROUGE-L F-measure: LCS over rouge-score's tokens, 0 when either side has none."""
    pred, ref = rouge_tokens(prediction), rouge_tokens(gold)
    if not pred or not ref:
        return 0.0
    lcs = lcs_length(ref, pred)
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def process_results(doc: dict, results: list) -> dict:
    prediction, gold = results[0], str(doc["answer"])
    return {"exact_match": exact_match(prediction, gold), "f1": token_f1(prediction, gold),
            "rouge_l": rouge_l(prediction, gold), "bleu": (gold, prediction)}


def corpus_bleu(predictions: list[str], golds: list[str]) -> float:
    """sacrebleu corpus BLEU (0-100) with one reference per item, as lm-eval's ``bleu`` aggregation."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(predictions), [list(golds)]).score)


def scoring(cfg: dict) -> dict[str, dict]:
    """task -> {"metric", "chance"} for every task of the config: ``data.scoring`` overrides, then
    the defaults (hub task with ``choices``: accuracy over them, chance 1 / len(choices); the
    synthetic yes/no cluster ``classify``: chance 1/2; otherwise exact match, chance 0)."""
    from itlab.grid import all_tasks, task_cluster

    hub, overrides = cfg["data"].get("hub_tasks", {}), cfg["data"].get("scoring", {}) or {}
    out = {}
    for task in all_tasks(cfg):
        choices = hub.get(task, {}).get("choices")
        chance = 1 / len(choices) if choices else (0.5 if task not in hub and task_cluster(cfg, task) == "classify"
                                                    else 0.0)
        out[task] = {"metric": DEFAULT_METRIC, "chance": chance, **overrides.get(task, {})}
    return out
