"""Study C through the workflow: the paper grid's dry-run (95 tuning jobs; without the judge's
key a clear error and every other rule), the embedded config, bad study-C keys, and a tiny
grid end to end."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import ROOT, snakemake
from test_workflow import _job_counts


def _yaml(path):
    return yaml.safe_load((ROOT / path).read_text())


def _dry(path, tmp_path, env=None):
    res = snakemake("-n", "--cores", "2", "--configfile", str(path), "--config", f"results_dir={tmp_path}", env=env)
    assert res.returncode == 0, res.stderr[-3000:] + res.stdout[-3000:]
    return res, _job_counts(res.stdout)


def test_paper_grid_dry_run_has_95_tuning_jobs_and_the_judge(tmp_path):
    res, jobs = _dry(ROOT / "experiments/teachers.yaml", tmp_path, env={"OPENAI_API_KEY": "set-for-the-test"})
    assert jobs["tune_model"] == 95 and jobs["judge_answers"] == 95 and jobs["answer_benchmarks"] == 95
    assert jobs["generate_responses"] == 19 and jobs["score_rewards"] == 19
    assert jobs["measure_responses"] == 6 and jobs["analyze_teachers"] == 1
    assert "ERROR" not in res.stderr


def test_paper_grid_without_judge_key_names_the_rule_and_runs_the_rest(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}  # conftest.snakemake cannot unset
    res = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--configfile",
                          "experiments/teachers.yaml", "--config", f"results_dir={tmp_path}"], cwd=ROOT,
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "rule judge_answers needs the judge's key" in res.stderr and "OPENAI_API_KEY" in res.stderr
    jobs = _job_counts(res.stdout)
    assert jobs["tune_model"] == 95 and jobs["answer_benchmarks"] == 95 and jobs["score_rewards"] == 19
    assert "judge_answers" not in jobs and "analyze_teachers" not in jobs


def test_paper_grid_recipe_is_the_papers():
    from itlab.config import validate
    from itlab.grid import Grid, tune_arguments, tune_launch

    grid = Grid(validate(_yaml("experiments/teachers.yaml")))
    run = "qwen2.5-3b__teacher-qwen2.5-72b__full__seed-1"
    args = tune_arguments(grid, run)
    assert args["learning_rate"] == 2e-5 and args["epochs"] == 2 and args["global_batch_size"] == 32
    assert args["lr_scheduler"] == "cosine" and args["max_seq_len"] == 4096
    assert args["train_file"].endswith("data/teachers/qwen2.5-72b/responses.jsonl")
    assert tune_launch(grid, run)["processes"] * args["per_device_batch_size"] * 8 == 32  # 4 GPUs x 1 x 8


def test_embedded_teachers_config_dry_run(tmp_path):
    _, jobs = _dry(ROOT / "experiments/embedded-teachers.yaml", tmp_path)
    assert jobs["tune_model"] == 14  # 2 students x 6 generators + 2 ladder models tuned into generators
    assert jobs["generate_responses"] == 6 and jobs["evaluate_model"] == 12 and jobs["measure_responses"] == 3


BAD = [
    (["car", "reward_model"], "nope", "studies.teachers.car.reward_model"),
    (["students"], ["llama-s", "nope-s"], "studies.teachers.students[1]"),
    (["generators", "llama-m-tuned", "mixture"], "nope", "studies.teachers.generators.llama-m-tuned.mixture"),
    (["generators", "gold", "kind"], "model", "studies.teachers.generators.gold.model"),
    (["evaluation", "tasks"], [], "studies.teachers.evaluation"),
    (["reward_models", "checker_em", "kind"], "classifier", "studies.teachers.reward_models.checker_em.model"),
]


@pytest.mark.parametrize("path,value,key", BAD)
def test_bad_teachers_keys_are_named(path, value, key):
    from itlab.config import ConfigError, validate

    cfg = _yaml("experiments/embedded-teachers.yaml")
    node = cfg["studies"]["teachers"]
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert err.value.key == key, str(err.value)


@pytest.mark.slow
def test_tiny_teachers_grid_runs_end_to_end(tiny_cd_run):
    """Study C of the tiny C+D run (conftest.tiny_cd_run: studies C and D in one DAG)."""
    root, _, res = tiny_cd_run
    assert res.returncode == 0, res.stderr[-5000:]
    table = pd.read_csv(root / "studies/teachers/table.tsv", sep="\t")
    assert sorted(table.generator) == ["base", "gold", "noisy", "shuffled", "tuned", "wordy"]
    gold = pd.read_csv(root / "data/teachers/gold/rewards.tsv", sep="\t")
    assert (gold["reward:em"] == 1.0).all()  # the checker accepts every gold answer
    wordy = pd.read_csv(root / "data/teachers/wordy/rewards.tsv", sep="\t")
    assert (wordy["reward:em"] == 0.0).all() and wordy.length.mean() > gold.length.mean()
    # every generator answered the same instructions; the training set is the responses file
    ids = {g: [json.loads(l)["id"] for l in (root / f"data/teachers/{g}/responses.jsonl").open()]
           for g in ("base", "tuned", "gold", "noisy")}
    assert ids["base"] == ids["tuned"] == ids["gold"] == ids["noisy"] and len(ids["gold"]) == 40
    rho = pd.read_csv(root / "studies/teachers/spearman.tsv", sep="\t")
    assert set(rho.metric) >= {"reward:em", "car", "ifd_student", "ppl_reference", "length"}
    summary = (root / "studies/teachers/summary.md").read_text()
    assert "0.889" in summary and (root / "studies/teachers/metrics_vs_ap.png").stat().st_size > 0
