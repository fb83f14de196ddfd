"""Mixtures, corpus, subsets, Markov grids and packing."""

import random
from collections import Counter

import pytest
import torch

from itlab import data, tasks
from itlab.train.loop import collate
from itlab.tasks import TaskParams, markov


def _train(names, n=50):
    return {t: data.synthesize_task(t, {"train": n, "validation": 5, "test": 5}, 1, TaskParams())["train"] for t in names}


def test_mixture_caps_and_proportions():
    available = {"a": 5000, "b": 800, "c": 40}
    counts = data.mixture_counts(available, cap=1000, total=None)
    assert counts == {"a": 1000, "b": 800, "c": 40}
    counts = data.mixture_counts(available, cap=1000, total=920)
    assert sum(counts.values()) == 920
    # proportional to the capped sizes 1000:800:40, within rounding
    for t, capped in {"a": 1000, "b": 800, "c": 40}.items():
        assert abs(counts[t] - 920 * capped / 1840) < 1
    assert all(counts[t] <= min(available[t], 1000) for t in counts)


def test_build_mixture_honours_cap_and_is_deterministic():
    train = _train(["add", "reverse", "is_palindrome"], n=60)
    mix = {"cap": 25, "clusters": "all", "exclude_clusters": [], "exclude_tasks": []}
    a = data.build_mixture(train, mix, seed=1, name="m")
    assert Counter(r["task"] for r in a) == {"add": 25, "reverse": 25, "is_palindrome": 25}
    assert a == data.build_mixture(train, mix, seed=1, name="m")
    assert a != data.build_mixture(train, mix, seed=2, name="m")


def test_heldout_tasks_never_in_a_mixture():
    clusters = {t: tasks.get(t).cluster for t in tasks.REGISTRY}
    heldout = {"dedupe", "subtract", "is_sorted"}
    for mix in ({"clusters": "all", "exclude_clusters": [], "exclude_tasks": []},
                {"clusters": ["strings", "arithmetic"], "exclude_clusters": [], "exclude_tasks": []},
                {"clusters": "all", "exclude_clusters": ["classify"], "exclude_tasks": ["add"]}):
        members = data.mixture_tasks(mix, clusters, heldout)
        assert members and not set(members) & heldout
        if mix["exclude_clusters"]:
            assert all(clusters[t] != "classify" for t in members) and "add" not in members


def test_nested_subsets_are_nested():
    recs = _train(["add"], n=200)["add"]
    subs = data.nested_subsets(recs, [8, 32, 128], seed=1, key="add")
    ids = {n: {r["id"] for r in s} for n, s in subs.items()}
    assert ids[8] < ids[32] < ids[128]
    with pytest.raises(ValueError):
        data.nested_subsets(recs, [500], seed=1, key="add")


def test_corpus_deterministic_and_contains_demos():
    a = data.build_corpus(["add", "reverse"], 20, 3, 1, 5, TaskParams(), "train")
    assert a == data.build_corpus(["add", "reverse"], 20, 3, 1, 5, TaskParams(), "train")
    assert a != data.build_corpus(["add", "reverse"], 20, 3, 1, 5, TaskParams(), "validation")
    assert all(doc.count("\nAnswer: ") == 3 for doc in a)


def test_corpus_task_weights_set_each_task_share_of_documents():
    """data.corpus.task_weights: a task of weight 0.25 gets a quarter of the documents of a task
    of weight 1 (binomial counts over 4,000 documents); no weights keeps the unweighted draw."""
    names = ["reverse", "uppercase", "add"]
    weights = {"reverse": 0.25, "add": 1.0}  # uppercase: the default 1

    def counts(docs):
        heads = {n: tasks.get(n).phrasings[0].partition("[")[0] for n in names}
        return {n: sum(doc.startswith(h) for doc in docs) for n, h in heads.items()}

    weighted = counts(data.build_corpus(names, 4000, 1, 0, 3, TaskParams(phrasing=0), "train",
                                        task_weights=weights))
    assert sum(weighted.values()) == 4000
    share = 0.25 / 2.25  # expected share of reverse: sd 0.005 at n = 4000
    assert abs(weighted["reverse"] / 4000 - share) < 0.02
    assert abs(weighted["uppercase"] - weighted["add"]) < 4000 * 0.06
    plain = data.build_corpus(names, 50, 2, 1, 3, TaskParams(), "train")
    assert data.build_corpus(names, 50, 2, 1, 3, TaskParams(), "train", task_weights={}) == plain


