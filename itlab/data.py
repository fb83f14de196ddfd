"""Data: task splits, instruction mixtures, the pretraining corpus, nested subsets,
Markov rule grids, and packing of tokenized examples into full sequences."""

from __future__ import annotations

import hashlib
import random

from itlab import tasks as task_registry
from itlab.tasks import TaskParams
from itlab.tasks import markov


def rng_for(*keys) -> random.Random:
    """A generator seeded by a stable hash of ``keys`` (Python's hash() is salted per process)."""
    digest = hashlib.sha256("\x1f".join(map(str, keys)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


DOC_SEPARATOR = "\n\x1e\n"  # between corpus documents (record separator: never in a document)


# ---- splits ---------------------------------------------------------------------------
def synthesize_task(name: str, sizes: dict, seed: int, params: TaskParams) -> dict[str, list[dict]]:
    """Train/validation/test examples of one task with no input shared across splits.

    When the input space is too small for the requested sizes, the splits are smaller;
    the manifest records the real counts.
    """
    task = task_registry.get(name)
    rng = rng_for("task", name, seed)
    seen: set[tuple] = set()
    out: dict[str, list[dict]] = {}
    for split in ("test", "validation", "train"):  # test first: it must be complete
        records, misses = [], 0
        while len(records) < sizes[split] and misses < 50 * sizes[split] + 100:
            ex = task.example(rng, params)
            key = tuple(sorted(ex["inputs"].items()))
            if key in seen:
                misses += 1
                continue
            seen.add(key)
            ex["id"] = f"{name}-{split}-{len(records)}"
            records.append(ex)
        out[split] = records
    return out


def format_plain(prompt: str, answer: str | None = None) -> str:
    """The base-model format, shared by the corpus and the base evaluation conditions."""
    text = f"{prompt}\nAnswer:"
    return text if answer is None else f"{text} {answer}"


def load_hub_task(name: str, spec: dict, split: str, limit: int | None = None, seed: int = 0,
                  rows=None) -> list[dict]:
    """Paper scale: rows of a Hugging Face data set rendered into itlab's record format
    (``rows``: the split, already read from the mirror; else loaded from the hub).

    ``limit``: a seeded sample of that many rows (stratified by label for tasks with
    ``choices``), never the first rows of the split. Ids keep the row's index in the split.
    """
    if rows is None:
        from datasets import load_dataset

        rows = load_dataset(spec["dataset"], spec.get("subset"), split=spec[f"{split}_split"])
    ds = rows
    keep = list(range(len(ds)))
    labels = None
    if spec.get("choices"):  # unlabelled rows (e.g. GLUE test splits) are never evaluated
        all_labels = [int(v) for v in ds[spec["label_field"]]]
        keep = [i for i in keep if all_labels[i] >= 0]
        labels = [all_labels[i] for i in keep]
    if limit is not None:
        keep = [keep[j] for j in subsample(len(keep), limit, seed, f"{name}/{split}", labels)]
    from itlab.templates import render_row

    records = []
    for i in keep:
        prompt, answer = render_row(spec, ds[i])
        extra = {"label": answer} if spec.get("choices") else {}  # evaluation subsamples stratify by it
        records.append({"task": name, "cluster": spec["cluster"], "phrasing": 0, "id": f"{name}-{split}-{i}",
                        "prompt": prompt, "answer": answer, "inputs": {}, **extra})
    return records


def carve_test(train, n: int, task: str, seed: int, key: str):
    """(train, test) of a data set with no test split: ``n`` rows of a seeded permutation of
    the training split become the test split and leave training (the same rows every run)."""
    from itlab.errors import HubError

    if n >= len(train):
        raise HubError(key, f"carving {n} test rows leaves no training rows ({len(train)} in the training split)")
    order = list(range(len(train)))
    rng_for("carve-test", task, seed).shuffle(order)
    test_idx = sorted(order[:n])
    held = set(test_idx)
    return train.select([i for i in range(len(train)) if i not in held]), train.select(test_idx)


# ---- evaluation samples -----------------------------------------------------------------
def subsample(n_items: int, limit: int | None, seed: int, key: str, labels: list | None = None) -> list[int]:
    """Indices of an evaluation subsample: a seeded shuffle, never the first ``limit`` rows
    (hub splits can be sorted by label: imdb's test split is all negative, then all positive).

    With ``labels``, stratified: each label gets its share of ``limit`` (largest remainders
    take the rounding), drawn at random within the label. The indices come back in a seeded
    random order (labels interleaved). ``limit`` None or >= n_items: every row, shuffled.
    """
    rng = rng_for("subsample", key, seed)
    order = list(range(n_items))
    rng.shuffle(order)
    if limit is None or limit >= n_items:
        return order
    if labels is None:
        return order[:limit]
    groups: dict = {}
    for i in order:  # each group in shuffled order
        groups.setdefault(labels[i], []).append(i)
    keys = sorted(groups, key=str)
    raw = {k: limit * len(groups[k]) / n_items for k in keys}
    take = {k: int(raw[k]) for k in keys}
    for k in sorted(keys, key=lambda k: (raw[k] - take[k], str(k)), reverse=True)[: limit - sum(take.values())]:
        take[k] += 1
    chosen = [i for k in keys for i in groups[k][: take[k]]]
    rng.shuffle(chosen)
    return chosen


def fewshot_draws(test: list[dict], pool: list[dict], k: int, seed: int, key: str) -> list[list[int]]:
    """For each test item, ``k`` pool indices drawn with a seed of its own (the same item gets
    the same examples in every run and every subsample), never the item itself (same id or
    same prompt: a pool that overlaps the test split cannot show an item its own answer)."""
    out = []
    for item in test:
        allowed = [j for j, r in enumerate(pool) if r.get("id") != item.get("id") and r["prompt"] != item["prompt"]]
        if len(allowed) < k:
            raise ValueError(f"{key}: {k} in-context examples asked, only {len(allowed)} available for "
                             f"item {item.get('id')!r}")
        out.append(rng_for("fewshot", key, seed, item.get("id"), item["prompt"]).sample(allowed, k))
    return out


# ---- mixtures -------------------------------------------------------------------------
def mixture_tasks(mix: dict, task_clusters: dict[str, str], heldout: set[str]) -> list[str]:
    """Tasks of a mixture: its clusters (or its task_counts), minus exclusions, never a held-out task."""
    if mix.get("task_counts"):
        return sorted(t for t in mix["task_counts"] if t not in heldout)
    return sorted(
        t for t, c in task_clusters.items()
        if (mix["clusters"] == "all" or c in mix["clusters"])
        and c not in mix["exclude_clusters"] and t not in mix["exclude_tasks"] and t not in heldout
    )


def mixture_counts(available: dict[str, int], cap: int, total: int | None, seed=0) -> dict[str, int]:
    """Examples-proportional mixing: each task contributes min(n, cap); with ``total``, the
    capped sizes are scaled down proportionally (largest remainders get the rounding)."""
    capped = {t: min(n, cap) for t, n in available.items()}
    if total is None or total >= sum(capped.values()):
        return capped
    raw = {t: total * n / sum(capped.values()) for t, n in capped.items()}
    counts = {t: int(r) for t, r in raw.items()}
    for t in sorted(raw, key=lambda t: (raw[t] - counts[t], t), reverse=True)[: total - sum(counts.values())]:
        counts[t] += 1
    return counts


def build_mixture(train: dict[str, list[dict]], mix: dict, seed: int, name: str) -> list[dict]:
    if mix.get("task_counts"):
        counts = {t: min(len(train[t]), mix["task_counts"].get(t, 0)) for t in train}
    else:
        counts = mixture_counts({t: len(r) for t, r in train.items()}, mix["cap"], mix.get("total"))
    rng = rng_for("mixture", name, seed)
    out = []
    for t in sorted(train):
        chosen = rng.sample(train[t], counts[t])
        if mix.get("format") == "samplegen":
            chosen = [samplegen(r, [x for x in train[t] if x["id"] != r["id"]], rng) for r in chosen]
        out.extend(chosen)
    if mix.get("format") == "corrupted":  # instructions no longer match their answers
        prompts = [r["prompt"] for r in out]
        rng.shuffle(prompts)
        out = [dict(r, prompt=p, corrupted=True) for r, p in zip(out, prompts)]
    rng.shuffle(out)
    return out


SAMPLEGEN_ANSWER = "Answer:"  # marks the final answer of a SampleGen response, after its examples


def samplegen(record: dict, pool: list[dict], rng: random.Random) -> dict:
    """SampleGen format: the response first writes two examples of the task, then answers
    (over several lines: evaluation scores the text after the last ``SAMPLEGEN_ANSWER``)."""
    shots = rng.sample(pool, 2)
    demo = "\n".join(f"Example: {s['prompt']} -> {s['answer']}" for s in shots)
    return dict(record, answer=f"{demo}\n{SAMPLEGEN_ANSWER} {record['answer']}", format="samplegen")


# ---- nested subsets (study E) ---------------------------------------------------------
def nested_subsets(records: list[dict], sizes: list[int], seed: int, key: str) -> dict[int, list[dict]]:
    """Subsets of a seeded permutation's prefixes: every smaller one lies inside every larger."""
    if max(sizes) > len(records):
        raise ValueError(f"subset size {max(sizes)} exceeds the {len(records)} training examples")
    order = list(records)
    rng_for("subset", key, seed).shuffle(order)
    return {n: order[:n] for n in sizes}


# ---- pretraining corpus ---------------------------------------------------------------
FILLER_WORDS = ("the model reads a list of letters and numbers then it writes an answer "
                "each task has a short instruction and one line of output some words are "
                "long and some are short").split()


def build_corpus(task_names: list[str], documents: int, demos: int, filler: int, seed: int,
                 params: TaskParams, split: str, instructions: str = "task",
                 task_weights: dict[str, float] | None = None) -> list[str]:
    """Documents of task demonstrations in the plain format, with filler sentences.

    Demonstrations are sampled fresh (not from the evaluation splits), so the base models
    learn the tasks in context the way pretraining data teaches real models. ``instructions``
    (config ``data.corpus.instructions``): ``task``, every demonstration carries its own
    task's instruction, so a base model can follow an instruction before any tuning;
    ``independent``, a document's demonstrations all carry the instruction of a task drawn
    independently of theirs, so the base model must infer the task from the examples, and
    following an instruction is what tuning adds (the distinction studies A and D measure).

    ``task_weights`` (config ``data.corpus.task_weights``): a task's relative share of the
    documents (default 1), so that some tasks are rare in pretraining, as in real corpora.
    """
    if instructions not in ("task", "independent"):
        raise ValueError(f"data.corpus.instructions: {instructions!r} is not one of task, independent")
    rng = rng_for("corpus", split, seed)
    weights = [task_weights.get(t, 1.0) for t in task_names] if task_weights else None
    docs = []
    for _ in range(documents):
        parts = [" ".join(rng.choice(FILLER_WORDS) for _ in range(rng.randint(5, 12))) + "."
                 for _ in range(filler)]
        # one task per document: in-context structure. Without weights the draw is rng.choice's,
        # so a corpus without task_weights is the one earlier versions built
        name = rng.choices(task_names, weights)[0] if weights else rng.choice(task_names)
        task = task_registry.get(name)
        label = None
        if instructions == "independent":
            label = task_registry.get(rng.choice(task_names)).example(rng, params)["prompt"]
        for _ in range(demos):
            ex = task.example(rng, params)
            prompt = ex["prompt"] if label is None else _relabel(ex["prompt"], label)
            parts.append(format_plain(prompt, ex["answer"]))
        docs.append("\n\n".join(parts))
    return docs


def _relabel(prompt: str, other: str) -> str:
    """``prompt`` with the instruction (the text before its first ``[``) of ``other``."""
    head, bracket, rest = prompt.partition("[")
    other_head = other.partition("[")[0]
    if not bracket or "[" not in other:
        raise ValueError(f"an instruction is the text before the inputs' '[': {prompt!r}, {other!r}")
    return other_head + bracket + rest


# ---- Markov rule grids (study B) ------------------------------------------------------
def markov_cell(num_rules: int, per_rule: int, test_rules: int, test_examples: int, seed: int,
                p: markov.MarkovParams, skew: float, template: str | None = None) -> tuple[list[dict], list[dict]]:
    """Training examples over ``num_rules`` rules and test examples over unseen rules.

    ``template``: the prompt, a format string over x, y and z (default: the suite's first phrasing).

    The test rules are drawn first from a seed that does not depend on the cell, so every
    cell of a grid is tested on the same unseen rules.
    """
    test_rng = rng_for("markov-test", seed)
    held = markov.sample_rules(test_rng, p, test_rules)
    rng = rng_for("markov-train", num_rules, per_rule, seed)
    rules = markov.sample_rules(rng, p, num_rules, exclude=frozenset(held))
    counts = markov.examples_per_rule(num_rules, num_rules * per_rule, skew)

    def record(rule, i, split):
        inst = markov.make_instance(rng if split == "train" else test_rng, p, rule)
        phrasing = 0
        return {"task": "markov_rewrite", "cluster": "rewriting", "phrasing": phrasing, "id": f"{split}-{i}",
                "prompt": (template or markov.PHRASINGS[phrasing]).format(**inst), "inputs": inst,
                "answer": markov.rewrite(inst["x"], inst["y"], inst["z"]), "rule": f"{rule[0]}->{rule[1]}"}

    train = [record(r, i, "train") for r, c in zip(rules, counts) for i in range(c)]
    rng.shuffle(train)
    test = [record(held[i % len(held)], i, "test") for i in range(test_examples)]
    return train, test


# ---- packing --------------------------------------------------------------------------
def tokenize_example(tokenizer, record: dict, chat: bool) -> tuple[list[int], list[int]]:
    """Token ids and labels (-100 on the prompt) of one instruction example."""
    if chat:
        prompt_ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": record["prompt"]}], add_generation_prompt=True, tokenize=True,
            return_dict=False)
        full = prompt_ids + tokenizer.encode(record["answer"], add_special_tokens=False) + [tokenizer.eos_token_id]
    else:
        prompt_ids = tokenizer.encode(format_plain(record["prompt"]), add_special_tokens=False)
        full = prompt_ids + tokenizer.encode(" " + record["answer"], add_special_tokens=False) + [tokenizer.eos_token_id]
    labels = [-100] * len(prompt_ids) + full[len(prompt_ids):]
    return full, labels


def pack(examples: list[tuple[list[int], list[int]]], seq_len: int, pad_id: int) -> list[dict]:
    """Greedy first-fit packing into sequences of ``seq_len`` tokens, longest examples first.

    Each example keeps its own position ids (restarting at 0), from which transformers
    builds a block-diagonal causal mask, so packed examples never attend to each other.
    Examples longer than ``seq_len`` are truncated. The first bin with room is found in a
    max-tree of the bins' free space, O(log n) per example; scanning the bins was quadratic
    (``benchmarks/pack_speed.py``: 3.4 s against 0.28 s for 39k examples, ~40 min by
    extrapolation for the paper's study B at 10^6, where the tree takes 8 s).
    """
    order = sorted(examples, key=lambda e: -len(e[0]))
    size = 1
    while size < max(1, len(order)):
        size *= 2
    free = [seq_len] * (2 * size)  # leaves: each bin's free tokens (unopened bins: all); inner: max of children
    bins: list[dict] = []
    for ids, labels in order:
        ids, labels = ids[:seq_len], labels[:seq_len]
        node = 1
        while node < size:  # the leftmost bin with room: an open one if any fits, else the next new one
            node = 2 * node if free[2 * node] >= len(ids) else 2 * node + 1
        index = node - size
        if index == len(bins):
            bins.append({"input_ids": [], "labels": [], "position_ids": []})
        b = bins[index]
        b["input_ids"] += ids
        b["labels"] += labels
        b["position_ids"] += list(range(len(ids)))
        free[node] -= len(ids)
        while node > 1:
            node //= 2
            free[node] = max(free[2 * node], free[2 * node + 1])
    for b in bins:  # pad to a rectangle; padding is its own "example" and has no loss
        n = seq_len - len(b["input_ids"])
        b["input_ids"] += [pad_id] * n
        b["labels"] += [-100] * n
        b["position_ids"] += list(range(n))
    return bins


def pad_batches(examples: list[tuple[list[int], list[int]]], pad_id: int,
                seq_len: int | None = None) -> list[dict]:
    """The unpacked alternative (one example per row, padded later), each truncated to ``seq_len``
    tokens as packing truncates them."""
    return [{"input_ids": ids[:seq_len], "labels": labels[:seq_len], "position_ids": list(range(len(ids[:seq_len])))}
            for ids, labels in examples]
