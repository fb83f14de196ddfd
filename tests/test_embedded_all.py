"""`make run` (issue 16): the five embedded studies in one DAG on one pretrained ladder
(experiments/embedded-all.yaml composes config.yaml with the embedded E, B, C and D configs)."""

import re

import pytest
import yaml

from conftest import ROOT, snakemake, write_config
from itlab.config import ConfigError, validate
from itlab.grid import Grid, corpus_tasks

ALL = "experiments/embedded-all.yaml"
ANALYSES = ["analyze_inherent_limits", "analyze_scaling", "analyze_diversity", "analyze_teachers",
            "analyze_behavior_shift"]


def _grid(path):
    return Grid(validate(yaml.safe_load((ROOT / path).read_text()), ROOT))


def test_make_run_runs_the_composition():
    make = (ROOT / "Makefile").read_text()
    assert re.search(rf"^RUN_CONFIG \?= {re.escape(ALL)}$", make, re.M)
    run = make.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "--configfile $(RUN_CONFIG)" in run and "results/scorecard.md" in run


def test_every_study_runs_on_the_default_ladder_built_once():
    union, default = _grid(ALL), _grid("config.yaml")
    assert sorted(union.cfg["studies"]) == sorted(["inherent_limits", "scaling", "diversity", "teachers",
                                                   "behavior_shift"])
    # one corpus and tokenizer: the default's, over the default's tasks (study B adds markov_rewrite
    # to the union's data.tasks; its demonstrations stay out of the ladder's corpus)
    for key in ("tokenizer", "pretraining"):
        assert union.cfg[key] == default.cfg[key], key
    for key in ("params", "splits", "heldout_tasks"):
        assert union.cfg["data"][key] == default.cfg["data"][key], key
    assert "markov_rewrite" in union.cfg["data"]["tasks"]
    assert corpus_tasks(union.cfg) == corpus_tasks(default.cfg) == default.cfg["data"]["tasks"]
    assert {**union.cfg["data"]["corpus"], "tasks": None} == {**default.cfg["data"]["corpus"], "tasks": None}
    # the ladder: the default's built bases with the default's sizes, plus study B's from-scratch GPT-2
    ladder = {b for b, m in default.base_models.items() if m.source == "build"}
    built = {b for b, m in union.base_models.items() if m.source == "build"}
    assert ladder <= built and built - ladder == {union.cfg["studies"]["diversity"]["base_model"]}
    for b in ladder:
        size = default.base_models[b].size
        mine = {k: v for k, v in union.cfg["sizes"][size].items() if k != "evaluate_resources"}  # set by compose
        assert union.base_models[b].size == size and mine == default.cfg["sizes"][size], b
    # E, C and D tune and score models of that ladder; D's pairs are A's own tuned runs (run once)
    s = union.cfg["studies"]
    used = set(s["scaling"]["base_models"]) | set(s["teachers"]["students"]) | {s["teachers"]["reference_model"]}
    used |= {r.base for r in union.runs.values() if r.study in ("teachers", "behavior_shift")}
    assert used and used <= ladder
    a_runs = {r.id for r in union.runs.values() if r.study == "inherent_limits"}
    pairs = {p["tuned"].key.split("/", 1)[1] for p in union.behavior_pairs.values()}
    assert pairs and pairs <= a_runs


@pytest.mark.slow
def test_the_dry_run_holds_all_five_studies_and_pretrains_each_base_once(tmp_path):
    """One dry-run of the composition (what `make run` schedules): 13 s at load average 16 on 2 cores."""
    root = str(tmp_path / "r")
    res = snakemake("-n", "--cores", "1", "--configfile", ALL, "--config", f"results_dir={root}")
    assert res.returncode == 0, res.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", res.stdout.split("Job stats:", 1)[1], re.M))
    for rule in [*ANALYSES, "make_scorecard", "train_tokenizer", "build_corpus"]:
        assert counts.get(rule) == "1", rule
    pretrain = re.findall(r"^rule pretrain_model:\n(?:.*\n)*?\s+wildcards: base=(\S+)", res.stdout, re.M)
    bases = _grid(ALL).base_models
    assert sorted(pretrain) == sorted(b for b, m in bases.items() if m.source == "build")
    for rule in ("tune_model", "evaluate_model", "generate_responses", "attribute_responses", "synthesize_markov"):
        assert int(counts.get(rule, 0)) > 0, rule


def test_compose_share_gives_later_configs_the_first_configs_keys(tmp_path):
    a = yaml.safe_load((ROOT / "config.yaml").read_text())
    b = yaml.safe_load((ROOT / "experiments/embedded-behavior-shift.yaml").read_text())
    b["tokenizer"] = {"kind": "bpe", "vocab_size": 320}
    b["sizes"]["s"]["pretrain_tokens"] = 12345
    write_config(tmp_path, a, "a.yaml")
    write_config(tmp_path, b, "b.yaml")
    spec = {"compose": ["a.yaml", "b.yaml"]}
    with pytest.raises(ConfigError):  # without sharing, the two tokenizers conflict
        validate(spec, tmp_path)
    shared = ["seed", "data.params", "data.splits", "data.corpus", "tokenizer", "pretraining", "sizes.*", "recipes.*"]
    cfg = validate({**spec, "compose_share": shared}, tmp_path)
    va = validate(a, ROOT)
    assert va["tokenizer"] == cfg["tokenizer"] and corpus_tasks(va) == corpus_tasks(cfg)
    assert {**va["data"]["corpus"], "tasks": None} == {**cfg["data"]["corpus"], "tasks": None}
    assert cfg["sizes"]["s"]["pretrain_tokens"] == a["sizes"]["s"]["pretrain_tokens"]
    assert not any(n.startswith(("s-", "default-")) for n in [*cfg["sizes"], *cfg["recipes"]])  # nothing renamed
    # the corpus is the first config's, tasks included, whatever tasks the later config adds
    b["data"]["tasks"] = [*b["data"]["tasks"], "markov_rewrite"]
    write_config(tmp_path, b, "b.yaml")
    assert corpus_tasks(validate({**spec, "compose_share": shared}, tmp_path)) == corpus_tasks(va)
    a_named = {**a, "data": {**a["data"], "corpus": {**a["data"]["corpus"], "tasks": ["reverse", "no_such_task"]}}}
    with pytest.raises(ConfigError) as err:
        validate(a_named, ROOT)
    assert err.value.key == "data.corpus.tasks[1]"
    # a path the first config does not have is named
    with pytest.raises(ConfigError) as err:
        validate({**spec, "compose_share": ["tokenizer", "data.corpuss"]}, tmp_path)
    assert err.value.key == "compose_share[1]"
    with pytest.raises(ConfigError) as err:
        validate({**a, "compose_share": ["tokenizer"]}, tmp_path)
    assert err.value.key == "compose_share"
    # null in the composing file removes a key
    cfg = validate({**spec, "compose_share": shared, "studies": {"behavior_shift": None}}, tmp_path)
    assert list(cfg["studies"]) == ["inherent_limits"]
