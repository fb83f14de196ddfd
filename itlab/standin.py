"""Stand-ins for hub entries (``mirror.standin: true``): what fills the mirror when nothing
can be downloaded. Per model a tiny randomly initialised model of the real architecture class
with a small tokenizer of the same kind and special tokens (``itlab/fixtures/models.yaml``),
per data set rows generated from its real schema (``itlab/fixtures/datasets/*.yaml``, each
naming its card). Apart from ``itlab.hub`` (names, paths, real fetches, schema checks) because
it needs torch and transformers, which the jobs that only read mirror paths do not."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from itlab.hub import FIXTURES, HubError, _atomic_dir, _splits_info, _write_manifest, entry_key


# ---- models -------------------------------------------------------------------------------------
def model_table() -> dict:
    return yaml.safe_load((FIXTURES / "models.yaml").read_text())["models"]


def standin_model(hub_id: str, dest: str | Path, key: str = "model", seed: int = 0) -> dict:
    """A tiny randomly initialised model of the hub model's architecture class, with a small
    tokenizer of the same kind and special tokens, and the real chat template or none."""
    import torch
    import transformers

    table = model_table()
    if hub_id not in table:
        raise HubError(key, f"{hub_id} has no stand-in entry in itlab/fixtures/models.yaml (known: {', '.join(sorted(table))})")
    spec = table[hub_id]
    dest = Path(dest)
    with _atomic_dir(dest) as tmp:
        tok = standin_tokenizer(spec)
        tok.save_pretrained(tmp)
        cfg_cls = getattr(transformers, spec["config_class"])
        special = {f"{k}_token_id": tok.convert_tokens_to_ids(v) for k, v in spec["special_tokens"].items()
                   if k in ("bos", "eos", "pad") and v}
        config = cfg_cls(vocab_size=len(tok), architectures=[spec["architecture"]], **spec["tiny"], **special)
        torch.manual_seed(seed + spec.get("seed_offset", 0))  # a tuned stand-in: its base's shape, other weights
        model = getattr(transformers, spec["architecture"])(config)
        model.save_pretrained(tmp, safe_serialization=True)
        return _write_manifest(tmp, {"id": hub_id, "revision": "standin", "commit": standin_version("model", hub_id, seed),
                                     "kind": "model",
                                     "standin": True, "architecture": spec["architecture"], "source": spec["source"]})


GENERATOR_VERSION = 3  # bump when the stand-in generators change: stand-ins are rebuilt


def standin_version(kind: str, hub_id: str, *args) -> str:
    """The 'commit' of a stand-in: a hash of its fixture (or table entry) and generator, so
    that a changed fixture rebuilds the entry and a reused one is the same."""
    if kind == "asset":  # hub_id: the asset name; the stand-in's source file, if any
        src = FIXTURES / "assets" / f"{hub_id}.py"
        spec = hashlib.sha256(src.read_bytes()).hexdigest() if src.exists() else None
    else:
        spec = model_table().get(hub_id) if kind == "model" else dataset_fixture(hub_id)
    text = json.dumps([GENERATOR_VERSION, kind, hub_id, spec, *args], sort_keys=True, default=str)
    return "standin-" + hashlib.sha256(text.encode()).hexdigest()[:12]


STANDIN_TEXT = ("the quick brown fox jumps over the lazy dog def return print import class yes no maybe "
                "question answer premise hypothesis sentence review positive negative 0 1 2 3 4 5 6 7 8 9 "
                "( ) [ ] { } : , . ; = + - * / < > _ ' \" \n").split(" ")


def standin_tokenizer(spec: dict, vocab_size: int = 400):
    """A small trained tokenizer of the real one's kind: ``sentencepiece`` (Metaspace BPE with
    byte fallback, as Llama-2/Mistral) or ``byte_bpe`` (byte-level BPE, as Llama-3/GPT-2/Qwen)."""
    import random

    import transformers
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    kind, sp = spec["tokenizer"], spec["special_tokens"]
    specials = [t for t in dict.fromkeys([sp.get("unk"), sp.get("bos"), sp.get("eos"), sp.get("pad"),
                                          *spec.get("extra_special_tokens", [])]) if t]
    rng = random.Random(0)
    corpus = [" ".join(rng.choice(STANDIN_TEXT) for _ in range(30)) for _ in range(400)]
    if kind == "sentencepiece":
        tok = Tokenizer(models.BPE(unk_token=sp.get("unk"), byte_fallback=True, fuse_unk=True))
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        # trained split at word boundaries, as SentencePiece is: "▁" only starts a piece, never ends
        # one ("e▁", ".▁"), so a word's tokens do not depend on the next word; used without a
        # pre-tokenizer, as Llama-2/Mistral's tokenizer.json is
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
        alphabet = [f"<0x{i:02X}>" for i in range(256)]
        trainer = trainers.BpeTrainer(vocab_size=vocab_size + 256, special_tokens=specials + alphabet,
                                      show_progress=False)
    elif kind == "byte_bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}")
    tok.train_from_iterator(corpus, trainer)
    if kind == "sentencepiece":
        tok.pre_tokenizer = None
    cls = getattr(transformers, spec.get("tokenizer_class", "PreTrainedTokenizerFast"))
    kwargs = {f"{k}_token": v for k, v in sp.items() if v}
    extra = [t for t in spec.get("extra_special_tokens", []) if t not in sp.values()]
    fast = cls(tokenizer_object=tok, **kwargs, **({"additional_special_tokens": extra} if extra else {}))
    fast.chat_template = spec.get("chat_template") or None  # base models bring none
    fast.add_bos_token = bool(spec.get("add_bos_token", False))
    return fast


# ---- data sets ----------------------------------------------------------------------------------
def dataset_fixture(hub_id: str) -> dict:
    path = FIXTURES / "datasets" / f"{entry_key(hub_id)}.yaml"
    return yaml.safe_load(path.read_text()) if path.exists() else {}


def fixture_subset(fixture: dict, subset: str | None, key: str) -> dict:
    subsets = fixture["subsets"]
    name = subset if subset is not None else fixture.get("default_subset", next(iter(subsets)))
    if name not in subsets:
        raise HubError(key, f"subset {subset!r} is not a configuration of {fixture['dataset']} "
                            f"(its card lists: {', '.join(map(str, subsets))})")
    return subsets[name]


def features_from_spec(spec: dict):
    from datasets import ClassLabel, Features, List, Value

    def one(s):
        if isinstance(s, str):
            return Value(s)
        if "class_label" in s:
            return ClassLabel(names=s["class_label"])
        if "list" in s:
            return List(one(s["list"]))
        if "sequence_of" in s:  # HF Sequence of a dict: a dict of lists
            return {k: List(one(v)) for k, v in s["sequence_of"].items()}
        if "struct" in s:
            return {k: one(v) for k, v in s["struct"].items()}
        raise ValueError(f"bad feature spec {s!r}")

    return Features({k: one(v) for k, v in spec.items()})


def _value(feature, rng, words):
    from datasets import ClassLabel, List, Value

    if isinstance(feature, ClassLabel):
        return rng.randrange(feature.num_classes)
    if isinstance(feature, List):
        return [_value(feature.feature, rng, words) for _ in range(rng.randint(2, 3))]
    if isinstance(feature, dict):
        if all(isinstance(v, List) for v in feature.values()):  # dict of lists: equal lengths
            n = rng.randint(2, 3)
            return {k: [_value(v.feature, rng, words) for _ in range(n)] for k, v in feature.items()}
        return {k: _value(v, rng, words) for k, v in feature.items()}
    assert isinstance(feature, Value)
    if feature.dtype == "string":
        return " ".join(rng.choice(words) for _ in range(rng.randint(2, 8)))
    if feature.dtype == "bool":
        return rng.random() < 0.5
    if feature.dtype.startswith("float"):
        return round(rng.random(), 3)
    return rng.randint(0, 3)


def standin_dataset(hub_id: str, subset: str | None, dest: str | Path, rows: int, key: str = "dataset",
                    seed: int = 0) -> dict:
    """A small data set with the real schema (subset, splits, columns, types, label names)."""
    from datasets import Dataset, DatasetDict

    from itlab.data import rng_for

    fixture = dataset_fixture(hub_id)
    if not fixture:
        raise HubError(key, f"{hub_id} has no stand-in fixture (add itlab/fixtures/datasets/{entry_key(hub_id)}.yaml "
                            "from its data set card)")
    sub = fixture_subset(fixture, subset, key)
    features = features_from_spec(sub["features"])
    words = fixture.get("words", STANDIN_TEXT[:-1])
    splits = {}
    for split in sub["splits"]:
        n = sub.get("rows", {}).get(split, rows)
        rng = rng_for("standin", hub_id, subset, split, seed)
        fixed = sub.get("examples", [])
        data = [dict(fixed[i % len(fixed)]) if fixed else
                {c: _value(f, rng, words) for c, f in features.items()} for i in range(n)]
        for i, row in enumerate(data):
            for col, fmt in sub.get("unique", {}).items():  # ids that must differ per row
                row[col] = fmt.format(split=split, i=i)
        splits[split] = Dataset.from_list(data, features=features)
    ds = DatasetDict(splits)
    dest = Path(dest)
    with _atomic_dir(dest) as tmp:
        ds.save_to_disk(str(tmp))
        return _write_manifest(tmp, {"id": hub_id, "subset": subset, "revision": "standin",
                                     "commit": standin_version("dataset", hub_id, subset, rows, seed),
                                     "kind": "dataset", "standin": True, "card": fixture["card"],
                                     "splits": _splits_info(ds)})


