"""Study C's paper grid (experiments/teachers.yaml) in stand-in mode with its thinning overlay
(experiments/standin/teachers.yaml): every rule of the paper grid's DAG executes, the judge
included (alpaca-eval's annotator against the served stand-in judge), and a second run with
the hub blocked has nothing to do."""

import re

import pandas as pd
import pytest
import yaml

from conftest import snakemake, write_config
from test_standin import _rules
from test_workflow import _job_counts


@pytest.mark.slow
def test_standin_teachers(tmp_path):
    # the paper grid's DAG, judge included (a key set for the dry-run only)
    paper = snakemake("-n", "--cores", "2", "--configfile", "experiments/teachers.yaml",
                      "--config", f"results_dir={tmp_path / 'paper'}", env={"OPENAI_API_KEY": "dry-run-only"})
    assert paper.returncode == 0, paper.stderr[-3000:]
    assert _job_counts(paper.stdout)["tune_model"] == 95
    paper_rules = _rules(paper.stdout)
    assert {"judge_answers", "analyze_teachers", "fetch_glm_files", "generate_responses"} <= paper_rules

    paths = write_config(tmp_path, {"results_dir": str(tmp_path / "results"),
                                    "mirror": {"dir": str(tmp_path / "mirror")}}, "paths.yaml")
    files = ["--configfile", "experiments/teachers.yaml", "experiments/standin/teachers.yaml", str(paths)]
    no_key = {"OPENAI_API_KEY": ""}  # the served stand-in judge needs none
    res = snakemake("--cores", "2", *files, env=no_key, timeout=1500)
    assert res.returncode == 0, res.stderr[-6000:]
    ran = set(re.findall(r"\(Rule: (\w+)\)", res.stdout + res.stderr)) - {"all"}
    assert paper_rules <= ran, paper_rules - ran  # every rule of the paper grid ran
    # and only the instruction pool of the generator that answers here (kind: model), which the
    # paper grid's zoo generators do not need
    assert ran - paper_rules == {"download_task", "select_instructions"}, ran - paper_rules
    again = snakemake("-n", "--cores", "2", *files,
                      env={**no_key, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert "Nothing to be done" in again.stdout + again.stderr

    root = tmp_path / "results"
    live = pd.read_csv(root / "data/teachers/qwen2-1.5b-live/rewards.tsv", sep="\t")
    zoo = pd.read_csv(root / "data/teachers/qwen2-72b/rewards.tsv", sep="\t")
    assert len(live) == 8 and live["reward:skywork_llama_live"].notna().all()  # the classifier scored them
    assert zoo["reward:skywork_gemma"].notna().all() and zoo["reward:skywork_llama_live"].notna().all()
    judged = pd.concat([pd.read_csv(p, sep="\t") for p in (root / "judge/tuned").glob("*/scores.tsv")])
    assert len(judged) == 3 * 2 and (judged.n == 4).all() and (judged.n_judged == judged.n).all()
    assert judged.score.between(0, 100).all()
    summary = (root / "studies/teachers/summary.md").read_text()
    assert "## Spearman rho of each metric vs AP, across generators" in summary
    rho = pd.read_csv(root / "studies/teachers/spearman.tsv", sep="\t")
    assert {"car", "reward:skywork_llama_live", "ifd_reference", "length"} <= set(rho.metric)
    table = pd.read_csv(root / "studies/teachers/table.tsv", sep="\t")
    assert table.groupby("student").ap.nunique().min() > 1  # teachers made different students
    car = rho[(rho.metric == "car") & (rho.student != "average")]
    assert len(car) == 1 and car.rho.between(-1, 1).all() and (car.n_generators == 3).all()


def _merged(*paths):
    from snakemake.utils import update_config

    from conftest import ROOT

    cfg = {}
    for p in paths:
        update_config(cfg, yaml.safe_load((ROOT / p).read_text()))
    return cfg


def test_overlay_thins_generators_and_mirrors_what_study_c_reads():
    from itlab import teachers_hub
    from itlab.config import validate
    from itlab.grid import Grid

    cfg = validate(_merged("experiments/teachers.yaml", "experiments/standin/teachers.yaml"))
    assert sorted(cfg["studies"]["teachers"]["generators"]) == ["qwen2-1.5b", "qwen2-1.5b-live", "qwen2-72b"]
    assert len(Grid(cfg).teacher_runs()) == 1 * 3
    models = {e["id"] for e in teachers_hub.mirror_models(cfg).values()}
    assert models == {"openai-community/gpt2", "Qwen/Qwen2-1.5B-Instruct", "Skywork/Skywork-Reward-Llama-3.1-8B-v0.2",
                      "meta-llama/Meta-Llama-3-70B-Instruct"}
    data = {(e["id"], e["subset"]) for e in teachers_hub.mirror_datasets(cfg).values()}
    assert data == {("Magpie-Align/Magpie-100K-Generator-Zoo", None), ("lmarena-ai/arena-hard-auto-v0.1", None),
                    ("tatsu-lab/alpaca_eval", "alpaca_eval_gpt4_baseline")}
    # the paper config alone: the reference model and the judged benchmarks are mirrored too
    paper = validate(_merged("experiments/teachers.yaml"))
    assert {e["id"] for e in teachers_hub.mirror_models(paper).values()} == {"openai-community/gpt2"}


def test_unknown_selected_generator_is_named():
    from itlab.config import ConfigError, validate

    cfg = _merged("experiments/teachers.yaml")
    cfg["studies"]["teachers"]["select_generators"] = ["qwen2-7b", "nope"]
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert err.value.key == "studies.teachers.select_generators[1]"


def test_every_standin_model_and_dataset_of_the_overlay_has_a_fixture():
    from itlab import hub, standin, teachers_hub
    from itlab.config import validate

    cfg = validate(_merged("experiments/teachers.yaml", "experiments/standin/teachers.yaml"))
    table = standin.model_table()
    for e in {**hub.mirror_models(cfg), **teachers_hub.mirror_models(cfg)}.values():
        assert e["id"] in table, e["id"]
    for e in {**hub.mirror_datasets(cfg), **teachers_hub.mirror_datasets(cfg)}.values():
        standin.fixture_subset(standin.dataset_fixture(e["id"]), e["subset"], e["key"])  # raises if missing
