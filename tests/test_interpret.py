"""Study D: each definition against an independent hand computation, the attribution against
finite differences, the weight readers against the models' own projections, the formats."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import ROOT
from itlab.analysis import behavior_shift as bs
from itlab.interpret import density as dens
from itlab.interpret import ffn, heads, matrices, prompts, weights

FIXTURE = ROOT / "tests/fixtures/behavior_shift"

# 3 input tokens x 4 output tokens; scaled by hand column by column (max over inputs):
#   col 0 max 1.0: 1.0 -> 10, 0.5 -> 5, 0.9 -> 9      col 1 max 1.0: 0.2 -> 2, 1.0 -> 10, 0 -> 0
#   col 2 max 2.0: -1 -> 0, 2 -> 10, 1 -> 5          col 3 max 1.0: 0.5 -> 5, 0.45 -> 5, 1.0 -> 10
RAW = [[1.0, 0.2, -1.0, 0.5],
       [0.5, 1.0, 2.0, 0.45],
       [0.9, 0.0, 1.0, 1.0]]
SCALED = [[10, 2, 0, 5],
          [5, 10, 10, 5],
          [9, 0, 5, 10]]
# After the threshold (<= 7 -> 0): rows [10,0,0,0], [0,10,10,0], [9,0,0,10]
# L1 = 10, 20, 19; L4 = 10, (2 * 10^4)^(1/4), (9^4 + 10^4)^(1/4)
A = np.array([10 / 10, 20 / (2 * 10 ** 4) ** 0.25, 19 / (9 ** 4 + 10 ** 4) ** 0.25])
DENSITY = A / A.max()
MASK = [1, 0, 1]
SCORE = (DENSITY[0] + DENSITY[2]) / math.log2(2 + 2)


def test_scaling_matches_the_hand_computation():
    assert dens.scale(RAW).tolist() == SCALED


def test_density_and_score_match_the_hand_computation():
    np.testing.assert_allclose(dens.density(SCALED), DENSITY, rtol=1e-8)
    assert DENSITY[1] == 1.0 and abs(DENSITY[0] - 0.5946) < 1e-4
    assert dens.score_matrix(RAW, MASK, "raw") == pytest.approx(SCORE, rel=1e-8)
    assert dens.score_matrix(SCALED, MASK, "scaled") == pytest.approx(SCORE, rel=1e-8)
    assert SCORE == pytest.approx(0.7953, abs=1e-4)


def test_threshold_is_inclusive_and_empty_response_scores_zero():
    # a column whose only entries are 7 contributes nothing: 7 <= threshold
    only7 = np.array([[7, 10], [7, 0]])
    np.testing.assert_allclose(dens.density(only7), [1.0, 0.0])
    assert dens.score_matrix(np.zeros((3, 0)), MASK) == 0.0


# ---- attribution -----------------------------------------------------------------------------
def _tiny(arch="llama", **extra):
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, GPTNeoXConfig, LlamaConfig, MistralConfig

    torch.manual_seed(0)
    common = dict(vocab_size=40, max_position_embeddings=64)
    cfg = {"llama": lambda: LlamaConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                                        num_key_value_heads=4, intermediate_size=24, **common),
           "mistral": lambda: MistralConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                                            num_key_value_heads=2, intermediate_size=24, **common),
           "gpt_neox": lambda: GPTNeoXConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                                             intermediate_size=24, **common),
           "gpt2": lambda: GPT2Config(n_embd=16, n_layer=2, n_head=4, n_inner=24, vocab_size=40, n_positions=64)}[arch]()
    for k, v in extra.items():
        setattr(cfg, k, v)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    with torch.no_grad():  # non-trivial norm weights, so folding them matters
        for name, p in model.named_parameters():
            if "norm" in name or "ln_" in name:
                p.copy_(1 + 0.5 * torch.rand_like(p)) if p.ndim == 1 and "bias" not in name else p.zero_()
    return model


def test_gradient_x_input_matches_finite_differences():
    import torch

    from itlab.interpret.attribution import attribute, prepare

    model = prepare(_tiny())
    inp, out = [1, 7, 3, 12, 5, 9], [4, 22, 8]
    got = attribute(model, inp, out, n_bos=1, batch=2)  # batch 2 of 3: two backward passes
    assert got.shape == (5, 3)

    m64 = _tiny().double()
    emb = m64.get_input_embeddings()(torch.tensor(inp + out)).detach()

    def prob(e, m):
        with torch.no_grad():
            logits = m64(inputs_embeds=e[None, :len(inp) + m]).logits[0, -1]
        return torch.softmax(logits, -1)[out[m]].item()

    h = 1e-3  # central differences: O(h^2) error; rotary runs in fp32 even in a double model
    fd = np.zeros((5, 3))
    for n in range(1, len(inp)):  # BOS (position 0) excluded
        for m in range(3):
            up, down = emb.clone(), emb.clone()
            up[n] *= 1 + h  # d/dt p(E_n + t E_n) at 0 = grad . E_n
            down[n] *= 1 - h
            fd[n - 1, m] = (prob(up, m) - prob(down, m)) / (2 * h)
    np.testing.assert_allclose(got, fd, rtol=2e-3, atol=1e-6)
    assert np.abs(fd).max() > 1e-4  # the check is not trivially about zeros


def test_batching_output_tokens_does_not_change_the_matrix():
    from itlab.interpret.attribution import attribute, prepare

    model = prepare(_tiny())
    inp, out = [2, 5, 7, 11], [13, 17, 19, 23, 29]
    one = attribute(model, inp, out, batch=1)
    many = attribute(model, inp, out, batch=3)
    np.testing.assert_allclose(one, many, rtol=1e-5, atol=1e-8)
    assert attribute(model, inp, [], batch=3).shape == (4, 0)


# ---- weights -------------------------------------------------------------------------------
def _block_input(model, arch, layer, x):
    if arch in ("llama", "mistral"):
        b = model.model.layers[layer]
        return b.input_layernorm(x), b.self_attn.q_proj, b.self_attn.k_proj
    if arch == "gpt_neox":
        b = model.gpt_neox.layers[layer]
        return b.input_layernorm(x), None, None
    b = model.transformer.h[layer]
    return b.ln_1(x), None, None


@pytest.mark.parametrize("arch", ["llama", "mistral", "gpt_neox", "gpt2"])
def test_folded_query_key_reproduce_the_models_projections(arch):
    """q = norm(x) W_q with the norm weight folded: (x normalised without its weight) @ W_fold."""
    import torch

    model = _tiny(arch)
    if arch == "gpt_neox":
        with torch.no_grad():
            model.gpt_neox.layers[1].attention.query_key_value.bias.zero_()
    if arch == "gpt2":
        with torch.no_grad():
            model.transformer.h[1].attn.c_attn.bias.zero_()
    x = torch.randn(5, 16)
    q, k = weights.query_key(model, 1)
    assert q.shape == (4, 16, 4) and k.shape == (4, 16, 4)
    if arch in ("llama", "mistral"):
        plain = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + model.config.rms_norm_eps)
    else:
        plain = torch.nn.functional.layer_norm(x, (16,), eps=1e-5)
    normed, qp, kp = _block_input(model, arch, 1, x)
    with torch.no_grad():
        if arch in ("llama", "mistral"):
            want_q = qp(normed).reshape(5, 4, 4)
            want_k = kp(normed).reshape(5, -1, 4)
            want_k = torch.repeat_interleave(want_k, 4 // want_k.shape[1], dim=1)
        elif arch == "gpt_neox":
            qkv = model.gpt_neox.layers[1].attention.query_key_value(normed).reshape(5, 4, 3, 4)
            want_q, want_k = qkv[:, :, 0], qkv[:, :, 1]
        else:
            qkv = model.transformer.h[1].attn.c_attn(normed)
            want_q, want_k = qkv[:, :16].reshape(5, 4, 4), qkv[:, 16:32].reshape(5, 4, 4)
        got_q = torch.einsum("nh,Hhd->nHd", plain, q)
        got_k = torch.einsum("nh,Hhd->nHd", plain, k)
    torch.testing.assert_close(got_q, want_q, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got_k, want_k, rtol=1e-4, atol=1e-5)


def test_word_counts_known_answer():
    """Word 0 dominates every dimension (in every top-k list), word 1 is zero (in none)."""
    import torch

    model = _tiny()
    emb = torch.randn(12, 16) * 0.01
    emb[0] = 100 * torch.ones(16)
    emb[1] = 0
    words = [f"w{i}" for i in range(12)]
    counts = heads.word_counts(model, emb, words, ["w0", "w1"], top_k=3)
    c = counts.set_index(["layer", "head", "word"])["count"]
    assert len(counts) == 2 * 4 * 2
    assert (c.xs("w0", level="word") == 2 * 4).all()  # head_dim 4, query and key lists
    assert (c.xs("w1", level="word") == 0).all()


def test_rise_shares_and_group_test_hand_computed():
    base = pd.DataFrame({"layer": [0, 0, 0, 0, 1, 1], "head": [0, 1, 0, 1, 0, 0],
                         "word": ["a", "a", "b", "b", "a", "b"], "count": [1, 1, 2, 2, 0, 3]})
    tuned = base.assign(count=[2, 1, 1, 5, 1, 3])
    s = heads.rise_shares(base, tuned, ["a", "b"], group_size=2).set_index("word")
    # group 0 (layers 0-1): a rose in (0,0) and (1,0), tie in (0,1) skipped -> 2/2; b fell in (0,0),
    # rose in (0,1), tie in (1,0) skipped -> 1/2
    assert s.loc["a", "share"] == 1.0 and s.loc["a", "heads"] == 2
    assert s.loc["b", "share"] == 0.5 and s.loc["b", "heads"] == 2


def test_ffn_top_component_points_at_the_planted_word():
    import torch

    model = _tiny()
    words = [f"w{i}" for i in range(20)]
    out_emb = torch.randn(20, 16)
    direction = out_emb[7] / out_emb[7].norm()
    with torch.no_grad():
        for layer in model.model.layers:  # down_proj^T rows = neuron outputs: all along one word
            coeff = torch.randn(24)
            layer.mlp.down_proj.weight.copy_(direction[:, None] * coeff[None, :] * 5 + 1e-3 * torch.randn(16, 24))
    frame = ffn.components(model, out_emb, words, top_k=3, rank=4)
    first = frame[frame.component == 1]
    assert (first.top_words.str.split(r"\|\|\|").str[0] == "w7").all()
    assert (first.explained_variance > 0.99).all()
    # explained variance = eigenvalues of the neuron covariance, normalised
    w = model.model.layers[0].mlp.down_proj.weight.detach().double().T.numpy()
    eig = np.sort(np.linalg.eigvalsh(np.cov(w, rowvar=False)))[::-1]
    np.testing.assert_allclose(frame[frame.layer == 0].explained_variance, (eig / eig.sum())[:4], rtol=1e-6, atol=1e-9)


def test_ffn_categories():
    cats = {"math": ["sum", "digit"], "coding": ["code", "python"]}
    assert ffn.categorise("sum|||digit|||python", cats) == "math"
    assert ffn.categorise("cat|||dog", cats) == "none"
    frame = pd.DataFrame({"layer": [0, 0, 1, 1], "top_words": ["sum", "code", "digit", "cat"]})
    shares = ffn.category_shares(frame, cats, 1).set_index(["group", "category"]).share
    assert shares[("all", "math")] == 0.5 and shares[("0", "coding")] == 0.5 and shares[("1", "none")] == 0.5


# ---- prompts and formats ---------------------------------------------------------------------
def test_final_dataset_loader_follows_the_authors_format():
    ps = {p["id"]: p for p in prompts.load_final_dataset(FIXTURE / "FinalDataset.tsv")}
    assert [p["set"] for p in ps.values()].count("lima") == 4
    # fragments are widened to the prompt sentence holding them; "Input:" spans drop the prefix
    assert ps["lima_author_1"]["instruction"] == ["Keep it under six lines.", "Write a short poem about the sea."]
    assert ps["lima_author_2"]["prompt"].startswith('Say "good morning"')  # quotes and "" decoded
    assert "\n\nInput: hey" in ps["user_oriented_task_0"]["prompt"]  # /n decoded
    assert ps["user_oriented_task_0"]["context"] == "hey, can u send me the file?"
    assert "span_error" in ps["lima_author_3"] and "Summarize" in ps["lima_author_3"]["span_error"]
    assert prompts.load_ratings(FIXTURE / "AnnotatedDataset.tsv", "vicuna_7B")["user_oriented_task_1"] == 1.0


class _WordTok:
    """A whitespace tokenizer with SentencePiece-style word marks."""

    def tokenize(self, text):
        return ["\u2581" + w for w in text.replace("\n", " \n ").split(" ") if w and w != "\n"]


def test_instruction_mask_marks_first_occurrence_and_names_a_missing_span():
    tok = _WordTok()
    prompt = "Reverse the string abc. Reverse it."
    toks = tok.tokenize(prompt)
    assert prompts.instruction_mask(prompt, ["Reverse the string"], toks, tok.tokenize) == [1, 1, 1, 0, 0, 0]
    with pytest.raises(prompts.SpanNotFound, match="Sort"):
        prompts.instruction_mask(prompt, ["Sort the letters"], toks, tok.tokenize)


def test_synthetic_prompt_spans_are_the_phrasing_words():
    from itlab.tasks import TaskParams

    ps = prompts.synthetic_prompts(["reverse", "add"], 3, seed=1, params=TaskParams())
    assert len(ps) == 6
    for p in ps:
        for span in p["instruction"]:
            assert span in p["prompt"]
        assert p["context"].split()[0] in p["prompt"]
        assert not any(p["context"].split()[0] in s for s in p["instruction"])


def _record(pid, pset, model, matrix, mask, out=None, **extra):
    n, m = np.asarray(matrix).shape
    return {"id": pid, "set": pset, "model": model, "response": "x", "input_tokens": [f"i{j}" for j in range(n)],
            "output_tokens": out if out is not None else [f"o{j}" for j in range(m)], "instruction_mask": mask,
            "kind": "raw", "matrix": matrix, **extra}


def test_matrix_files_round_trip_and_reject_bad_shapes(tmp_path):
    path = tmp_path / "a.jsonl.gz"
    assert matrices.write(path, [_record("p1", "lima", "m", RAW, MASK)]) == 1
    (rec,) = matrices.read(path)
    np.testing.assert_array_equal(rec["matrix"], RAW)
    with pytest.raises(ValueError, match="mask length"):
        matrices.write(tmp_path / "b.jsonl", [_record("p2", "lima", "m", RAW, [1, 0])])
    with pytest.raises(ValueError, match="integers 0..10"):
        matrices.write(tmp_path / "c.jsonl", [{**_record("p3", "lima", "m", RAW, MASK), "kind": "scaled"}])


def test_analysis_tests_and_bad_input(tmp_path):
    rng = np.random.default_rng(0)
    files = {}
    for side, shift in (("base", 0.0), ("tuned", 2.0)):
        recs = []
        for i in range(8):
            mat = rng.random((3, 4))
            mat[0] += shift  # the tuned model leans on the instruction token
            recs.append(_record(f"lima_{i}", "lima", f"p/{side}", mat, [1, 0, 0], followed=i % 2))
        recs.append(_record("lima_bad", "lima", f"p/{side}", RAW, None, span_error="span 'x' is not in the prompt"))
        recs.append(_record("lima_empty", "lima", f"p/{side}", np.zeros((3, 0)), [1, 0, 0], out=[]))
        path = tmp_path / f"{side}.jsonl"
        matrices.write(path, recs)
        files[("p", side)] = [path]
    table = bs.read_scores(files)
    assert table[table.prompt == "lima_empty"].instruction_score.tolist() == [0.0, 0.0]
    t = bs.tuned_vs_base(table).iloc[0]
    ok = table[table.span_error == ""]
    want = stats.ttest_ind(ok[ok.side == "base"].instruction_score, ok[ok.side == "tuned"].instruction_score,
                           equal_var=False, alternative="less")
    assert t.n_base == 9 and t.p == pytest.approx(want.pvalue) and t.tuned_mean > t.base_mean
    b = ok[ok.side == "base"].sort_values("prompt").instruction_score.to_numpy()
    u = ok[ok.side == "tuned"].sort_values("prompt").instruction_score.to_numpy()
    assert t.n_paired == 9 and t.p_paired == pytest.approx(stats.ttest_rel(b, u, alternative="less").pvalue)
    f = bs.followed_vs_unfollowed(table, min_output_tokens=1)
    assert set(f.n_followed + f.n_unfollowed) == {8}  # the empty response is dropped here (0 tokens)
    heads_t = pd.DataFrame([{"group": 0, "layers": "0-0", "instruction_share": 0.7, "instruction_words": 3,
                             "general_share": 0.4, "general_words": 5, "t": 2.0, "p": 0.1, "pair": "p"}])
    ffn_t = pd.DataFrame([{"group": "all", "category": "math", "share": 0.1, "components": 10, "pair": "p", "side": s}
                          for s in ("base", "tuned")])
    text = bs.summary(table, bs.tuned_vs_base(table), f, heads_t, ffn_t, 1)
    assert "`lima_bad`: span 'x' is not in the prompt" in text
    assert "empty responses (scored 0, as in the authors' code): 2" in text
    assert "1.5579" in text  # the paper's LIMA number beside ours


def test_paper_path_on_a_stand_in_mistral(tmp_path):
    """The paper config's path (FinalDataset prompts, raw format, ratings, paper word lists) on
    a tiny randomly initialised Mistral-architecture model saved locally."""
    import pandas as pd
    from transformers import AutoModelForCausalLM, MistralConfig

    from itlab.grid import behavior_words
    from itlab.interpret import jobs
    from itlab.models import train_tokenizer

    spec = {"prompts": {"source": "final_dataset", "rated_model": "vicuna_7B"}}
    ps = prompts.build_prompts(spec, FIXTURE / "FinalDataset.tsv", FIXTURE / "AnnotatedDataset.tsv")
    tok = train_tokenizer([p["prompt"] for p in ps] * 5, 300, tmp_path / "m")
    cfg = MistralConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                        intermediate_size=32, vocab_size=len(tok), max_position_embeddings=256)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp_path / "m")
    from itlab.io import write_jsonl

    write_jsonl(tmp_path / "prompts.jsonl", ps)
    common = {"location": str(tmp_path / "m"), "revision": None, "trust_remote_code": False, "device": "cpu",
              "name": "pair/tuned"}
    out = tmp_path / "attr.jsonl.gz"
    n = jobs.attribute_job(tmp_path / "prompts.jsonl", out, {**common, "shard": 0, "shards": 1, "rated": True,
                                                              "prompt_format": "raw", "max_new_tokens": 4, "batch": 3})
    recs = {r["id"]: r for r in matrices.read(out)}
    assert n == 8 and "Summarize" in recs["lima_author_3"]["span_error"]
    assert recs["lima_author_3"]["instruction_mask"] is None
    assert recs["lima_author_1"]["followed"] == 1 and recs["user_oriented_task_1"]["followed"] == 0
    assert recs["lima_author_2"]["followed"] is None  # rating -1: dropped
    # the instruction tokens decode back to the spans (and only they are marked)
    r = recs["lima_author_1"]
    marked = tok.convert_tokens_to_string([t for t, m in zip(r["input_tokens"], r["instruction_mask"]) if m])
    assert "Write a short poem about the sea" in marked and "Keep it under six lines" in marked
    words = behavior_words({"studies": {"behavior_shift": {"heads": {"instruction_words": "paper", "general_words": "paper"},
                                                           "ffn": {"categories": "paper"}, "vocabulary": "tokenizer"}},
                            "data": {"tasks": [], "hub_tasks": {}}})
    jobs.weights_job(tmp_path / "heads.tsv", tmp_path / "ffn.tsv", {**common, "words": words, "heads_top_k": 20,
                                                                    "ffn_top_k": 10, "ffn_components": 5})
    h = pd.read_csv(tmp_path / "heads.tsv", sep="\t")
    assert set(h.word) >= {"summarize", "translate", "write"} and len(h) == 2 * 4 * len(set(words["instruction"] + words["general"]))
    f = pd.read_csv(tmp_path / "ffn.tsv", sep="\t")
    assert len(f) == 2 * 5 and f.explained_variance.between(0, 1).all()


def test_chat_format_gives_the_base_model_the_tuned_models_template(tmp_path):
    """prompt_format chat: both models of a pair must read the same text. A base hub model has
    no chat template (it would get itlab's); its attribution job takes the tuned model's, so
    the input tokens of every prompt are the same for both sides of the pair."""
    from itlab import standin
    from itlab.interpret.jobs import attribute_job

    base, tuned = tmp_path / "base", tmp_path / "tuned"
    standin.standin_model("mistralai/Mistral-7B-v0.1", base)
    standin.standin_model("mistralai/Mistral-7B-Instruct-v0.1", tuned)
    rows = [{"id": "p0", "set": "s", "task": "t", "prompt": "Name three colors.", "instruction": [], "context": "",
             "answer": ""}]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    def run(side, location, template_from):
        p = {"name": f"pair/{side}", "location": str(location), "revision": None, "trust_remote_code": False,
             "device": "cpu", "standin": True, "shard": 0, "shards": 1, "rated": False, "prompt_format": "chat",
             "template_from": template_from, "max_new_tokens": 2, "batch": 1}
        out = tmp_path / f"{side}.jsonl.gz"
        attribute_job(tmp_path / "prompts.jsonl", out, p)
        return [r["input_tokens"] for r in matrices.read(out)]

    tuned_tokens = run("tuned", tuned, str(tuned))
    assert run("base", base, str(tuned)) == tuned_tokens
    from itlab.models import load_tokenizer

    assert "[INST]" in load_tokenizer(str(tuned)).convert_tokens_to_string(tuned_tokens[0])  # Mistral-Instruct's
    assert run("base-alone", base, None) != tuned_tokens  # what the base read before: itlab's template
