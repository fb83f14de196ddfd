"""What feeds the scores: SampleGen responses scored on their final answer, seeded and
stratified evaluation subsamples, per-item in-context examples. The evaluation runs through
lm-eval itself with an oracle model that answers every item right in a given format."""

import json
import re
from collections import Counter

import pytest

from itlab import data
from itlab.io import read_jsonl, write_jsonl


def _records(split, n, label=None):
    return [{"task": "t", "cluster": "c", "phrasing": 0, "id": f"{split}-{i}", "prompt": f"Q {split}-{i}: say {i}",
             "answer": str(i), "inputs": {}, **({"label": label(i)} if label else {})} for i in range(n)]


class Oracle:
    """An lm-eval model that knows every answer and writes it in ``style`` (SampleGen: two
    examples, then the answer), cut at the request's stop sequences as generation is."""

    def __init__(self, style="regular"):
        from lm_eval.api.model import LM

        class _LM(LM):
            def generate_until(inner, requests, disable_tqdm=False):
                out = []
                for r in requests:
                    context, kwargs = r.args
                    self.contexts.append(context)
                    i = re.findall(r"Q test-(\d+):", context)[-1]  # the evaluated item comes last
                    text = f" {i}" if style == "regular" else f"Example: Q 1 -> 1\nExample: Q 2 -> 2\nAnswer: {i}"
                    for stop in kwargs.get("until") or []:
                        text = text.split(stop)[0]
                    out.append(text)
                return out

            def loglikelihood(inner, requests):
                raise NotImplementedError

            def loglikelihood_rolling(inner, requests):
                raise NotImplementedError

            def apply_chat_template(inner, chat_history, add_generation_prompt=True):
                turns = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in chat_history)
                return turns + ("<|assistant|>\n" if add_generation_prompt else "")

            @property
            def tokenizer_name(inner):
                return "oracle"

        self.contexts = []
        self.lm = _LM()


def _evaluate(tmp_path, items, style="regular", answer_format="regular", k=0, max_items=None, n_test=12,
              label=None, pool=None):
    from itlab.evaluate import run

    write_jsonl(tmp_path / "test.jsonl", _records("test", n_test, label))
    write_jsonl(tmp_path / "train.jsonl", pool if pool is not None else _records("train", 30))
    files = {"t": {"test": str(tmp_path / "test.jsonl"), "fewshot": str(tmp_path / "train.jsonl")}}
    oracle = Oracle(style)
    scores = run("oracle", items, files, k, 4, 8, max_items, tmp_path / "out", answer_format=answer_format,
                 lm=oracle.lm, seed=5)
    samples = list(read_jsonl(tmp_path / "out" / "samples.jsonl"))
    return scores, samples, oracle


def _score(scores, condition, metric="exact_match"):
    row = scores[(scores.condition == condition) & (scores.metric == metric)]
    return float(row.score.iloc[0])


# ---- SampleGen -------------------------------------------------------------------------------
@pytest.mark.slow
def test_samplegen_answers_are_scored_after_the_generated_examples(tmp_path):
    scores, samples, _ = _evaluate(tmp_path, [("t", "tuned_zero_shot")], style="samplegen", answer_format="samplegen")
    assert _score(scores, "tuned_zero_shot") == 1.0
    assert all(s["response"] == s["target"] for s in samples)
    # the same responses under the regular format stop at the first newline: the first example line
    scores, samples, _ = _evaluate(tmp_path / "regular", [("t", "tuned_zero_shot")], style="samplegen")
    assert _score(scores, "tuned_zero_shot") == 0.0 and samples[0]["response"].startswith("Example:")


@pytest.mark.slow
def test_evaluation_skips_lm_evals_environment_report(tmp_path, monkeypatch):
    """torch's environment report (pip list, nvidia-smi: ~2 s per simple_evaluate call) is never
    collected: every evaluation job of every grid would pay it for a results key itlab drops."""
    import torch.utils.collect_env

    calls = []
    monkeypatch.setattr(torch.utils.collect_env, "get_pretty_env_info", lambda: calls.append(1) or "")
    scores, _, _ = _evaluate(tmp_path, [("t", "tuned_zero_shot"), ("t", "base_zero_shot")])
    assert _score(scores, "tuned_zero_shot") == 1.0 and calls == []