def test_corpus_independent_instructions_do_not_name_the_task():
    """With ``independent`` instructions a document's label says nothing about its task, so
    the base models must read the task from the demonstrations (data.corpus.instructions)."""
    names = ["reverse", "uppercase", "sort_letters", "dedupe"]
    heads = {n: {ph.partition("[")[0] for ph in tasks.get(n).phrasings} for n in names}

    def task_of(head):
        return next(n for n, h in heads.items() if head in h)

    def pairs(instructions):
        """(labelled task, true task) of every document, the true one from its answers."""
        out = []
        for doc in data.build_corpus(names, 400, 3, 0, 7, TaskParams(), "train", instructions):
            demos = [d for d in doc.split("\n\n") if "\nAnswer: " in d]
            labels = {task_of(d.partition("[")[0]) for d in demos}
            assert len(labels) == 1  # one task's instructions per document
            truths = {n for n in names if all(_answers(n, d) for d in demos)}
            out.append((labels.pop(), truths))
        return out

    own = pairs("task")
    assert all(label in truths for label, truths in own)
    independent = pairs("independent")
    mismatched = sum(label not in truths for label, truths in independent)
    # drawn independently of 4 tasks: the label is another task's ~3/4 of the time
    assert 0.6 < mismatched / len(independent) < 0.9
    with pytest.raises(ValueError, match="data.corpus.instructions"):
        data.build_corpus(names, 2, 1, 0, 7, TaskParams(), "train", "shuffled")


def _answers(task: str, demo: str) -> bool:
    """Whether ``demo`` (prompt and answer) is a correct demonstration of ``task``."""
    prompt, _, answer = demo.partition("\nAnswer: ")
    s = prompt[prompt.index("[") + 1:prompt.index("]")]
    expected = {"reverse": s[::-1], "uppercase": s.upper(), "sort_letters": "".join(sorted(s)),
                "dedupe": "".join(dict.fromkeys(s))}[task]
    return answer.strip() == expected


def test_markov_cell_test_rules_unseen_and_counts():
    p = markov.MarkovParams(noop_rate=0.3)
    train, test = data.markov_cell(20, 5, 10, 200, 1, p, skew=0.0)
    assert len(train) == 100 and len(test) == 200
    assert not {r["rule"] for r in train} & {r["rule"] for r in test}
    assert len({r["rule"] for r in train}) == 20
    noop_share = sum(r["inputs"]["noop"] == "True" for r in train) / len(train)
    assert 0.15 < noop_share < 0.45
    for r in train + test:
        assert r["answer"] == markov.rewrite(r["inputs"]["x"], r["inputs"]["y"], r["inputs"]["z"])
        assert (r["answer"] == r["inputs"]["z"]) or r["inputs"]["noop"] == "False"


def test_examples_per_rule_skew():
    flat = markov.examples_per_rule(10, 100, 0.0)
    assert flat == [10] * 10
    skewed = markov.examples_per_rule(10, 100, 1.5)
    assert sum(skewed) == 100 and min(skewed) >= 1 and skewed == sorted(skewed, reverse=True) and skewed[0] > 30


@pytest.mark.parametrize("family,check", [
    ("repeated", lambda x, k: x == x[0] * k),
    ("periodic", lambda x, k: all(x[i] == x[i % k] for i in range(len(x)))),
    ("mirrored", lambda x, k: x == x[::-1] and len(x) == 2 * k),
])
def test_rule_families(family, check):
    p = markov.MarkovParams(family=family, family_k=2)
    rng = random.Random(0)
    for x, _ in markov.sample_rules(rng, p, 20):
        assert check(x, 2), x


