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


@pytest.mark.parametrize("grid", ["inherent-limits", "scaling", "diversity"])
def test_paper_dry_run_lists_fetch_jobs(grid, tmp_path):
    res = snakemake("-n", "--cores", "2", "--configfile", f"experiments/{grid}.yaml",
                    "--config", f"results_dir={tmp_path}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert {"fetch_model", "fetch_dataset", "download_task"} <= _rules(res.stdout)


def _run_standin(grid, tmp_path):
    paths = write_config(tmp_path, {"results_dir": str(tmp_path / "results"),
                                    "mirror": {"dir": str(tmp_path / "mirror")}}, "paths.yaml")
    files = ["--configfile", f"experiments/{grid}.yaml", f"experiments/standin/{grid}.yaml", str(paths)]
    paper = snakemake("-n", "--cores", "2", "--configfile", f"experiments/{grid}.yaml",
                      "--config", f"results_dir={tmp_path / 'paper'}")
    assert paper.returncode == 0, paper.stderr[-3000:]
    res = snakemake("--cores", "2", *files, timeout=1500)
    assert res.returncode == 0, res.stderr[-6000:]
    ran = set(re.findall(r"\(Rule: (\w+)\)", res.stdout + res.stderr)) - {"all"}
    assert _rules(paper.stdout) <= ran, _rules(paper.stdout) - ran  # every rule of the paper grid ran
    again = snakemake("-n", "--cores", "2", *files, env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert "Nothing to be done" in again.stdout + again.stderr
    return tmp_path / "results"


@pytest.mark.slow
def test_standin_inherent_limits(tmp_path):
    root = _run_standin("inherent-limits", tmp_path)
    table = pd.read_csv(root / "tables/scores.tsv", sep="\t")
    assert set(table.condition) == {"base_zero_shot", "base_k_shot", "tuned_zero_shot"}
    assert {"flan", "samplegen", "corrupted", "no-nli"} <= set(table.mixture.dropna())
    assert {"llama2-7b", "llama2-70b", "mistral-7b"} <= set(table.base_model)
    args = json.loads((root / "tuned/llama2-70b__mix-no-nli__qlora__seed-42/model/train_args.json").read_text())
    assert args["lora_r"] == 4 and args["zero_stage"] == 2
    assert args["model_revision"].startswith("meta-llama/Llama-2-70b-hf@standin-")  # id@commit:content hash
    assert (root / "studies/inherent_limits/summary.md").exists()


@pytest.mark.slow
def test_standin_scaling(tmp_path):
    root = _run_standin("scaling", tmp_path)
    table = pd.read_csv(root / "tables/scores.tsv", sep="\t")
    assert {"gsm8k", "subqa"} <= set(table.task)
    assert "exact_match,flexible-extract" in set(table.metric)  # gsm8k's own harness task, from the mirror
    args = json.loads((root / "tuned/llama3-70b__sub-gsm8k-n4__full-70b__seed-1/model/train_args.json").read_text())
    assert args["zero_stage"] == 3 and args["offload_optimizer"]  # the 70B recipe and ZeRO settings
    assert (root / "studies/scaling/fits.tsv").exists() and (root / "studies/scaling/summary.md").exists()


@pytest.mark.slow
def test_standin_diversity(tmp_path):
    root = _run_standin("diversity", tmp_path)
    table = pd.read_csv(root / "tables/scores.tsv", sep="\t")
    assert {"markov-I4-S16", "markov-I8-S8", "oss_instruct"} <= set(table.task)
    assert (root / "studies/diversity/summary.md").exists()


@pytest.mark.xfail(strict=True, reason="lm-eval's HumanEval/MBPP load the code_eval metric script from the hub "
                                       "when the task is built; the mirror does not hold it yet")
def test_code_benchmarks_build_offline(tmp_path):
    import subprocess
    import sys

    code = "from lm_eval.tasks import TaskManager; TaskManager().load(['humaneval'])"
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                              "HF_EVALUATE_OFFLINE": "1", "HF_ALLOW_CODE_EVAL": "1"})
    assert res.returncode == 0, res.stderr[-2000:]


def test_ifeval_checkers_import():
    """IFEval's instruction checkers need lm-eval's [ifeval] extra (langdetect, immutabledict,
    nltk), pinned in requirements.txt and envs/eval.yaml. (Its nltk punkt data is not mirrored
    yet: see the README's stand-in section.)"""
    import importlib

    importlib.import_module("lm_eval.tasks.ifeval.instructions")