def test_samplegen_pattern_takes_the_text_after_the_last_marker():
    from itlab.evaluate import samplegen_pattern, task_yaml

    record = data.samplegen({"prompt": "Add 2 and 3", "answer": "5", "id": "x"},
                            [{"prompt": "Add 1 and 1", "answer": "2"}, {"prompt": "Answer: what?", "answer": "no"}],
                            data.rng_for("t"))
    assert "\n" in record["answer"]  # SampleGen answers span lines
    found = re.findall(samplegen_pattern(), record["answer"])
    assert [f.strip() for f in found] == ["5"]
    spec = task_yaml("t", "tuned_zero_shot", {"test": "x.jsonl"}, 0, 10, answer_format="samplegen")
    assert "\n" not in spec["generation_kwargs"]["until"] and spec["generation_kwargs"]["max_gen_toks"] > 10
    assert task_yaml("t", "tuned_zero_shot", {"test": "x.jsonl"}, 0, 10)["generation_kwargs"]["until"] == ["\n"]


def test_models_tuned_on_samplegen_are_evaluated_in_that_format():
    import yaml

    from conftest import ROOT
    from itlab.config import validate
    from itlab.grid import Grid

    grid = Grid(validate(yaml.safe_load((ROOT / "experiments/inherent-limits.yaml").read_text())))
    formats = {grid.runs[m.split("/", 1)[1]].trainset: grid.answer_format(m) for m in grid.evals if m.startswith("tuned/")}
    assert formats["mix-samplegen"] == "samplegen"
    assert formats["mix-flan"] == "regular"
    assert grid.answer_format("base/llama2-7b") == "regular"


# ---- subsamples ------------------------------------------------------------------------------
def test_subsample_is_seeded_shuffled_and_stratified():
    labels = ["neg"] * 500 + ["pos"] * 500  # sorted by label, as imdb's test split
    idx = data.subsample(1000, 100, 1, "imdb/test", labels)
    assert len(set(idx)) == 100 and idx != list(range(100))
    assert Counter(labels[i] for i in idx) == {"neg": 50, "pos": 50}
    assert data.subsample(1000, 100, 1, "imdb/test", labels) == idx  # seeded
    assert data.subsample(1000, 100, 2, "imdb/test", labels) != idx
    skewed = ["a"] * 700 + ["b"] * 200 + ["c"] * 100
    assert Counter(skewed[i] for i in data.subsample(1000, 50, 1, "k", skewed)) == {"a": 35, "b": 10, "c": 5}
    plain = data.subsample(1000, 100, 1, "k")
    assert len(set(plain)) == 100 and plain != list(range(100)) and max(plain) > 500
    assert sorted(data.subsample(10, None, 1, "k")) == list(range(10))


def test_hub_download_takes_a_stratified_sample_not_the_first_rows(monkeypatch):
    import datasets

    rows = [{"text": f"review {i}", "label": 0 if i < 300 else 1} for i in range(600)]  # sorted by label
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_list(rows))
    spec = {"dataset": "stanfordnlp/imdb", "cluster": "sentiment", "test_split": "test", "label_field": "label",
            "input_template": "{text}\nIs this movie review positive or negative?", "target_template": "{label_text}",
            "choices": ["negative", "positive"]}
    recs = data.load_hub_task("imdb", spec, "test", limit=40, seed=3)
    assert Counter(r["answer"] for r in recs) == {"negative": 20, "positive": 20}
    assert recs == data.load_hub_task("imdb", spec, "test", limit=40, seed=3)
    assert {r["id"] for r in recs} != {r["id"] for r in data.load_hub_task("imdb", spec, "test", limit=40, seed=4)}


@pytest.mark.slow
def test_evaluation_items_are_a_stratified_seeded_subsample(tmp_path):
    scores, samples, _ = _evaluate(tmp_path, [("t", "base_zero_shot")], max_items=10, n_test=40,
                                   label=lambda i: "a" if i < 20 else "b")
    ids = [s["id"] for s in samples]
    assert len(ids) == 10 and ids != [f"test-{i}" for i in range(10)]
    assert Counter(int(i.split("-")[1]) < 20 for i in ids) == {True: 5, False: 5}
    assert _score(scores, "base_zero_shot") == 1.0 and int(scores.n.iloc[0]) == 10


# ---- in-context examples ---------------------------------------------------------------------
def test_fewshot_draws_are_per_item_seeded_and_never_the_item():
    test = _records("test", 20)
    pool = _records("train", 30) + test  # a pool that overlaps the test split
    draws = data.fewshot_draws(test, pool, 3, 1, "t")
    assert len({tuple(d) for d in draws}) > 15  # not the same examples for every item
    for item, d in zip(test, draws):
        assert len(set(d)) == 3 and all(pool[j]["prompt"] != item["prompt"] for j in d)
    assert data.fewshot_draws(test[5:], pool, 3, 1, "t") == draws[5:]  # an item's draw is its own
    assert data.fewshot_draws(test, pool, 3, 2, "t") != draws


