"""Bad configurations are rejected before any job starts, with the offending key named."""

import copy

import pytest

from itlab.config import ConfigError, validate

from conftest import snakemake, write_config


def _set(cfg, path, value):
    node = cfg
    *parents, last = path
    for p in parents:
        node = node[p]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return cfg


_DELETE = object()

# (description, path to change, new value, key the message must name)
BAD = [
    ("wrong type", ["seed"], "twelve", "seed"),
    ("wrong type nested", ["data", "splits", "train"], "many", "data.splits.train"),
    ("unknown top-level key", ["sede"], 1, "sede"),
    ("unknown nested key", ["recipes", "default", "learnig_rate"], 0.1, "recipes.default.learnig_rate"),
    ("negative size", ["sizes", "s", "model", "hidden_size"], -32, "sizes.s.model.hidden_size"),
    ("negative budget", ["sizes", "m", "pretrain_tokens"], -5, "sizes.m.pretrain_tokens"),
    ("empty grid axis: seeds", ["studies", "inherent_limits", "seeds"], [], "studies.inherent_limits.seeds"),
    ("empty grid axis: mixtures", ["studies", "inherent_limits", "mixtures"], [], "studies.inherent_limits.mixtures"),
    ("empty grid axis: sizes of a family", ["base_models", "llama"], [], "base_models.llama"),
    ("missing file", ["data", "corpus", "extra_files"], ["no/such/corpus.txt"], "data.corpus.extra_files[0]"),
    ("missing local model folder", ["families", "llama", "local"], {"s": "no/such/model"}, "families.llama.local.s"),
    ("unknown mixture in a study", ["studies", "inherent_limits", "mixtures"], ["all", "nope"],
     "studies.inherent_limits.mixtures[1]"),
    ("held-out task that does not exist", ["data", "heldout_tasks"], ["dedupe", "nosuchtask"], "data.heldout_tasks[1]"),
    ("unknown task", ["data", "tasks"], ["add", "frobnicate"], "data.tasks[1]"),
    ("empty corpus task list", ["data", "corpus", "tasks"], [], "data.corpus.tasks"),
    ("corpus weight of a task outside the corpus", ["data", "corpus", "task_weights"],
     {"reverse": 0.2, "markov_rewrite": 1}, "data.corpus.task_weights.markov_rewrite"),
    ("zero corpus weight", ["data", "corpus", "task_weights"], {"reverse": 0}, "data.corpus.task_weights.reverse"),
    ("size not defined", ["base_models", "neox"], ["s", "xl"], "base_models.neox[1]"),
    ("family not defined", ["base_models", "gpt9"], ["s"], "base_models.gpt9"),
    ("heads do not divide width", ["sizes", "l", "model", "num_heads"], 5, "sizes.l.model.hidden_size"),
    ("bad enum", ["device"], "tpu", "device"),
    ("bf16 on cpu", ["sizes", "s", "tune"], {"bf16": True}, "sizes.s.tune.bf16"),
    ("param offload without ZeRO-3", ["sizes", "s", "tune"], {"zero_stage": 2, "offload_params": True},
     "sizes.s.tune.offload_params"),
    ("recipe not defined", ["studies", "inherent_limits", "recipe"], "fast", "studies.inherent_limits.recipe"),
    ("missing required key", ["recipes"], _DELETE, "recipes"),
    ("min_len above max_len", ["data", "params", "min_len"], 20, "data.params.min_len"),
    ("mixture that selects nothing", ["data", "mixtures", "all", "clusters"], ["arithmetic"],
     None),  # valid: arithmetic minus held-out subtract still has tasks
]


@pytest.mark.parametrize("desc,path,value,key", [b for b in BAD if b[3]], ids=[b[0] for b in BAD if b[3]])
def test_bad_config_names_the_key(config, desc, path, value, key):
    bad = _set(copy.deepcopy(config), path, value)
    with pytest.raises(ConfigError) as err:
        validate(bad)
    assert err.value.key == key, str(err.value)
    assert f"'{key}'" in str(err.value)


def test_default_config_is_valid_and_defaults_are_filled(config):
    out = validate(config)
    assert out["evaluation"]["batch_size"] == 64
    assert out["recipes"]["default"]["lr_scheduler"] == "cosine"  # a schema default
    assert out["sizes"]["s"]["tune"]["per_device_batch_size"] == 8  # a schema default
    assert "lr_scheduler" not in config["recipes"]["default"], "validate must not mutate its input"


def test_mixture_of_only_heldout_tasks_is_rejected(config):
    config["data"]["heldout_tasks"] = ["add", "maximum", "multiply", "subtract"]  # the arithmetic cluster
    config["data"]["mixtures"]["all"]["clusters"] = ["arithmetic"]
    with pytest.raises(ConfigError, match="data.mixtures.all"):
        validate(config)


def test_independent_instructions_need_bracketed_inputs(config):
    """markov_rewrite's phrasings put no [...] around their inputs: no instruction to swap."""
    config["data"]["corpus"]["instructions"] = "independent"
    validate(copy.deepcopy(config))
    config["data"]["corpus"]["tasks"] = ["reverse", "markov_rewrite"]
    config["data"]["corpus"]["task_weights"] = {}  # the default's weights name tasks left out here
    with pytest.raises(ConfigError, match="markov_rewrite") as err:
        validate(config)
    assert err.value.key == "data.corpus.instructions"


def test_snakemake_rejects_bad_config_before_any_job(tmp_path, config):
    config["sizes"]["s"]["model"]["num_layers"] = -1
    config["results_dir"] = str(tmp_path / "results")
    cfg = write_config(tmp_path, config)
    res = snakemake("-n", "--configfile", str(cfg), "--cores", "1")
    assert res.returncode != 0
    assert "sizes.s.model.num_layers" in res.stdout + res.stderr
    assert not (tmp_path / "results").exists()
