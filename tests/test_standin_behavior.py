"""Study D's paper config (experiments/behavior-shift.yaml) in stand-in mode: every rule of the
paper DAG runs on stand-ins of the four hub models and fixtures of the authors' prompt and
ratings files, and a second run with the hub offline does nothing."""

import json

import pandas as pd
import pytest
import yaml

from conftest import ROOT
from itlab import hub, standin
from itlab.config import ConfigError, validate
from test_standin import _run_standin

PAPER = yaml.safe_load((ROOT / "experiments/behavior-shift.yaml").read_text())


def _paper():
    return json.loads(json.dumps(PAPER))


def test_pair_models_are_mirror_entries_at_the_pinned_revision():
    """The four hub models of the pairs are fetched into the mirror (at the pair's revision,
    not main) and the attribution/weight jobs read them from there, after the fetch."""
    from itlab.grid import Grid

    cfg = validate(_paper(), ROOT)
    models = {e["id"]: e for e in hub.mirror_models(cfg).values()}
    assert {"huggyllama/llama-7b", "lmsys/vicuna-7b-v1.1", "mistralai/Mistral-7B-v0.1",
            "mistralai/Mistral-7B-Instruct-v0.1"} <= set(models)
    assert models["huggyllama/llama-7b"]["revision"] == "4782ad278652c7c71b72204d462d6d01eaaf7549"
    assert all(i in standin.model_table() for i in models)  # each has a stand-in entry
    ref = Grid(cfg).behavior_pairs["llama-vicuna"]["tuned"]
    assert ref.location == hub.model_path(cfg["mirror"]["dir"], "lmsys/vicuna-7b-v1.1")
    assert ref.done == (f"{ref.location}/MANIFEST.json",)


def test_a_pair_revision_contradicting_another_pin_names_the_key():
    cfg = _paper()
    cfg["mirror"] = {"revisions": {"huggyllama/llama-7b": "abc"}}
    with pytest.raises(ConfigError) as err:
        validate(cfg, ROOT)
    assert err.value.key == "studies.behavior_shift.pairs.llama-vicuna.base.revision"


def test_sentencepiece_stand_in_pieces_do_not_cross_word_boundaries():
    """As SentencePiece (Llama, Mistral): "▁" only starts a piece, so a sentence has the same
    tokens alone as followed by more text, and the authors' span matching behaves as on the
    real tokenizer (pieces such as ".▁" made 4 of the fixture's spans unfindable)."""
    tok = standin.standin_tokenizer(standin.model_table()["huggyllama/llama-7b"])
    assert not [t for t in tok.get_vocab() if "\u2581" in t[1:]]
    span = "Rewrite the sentence in a formal tone."
    alone = tok.tokenize(span)
    assert tok.tokenize(span + " Keep the meaning.")[:len(alone)] == alone


def test_standin_prompt_files_keep_the_authors_schema(tmp_path):
    from itlab.interpret import prompts

    url = PAPER["studies"]["behavior_shift"]["prompts"]["url"]
    prompts.standin_file(url, tmp_path / "dataset.tsv")
    prompts.standin_file(PAPER["studies"]["behavior_shift"]["prompts"]["ratings_url"], tmp_path / "ratings.tsv")
    ps = prompts.build_prompts({"prompts": {"source": "final_dataset", "rated_model": "vicuna_7B"}},
                               tmp_path / "dataset.tsv", tmp_path / "ratings.tsv")
    assert len(ps) == 11 and {p["set"] for p in ps} == {"user", "lima", "mtbench"}
    assert [p["id"] for p in ps if "span_error" in p] == ["lima_author_3"]
    assert sum("rating" in p for p in ps) == 11
    with pytest.raises(FileNotFoundError, match="no stand-in fixture"):
        prompts.standin_file("https://example.org/Other.tsv", tmp_path / "x.tsv")


def test_a_pair_with_two_vocabularies_is_refused(tmp_path):
    from itlab.analysis.behavior_shift import VocabularyMismatch, check_vocabularies

    files = {}
    for side, sha in (("base", "a" * 64), ("tuned", "b" * 64)):
        files[("p", side)] = tmp_path / f"{side}.json"
        files[("p", side)].write_text(json.dumps({"tokenizer_size": 10, "tokenizer_sha256": sha, "words": ["x"]}))
    with pytest.raises(VocabularyMismatch, match="pair p"):
        check_vocabularies(files)
    files[("p", "tuned")].write_text(files[("p", "base")].read_text())
    check_vocabularies(files)


@pytest.mark.slow
def test_standin_behavior_shift(tmp_path):
    from transformers import AutoTokenizer

    root = _run_standin("behavior-shift", tmp_path)
    out = root / "studies/behavior_shift"
    scores = pd.read_csv(out / "scores.tsv", sep="\t", keep_default_na=False)
    # 11 fixture prompts x 2 pairs x 2 sides, each prompt once per model
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
        assert bool(AutoTokenizer.from_pretrained(mirror / tuned).chat_template) == template
        assert AutoTokenizer.from_pretrained(mirror / base).chat_template is None  # base models ship none
        assert (mirror / base / "model.safetensors").read_bytes() != (mirror / tuned / "model.safetensors").read_bytes()
    arch = json.loads((mirror / "mistralai--Mistral-7B-Instruct-v0.1/config.json").read_text())["architectures"]
    assert arch == ["MistralForCausalLM"]
    for fig in ("heatmaps.png", "scores.png", "heads.png"):
        assert (out / fig).stat().st_size > 1000
