"""The DAG as users drive it: dry-runs of the paper grids, a real local run of a tiny grid,
and partial reruns after a change."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT, snakemake, write_config


def _job_counts(output: str) -> dict:
    table = output[output.index("Job stats:"):]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def _dry_run(*args, results=None):
    extra = ("--config", f"results_dir={results}") if results else ()
    res = snakemake("-n", "--cores", "2", *args, *extra)
    assert res.returncode == 0, res.stderr[-3000:] + res.stdout[-3000:]
    return _job_counts(res.stdout)


def test_default_config_dry_run(tmp_path):
    jobs = _dry_run(results=tmp_path)
    assert jobs["pretrain_model"] == 6 and jobs["tune_model"] == 6


def test_inherent_limits_paper_grid_lists_at_least_90_tuning_jobs(tmp_path):
    jobs = _dry_run("--configfile", "experiments/inherent-limits.yaml", results=tmp_path)
    assert jobs["tune_model"] >= 90
    # every tuned model + the 4 base models, in one job or (70B) in evaluate_shards merged jobs
    assert jobs["evaluate_model"] + jobs["merge_eval_shards"] == jobs["tune_model"] + 4
    assert jobs["evaluate_shard"] == 6 * jobs["merge_eval_shards"] > 0  # sizes.70b.evaluate_shards
    assert "pretrain_model" not in jobs  # hub models: nothing is pretrained at paper scale


def test_experiment_config_replaces_the_default_instead_of_merging(tmp_path):
    res = snakemake("-n", "--cores", "1", "--configfile", "experiments/inherent-limits.yaml",
                    "--config", f"results_dir={tmp_path}")
    assert "llama-s" not in res.stdout and "neox-m" not in res.stdout


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Run the tiny grid for real, in a copy of the config pointing at a temporary results dir."""
    tmp = tmp_path_factory.mktemp("wf")
    cfg = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    cfg["results_dir"] = str(tmp / "results")
    path = write_config(tmp, cfg)
    res = snakemake("--cores", "2", "--configfile", str(path), timeout=900)
    assert res.returncode == 0, res.stderr[-5000:]
    return tmp, cfg, path


@pytest.mark.slow
def test_tiny_grid_runs_end_to_end(tiny_run):
    tmp, cfg, _ = tiny_run
    root = tmp / "results"
    table = pd.read_csv(root / "tables/scores.tsv", sep="\t")
    assert set(table.condition) == {"base_zero_shot", "base_k_shot", "tuned_zero_shot"}
    assert set(table.model) == {f"base/{b}" for b in ("llama-s", "llama-m", "neox-s", "neox-m")} | {
        f"tuned/{b}__mix-all__default__seed-1" for b in ("llama-s", "llama-m", "neox-s", "neox-m")}
    assert table.score.between(0, 1).all() and (table.n == 30).all()
    assert table[table.task == "dedupe"].heldout.all()
    summary = (root / "studies/inherent_limits/summary.md").read_text()
    assert "Pooled Spearman" in summary and "Bigoulaeva" in summary
    corr = pd.read_csv(root / "studies/inherent_limits/correlations.tsv", sep="\t")
    assert {"pooled", "model", "family"} <= set(corr.scope)
    ladder = pd.read_csv(root / "reports/pretraining.tsv", sep="\t")
    for fam, g in ladder.groupby("family"):  # more budget, lower held-out loss
        g = g.sort_values("pretrain_tokens")
        assert g.heldout_loss.is_monotonic_decreasing, g
    # provenance: every tuned model carries its resolved arguments
    args = json.loads((root / "tuned/llama-s__mix-all__default__seed-1/model/train_args.json").read_text())
    assert args["learning_rate"] == cfg["recipes"]["default"]["learning_rate"]
    assert (root / "logs/tune_model/llama-s__mix-all__default__seed-1.log").exists()
    # nothing left to do
    res = snakemake("-n", "--cores", "2", "--configfile", str(tiny_run[2]))
    assert "Nothing to be done" in res.stdout + res.stderr


def _declared_files(configfile) -> tuple[set[Path], set[Path]]:
    """Every output, log and benchmark path of every job of the DAG (a forced dry run lists
    them all), and the log folders: a log path without its suffix (logs/tune_model/<run>/)."""
    res = snakemake("-n", "--forceall", "--cores", "1", "--configfile", str(configfile))
    assert res.returncode == 0, res.stderr[-3000:]
    declared, log_dirs = set(), set()
    for m in re.finditer(r"^    (output|log|benchmark): (.+)$", res.stdout + res.stderr, re.M):
        for f in m.group(2).split(", "):
            path = (ROOT / re.sub(r" \(.*\)$", "", f.strip())).resolve()
            declared.add(path)
            if m.group(1) == "log":
                log_dirs.add(path.with_suffix(""))
    return declared, log_dirs


