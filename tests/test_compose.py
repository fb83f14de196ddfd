"""One DAG for all five studies (issue 16): experiments/all-studies.yaml composes the paper
configs; each study keeps its own grid and settings, shared jobs run once."""

import re
from collections import Counter

import pytest
import yaml

from conftest import ROOT, snakemake
from itlab.config import ConfigError, validate
from itlab.grid import Grid, eval_resources, tune_arguments, tune_resources

STUDIES = ["inherent-limits", "scaling", "diversity", "teachers", "behavior-shift"]


def _load(path):
    return validate(yaml.safe_load((ROOT / path).read_text()), ROOT)


def _jobs(out: str, root: str) -> Counter:
    """(rule, outputs with the results folder as R) of every job of a dry-run."""
    jobs = Counter()
    for block in re.split(r"\n\[[^\]]+\]\n", out):
        m = re.match(r"\s*(?:local)?rule (\w+):", block)
        if not m:
            continue
        o = re.search(r"^\s+output: (.*)$", block, re.M)
        outputs = tuple(sorted(x.replace(root, "R") for x in o.group(1).split(", "))) if o else ()
        jobs[(m.group(1), outputs)] += 1
    return jobs


@pytest.mark.slow
def test_union_dry_run_is_the_union_of_the_study_dry_runs(tmp_path):
    per_study = {}
    for name in ["all-studies", *STUDIES]:
        root = str(tmp_path / name)
        res = snakemake("-n", "--cores", "1", "--configfile", f"experiments/{name}.yaml", "--config", f"results_dir={root}")
        assert res.returncode == 0, res.stderr[-3000:]
        jobs = _jobs(res.stdout, root)
        total = int(re.search(r"^total\s+(\d+)$", res.stdout, re.M).group(1))
        assert sum(jobs.values()) == total  # every job was parsed
        per_study[name] = jobs
    union = per_study.pop("all-studies")
    assert sum(union.values()) >= 1000
    rules = {r for jobs in [union, *per_study.values()] for r, _ in jobs}
    for rule in sorted(rules):
        sets = [{o for r, o in jobs if r == rule} for jobs in per_study.values()]
        mine = {o for r, o in union if r == rule}
        count = sum(n for (r, _), n in union.items() if r == rule)
        shared = set.union(*sets)
        if sum(len(s) for s in sets) == len(shared):  # no job in two studies: each study's count
            assert count == sum(len(s) for s in sets), rule
        else:  # a job two studies share (a hub model, the results table, `all`) runs once
            assert mine == shared and count == len(shared), rule
    shared_models = {o for r, o in union if r == "fetch_model"}
    assert len(shared_models) < sum(1 for jobs in per_study.values() for r, _ in jobs if r == "fetch_model")


def _runs_by_study(grid):
    """Per study: the sorted (tuning args without paths, Slurm resources) of its runs."""
    out = {}
    for rid, run in grid.runs.items():
        args = {k: v for k, v in tune_arguments(grid, rid).items() if k not in ("model_path", "train_file", "output_dir")}
        res = tune_resources(grid, rid)
        key = (run.trainset, run.seed, dict(run.meta).get("train_size"), grid.base_models[run.base].location)
        out.setdefault(run.study, []).append((repr(key), repr(sorted(args.items())), repr(sorted(res.items()))))
    return {s: sorted(v) for s, v in out.items()}


def _evals_by_study(grid):
    out = {}
    for model, job in grid.evals.items():
        res = eval_resources(grid, model)
        settings = {**grid.cfg["evaluation"], **grid.cfg["evaluation_by_study"].get(job.study, {})}
        out.setdefault(job.study, []).append((repr(sorted(job.items)), repr(sorted(res.items())), repr(sorted(settings.items()))))
    return {s: sorted(v) for s, v in out.items()}


def test_each_study_keeps_its_own_runs_resources_and_evaluation_in_the_union():
    union = Grid(_load("experiments/all-studies.yaml"))
    u_runs, u_evals = _runs_by_study(union), _evals_by_study(union)
    for name in STUDIES:
        grid = Grid(_load(f"experiments/{name}.yaml"))
        for study, runs in _runs_by_study(grid).items():
            assert u_runs[study] == runs, study
        for study, evals in _evals_by_study(grid).items():
            assert u_evals[study] == evals, study
        assert set(grid.behavior_pairs) <= set(union.behavior_pairs)
    assert len(union.runs) == 406  # 90 (A) + 204 (E) + 17 (B) + 95 (C): no run lost or merged


def test_a_key_the_composed_configs_set_differently_must_be_set_by_the_composing_file(tmp_path):
    a = yaml.safe_load((ROOT / "experiments/diversity.yaml").read_text())
    b = yaml.safe_load((ROOT / "experiments/behavior-shift.yaml").read_text())
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(a))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(b))
    spec = {"compose": ["a.yaml", "b.yaml"], "data": {"tasks": [a["data"]["tasks"][0]]}}
    with pytest.raises(ConfigError) as err:
        validate(spec, tmp_path)
    assert err.value.key == "tokenizer.vocab_size"
    cfg = validate({**spec, "tokenizer": {"vocab_size": 64}}, tmp_path)
    assert sorted(cfg["studies"]) == ["behavior_shift", "diversity"]
    # the same study twice is an error naming it
    with pytest.raises(ConfigError) as err:
        validate({"compose": ["a.yaml", "a.yaml"]}, tmp_path)
    assert err.value.key == "studies.diversity"


def test_composing_one_config_is_that_config(tmp_path):
    """No rename, no lost key: the grid of compose: [scaling.yaml] is scaling.yaml's grid."""
    own = _load("experiments/scaling.yaml")
    one = validate({"compose": ["experiments/scaling.yaml"], "results_dir": own["results_dir"]}, ROOT)
    a, b = Grid(own), Grid(one)
    assert sorted(a.runs) == sorted(b.runs) and sorted(a.evals) == sorted(b.evals)
    for rid in a.runs:
        assert tune_arguments(a, rid) == tune_arguments(b, rid) and tune_resources(a, rid) == tune_resources(b, rid)


def test_a_task_held_out_by_one_config_and_trained_on_by_another_is_an_error(tmp_path):
    a = yaml.safe_load((ROOT / "config.yaml").read_text())
    b = yaml.safe_load((ROOT / "experiments/embedded-behavior-shift.yaml").read_text())
    for key in ("params", "corpus", "splits"):  # the same synthetic data and tokenizer: only the held-out tasks differ
        b["data"][key] = a["data"][key]
    b["tokenizer"], b["pretraining"], b["sizes"] = a["tokenizer"], a["pretraining"], a["sizes"]
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(a))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(b))
    assert validate({"compose": ["a.yaml", "b.yaml"]}, tmp_path)["data"]["heldout_tasks"] == a["data"]["heldout_tasks"]
    b["data"]["heldout_tasks"] = []  # b now tunes on a's held-out tasks: the union cannot hold them out for a only
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(b))
    with pytest.raises(ConfigError) as err:
        validate({"compose": ["a.yaml", "b.yaml"]}, tmp_path)
    assert err.value.key == "data.heldout_tasks" and "b.yaml" in str(err.value)
