# Config loading and validation, the grid, path helpers and every input function.
import json
import os
import sys

sys.path.insert(0, workflow.basedir)

from itlab.config import validate as validate_config  # noqa: E402
from itlab.data import mixture_tasks  # noqa: E402
from itlab.grid import (  # noqa: E402
    Grid,
    all_tasks,
    heldout_tasks,
    pretrain_arguments,
    scaling_sizes,
    synthetic_tasks,
    task_cluster,
    tune_arguments,
    tune_launch,
    tune_resources,
)

if workflow.config_settings.configfiles:
    # An experiment config replaces the embedded default instead of being merged into it
    # (a paper grid must not inherit the tiny ladder). Several --configfile merge in order,
    # then --config overrides.
    config.clear()
    config.update(json.loads(json.dumps(workflow.config_settings.overwrite_config)))
_validated = validate_config(config, base_dir=workflow.basedir)
config.clear()
config.update(_validated)
GRID = Grid(config)
R = config["results_dir"]
ENVS = "../envs"


wildcard_constraints:
    base="[A-Za-z0-9._-]+",
    run="[A-Za-z0-9._-]+__[A-Za-z0-9._-]+",
    task="[A-Za-z0-9_]+",
    mixture="[A-Za-z0-9._-]+",
    cell="markov-I[0-9]+-S[0-9]+",
    n="[0-9]+",
    model="(base|tuned)/[A-Za-z0-9._-]+",


def built_base_models():
    return [b for b, m in GRID.base_models.items() if m.source == "build"]


def pretrained_base_models():
    """Built models with a pretraining budget: the ladder of the pretraining report."""
    return [
        b
        for b in built_base_models()
        if config["sizes"][GRID.base_models[b].size]["pretrain_tokens"] > 0
    ]


def task_files(tasks=None):
    tasks = synthetic_tasks(config) if tasks is None else tasks
    return [
        GRID.task_split(t, s) for t in tasks for s in ("train", "validation", "test")
    ]


def final_outputs():
    studies = config["studies"]
    out = []
    if pretrained_base_models():
        out += [f"{R}/reports/pretraining.tsv", f"{R}/reports/pretraining.png"]
    if GRID.evals:
        out.append(f"{R}/tables/scores.tsv")
    for study in studies:
        out.append(f"{R}/studies/{study}/summary.md")
    return out


# ---- input functions -------------------------------------------------------------------
def mixture_members(mixture):
    clusters = {t: task_cluster(config, t) for t in all_tasks(config)}
    spec = config["data"]["mixtures"][mixture]
    return mixture_tasks(spec, clusters, heldout_tasks(config))


def mixture_inputs(wildcards):
    return [GRID.task_split(t, "train") for t in mixture_members(wildcards.mixture)]


def pretrain_inputs(wildcards):
    return {
        "tokenizer": f"{R}/tokenizer/tokenizer.json",
        "corpus": f"{R}/data/corpus/train.txt",
        "heldout": f"{R}/data/corpus/validation.txt",
    }


def tune_inputs(wildcards):
    run = GRID.runs[wildcards.run]
    return {
        "base": GRID.model_done(f"base/{run.base}"),
        "trainset": GRID.trainset_path(run.trainset),
    }


def tune_params(wildcards):
    return tune_arguments(GRID, wildcards.run)


def tune_resource(name, default=None):
    def get(wildcards):
        return tune_resources(GRID, wildcards.run).get(name, default)

    return get


def eval_job(wildcards):
    return GRID.evals[wildcards.model]


def lm_eval_task(task):
    return config["data"]["hub_tasks"].get(task, {}).get("lm_eval_task")


def eval_inputs(wildcards):
    job = eval_job(wildcards)
    files = [
        f
        for t, _ in sorted(job.items)
        if not lm_eval_task(t)
        for f in GRID.eval_task_files(t).values()
    ]
    return {"model": GRID.model_done(job.model), "data": sorted(set(files))}


def eval_params(wildcards):
    """Everything that defines an evaluation's result: a change reruns only affected jobs."""
    job = eval_job(wildcards)
    items = sorted(job.items)
    uses_k = any(c.endswith("k_shot") for _, c in items)
    return {
        "model_dir": GRID.model_dir(job.model),
        "items": [list(i) for i in items],
        "files": {t: GRID.eval_task_files(t) for t, _ in items},
        "k_shot": job.k_shot if uses_k else 0,
        "lm_eval_tasks": {t: lm_eval_task(t) for t, _ in items if lm_eval_task(t)},
        "answer_format": GRID.answer_format(job.model),
        # the seed of evaluation subsamples and per-item in-context examples
        "seed": config["seed"],
        **config["evaluation"],
    }


def diversity_samples(wildcards=None):
    return {
        m: f"{R}/eval/{m}/samples.jsonl"
        for m in sorted(GRID.evals)
        if GRID.model_meta(m).get("study") == "diversity"
    }


def all_scores(wildcards=None):
    return {m: GRID.eval_scores(m) for m in sorted(GRID.evals)}


def model_metadata():
    meta = {m: GRID.model_meta(m) for m in sorted(GRID.evals)}
    clusters = {t: task_cluster(config, t) for t in all_tasks(config)}
    return {
        "models": meta,
        "clusters": clusters,
        "heldout": sorted(heldout_tasks(config)),
    }


def print_summaries():
    """After a successful run, say where the results are."""
    for study in config["studies"]:
        path = f"{R}/studies/{study}/summary.md"
        if os.path.exists(path):
            print(f"itlab: {study} summary: {path}")
    if os.path.exists(f"{R}/tables/scores.tsv"):
        print(f"itlab: results table: {R}/tables/scores.tsv")
