"""Study C: CAR, IFD/loss, Spearman tables and the paradox check against independent computations."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from itlab.analysis import teachers as study

GENS = ["g1", "g2", "g3", "g4", "g5"]


def hand_table():
    """Two students x five generators, written out by hand."""
    rows = [
        # student, generator, ap, reward:a, reward:b, loss_student, ifd_student, ppl_student, ifd_ref, ppl_ref, length
        ("s1", "g1", 0.10, 1.0, 5.0, 2.0, 0.90, 7.4, 0.8, 20.0, 10),
        ("s1", "g2", 0.30, 2.0, 4.0, 1.0, 0.70, 2.7, 0.9, 30.0, 40),
        ("s1", "g3", 0.20, 3.0, 3.0, 3.0, 0.80, 20.1, 0.7, 10.0, 20),
        ("s1", "g4", 0.50, 4.0, 2.0, 0.5, 0.50, 1.6, 0.6, 40.0, 30),
        ("s1", "g5", 0.40, 5.0, 1.0, 1.5, 0.60, 4.5, 0.5, 50.0, 50),
        ("s2", "g1", 0.20, 1.0, 5.0, 1.0, 0.95, 2.7, 0.8, 20.0, 10),
        ("s2", "g2", 0.10, 2.0, 4.0, 2.0, 0.85, 7.4, 0.9, 30.0, 40),
        ("s2", "g3", 0.40, 3.0, 3.0, 0.4, 0.65, 1.5, 0.7, 10.0, 20),
        ("s2", "g4", 0.30, 4.0, 2.0, 1.2, 0.75, 3.3, 0.6, 40.0, 30),
        ("s2", "g5", 0.60, 5.0, 1.0, 0.2, 0.55, 1.2, 0.5, 50.0, 50),
    ]
    cols = ["student", "generator", "ap", "reward:a", "reward:b", "loss_student", "ifd_student", "ppl_student",
            "ifd_reference", "ppl_reference", "length"]
    return pd.DataFrame(rows, columns=cols)


def test_car_is_reward_over_one_plus_beta_loss():
    # r = 2, L = 1.5, beta = 2: 2 / (1 + 3) = 0.5; beta = 0 gives r back
    assert study.car(2.0, 1.5, 2.0) == pytest.approx(0.5)
    assert study.car([3.0, 1.0], [0.0, 4.0], 0.5).tolist() == pytest.approx([3.0, 1.0 / 3.0])
    assert study.car(4.0, 1.0, 0.0) == pytest.approx(4.0)


def test_teacher_table_joins_and_computes_car():
    gen_scores = pd.DataFrame({"generator": ["g1", "g2"], "reward:a": [2.0, 4.0], "length": [10.0, 20.0]})
    metrics = {"s1": pd.DataFrame({"generator": ["g1", "g2"], "loss": [1.0, 3.0], "ifd": [0.5, 0.9], "ppl": [3, 20]}),
               "ref": pd.DataFrame({"generator": ["g1", "g2"], "loss": [5.0, 6.0], "ifd": [0.7, 0.8], "ppl": [50, 60]})}
    ap = pd.DataFrame({"student": ["s1", "s1"], "generator": ["g1", "g2"], "ap": [0.3, 0.2]})
    t = study.teacher_table(gen_scores, metrics, ap, reference="ref", car_reward="a", beta=1.0)
    assert t.car.tolist() == pytest.approx([2.0 / 2.0, 4.0 / 4.0])
    assert t.ifd_reference.tolist() == [0.7, 0.8] and t.loss_student.tolist() == [1.0, 3.0]


def test_spearman_table_matches_scipy_per_student_and_averages():
    t = hand_table()
    rho = study.spearman_table(t, ["reward:a", "ifd_student", "length"], n_boot=300, seed=1)
    for metric, sign in (("reward:a", 1), ("ifd_student", -1), ("length", 1)):
        expected = []
        for s in ("s1", "s2"):
            g = t[t.student == s]
            r = stats.spearmanr(g[metric], g.ap).statistic * sign
            expected.append(r)
            got = rho[(rho.metric == metric) & (rho.student == s)].iloc[0]
            assert got.rho == pytest.approx(r, abs=1e-12)
            assert got.ci_low <= got.rho <= got.ci_high
        avg = rho[(rho.metric == metric) & (rho.student == "average")].iloc[0]
        assert avg.rho == pytest.approx(np.mean(expected), abs=1e-12)
        assert avg.n_generators == 5


def test_average_interval_resamples_generators_jointly():
    """A metric that orders AP perfectly for every student has rho 1 in every resample of generators."""
    t = hand_table()
    t["perfect"] = t.ap * 10 + 1
    rho = study.spearman_table(t, ["perfect"], n_boot=200, seed=0)
    avg = rho[rho.student == "average"].iloc[0]
    assert avg.rho == pytest.approx(1.0) and avg.ci_low == pytest.approx(1.0) and avg.ci_high == pytest.approx(1.0)
    rho_rand = study.spearman_table(t, ["reward:b"], n_boot=500, seed=0)
    avg = rho_rand[rho_rand.student == "average"].iloc[0]
    assert avg.ci_low < avg.rho < avg.ci_high  # a noisy metric has a real interval


def test_beta_grid_matches_direct_car_ranking():
    t = hand_table()
    grid = study.beta_grid(t, "a", [0.0, 2.0])
    for beta in (0.0, 2.0):
        row = grid[grid.beta == beta].iloc[0]
        per = [stats.spearmanr(g["reward:a"] / (1 + beta * g.loss_student), g.ap).statistic
               for _, g in t.groupby("student")]
        assert row.rho_average == pytest.approx(np.mean(per), abs=1e-12)


def test_paradox_counts_larger_generator_wins():
    t = hand_table()
    gens = {"g1": {"family": "f", "size_b": 1}, "g2": {"family": "f", "size_b": 7}, "g3": {"family": "f", "size_b": 70},
            "g4": {}, "g5": {"family": "h", "size_b": 3}}
    par = study.paradox(t, gens)
    assert list(par.family) == ["f", "f"]  # family h has one member
    s1 = par[par.student == "s1"].iloc[0]
    # s1: AP 0.10 (1B), 0.30 (7B), 0.20 (70B): larger wins in (1,7) and (1,70), loses (7,70)
    assert s1.larger_better_share == pytest.approx(2 / 3)
    assert s1.rho_size_ap == pytest.approx(stats.spearmanr([1, 7, 70], [0.1, 0.3, 0.2]).statistic)


def test_summary_lists_paper_table4_and_says_beta_is_unpublished(tmp_path):
    t = hand_table()
    t["car"] = study.car(t["reward:a"], t.loss_student, 1.0)
    metrics = study.metric_columns(t)
    rho = study.spearman_table(t, metrics, n_boot=100)
    text = study.summary(t, rho, study.beta_grid(t, "a", [0, 1]), study.paradox(t, {}),
                         {"ap": "x", "rewards": "a, b", "car_reward": "a", "beta": 1.0, "reference": "ref",
                          "paper_names": {"reward:a": "reward:rm1"}})
    assert "0.889" in text and "0.566" in text and "publishes neither beta" in text
    per_student = stats.spearmanr(t[t.student == "s1"]["reward:a"], t[t.student == "s1"].ap).statistic
    assert f"| 0 | {per_student:.3f} |" in text  # the beta grid shows each student's rho
    study.figure(t, metrics, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000


# ---- loss / IFD under a tiny model, against a direct computation -------------------------------
@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from itlab.models import build_model, train_tokenizer

    out = tmp_path_factory.mktemp("tok")
    texts = ["reverse abc", "cba", "add 3 and 4", "7", "uppercase word", "WORD"] * 20
    tok = train_tokenizer(texts, 120, out)
    model = build_model("llama", {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32},
                        tok, seed=0).eval()
    return model, tok


def _direct_loss(model, ids, first_scored):
    """Mean -log p(token) over ids[first_scored:], one unpadded sequence, log_softmax by hand."""
    import torch

    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    logp = torch.log_softmax(logits.double(), -1)
    return float(-np.mean([logp[i - 1, ids[i]].item() for i in range(first_scored, len(ids))]))


def test_loss_and_ifd_match_a_direct_computation(tiny_lm):
    from itlab.response_metrics import record_metrics, teacher_metrics

    model, tok = tiny_lm
    records = [{"id": "a", "prompt": "reverse abc", "answer": "cba"},
               {"id": "b", "prompt": "add 3 and 4 and more words here", "answer": "7"},
               {"id": "c", "prompt": "uppercase word", "answer": "WORD WORD WORD"}]
    got = record_metrics(model, tok, records, batch_size=2)  # padded batches of different lengths
    for rec, g in zip(records, got):
        prompt = tok.apply_chat_template([{"role": "user", "content": rec["prompt"]}], add_generation_prompt=True,
                                         tokenize=True, return_dict=False)
        answer = tok.encode(rec["answer"], add_special_tokens=False) + [tok.eos_token_id]
        cond = _direct_loss(model, prompt + answer, len(prompt))
        direct = _direct_loss(model, [tok.bos_token_id] + answer, 1)
        assert g["loss"] == pytest.approx(cond, rel=1e-4)
        assert g["loss_direct"] == pytest.approx(direct, rel=1e-4)
        assert g["ifd"] == pytest.approx(cond / direct, rel=1e-4)
        assert g["ppl"] == pytest.approx(math.exp(cond), rel=1e-4)
    agg = teacher_metrics(got)
    assert agg["loss"] == pytest.approx(np.mean([g["loss"] for g in got]))
    assert agg["ifd"] == pytest.approx(np.mean([g["loss"] / g["loss_direct"] for g in got]))


def test_reward_classifier_scores_match_the_model(tiny_lm, tmp_path):
    """score_rewards' classifier path on a tiny randomly initialised sequence classifier."""
    import torch
    from transformers import LlamaForSequenceClassification

    from itlab.rewards import score

    model, tok = tiny_lm
    torch.manual_seed(0)
    clf = LlamaForSequenceClassification(model.config.__class__(**{**model.config.to_dict(), "num_labels": 1}))
    clf.config.pad_token_id = tok.pad_token_id
    clf.save_pretrained(tmp_path / "rm", safe_serialization=True)
    tok.save_pretrained(tmp_path / "rm")
    records = [{"id": "a", "prompt": "reverse abc", "answer": "cba"},
               {"id": "b", "prompt": "add 3 and 4", "answer": "7 7 7 7 7"},
               {"id": "c", "prompt": "uppercase word", "answer": "WORD", "gold": "WORD"}]
    table = score(records, {"rm": {"kind": "classifier", "model": str(tmp_path / "rm"), "batch_size": 2},
                            "em": {"kind": "checker", "metric": "exact_match"}})
    clf.eval()
    for rec, got in zip(records, table["reward:rm"]):
        text = tok.apply_chat_template([{"role": "user", "content": rec["prompt"]},
                                        {"role": "assistant", "content": rec["answer"]}], tokenize=False)
        ids = tok(text, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            assert got == pytest.approx(float(clf(**ids).logits[0, 0]), rel=1e-4, abs=1e-5)
    assert table["reward:em"].iloc[2] == 1.0 and np.isnan(table["reward:em"].iloc[0])
    assert table["length"].tolist() == [3, 9, 4]


def test_remote_code_reward_model_needs_both_switches(monkeypatch):
    from itlab import rewards

    seen = {}

    def fake(location, trust_remote_code=False, device="cpu"):
        seen["trust"] = trust_remote_code
        raise RuntimeError("stop")

    monkeypatch.setattr(rewards, "load_reward_model", fake)
    for global_switch, model_switch, expected in ((False, True, False), (True, False, False), (True, True, True)):
        with pytest.raises(RuntimeError):
            rewards.score([{"id": 1, "prompt": "p", "answer": "a"}],
                          {"rm": {"kind": "classifier", "model": "x", "trust_remote_code": model_switch}},
                          trust_remote_code=global_switch)
        assert seen["trust"] is expected


def test_transformations_of_gold():
    from itlab.generate import transform

    recs = [{"answer": a} for a in ["abc", "hello", "12", "xyz"]]
    assert transform("gold", recs, 0) == ["abc", "hello", "12", "xyz"]
    shuffled = transform("shuffled", recs, 0)
    assert sorted(shuffled) == sorted(r["answer"] for r in recs)
    assert all(s != r["answer"] for s, r in zip(shuffled, recs))
    noisy = transform("noisy", recs, 0, noise=1.0, alphabet="Q")
    assert noisy == ["QQQ", "QQQQQ", "QQ", "QQQ"]
    assert all(r["answer"] in w and len(w) > len(r["answer"]) for w, r in zip(transform("wordy", recs, 0), recs))


def test_a_response_truncated_away_has_no_loss(tiny_lm):
    from itlab.response_metrics import record_metrics, teacher_metrics

    model, tok = tiny_lm
    long_prompt = "reverse abc " * 30
    got = record_metrics(model, tok, [{"prompt": long_prompt, "answer": "cba"}, {"prompt": "add", "answer": "7"}],
                         max_len=20)
    assert math.isnan(got[0]["loss"]) and not math.isnan(got[1]["loss"])
    agg = teacher_metrics(got)
    assert agg["loss"] == pytest.approx(got[1]["loss"]) and agg["n_scored"] == 1


def test_generation_is_batched_and_matches_one_at_a_time(tiny_lm):
    """generate_responses' HF path: one generate call per batch (left padding), and the same
    greedy responses as prompting one at a time."""
    from itlab.generate import generate_hf, generate_one_at_a_time

    model, tok = tiny_lm
    calls = []
    original = model.generate

    def counting(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return original(*args, **kwargs)

    model.generate = counting
    try:
        prompts = ["reverse abc", "add 3 and 4 and more words here", "uppercase word", "add 3", "reverse"]
        batched = generate_hf(model, tok, prompts, 6, batch_size=2, eos=False)  # fixed length
        assert calls == [2, 2, 1]
        calls.clear()
        single = generate_one_at_a_time(model, tok, prompts, 6, eos=False)
        assert calls == [1] * 5
    finally:
        model.generate = original
    assert batched == single and sum(len(b) > 0 for b in batched) >= 2  # not all empty