def undeclared_files(root: Path, configfile) -> list[str]:
    """Files under results_dir that no job declares (as an output, inside a directory()
    output, as a log or benchmark), outside the jobs' log folders and the checkpoint folder
    (results_dir/checkpoints, kept across failed jobs on purpose)."""
    declared, log_dirs = _declared_files(configfile)
    root = Path(root).resolve()
    bad = []
    for f in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
        if f in declared or any(d in declared or d in log_dirs for d in f.parents):
            continue
        if f.relative_to(root).parts[0] == "checkpoints":
            continue
        bad.append(str(f.relative_to(root)))
    return bad


@pytest.mark.slow
def test_every_file_a_rule_writes_is_declared_or_in_its_log_folder(tiny_run):
    """Pretraining, tuning, evaluation and study A's analysis leave nothing under results_dir
    that Snakemake does not know of (it would never be cleaned, shown in --summary or in the
    report), except training logs in the job's log folder; checkpoints, kept outside the run
    folder so that a failed job resumes, are gone once the model is exported."""
    tmp, _, path = tiny_run
    root = tmp / "results"
    assert undeclared_files(root, path) == []
    run = "llama-s__mix-all__default__seed-1"
    assert (root / "logs/tune_model" / run / "metrics.jsonl").exists()
    assert list((root / "logs/tune_model" / run / "tensorboard").iterdir())
    assert sorted(p.name for p in (root / "tuned" / run).iterdir()) == ["DONE.json", "model"]
    assert not [p for p in (root / "checkpoints").rglob("*") if p.is_file()]


@pytest.mark.slow
def test_changing_k_reruns_evaluation_not_tuning(tiny_run, tmp_path):
    _, cfg, _ = tiny_run
    changed = json.loads(json.dumps(cfg))
    changed["studies"]["inherent_limits"]["k_shot"] = 3
    jobs = _dry_run("--configfile", str(write_config(tmp_path, changed)))
    assert "tune_model" not in jobs and "pretrain_model" not in jobs
    assert jobs["evaluate_model"] == 4  # the 4 base models' k-shot condition; tuned ones are zero-shot
    assert jobs["aggregate_scores"] == 1 and jobs["analyze_inherent_limits"] == 1


@pytest.mark.slow
def test_changing_the_recipe_reruns_tuning_only_downstream(tiny_run, tmp_path):
    _, cfg, _ = tiny_run
    changed = json.loads(json.dumps(cfg))
    changed["recipes"]["default"]["learning_rate"] = 5.0e-4
    jobs = _dry_run("--configfile", str(write_config(tmp_path, changed)))
    assert jobs["tune_model"] == 4 and jobs["evaluate_model"] == 4  # tuned models only
    assert "pretrain_model" not in jobs and "build_mixture" not in jobs


@pytest.mark.slow
def test_changing_checkpointing_reruns_no_tuning(tiny_run, tmp_path):
    """checkpoint_every and keep_checkpoints say how a run is saved, not what it computes:
    after a finished run (the tiny grid's), changing them schedules no tuning job (a learning
    rate does)."""
    _, cfg, _ = tiny_run
    target = f"{cfg['results_dir']}/tuned/llama-s__mix-all__default__seed-1/DONE.json"
    assert (Path(target).parent / "model").is_dir()  # finished

    def dry_run(recipe_change):
        changed = json.loads(json.dumps(cfg))
        changed["recipes"]["default"].update(recipe_change)
        out = snakemake(target, "-n", "--cores", "2", "--configfile",
                        str(write_config(tmp_path, changed, "changed.yaml")))
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout + out.stderr

    assert "tune_model" not in dry_run({"checkpoint_every": 7, "keep_checkpoints": 5})
    assert "tune_model" in dry_run({"learning_rate": 5.0e-4})  # the dry run does see result changes


def _yaml(path):
    return yaml.safe_load((ROOT / path).read_text())


def test_scaling_paper_grid_lists_the_full_grid(tmp_path):
    cfg = _yaml("experiments/scaling.yaml")
    s = cfg["studies"]["scaling"]
    n_bases = sum(len(v) for v in cfg["base_models"].values())
    expected = n_bases * sum(len(s["train_sizes"][t]) for t in s["tasks"]) * len(s["seeds"])
    jobs = _dry_run("--configfile", "experiments/scaling.yaml", results=tmp_path)
    assert jobs["tune_model"] == expected == 204
    assert jobs["evaluate_model"] == expected and jobs["analyze_scaling"] == 1
    assert jobs["build_subset"] == sum(len(v) for v in s["train_sizes"].values())


def test_diversity_paper_grid_lists_the_full_grid(tmp_path):
    cfg = _yaml("experiments/diversity.yaml")
    s = cfg["studies"]["diversity"]
    code = s["code_arm"]
    expected = len(s["num_rules"]) * len(s["seeds"]) + len(code["base_models"]) * len(code["mixtures"]) * len(code["seeds"])
    jobs = _dry_run("--configfile", "experiments/diversity.yaml", results=tmp_path)
    assert jobs["tune_model"] == expected == 17
    assert jobs["synthesize_markov"] == len(s["num_rules"])
    assert jobs["pretrain_model"] == 1  # the from-scratch GPT-2 is initialised once, trained per cell