@pytest.mark.slow
def test_k_shot_contexts_are_drawn_per_item_and_never_show_the_item(tmp_path):
    pool = _records("train", 30) + _records("test", 12)  # the item itself is in the pool
    scores, samples, oracle = _evaluate(tmp_path, [("t", "base_k_shot")], k=2, pool=pool)
    assert _score(scores, "base_k_shot") == 1.0
    shown = []
    for context in oracle.contexts:
        item = re.findall(r"Q test-(\d+):", context)[-1]
        assert context.count(f"Q test-{item}:") == 1  # only as the question
        shots = re.findall(r"Q (\w+-\d+):", context)[:-1]
        assert len(shots) == 2
        shown.append(tuple(shots))
    assert len(set(shown)) > len(shown) // 2  # not the first rows for every item
    first_rows = ("train-0", "train-1")
    assert shown.count(first_rows) < len(shown)
    prepared = data.fewshot_draws(_records("test", 12), pool, 2, 5, "t")
    assert sorted(shown) == sorted(tuple(pool[j]["id"] for j in d) for d in prepared)


def test_prompts_are_functions_and_lm_eval_renders_the_formats_they_define(tmp_path, monkeypatch):
    """itlab's task YAMLs name prompt and target functions (a Jinja string is recompiled by
    lm-eval for every document); the contexts lm-eval builds from them are exactly the base
    format (k examples, then the item, each "<prompt>\nAnswer: <answer>") and the chat turn."""
    import jinja2

    from itlab import evaluate

    spec = evaluate._dump(evaluate.task_yaml("t", "base_k_shot", {"test": "x.jsonl"}, 2, 8))
    assert "doc_to_text: !function itlab_metrics.base_prompt" in spec
    assert "doc_to_target: !function itlab_metrics.answer" in spec and "{{" not in spec
    compiled = []
    real = jinja2.Environment.from_string
    monkeypatch.setattr(jinja2.Environment, "from_string", lambda env, src, *a, **k: compiled.append(src) or real(env, src, *a, **k))
    _, _, oracle = _evaluate(tmp_path, [("t", "base_k_shot"), ("t", "tuned_zero_shot")], k=2, n_test=4)
    assert not [src for src in compiled if "prompt" in src or "answer" in src]  # no per-document template
    base, chat = oracle.contexts[:4], oracle.contexts[4:]
    item = {r["id"]: r for r in _records("test", 4)}
    pool = {r["id"]: r for r in _records("train", 30)}
    for context in base:
        *shots, last = context.split("\n\n")
        assert last == item[re.findall(r"Q (test-\d+):", last)[0]]["prompt"] + "\nAnswer:"
        assert len(shots) == 2
        for shot in shots:
            r = pool[re.findall(r"Q (train-\d+):", shot)[0]]
            assert shot == f"{r['prompt']}\nAnswer: {r['answer']}"
    assert sorted(chat) == sorted(f"<|user|>\n{r['prompt']}\n<|assistant|>\n" for r in item.values())


def test_prepared_items_are_written_as_json_lm_eval_can_read(tmp_path):
    from itlab.evaluate import prepare_test

    write_jsonl(tmp_path / "test.jsonl", _records("test", 5))
    write_jsonl(tmp_path / "train.jsonl", _records("train", 5))
    items = prepare_test("t", {"test": tmp_path / "test.jsonl", "fewshot": tmp_path / "train.jsonl"}, 2, 3, 1)
    assert len(items) == 3 and all(len(i["fewshot"]) == 2 for i in items)
    json.dumps(items)


