"""Study C's model-based metrics of a teacher's responses under a scoring model (a student's
base model or the fixed reference model): per-token losses, IFD and perplexity.

For one (instruction, response) record:
- ``loss``: mean cross-entropy per response token given the instruction, in the chat format of
  tuning (``itlab.data.tokenize_example``: instruction tokens masked, the end-of-text token
  counted), i.e. exactly the loss the student starts tuning from;
- ``loss_direct``: the same response tokens after a single start token, without the instruction;
- ``ifd = loss / loss_direct`` (instruction-following difficulty, Li et al. 2023);
- ``ppl = exp(loss)``.
A teacher's value is the mean over its records (each response counts once), so
L = mean loss, IFD = mean ifd, perplexity = mean ppl.
"""

from __future__ import annotations

import math


def encode_pair(tokenizer, record: dict, max_len: int) -> tuple[tuple[list, list], tuple[list, list]]:
    """(ids, labels) with and without the instruction; labels are -100 where no loss is taken."""
    from itlab.data import tokenize_example

    ids, labels = tokenize_example(tokenizer, record, chat=True)
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    resp = tokenizer.encode(record["answer"], add_special_tokens=False) + [tokenizer.eos_token_id]
    direct = ([start] + resp, [-100] + resp)
    return (ids[:max_len], labels[:max_len]), (direct[0][:max_len], direct[1][:max_len])


def sequence_losses(model, rows: list[tuple[list, list]], pad_id: int, batch_size: int = 16) -> list[float]:
    """Mean next-token loss over the labelled tokens of each (ids, labels) row (batched, right-padded)."""
    import torch

    device = next(model.parameters()).device
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i][0]))  # similar lengths share a batch
    result = [math.nan] * len(rows)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(rows[i][0]) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        labels = torch.full((len(idx), width), -100, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for j, i in enumerate(idx):
            n = len(rows[i][0])
            ids[j, :n] = torch.tensor(rows[i][0])
            labels[j, :n] = torch.tensor(rows[i][1])
            mask[j, :n] = 1
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        target = labels[:, 1:].to(device)
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), target, ignore_index=-100,
                                                reduction="none")
        counts = (target != -100).sum(1)
        for j, i in enumerate(idx):  # a response truncated away entirely has no loss (NaN)
            result[i] = float(nll[j].sum() / counts[j]) if counts[j] else math.nan
    return result


def record_metrics(model, tokenizer, records: list[dict], max_len: int = 4096, batch_size: int = 16) -> list[dict]:
    """loss, loss_direct, ifd and ppl of each record under one scoring model."""
    pairs = [encode_pair(tokenizer, r, max_len) for r in records]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    cond = sequence_losses(model, [p[0] for p in pairs], pad, batch_size)
    direct = sequence_losses(model, [p[1] for p in pairs], pad, batch_size)
    return [{"id": r.get("id", i), "loss": c, "loss_direct": d, "ifd": c / d if d > 0 else math.nan,
             "ppl": math.exp(c) if not math.isnan(c) else math.nan} for i, (r, c, d) in enumerate(zip(records, cond, direct))]


def teacher_metrics(per_record: list[dict]) -> dict:
    """A teacher's L, IFD and perplexity: means over its records (NaN records skipped)."""
    import numpy as np

    out = {}
    for key in ("loss", "loss_direct", "ifd", "ppl"):
        values = np.array([r[key] for r in per_record], float)
        out[key] = float(np.nanmean(values)) if len(values) else math.nan
    out["n"] = len(per_record)
    out["n_scored"] = int(sum(not math.isnan(r["loss"]) for r in per_record))
    return out


def measure(model_dir: str, responses: dict[str, str], max_len: int = 4096, batch_size: int = 16,
            trust_remote_code: bool = False, device: str = "cpu", max_records: int | None = None):
    """One scoring model (loaded once) over every generator's responses: a table per generator."""
    import pandas as pd

    from itlab.io import read_jsonl
    from itlab.models import load_model, load_tokenizer

    tokenizer = load_tokenizer(model_dir, trust_remote_code=trust_remote_code)
    model = load_model(model_dir, trust_remote_code=trust_remote_code).to(device).eval()
    positions = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    max_len = min(max_len, positions or max_len)  # e.g. GPT-2 reads 1,024 tokens
    rows = []
    for gen, path in sorted(responses.items()):
        records = read_jsonl(path)[:max_records]
        rows.append({"generator": gen, **teacher_metrics(record_metrics(model, tokenizer, records, max_len,
                                                                        batch_size))})
        print(f"[itlab] {model_dir}: {rows[-1]}", flush=True)
    return pd.DataFrame(rows)
