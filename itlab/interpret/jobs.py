"""The two model-reading jobs of study D, called by the thin rule scripts."""

from __future__ import annotations

import pandas as pd

from itlab.io import atomic_path, read_jsonl


def _load(location: str, revision: str | None, trust_remote_code: bool, device: str):
    import torch

    from itlab.models import load_model, load_tokenizer

    extra = {"revision": revision} if revision else {}
    tokenizer = load_tokenizer(location, trust_remote_code, **extra)
    model = load_model(location, trust_remote_code, dtype=torch.float32, **extra)
    if device == "cuda" and torch.cuda.is_available():
        model = model.to("cuda")
    return model, tokenizer


def attribute_job(prompts_path, out_path, p: dict) -> int:
    """Greedy responses + attribution matrices of one shard of the prompts for one model."""
    from itlab.interpret import matrices
    from itlab.interpret.attribution import explain_prompts

    prompts = read_jsonl(prompts_path)[p["shard"]::p["shards"]]
    if not p["rated"]:
        prompts = [{k: v for k, v in q.items() if k != "rating"} for q in prompts]
    model, tokenizer = _load(p["location"], p["revision"], p["trust_remote_code"], p["device"])
    records = explain_prompts(model, tokenizer, prompts, p["name"], p["prompt_format"], p["max_new_tokens"],
                              p["batch"])
    n = matrices.write(out_path, records)
    print(f"{p['name']} shard {p['shard']}/{p['shards']}: {n} responses attributed")
    return n


def _vocabulary(spec, tokenizer, extra) -> list[str]:
    from itlab.interpret import words as w

    if isinstance(spec, list):
        base = spec
    elif spec == "tokenizer":
        base = w.tokenizer_words(tokenizer)
    else:
        base = w.read_vocabulary(spec)
    return list(dict.fromkeys(list(base) + list(extra)))  # order kept, duplicates dropped


def weights_job(heads_path, ffn_path, p: dict) -> None:
    """Head word counts and FFN components of one model."""
    from itlab.interpret import ffn, heads
    from itlab.interpret.words import embed_words

    model, tokenizer = _load(p["location"], p["revision"], p["trust_remote_code"], "cpu")
    wl = p["words"]
    targets = wl["instruction"] + wl["general"]
    cat_words = [x for ws in wl["categories"].values() for x in ws]
    vocab = _vocabulary(wl["vocabulary"], tokenizer, targets + cat_words)
    e_in, e_out = embed_words(model, tokenizer, vocab)
    counts = heads.word_counts(model, e_in, vocab, targets, p["heads_top_k"])
    comps = ffn.components(model, e_out, vocab, p["ffn_top_k"], p["ffn_components"])
    for path, frame in ((heads_path, counts), (ffn_path, comps)):
        with atomic_path(path) as tmp:
            pd.DataFrame(frame).to_csv(tmp, sep="\t", index=False)
    print(f"{p['name']}: {len(vocab)} words; {counts.layer.nunique()} layers; {len(comps)} FFN components")