@pytest.mark.parametrize("path,tune", [("experiments/embedded-scaling.yaml", 18), ("experiments/embedded-diversity.yaml", 10)])
def test_embedded_study_configs_dry_run(tmp_path, path, tune):
    jobs = _dry_run("--configfile", path, results=tmp_path)
    assert jobs["tune_model"] == tune


def test_small_data_runs_use_fewer_gpus():
    """Study E's batch of 2 for <= 100 examples cannot be split over 8 GPUs: such runs use and
    ask for 2; multi-node runs ask --gres per node."""
    from itlab.config import validate
    from itlab.grid import Grid, tune_launch, tune_resources

    grid = Grid(validate(_yaml("experiments/scaling.yaml")))
    small, big = "llama3-8b__sub-gsm8k-n10__full__seed-1", "llama3-8b__sub-gsm8k-n7400__full__seed-1"
    assert tune_launch(grid, small)["processes"] == 2 and tune_resources(grid, small)["gpu"] == 2
    assert tune_launch(grid, big)["processes"] == 8 and tune_resources(grid, big)["gpu"] == 8
    multi = tune_resources(grid, "llama3-70b__sub-gsm8k-n7400__full-70b__seed-1")
    assert multi["nodes"] == 4 and multi["gres"] == "gpu:a100:8" and "gpu" not in multi


def test_infeasible_batch_is_a_config_error():
    from itlab.config import ConfigError, validate

    cfg = _yaml("experiments/scaling.yaml")
    cfg["recipes"]["full-70b"]["batch_size_by_examples"] = [[100, 16], [1000, 32], [1000000000, 128]]
    with pytest.raises(ConfigError, match="recipes.full-70b.batch_size_by_examples"):
        validate(cfg)


@pytest.mark.slow
def test_studies_e_and_b_run_end_to_end_in_one_config(tmp_path):
    cfg = yaml.safe_load((ROOT / "tests/configs/tiny-eb.yaml").read_text())
    cfg["results_dir"] = str(tmp_path / "results")
    path = write_config(tmp_path, cfg)
    res = snakemake("--cores", "2", "--configfile", str(path), timeout=900)
    assert res.returncode == 0, res.stderr[-5000:]
    root = tmp_path / "results/studies"
    fits = pd.read_csv(root / "scaling/fits.tsv", sep="\t")
    assert list(fits.task) == ["first_last"] and fits.n_points.iloc[0] == 4
    points = pd.read_csv(root / "scaling/points.tsv", sep="\t")
    assert sorted(points.train_size) == [8, 16, 32, 64]
    cells = pd.read_csv(root / "diversity/cells.tsv", sep="\t")
    assert sorted(cells.num_rules) == [4, 16, 64] and (cells.n == 20).all()  # max_items_per_task caps 40
    for f in ("scaling/scaling.png", "diversity/heatmap.png", "diversity/switch.png", "diversity/summary.md"):
        assert (root / f).stat().st_size > 0
    # training sets: nested subsets, and Markov test rules never seen in training
    subsets = {n: {json.loads(l)["id"] for l in (tmp_path / f"results/data/trainsets/sub-first_last-n{n}.jsonl").open()}
               for n in (8, 16, 32, 64)}
    assert subsets[8] < subsets[16] < subsets[32] < subsets[64]
    cell = tmp_path / "results/data/markov/markov-I64-S4"
    train_rules = {json.loads(l)["rule"] for l in (cell / "train.jsonl").open()}
    assert len(train_rules) == 64 and not train_rules & {json.loads(l)["rule"] for l in (cell / "test.jsonl").open()}
    assert undeclared_files(tmp_path / "results", path) == []  # studies E and B write only what they declare


def test_lint_and_format():
    res = snakemake("--lint", "--config", "results_dir=/tmp/itlab-lint")
    assert res.returncode == 0 and "Congratulations" in res.stdout + res.stderr, res.stdout[-3000:]
    import subprocess
    import sys
    fmt = subprocess.run([str(Path(sys.executable).parent / "snakefmt"), "--check", "Snakefile", "rules/"], cwd=ROOT,
                         capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stderr


@pytest.mark.slow
def test_report_holds_figures_and_tables(tiny_run, tmp_path):
    _, _, path = tiny_run
    report = tmp_path / "report.zip"
    res = snakemake("--cores", "1", "--configfile", str(path), "--report", str(report))
    assert res.returncode == 0, res.stderr[-3000:]
    import zipfile

    names = zipfile.ZipFile(report).namelist()
    for expected in ("tuned_vs_icl.png", "correlations.tsv", "summary.md", "scores.tsv", "pretraining.png"):
        assert any(n.endswith(expected) for n in names), (expected, names[:20])