def test_packing_is_equivalent_to_separate_examples():
    """Packed rows with restarting position ids give the same per-example loss as unpacked rows:
    transformers builds a block-diagonal mask, so examples never attend to each other."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=4)).eval()
    rng = random.Random(0)
    examples = []
    for _ in range(6):
        n = rng.randint(4, 12)
        ids = [rng.randrange(3, 50) for _ in range(n)]
        examples.append((ids, [-100] * 2 + ids[2:]))
    rows = data.pack(examples, seq_len=32, pad_id=0)
    assert len(rows) < len(examples)  # something was packed
    assert sum(sum(l != -100 for l in r["labels"]) for r in rows) == sum(len(e[0]) - 2 for e in examples)

    def summed_loss(row):
        batch = collate([row], pad=0, device="cpu")  # the training loop's own batching
        labels = batch.pop("labels")[0, 1:]
        logits = model(**batch).logits[0, :-1]
        return torch.nn.functional.cross_entropy(logits, labels, ignore_index=-100, reduction="sum")

    with torch.no_grad():
        packed = sum(summed_loss(r) for r in rows)
        separate = sum(summed_loss({"input_ids": i, "labels": lab, "position_ids": list(range(len(i)))})
                       for i, lab in examples)
    assert torch.allclose(packed, separate, rtol=1e-4), (packed, separate)


def _first_fit(examples, seq_len):
    """First-fit decreasing by a scan of every bin: the reference ``data.pack`` must match."""
    bins = []
    for ids, _ in sorted(examples, key=lambda e: -len(e[0])):
        ids = ids[:seq_len]
        for b in bins:
            if len(b) + len(ids) <= seq_len:
                break
        else:
            b = []
            bins.append(b)
        b += ids
    return bins


@pytest.mark.parametrize("seed,count", [(0, 1), (1, 7), (2, 300), (3, 1000)])
def test_packing_places_every_example_where_first_fit_would(seed, count):
    """The tree search finds the same bin as scanning: rows identical, none over seq_len, all kept."""
    rng = random.Random(seed)
    seq_len = 24
    examples = []
    for i in range(count):
        n = rng.choice([0, 1, rng.randint(2, 12), seq_len, seq_len + 5])  # empty and over-long too
        examples.append(([1000 * i + j for j in range(n)], ([-100] + list(range(1, n)))[:n]))
    rows = data.pack(examples, seq_len, pad_id=-1)
    assert [[t for t in r["input_ids"] if t != -1] for r in rows] == _first_fit(examples, seq_len)
    assert all(len(r["input_ids"]) == len(r["labels"]) == len(r["position_ids"]) == seq_len for r in rows)
    kept = sorted(t for r in rows for t in r["input_ids"] if t != -1)
    assert kept == sorted(t for ids, _ in examples for t in ids[:seq_len])


def test_mixture_formats():
    train = _train(["add", "reverse"], n=40)
    base = {"cap": 40, "clusters": "all", "exclude_clusters": [], "exclude_tasks": []}
    regular = data.build_mixture(train, {**base, "format": "regular"}, 1, "m")
    corrupted = data.build_mixture(train, {**base, "format": "corrupted"}, 1, "m")
    assert sorted(r["prompt"] for r in corrupted) == sorted(r["prompt"] for r in regular)
    mismatched = sum(r["prompt"] != next(x for x in train[r["task"]] if x["id"] == r["id"])["prompt"] for r in corrupted)
    assert mismatched > len(corrupted) // 2
    sg = data.build_mixture(train, {**base, "format": "samplegen"}, 1, "m")
    for r in sg:
        gold = next(x for x in train[r["task"]] if x["id"] == r["id"])
        assert r["answer"].endswith(f"Answer: {gold['answer']}") and r["answer"].count("Example: ") == 2
        assert gold["prompt"] not in r["answer"]  # the examples are other items of the same task
