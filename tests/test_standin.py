"""Stand-in runs of the paper grids: each experiments/<grid>.yaml with its thinning overlay
(experiments/standin/<grid>.yaml) runs from scratch on 2 CPU cores, and every rule of the
paper grid's DAG executes."""

import json
import re

import pandas as pd
import pytest
import yaml

from conftest import ROOT, snakemake, write_config


def _rules(output: str) -> set:
    table = output[output.index("Job stats:"):]
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+$", table, re.M)} - {"total", "all"}


def test_json_train_arguments_keep_small_learning_rates_numeric(tmp_path):
    """The paper recipes' 5e-5 went through json.dumps as "5e-05", which YAML 1.1 reads as a
    string: every paper-scale tuning job died in AdamW."""
    from itlab.train.args import TrainArguments

    TrainArguments(learning_rate=5e-5, output_dir="x").save(tmp_path / "a.json")
    args = TrainArguments.parse(["--args", str(tmp_path / "a.json")])
    assert args.learning_rate == 5e-5 and isinstance(args.learning_rate, float)


@pytest.fixture(scope="module")
def paper_rules(tmp_path_factory):
    """grid -> the rules of the paper config's DAG (snakemake -n), computed once per grid: the
    dry-run test and the stand-in run of the same grid share it."""
    cache = {}

    def get(grid):
        if grid not in cache:
            res = snakemake("-n", "--cores", "2", "--configfile", f"experiments/{grid}.yaml",
                            "--config", f"results_dir={tmp_path_factory.mktemp('paper')}")
            assert res.returncode == 0, res.stderr[-3000:]
            cache[grid] = _rules(res.stdout)
        return cache[grid]

    return get


@pytest.mark.parametrize("grid", ["inherent-limits", "scaling", "diversity"])
def test_paper_dry_run_lists_fetch_jobs(grid, paper_rules):
    assert {"fetch_model", "fetch_dataset", "download_task"} <= paper_rules(grid)
    if grid != "inherent-limits":  # HumanEval(+)/MBPP's code_eval, IFEval's punkt_tab
        assert "fetch_asset" in paper_rules(grid)


def _run_standin(grid, tmp_path, paper_rules=None):
    paths = write_config(tmp_path, {"results_dir": str(tmp_path / "results"),
                                    "mirror": {"dir": str(tmp_path / "mirror")}}, "paths.yaml")
    files = ["--configfile", f"experiments/{grid}.yaml", f"experiments/standin/{grid}.yaml", str(paths)]
    if paper_rules is None:  # no shared dry-run: this grid's own
        res = snakemake("-n", "--cores", "2", "--configfile", f"experiments/{grid}.yaml",
                        "--config", f"results_dir={tmp_path / 'paper'}")
        assert res.returncode == 0, res.stderr[-3000:]
        paper = _rules(res.stdout)
    else:
        paper = paper_rules(grid)
    res = snakemake("--cores", "2", *files, timeout=1500)
    assert res.returncode == 0, res.stderr[-6000:]
    ran = set(re.findall(r"\(Rule: (\w+)\)", res.stdout + res.stderr)) - {"all"}
    assert paper <= ran, paper - ran  # every rule of the paper grid ran
    again = snakemake("-n", "--cores", "2", *files, env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert "Nothing to be done" in again.stdout + again.stderr
    return tmp_path / "results"


@pytest.mark.slow
def test_standin_inherent_limits(tmp_path, paper_rules):
    root = _run_standin("inherent-limits", tmp_path, paper_rules)
    table = pd.read_csv(root / "tables/scores.tsv", sep="\t")
    assert set(table.condition) == {"base_zero_shot", "base_k_shot", "tuned_zero_shot"}
    assert {"flan", "samplegen", "corrupted", "no-nli"} <= set(table.mixture.dropna())
    assert {"llama2-7b", "llama2-70b", "mistral-7b"} <= set(table.base_model)
    args = json.loads((root / "tuned/llama2-70b__mix-no-nli__qlora__seed-42/model/train_args.json").read_text())
    assert args["lora_r"] == 4 and args["zero_stage"] == 2 and args["quantize_4bit"]  # QLoRA in 4 bit, 2 processes
    assert "Linear4bit" in (root / "logs/tune_model/llama2-70b__mix-no-nli__qlora__seed-42.log").read_text()
    assert args["model_revision"].startswith("meta-llama/Llama-2-70b-hf@standin-")  # id@commit:content hash
    assert (root / "studies/inherent_limits/summary.md").exists()
    # the 70B stand-in's evaluation ran in 2 shards: merged = one unsharded evaluation; resume
    from test_evaluate_shards import check_standin_shards

    check_standin_shards(root, ["experiments/inherent-limits.yaml", "experiments/standin/inherent-limits.yaml",
                                str(tmp_path / "paths.yaml")])


@pytest.mark.slow
def test_standin_scaling(tmp_path, paper_rules):
    root = _run_standin("scaling", tmp_path, paper_rules)
    table = pd.read_csv(root / "tables/scores.tsv", sep="\t")
    assert {"gsm8k", "conifer"} <= set(table.task)
    assert "exact_match,flexible-extract" in set(table.metric)  # gsm8k's own harness task, from the mirror
    ifeval = table[table.task == "conifer"]  # lm-eval's IFEval checkers, punkt_tab from the mirror
    assert "prompt_level_strict_acc" in set(ifeval.metric) and ifeval.score.between(0, 1).all()
    assert (root / "logs/fetch_asset/punkt_tab.log").exists()
    args = json.loads((root / "tuned/llama3-70b__sub-gsm8k-n4__full-70b__seed-1/model/train_args.json").read_text())
    assert args["zero_stage"] == 3 and args["offload_optimizer"]  # the 70B recipe and ZeRO settings
    assert (root / "studies/scaling/fits.tsv").exists() and (root / "studies/scaling/summary.md").exists()


@pytest.mark.slow
def test_standin_diversity(tmp_path, paper_rules):
    root = _run_standin("diversity", tmp_path, paper_rules)
    table = pd.read_csv(root / "tables/scores.tsv", sep="\t")
    assert {"markov-I4-S16", "markov-I8-S8", "humaneval", "mbpp"} <= set(table.task)
    code = table[table.task.isin(["humaneval", "mbpp"])]
    assert set(code.task) == {"humaneval", "mbpp"} and code.score.between(0, 1).all()  # code_eval from the mirror
    assert (root / "logs/fetch_asset/code_eval.log").exists()
    assert (root / "studies/diversity/summary.md").exists()


def test_ifeval_checkers_import():
    """IFEval's instruction checkers need lm-eval's [ifeval] extra (langdetect, immutabledict,
    nltk), pinned in requirements.txt and envs/eval.yaml. (Their nltk punkt_tab data and the
    code tasks' code_eval metric come from the mirror: tests/test_hub.py.)"""
    import importlib

    importlib.import_module("lm_eval.tasks.ifeval.instructions")
