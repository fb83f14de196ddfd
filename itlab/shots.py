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
