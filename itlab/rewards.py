"""Study C's rewards of a generator's responses (rule ``score_rewards``), one column per reward
model, plus the response length:

- ``checker``: the task's own checker against the gold answer (exact match or token F1 of
  ``itlab.metrics``): a verifiable reward, the embedded stand-in for a reward model;
- ``classifier``: a reward model loaded as a sequence classifier
  (``AutoModelForSequenceClassification``, safetensors; remote code only when the config allows
  it); the reward is the first logit of the chat-formatted (instruction, response) pair;
- ``dataset``: scores that came with the responses (the Generator Zoo's three reward models).
"""

from __future__ import annotations

from itlab.metrics import exact_match, token_f1

CHECKERS = {"exact_match": exact_match, "f1": token_f1}


def checker_rewards(records: list[dict], metric: str) -> list[float]:
    check = CHECKERS[metric]
    return [check(r["answer"], r["gold"]) if r.get("gold") is not None else float("nan") for r in records]


def load_reward_model(location: str, trust_remote_code: bool = False, device: str = "cpu"):
    import torch
    from transformers import AutoModelForSequenceClassification

    from itlab.models import load_tokenizer

    tok = load_tokenizer(location, trust_remote_code=trust_remote_code)
    model = AutoModelForSequenceClassification.from_pretrained(location, dtype=torch.float32, use_safetensors=True,
                                                               trust_remote_code=trust_remote_code)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    return model.to(device).eval(), tok


def classifier_rewards(model, tokenizer, records: list[dict], batch_size: int = 16, max_len: int = 4096) -> list[float]:
    """First logit of the classifier on each chat-formatted (instruction, response), batched."""
    import torch

    texts = [tokenizer.apply_chat_template([{"role": "user", "content": r["prompt"]},
                                            {"role": "assistant", "content": r["answer"]}], tokenize=False)
             for r in records]
    tokenizer.padding_side = "right"
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True, truncation=True,
                        max_length=max_len, add_special_tokens=False)
        with torch.no_grad():
            logits = model(**{k: v.to(device) for k, v in enc.items()}).logits
        out += [float(x) for x in logits[:, 0]]
    return out


def score(records: list[dict], reward_models: dict[str, dict], trust_remote_code: bool = False,
          device: str = "cpu"):
    """Per-record table: id, length (characters), and ``reward:<name>`` for every reward model."""
    import pandas as pd

    table = pd.DataFrame({"id": [r["id"] for r in records], "length": [len(r["answer"]) for r in records]})
    for name, spec in reward_models.items():
        kind = spec["kind"]
        if kind == "checker":
            values = checker_rewards(records, spec["metric"])
        elif kind == "dataset":
            values = [r.get("rewards", {}).get(name, float("nan")) for r in records]
        elif kind == "classifier":
            allowed = trust_remote_code and spec.get("trust_remote_code", False)
            model, tok = load_reward_model(spec["model"], allowed, device)
            values = classifier_rewards(model, tok, records, spec.get("batch_size", 16))
            del model
        else:
            raise ValueError(f"unknown reward model kind {kind!r}")
        table[f"reward:{name}"] = values
    return table
