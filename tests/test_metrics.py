"""Generation metrics, and the generated lm-eval tasks scoring a real model."""

import random

import pytest

from itlab.metrics import corpus_bleu, exact_match, normalize, process_results, rouge_l, scoring, token_f1

PAIRS = [("The cat sat, the mat!", "a cat sat on the mat"), ("police killed the gunman", "police kill the gunman"),
         ("Police, killed: the GUNMAN.", "police kill the gunman"), ("a b c d", "a c b d"), ("x y", "x y"),
         ("dog", "cat"), ("Paris", "paris."), ("the the the", "the cat"), ("1,000 people", "1000 people")]


def test_exact_match():
    assert exact_match(" Yes", "yes") == 1.0 and exact_match("yes.", "yes") == 0.0


def test_token_f1_hand_computed_and_equal_to_the_squad_script():
    # pred tokens: cat sat mat ; gold: cat sat on mat -> common 3, P = 1, R = 3/4 -> F1 = 6/7
    assert token_f1("The cat sat, the mat!", "a cat sat on the mat") == pytest.approx(6 / 7)
    assert token_f1("dog", "cat") == 0.0 and token_f1("", "") == 1.0
    assert normalize("The  Cat's hat.") == "cats hat"
    from lm_eval.tasks.qasper.metrics import f1_abstractive  # lm-eval's copy of the official SQuAD v1.1 F1

    for pred, gold in PAIRS:
        assert token_f1(pred, gold) == pytest.approx(f1_abstractive([pred], [gold]))


def test_rouge_l_hand_computed_and_equal_to_rouge_score():
    # LCS("police killed the gunman", "police kill the gunman") = police the gunman = 3 -> P = R = 3/4
    assert rouge_l("police killed the gunman", "police kill the gunman") == pytest.approx(0.75)
    # LCS of "a b c d" and "a c b d" = 3 (a b d or a c d): P = R = 3/4
    assert rouge_l("a b c d", "a c b d") == pytest.approx(0.75)
    assert rouge_l("x y", "x y") == 1.0 and rouge_l("x", "y") == 0.0
    # punctuation and case are the published tokenizer's business, not whitespace splitting
    assert rouge_l("Police, killed: the GUNMAN.", "police kill the gunman") == pytest.approx(0.75)
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    for pred, gold in PAIRS:
        assert rouge_l(pred, gold) == pytest.approx(scorer.score(gold, pred)["rougeL"].fmeasure)
    # random texts over a small vocabulary (many common subsequences), with case, punctuation,
    # digits, non-ASCII letters and empty sides: equal to the published implementation
    rng = random.Random(0)
    words = ["a", "b", "cat", "Cat", "x1", "42", "the", "é", "naïve", ",", "--", "ß", "dog."]
    for _ in range(500):
        pred = " ".join(rng.choices(words, k=rng.randint(0, 12)))
        gold = " ".join(rng.choices(words, k=rng.randint(0, 12)))
        assert rouge_l(pred, gold) == pytest.approx(scorer.score(gold, pred)["rougeL"].fmeasure), (pred, gold)


def test_bleu_through_lm_evals_aggregation_equals_sacrebleu():
    import sacrebleu
    from lm_eval.api.metrics import bleu

    preds = ["the cat sat on the mat", "a quick brown fox jumps", "hello there general kenobi"]
    golds = ["the cat is on the mat", "the quick brown fox jumps over", "hello there"]
    items = [process_results({"answer": g}, [p])["bleu"] for p, g in zip(preds, golds)]
    expected = sacrebleu.corpus_bleu(preds, [golds]).score
    assert bleu(items) == pytest.approx(expected) and corpus_bleu(preds, golds) == pytest.approx(expected)
    assert 0 < expected < 100


def test_scoring_defaults_and_overrides():
    cfg = {"data": {"tasks": ["add", "is_palindrome"],
                    "scoring": {"add": {"metric": "f1"}, "xsum": {"metric": "rouge_l"}},
                    "hub_tasks": {"rte": {"cluster": "nli", "choices": ["yes", "no"]}, "xsum": {"cluster": "summ"}}}}
    s = scoring(cfg)
    assert s["rte"] == {"metric": "exact_match", "chance": 0.5} and s["xsum"] == {"metric": "rouge_l", "chance": 0.0}
    assert s["add"]["metric"] == "f1" and s["is_palindrome"]["chance"] == 0.5 and s["add"]["chance"] == 0.0


@pytest.mark.slow
def test_generated_tasks_score_a_real_model(tmp_path):
    """A tiny model through the real lm-eval path: every (task, condition) yields exact match,
    F1 and ROUGE-L, per-sample logs agree with the aggregate, n is the test size."""
    import json

    from itlab import data, evaluate, io, models
    from itlab.tasks import TaskParams

    docs = data.build_corpus(["add", "reverse"], 100, 4, 1, 1, TaskParams(), "train")
    tok = models.train_tokenizer(docs, 200, tmp_path / "m")
    models.build_model("llama", {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64},
                       tok, 0).save_pretrained(tmp_path / "m")
    files = {}
    for t in ("add", "reverse"):
        for split, recs in data.synthesize_task(t, {"train": 10, "validation": 2, "test": 12}, 1, TaskParams()).items():
            io.write_jsonl(tmp_path / t / f"{split}.jsonl", recs)
        files[t] = {"test": str(tmp_path / t / "test.jsonl"), "fewshot": str(tmp_path / t / "train.jsonl")}
    items = [(t, c) for t in files for c in ("base_zero_shot", "base_k_shot", "tuned_zero_shot")]
    scores = evaluate.run(str(tmp_path / "m"), items, files, 2, 16, 8, 100, tmp_path / "out")
    assert set(scores.metric) == {"exact_match", "f1", "rouge_l", "bleu"} and (scores.n == 12).all()
    assert len(scores) == len(items) * 4
    samples = [json.loads(l) for l in (tmp_path / "out/samples.jsonl").read_text().splitlines()]
    assert len(samples) == 12 * len(items)
    for (task, cond), g in scores[scores.metric == "f1"].groupby(["task", "condition"]):
        per_doc = [s["f1"] for s in samples if s["task"] == task and s["condition"] == cond]
        assert g.score.iloc[0] == pytest.approx(sum(per_doc) / len(per_doc))


@pytest.mark.parametrize("scoring, key", [({"nosuchtask": {"metric": "f1"}}, "data.scoring.nosuchtask"),
                                          ({"add": {"metric": "meteor"}}, "data.scoring.add.metric"),
                                          ({"add": {"chance": 1.5}}, "data.scoring.add.chance")])
def test_bad_scoring_config_names_the_key(default_config, scoring, key):
    import copy

    from itlab.config import ConfigError, validate

    cfg = copy.deepcopy(default_config)  # the fixture is shared by the session
    cfg["data"]["scoring"] = scoring
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(cfg)
