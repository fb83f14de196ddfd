"""lm-eval's side of itlab's per-item in-context examples.

itlab draws each test item's k examples itself (``itlab.data.fewshot_draws``: a seed per
item, never the item itself) and stores them in the item (``fewshot``); this sampler hands
them to lm-eval in place of its own draw (``first_n`` gives every item the same first rows,
``default`` depends on the order documents are visited).
"""

from __future__ import annotations

from lm_eval.api.samplers import ContextSampler


class ItemShots(ContextSampler):
    def sample(self, n: int, eval_doc=None, df=None, **kwargs):
        if n == 0:
            return []
        if eval_doc is None:
            raise RuntimeError("per-item in-context examples need the evaluated document (fewshot_split = test_split)")
        shots = list(eval_doc.get("fewshot") or [])
        if len(shots) < n:
            raise RuntimeError(f"document {eval_doc.get('id')!r} carries {len(shots)} in-context examples, {n} asked")
        return shots[:n]


# Prompt and target of itlab's own tasks as lm-eval !function tags: a Jinja string such as
# "{{prompt}}" makes lm-eval compile a new template for every document it renders (its
# utils.apply_template caches nothing), ~40 % of a CPU evaluation job's time.
def base_prompt(doc: dict) -> str:
    """Base conditions: the plain "Answer:" format of the pretraining corpus."""
    return f"{doc['prompt']}\nAnswer:"


def chat_prompt(doc: dict) -> str:
    """Chat conditions: the bare instruction in the user turn, as in tuning."""
    return doc["prompt"]


def answer(doc: dict) -> str:
    return str(doc["answer"])

