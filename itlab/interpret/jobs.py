"""The two model-reading jobs of study D, called by the thin rule scripts."""

from __future__ import annotations

import pandas as pd

from itlab.io import atomic_path, read_jsonl


def _load(location: str, revision: str | None, trust_remote_code: bool, device: str, standin: bool | None = None):
    """A model and its tokenizer. A hub model is a mirror entry (a folder with a MANIFEST.json):
    read offline, and refused if it is of the other kind than ``mirror.standin`` says."""
    from pathlib import Path

    import torch

    from itlab.models import load_model, load_tokenizer

    if (Path(location) / "MANIFEST.json").exists():
        from itlab import hub

        hub.offline()
        manifest = hub.read_manifest(location, standin=standin)
        print(f"[itlab] {location}: {manifest.get('id')}@{manifest.get('commit')} (standin={manifest.get('standin')}, "
              f"content {str(manifest.get('content_sha256'))[:16]})")
        revision = None  # the mirror holds the pinned revision
    extra = {"revision": revision} if revision else {}
    tokenizer = load_tokenizer(location, trust_remote_code, **extra)
    model = load_model(location, trust_remote_code, dtype=torch.float32, **extra)
    if device == "cuda" and torch.cuda.is_available():
        model = model.to("cuda")
    return model, tokenizer


def use_chat_template_of(tokenizer, location: str, trust_remote_code: bool = False):
    """Give ``tokenizer`` the chat template the pair's tuned model (at ``location``) is read with:
    under ``prompt_format: chat`` both models of a pair must read the same text, and a base
    model has no template of its own (it would get itlab's, the tuned model its own)."""
    from itlab.models import load_tokenizer

    tokenizer.chat_template = load_tokenizer(location, trust_remote_code).chat_template
    return tokenizer


def attribute_job(prompts_path, out_path, p: dict) -> int:
    """Greedy responses + attribution matrices of one shard of the prompts for one model."""
    from itlab.interpret import matrices
    from itlab.interpret.attribution import explain_prompts

    prompts = read_jsonl(prompts_path)[p["shard"]::p["shards"]]
    if not p["rated"]:
        prompts = [{k: v for k, v in q.items() if k != "rating"} for q in prompts]
    model, tokenizer = _load(p["location"], p["revision"], p["trust_remote_code"], p["device"], p.get("standin"))
    if p.get("template_from"):
        use_chat_template_of(tokenizer, p["template_from"], p["trust_remote_code"])
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


def vocabulary_record(tokenizer, words: list[str]) -> dict:
    """What the head and FFN word lists are indexed by: the tokenizer's vocabulary (its SHA-256
    over token -> id) and the explained words, in order. Base and tuned must agree (analysis)."""
    import hashlib
    import json

    vocab = json.dumps(sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]), ensure_ascii=False)
    return {"tokenizer_size": len(tokenizer), "tokenizer_sha256": hashlib.sha256(vocab.encode()).hexdigest(),
            "words": list(words)}


def weights_job(heads_path, ffn_path, p: dict, vocabulary_path=None) -> None:
    """Head word counts and FFN components of one model (and the vocabulary they are over)."""
    from itlab.interpret import ffn, heads
    from itlab.interpret.words import embed_words

    model, tokenizer = _load(p["location"], p["revision"], p["trust_remote_code"], "cpu", p.get("standin"))
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
    if vocabulary_path is not None:
        from itlab.io import write_json

        write_json(vocabulary_path, vocabulary_record(tokenizer, vocab))
    print(f"{p['name']}: {len(vocab)} words; {counts.layer.nunique()} layers; {len(comps)} FFN components")
