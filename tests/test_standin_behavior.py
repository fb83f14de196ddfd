"""Study D's paper config (experiments/behavior-shift.yaml) in stand-in mode: every rule of the
paper DAG runs on stand-ins of the four hub models and fixtures of the authors' prompt and
ratings files, and a second run with the hub offline does nothing."""

import json

import pandas as pd
import pytest

from test_standin import _run_standin


@pytest.mark.slow
def test_standin_behavior_shift(tmp_path):
    root = _run_standin("behavior-shift", tmp_path)
    out = root / "studies/behavior_shift"
    scores = pd.read_csv(out / "scores.tsv", sep="\t", keep_default_na=False)
    # 11 fixture prompts x 2 pairs x 2 sides, each prompt once per model (shards partition them)
    assert len(scores) == 11 * 2 * 2
    assert scores.groupby(["pair", "side"]).prompt.nunique().eq(11).all()
    assert set(scores.pair) == {"llama-vicuna", "mistral-instruct"}
    assert set(scores.set) == {"user", "lima", "mtbench"}
    # the span not in its prompt is counted for every model, not dropped; the rest are scored
    bad = scores[scores.span_error != ""]
    assert set(bad.prompt) == {"lima_author_3"} and len(bad) == 4
    ok = scores[scores.span_error == ""]
    assert len(ok) > 0 and ok.instruction_score.astype(float).between(0, 10).all()
    # ratings label only the rated pair's tuned model (rating -1 -> unlabelled)
    labelled = scores[scores.followed != ""]
    assert set(zip(labelled.pair, labelled.side)) == {("llama-vicuna", "tuned")}
    assert len(labelled) == 10  # lima_author_2 is rated -1
    summary = (out / "summary.md").read_text()
    for paper_number in ("1.1302", "0.9394", "1.5579", "1.2683", "1.3440", "1.1777", "1.2283", "0.8917"):
        assert paper_number in summary
    assert "instruction span was not found in their tokens: 1 " in summary and "`lima_author_3`" in summary
    heads = pd.read_csv(out / "heads.tsv", sep="\t")
    assert set(heads.pair) == {"llama-vicuna", "mistral-instruct"} and len(heads) == 2 * 2  # 2 layers, groups of 1
    # the tuned stand-ins are their own hub entries, with the base's vocabulary and other weights
    mirror = tmp_path / "mirror/models"
    for base, tuned, template in (("huggyllama--llama-7b", "lmsys--vicuna-7b-v1.1", False),
                                  ("mistralai--Mistral-7B-v0.1", "mistralai--Mistral-7B-Instruct-v0.1", True)):
        b = json.loads((mirror / base / "tokenizer.json").read_text())["model"]["vocab"]
        t = json.loads((mirror / tuned / "tokenizer.json").read_text())["model"]["vocab"]
        assert b == t
        cfg = json.loads((mirror / tuned / "tokenizer_config.json").read_text())
        assert bool(cfg.get("chat_template")) == template
        assert (mirror / base / "model.safetensors").read_bytes() != (mirror / tuned / "model.safetensors").read_bytes()
    arch = json.loads((mirror / "mistralai--Mistral-7B-Instruct-v0.1/config.json").read_text())["architectures"]
    assert arch == ["MistralForCausalLM"]
    for fig in ("heatmaps.png", "scores.png", "heads.png"):
        assert (out / fig).stat().st_size > 1000
