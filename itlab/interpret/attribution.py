"""Greedy responses and gradient x input attribution of each response token to each prompt token.

I[n, m] = sum over embedding dims of (d p(y_m | x, y_<m) / d E[x_n]) * E[x_n], with the model in
fp32, the probability (not its log) as the target, and BOS excluded from the input tokens. One
backward pass per output token is the cost: output tokens are batched, ``batch`` copies of the
sequence (each cut to the positions its token depends on) go through one forward and one
backward, and copy b's target depends only on copy b's embeddings.
"""

from __future__ import annotations

import numpy as np

from itlab.metrics import exact_match
from itlab.interpret.prompts import SpanNotFound, format_prompt, instruction_mask


def prepare(model):
    """fp32, eval mode, no parameter gradients (only the input embeddings need them)."""
    import torch

    model = model.to(torch.float32).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def encode(tokenizer, text: str, fmt: str) -> tuple[list[int], int]:
    """Token ids of a formatted prompt and the number of leading BOS tokens (excluded from
    the attribution). A chat template writes its own special tokens, so none are added."""
    ids = tokenizer(text, add_special_tokens=(fmt != "chat"))["input_ids"]
    bos, n_bos = tokenizer.bos_token_id, 0
    while bos is not None and n_bos < len(ids) and ids[n_bos] == bos:
        n_bos += 1
    return ids, n_bos


def generate(model, tokenizer, input_ids: list[int], max_new_tokens: int) -> list[int]:
    """Greedy decoding up to max_new_tokens; the response ends before the first EOS."""
    import torch

    ids = torch.tensor([input_ids], device=model.device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, eos_token_id=tokenizer.eos_token_id, pad_token_id=pad)
    new = out[0, len(input_ids):].tolist()
    if tokenizer.eos_token_id in new:
        new = new[:new.index(tokenizer.eos_token_id)]
    return new


def attribute(model, input_ids: list[int], output_ids: list[int], n_bos: int = 0, batch: int = 8) -> np.ndarray:
    """Gradient x input matrix (input tokens without BOS) x (output tokens), float64."""
    import torch

    n, m = len(input_ids), len(output_ids)
    if m == 0:
        return np.zeros((n - n_bos, 0))
    device = model.device
    seq = torch.tensor(input_ids + output_ids, device=device)
    targets = torch.tensor(output_ids, device=device)
    with torch.no_grad():
        base = model.get_input_embeddings()(seq).to(torch.float32)
    cols = []
    for start in range(0, m, batch):
        b = min(batch, m - start)
        length = n + start + b - 1  # the last target of this batch is predicted at position length - 1
        embs = base[:length].unsqueeze(0).repeat(b, 1, 1).requires_grad_(True)
        logits = model(inputs_embeds=embs).logits
        rows = torch.arange(b, device=device)
        pos = n + start + rows - 1  # y_m (at position n + m) is predicted from position n + m - 1
        probs = torch.softmax(logits[rows, pos].float(), dim=-1)[rows, targets[start:start + b]]
        (grad,) = torch.autograd.grad(probs.sum(), embs)
        cols.append((grad[:, n_bos:n] * embs.detach()[:, n_bos:n]).sum(-1).double().cpu())
        del logits, embs, grad
    return torch.cat(cols, 0).T.numpy()


def followed(response: str, prompt: dict) -> int | None:
    """Embedded: the task's checker (exact match of the first line, as in evaluation).
    Paper: a rating >= 2 (None if the prompt has neither an answer nor a rating, or rating <= 0)."""
    if "answer" in prompt:
        return int(exact_match(response.split("\n")[0], prompt["answer"]))
    rating = prompt.get("rating")
    if rating is None or rating <= 0:
        return None
    return int(rating >= 2)


def explain_prompts(model, tokenizer, prompts, name: str, fmt: str, max_new_tokens: int, batch: int):
    """Yield one attribution record (``itlab.interpret.matrices`` format) per prompt."""
    model = prepare(model)
    for p in prompts:
        text = format_prompt(p["prompt"], fmt, tokenizer)
        ids, n_bos = encode(tokenizer, text, fmt)
        out_ids = generate(model, tokenizer, ids, max_new_tokens)
        matrix = attribute(model, ids, out_ids, n_bos, batch)
        inp_tokens = tokenizer.convert_ids_to_tokens(ids[n_bos:])
        rec = {"id": p["id"], "set": p["set"], "model": name, "prompt": p["prompt"],
               "response": tokenizer.decode(out_ids, skip_special_tokens=True),
               "input_tokens": inp_tokens, "output_tokens": tokenizer.convert_ids_to_tokens(out_ids),
               "kind": "raw", "matrix": matrix, "span_error": p.get("span_error")}
        if rec["span_error"] is None:
            try:
                rec["instruction_mask"] = instruction_mask(text, p["instruction"], inp_tokens, tokenizer.tokenize)
            except SpanNotFound as err:
                rec["span_error"] = str(err)
        rec.setdefault("instruction_mask", None)
        for key in ("answer", "rating", "task"):
            if key in p:
                rec[key] = p[key]
        rec["followed"] = followed(rec["response"], p)
        yield rec