# ---- lm-eval's own tasks (gsm8k, ifeval, humaneval, mbpp): an explicit seeded selection -------
def _harness_task(tmp_path, monkeypatch, n_test=40, output_type="generate_until"):
    """A harness task of lm-eval's own kind over a split in row order (as gsm8k's test split is
    read): its YAML with its own fewshot split and lm-eval's default (random) sampler."""
    import lm_eval.tasks

    from itlab import evaluate

    folder = tmp_path / "harness"
    folder.mkdir(exist_ok=True)
    label = (lambda i: "a" if i < n_test // 2 else "b") if output_type == "multiple_choice" else None
    write_jsonl(folder / "test.jsonl", _records("test", n_test, label))
    write_jsonl(folder / "train.jsonl", _records("train", 30))
    spec = evaluate.task_yaml("x", "base_zero_shot", {"test": folder / "test.jsonl"}, 0, 8)
    name = f"itlab_test_ordered_{output_type}"
    spec.update(task=name, num_fewshot=3, fewshot_split="train",  # its own default, as gsm8k has 5
                dataset_kwargs={"data_files": {s: str(folder / f"{s}.jsonl") for s in ("test", "train")}})
    del spec["fewshot_config"]  # lm-eval's own sampler, as its tasks have
    if output_type == "multiple_choice":
        spec.update(output_type="multiple_choice", doc_to_choice=["a", "b"],
                    doc_to_target="{{['a', 'b'].index(label)}}", metric_list=[{"metric": "acc"}])
        for key in ("generation_kwargs", "filter_list", "process_results"):
            del spec[key]
    (folder / f"{name}.yaml").write_text(evaluate._dump(spec))
    (folder / "itlab_metrics.py").write_text(evaluate.METRICS_MODULE)
    real = lm_eval.tasks.TaskManager

    def manager(include_path=None, include_defaults=True, **kwargs):  # this task, not lm-eval's whole index
        return real(include_path=[*(include_path or []), str(folder)], include_defaults=False, **kwargs)

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", manager)
    return name


def _harness_docs(tmp_path, name, seed, model, max_items=6, k=2):
    """Evaluate one "model" (the oracle) under a zero- and a k-shot condition: the evaluated
    doc ids per condition and the k-shot contexts per doc id."""
    from itlab.evaluate import run

    oracle, out = Oracle(), tmp_path / f"{model}-{seed}"
    scores = run(model, [("h", "base_zero_shot"), ("h", "base_k_shot")], {}, k, 4, 8, max_items, out,
                 lm_eval_tasks={"h": name}, lm=oracle.lm, seed=seed)
    samples = list(read_jsonl(out / "samples.jsonl"))
    assert (scores[scores.metric == "exact_match"].score == 1.0).all()
    assert all(s["id"] == f"test-{s['doc_id']}" for s in samples)  # doc_id: the row of the task's split
    docs = {c: sorted(s["doc_id"] for s in samples if s["condition"] == c) for c in ("base_zero_shot", "base_k_shot")}
    shots = {}
    for context in oracle.contexts:
        found = re.findall(r"Q (\w+)-(\d+):", context)
        if len(found) > 1:
            shots[int(found[-1][1])] = tuple(f"{a}-{b}" for a, b in found[:-1])
    return docs, shots


@pytest.mark.slow
def test_harness_tasks_evaluate_a_seeded_selection_not_their_first_rows(tmp_path, monkeypatch):
    name = _harness_task(tmp_path, monkeypatch)
    docs, shots = _harness_docs(tmp_path, name, 5, "model-a")
    chosen = docs["base_zero_shot"]
    assert len(chosen) == 6 and chosen != list(range(6)) and max(chosen) >= 20
    assert docs["base_k_shot"] == chosen  # the same items under every condition
    assert _harness_docs(tmp_path, name, 5, "model-b")[0] == docs  # and for every model (paired)
    other = _harness_docs(tmp_path, name, 6, "model-a")[0]
    assert other["base_zero_shot"] != chosen and other["base_k_shot"] == other["base_zero_shot"]
    # k-shot examples: lm-eval's own sampler, seeded by the run's seed (not a fixed one)
    assert set(shots) == set(chosen) and all(len(s) == 2 and s[0].startswith("train-") for s in shots.values())
    assert len(set(shots.values())) > 1
    whole = {seed: _harness_docs(tmp_path, name, seed, "all", max_items=None)[1] for seed in (5, 6)}
    assert set(whole[5]) == set(range(40)) and whole[5] != whole[6]


def test_multiple_choice_harness_tasks_are_stratified_by_target(tmp_path, monkeypatch):
    import lm_eval.tasks

    from itlab.evaluate import harness_samples

    name = _harness_task(tmp_path, monkeypatch, n_test=40, output_type="multiple_choice")
    manager = lm_eval.tasks.TaskManager()
    chosen = harness_samples(manager, [name], 10, 3)[name]
    assert chosen == sorted(chosen) and len(set(chosen)) == 10 and chosen != list(range(10))
    assert Counter(i < 20 for i in chosen) == {True: 5, False: 5}  # the split is sorted by label
    assert harness_samples(manager, [name], 10, 3)[name] == chosen
    assert harness_samples(manager, [name], 10, 4)[name] != chosen
    assert harness_samples(manager, [name], 40, 3) == {} and harness_samples(manager, [name], None, 3) == {}
