"""Study C's judge: the local OpenAI-compatible server (the stand-in for vLLM) and alpaca-eval's
annotator run against it, as judge_answers runs them in the stand-in grid."""

import json
import urllib.request

import pytest

from itlab import standin

JUDGE = "meta-llama/Meta-Llama-3-70B-Instruct"


@pytest.fixture(scope="module")
def judge_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("judge") / "model"
    standin.standin_model(JUDGE, folder)
    return str(folder)


def _post(url, body):
    req = urllib.request.Request(f"{url}/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


def test_served_logprobs_are_the_models_own(judge_model):
    import torch

    from itlab.judge_server import ServedModel
    from itlab.models import load_model, load_tokenizer

    messages = [{"role": "system", "content": "pick one"}, {"role": "user", "content": "m or M?"}]
    with ServedModel(judge_model, min_top_logprobs=3) as served:
        out = _post(served.base_url, {"model": "gpt-4-1106-preview", "messages": messages, "max_tokens": 2,
                                      "logprobs": True, "top_logprobs": 5})
    tok, model = load_tokenizer(judge_model), load_model(judge_model).eval()
    ids = tok(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False),
              return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, -1].float(), -1)
    first = out["choices"][0]["logprobs"]["content"][0]
    top = torch.topk(logp, 5)
    assert [t["token"] for t in first["top_logprobs"]] == [tok.decode([int(i)]) for i in top.indices]
    assert [t["logprob"] for t in first["top_logprobs"]] == pytest.approx(top.values.tolist(), abs=1e-5)
    assert first["token"] == tok.decode([int(logp.argmax())])  # greedy
    assert out["usage"]["prompt_tokens"] == ids.shape[1] and out["usage"]["completion_tokens"] <= 2


def _benchmark_records(n):
    return [{"benchmark": b, "instruction": f"say {w} please", "baseline": f"{w} {w} yes", "output": f"{w}"}
            for b in ("alpaca_eval_2", "arena_hard") for w in ["fox", "dog", "no", "maybe", "yes"][:n]]


def _package_files():
    import os

    import alpaca_eval

    root = os.path.dirname(alpaca_eval.__file__)
    return {(d, f, os.path.getmtime(os.path.join(d, f))) for d, _, fs in os.walk(root) for f in fs
            if "__pycache__" not in d}


JUDGE_CFG = {"annotator": "weighted_alpaca_eval_gpt4_turbo", "api_key_env": "",
             "benchmarks": {"alpaca_eval_2": {"metric": "length_controlled_winrate"},
                            "arena_hard": {"metric": "win_rate"}}}


@pytest.mark.slow
def test_alpaca_eval_judges_every_answer_through_the_served_model(judge_model, tmp_path, monkeypatch):
    """The paper's annotator (prompt, openai_completions, logprob parser) against the served
    stand-in: every answer gets a verdict, AlpacaEval's LC win rate comes from its GLM over the
    mirrored (stand-in) df_gamed.csv, offline, and nothing is written into alpaca-eval's folder.
    (With only the 5 alternatives per token the annotator asks for, a random judge rarely names
    m or M: verdicts go missing and alpaca-eval fails on them, which is why the stand-in serves
    its whole vocabulary, serve.top_logprobs.)"""
    from itlab.judge import ensure_glm_files, judge_answers

    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ensure_glm_files(tmp_path / "glm", standin=True)
    before = _package_files()
    cfg = {**JUDGE_CFG, "serve": {"model": JUDGE, "location": judge_model, "top_logprobs": 1000}}
    table = judge_answers(_benchmark_records(5), cfg, "student", glm_cache=str(tmp_path / "glm"))
    rows = table.set_index("benchmark")
    assert (rows.n == 5).all() and (rows.n_judged == 5).all()
    assert 0 <= rows.loc["alpaca_eval_2", "score"] <= 100 and rows.loc["arena_hard", "score"] == rows.loc["arena_hard", "win_rate"]
    assert _package_files() == before  # no annotation cache, leaderboard or GLM weights in the install
