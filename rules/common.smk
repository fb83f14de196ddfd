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
    eval_resources,
    eval_shard_count,
    eval_shards,
    behavior_resources,
    behavior_words,
    corpus_tasks,
    heldout_tasks,
    pretrain_arguments,
    scaling_sizes,
    synthetic_tasks,
    task_cluster,
    teachers_resources,
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
from itlab.plan import runtime_errors, tune_priorities  # noqa: E402

# jobs that would be killed at their time limit: an error before any job (python -m itlab.plan)
for _key, _message in runtime_errors(GRID):
    raise SystemExit(f"itlab: error: config key '{_key}': {_message}")
R = config["results_dir"]
ENVS = "../envs"

# ---- the hub mirror (rules/hub.smk) ------------------------------------------------------
from itlab import hub  # noqa: E402
from itlab import teachers_hub  # noqa: E402

MIRROR = config["mirror"]["dir"]
# study C's reference model, generators, reward models, served judge and benchmarks too
HUB_MODELS = {**teachers_hub.mirror_models(config), **hub.mirror_models(config)}
HUB_DATASETS = {**teachers_hub.mirror_datasets(config), **hub.mirror_datasets(config)}
HUB_ASSETS = hub.mirror_assets(config)  # what harness tasks load at run time
try:  # templates against the schemas of data sets already mirrored: before any job
    hub.check_mirrored_templates(config)
except hub.HubError as err:
    raise SystemExit(f"itlab: error: {err}")


try:
    from snakemake.common import overwrite_function_params as _given_params
except ImportError:  # another Snakemake: it inspects the function itself

    def _given_params(func, params):
        pass


def signed(func):
    """A job function whose signature Snakemake is told once (else it runs
    inspect.signature on each call, much of a dry-run's cost per job)."""
    import inspect

    _given_params(func, inspect.signature(func).parameters)
    return func


def entry_pattern(entries):
    import re

    return "|".join(re.escape(k) for k in entries) or "(?!)"


def mirror_manifests():
    return (
        [f"{MIRROR}/models/{k}/MANIFEST.json" for k in HUB_MODELS]
        + [f"{MIRROR}/datasets/{k}/MANIFEST.json" for k in HUB_DATASETS]
        + [f"{MIRROR}/assets/{k}/MANIFEST.json" for k in HUB_ASSETS]
    )


def task_dataset_manifest(wildcards):
    return f"{hub.task_dataset_dir(config, wildcards.task)}/MANIFEST.json"


def harness_manifests(tasks):
    """Mirrored data sets of the lm-eval harness tasks among ``tasks``."""
    names = {lm_eval_task(t) for t in tasks}
    dirs = {hub.harness_dataset_dir(config, n) for n in names}
    dirs |= set(hub.harness_asset_dirs(config, names).values())  # code_eval, punkt_tab
    return sorted(f"{d}/MANIFEST.json" for d in dirs if d)


wildcard_constraints:
    base="[A-Za-z0-9._-]+",
    run="[A-Za-z0-9._-]+__[A-Za-z0-9._-]+",
    task="[A-Za-z0-9_]+",
    mixture="[A-Za-z0-9._-]+",
    cell="markov-I[0-9]+-S[0-9]+",
    n="[0-9]+",
    model="(base|tuned)/[A-Za-z0-9._-]+",
    generator="[A-Za-z0-9._-]+",
    scorer="[A-Za-z0-9._-]+",


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
        if study == "teachers" and judge_key_missing():
            # the judge cannot run: every other rule still does
            out += teachers_targets()
            continue
        out.append(f"{R}/studies/{study}/summary.md")
    out.append(f"{R}/scorecard.md")
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
        "tokenizer": f"{R}/tokenizer",
        "corpus": f"{R}/data/corpus/train.txt",
        "heldout": f"{R}/data/corpus/validation.txt",
    }


@signed
def tune_inputs(wildcards):
    run = GRID.runs[wildcards.run]
    return {
        "base": GRID.model_done(f"base/{run.base}"),
        "trainset": GRID.trainset_path(run.trainset),
    }


@signed
def tune_params(wildcards):
    return tune_arguments(GRID, wildcards.run)


@signed
def tune_launch_params(wildcards):
    return tune_launch(GRID, wildcards.run)


def per_job(values, wildcard):
    """A directive's value from {wildcard value -> value} over every job of the grid; the plain
    value where all jobs share it (Snakemake evaluates no function for it; a dry-run's cost
    is mostly its per-function cost), else a function of the job's wildcard."""
    distinct = {json.dumps(v, sort_keys=True) for v in values.values()}
    if len(distinct) <= 1:
        return next(iter(values.values()), None)
    return signed(lambda wildcards: values[getattr(wildcards, wildcard)])


def grid_resources(compute, keys, wildcard, defaults=None):
    """Resources of the jobs, one per key, as ``compute(key)`` gives them (the
    function itlab.plan calls too) once per job at parse time; a resource no job asks for is
    left out, one all jobs ask the same is a plain value (per_job)."""
    table = {k: {**(defaults or {}), **compute(k)} for k in keys}
    names = sorted({n for r in table.values() for n in r})
    out = {}
    for name in names:
        values = {k: r.get(name) for k, r in table.items()}
        if any(v is not None for v in values.values()):
            out[name] = per_job(values, wildcard)
    return out


def tune_rule_resources():
    return grid_resources(
        lambda run: tune_resources(GRID, run), GRID.runs, "run", {"gpu": 0}
    )


def tune_rule_priority():
    return per_job(tune_priorities(GRID), "run")


def tune_rule_threads():
    return per_job(
        {run: tune_launch(GRID, run)["processes"] for run in GRID.runs}, "run"
    )


# models of a size with evaluate_shards > 1 -> their shards' (task, condition) pairs
EVAL_SHARDS = {
    m: eval_shards(GRID, m) for m in GRID.evals if eval_shard_count(GRID, m) > 1
}


def eval_job(wildcards):
    return GRID.evals[wildcards.model]


def eval_pairs(wildcards):
    """The (task, condition) pairs of an evaluation job: the model's, or its shard's."""
    if hasattr(wildcards, "shard"):
        return EVAL_SHARDS[wildcards.model][int(wildcards.shard)]
    return sorted(eval_job(wildcards).items)


def eval_model_pattern(sharded):
    """The model wildcard of evaluate_model (unsharded models) or of the shard rules."""
    names = entry_pattern(EVAL_SHARDS)
    if sharded:
        return names
    return f"(?!(?:{names})/)(base|tuned)/[A-Za-z0-9._-]+"


def eval_rule_resources(sharded=False):
    models = [m for m in GRID.evals if (m in EVAL_SHARDS) == sharded]
    return grid_resources(lambda m: eval_resources(GRID, m), models, "model")


@signed
def eval_shard_outputs(wildcards):
    n = len(EVAL_SHARDS[wildcards.model])
    return {
        "scores": [
            f"{R}/eval_shards/{wildcards.model}/{i}/scores.tsv" for i in range(n)
        ],
        "samples": [
            f"{R}/eval_shards/{wildcards.model}/{i}/samples.jsonl" for i in range(n)
        ],
    }


@signed
def eval_shard_items(wildcards):
    return [[list(p) for p in shard] for shard in EVAL_SHARDS[wildcards.model]]


def lm_eval_task(task):
    return config["data"]["hub_tasks"].get(task, {}).get("lm_eval_task")


def uses_k_shot(items):
    """Whether an evaluation job's (task, condition) pairs draw in-context examples: its
    k_shot (eval_params) is 0 otherwise, and it never reads a task's few-shot file."""
    return any(c.endswith("k_shot") for _, c in items)


@signed
def eval_inputs(wildcards):
    job, items = eval_job(wildcards), eval_pairs(wildcards)
    # the few-shot file only where the job reads it (a zero-shot job's would be an input
    # edge Snakemake resolves for nothing: ~2,000 of the union's dry-run)
    splits = ("test", "fewshot") if uses_k_shot(items) else ("test",)
    files = [
        GRID.eval_task_files(t)[s]
        for t, _ in items
        if not lm_eval_task(t)
        for s in splits
    ]
    harness = harness_manifests(t for t, _ in items if lm_eval_task(t))
    return {
        "model": GRID.model_done(job.model),
        "data": sorted(set(files)),
        "harness": harness,
    }


@signed
def harness_folders(wildcards):
    """lm-eval harness task -> its mirrored data set folder, for this evaluation job."""
    tasks = {lm_eval_task(t) for t, _ in eval_pairs(wildcards) if lm_eval_task(t)}
    return {
        n: hub.harness_dataset_dir(config, n)
        for n in sorted(tasks)
        if hub.harness_dataset_dir(config, n)
    }


@signed
def eval_params(wildcards):
    """Everything that defines an evaluation's result: a change reruns only affected jobs."""
    job, items = eval_job(wildcards), eval_pairs(wildcards)
    uses_k = uses_k_shot(items)
    # a configured metric that lm-eval never reports is an error, not a dropped point
    wanted = config["studies"].get("scaling", {}).get("metrics", {})
    metrics = {t: wanted[t] for t, _ in items if t in wanted}
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
        # a composed config (itlab.compose): the evaluating study's own settings
        **config["evaluation_by_study"].get(job.study, {}),
        **({"metrics": metrics} if metrics else {}),
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


def task_scoring():
    """task -> {metric, chance} (itlab.metrics.scoring: data.scoring over the defaults)."""
    from itlab.metrics import scoring

    return scoring(config)


def print_summaries():
    """After a successful run, say where the results are."""
    for study in config["studies"]:
        path = f"{R}/studies/{study}/summary.md"
        if os.path.exists(path):
            print(f"itlab: {study} summary: {path}")
    if os.path.exists(f"{R}/tables/scores.tsv"):
        print(f"itlab: results table: {R}/tables/scores.tsv")
    if os.path.exists(f"{R}/scorecard.md"):
        print(f"itlab: scorecard (ours beside the papers'): {R}/scorecard.md")


# ---- study C (teachers) ------------------------------------------------------------------
def teachers_study():
    return config["studies"].get("teachers", {})


def teacher_generators():
    return sorted(teachers_study().get("generators", {}))


@signed
def generator_spec(wildcards):
    """A generator's settings, with the study's generation defaults filled in."""
    s = teachers_study()
    g = dict(s["generators"][wildcards.generator])
    g["generation"] = {**s["generation"], **g.get("generation", {})}
    if g["kind"] == "dataset":  # read from the mirror
        g["location"] = teachers_hub.dataset_dir(config, g["dataset"])
    return g


def generate_rule_resources():
    """generate_responses: resources.evaluate for generators that run a model, resources.data
    (no GPU) for those read from a data set (itlab.grid.teachers_resources)."""
    return grid_resources(
        lambda gen: teachers_resources(GRID, "generate_responses", gen),
        GRID.generators,
        "generator",
    )


def instruction_tasks():
    if not teachers_study():
        return []
    tasks = teachers_study()["instructions"]["tasks"]
    if tasks == "all":
        return sorted(t for t in all_tasks(config) if t not in heldout_tasks(config))
    return list(tasks)


def model_location(key):
    """(folder or hub id, files that must exist first) of a grid model key or a hub id."""
    kind, _, name = key.partition("/")
    built = kind == "base" and name in GRID.base_models
    if built or (kind == "tuned" and name in GRID.runs):
        return GRID.model_dir(key), GRID.model_done(key)
    # a hub id: its mirror entry; a folder: itself
    return teachers_hub.model_dir(config, key), teachers_hub.model_manifest(config, key)


@signed
def generate_inputs(wildcards):
    out = {}
    spec = teachers_study()["generators"][wildcards.generator]
    if spec["kind"] != "dataset":
        out["instructions"] = f"{R}/data/teachers/instructions.jsonl"
    else:
        out["dataset"] = (
            f"{teachers_hub.dataset_dir(config, spec['dataset'])}/MANIFEST.json"
        )
    model = GRID.generators[wildcards.generator]
    if model:
        out["model"] = model_location(model)[1]
    return out


@signed
def generator_model_dir(wildcards):
    model = GRID.generators[wildcards.generator]
    return model_location(model)[0] if model else None


def teacher_scorers():
    """Scoring models of loss/IFD/perplexity: every student, and the fixed reference."""
    return teachers_study()["students"] + ["reference"] if teachers_study() else []


def scorer_key(scorer):
    s = teachers_study()
    name = s["reference_model"] if scorer == "reference" else scorer
    return f"base/{name}" if name in GRID.base_models else name


def measure_inputs(wildcards):
    return {
        "responses": [GRID.responses_path(g) for g in teacher_generators()],
        "model": model_location(scorer_key(wildcards.scorer))[1],
    }


def teacher_judge():
    return teachers_study().get("evaluation", {}).get("judge")


ALPACA_EVAL_FILES = (
    "tatsu-lab--alpaca_eval"  # alpaca-eval's GLM data (itlab.judge.GLM_REPO)
)


def reward_models_resolved():
    """Reward models with each classifier's model read from the mirror (a hub id) or its folder."""
    out = {}
    for name, spec in teachers_study().get("reward_models", {}).items():
        spec = dict(spec)
        if spec["kind"] == "classifier":
            spec["model"] = teachers_hub.model_dir(config, spec["model"])
        out[name] = spec
    return out


def reward_model_manifests(wildcards=None):
    return [
        f
        for spec in teachers_study().get("reward_models", {}).values()
        if spec["kind"] == "classifier"
        for f in teachers_hub.model_manifest(config, spec["model"])
    ]


def judge_resolved():
    """The judge with each benchmark's mirror folder and the served model's folder."""
    judge = teacher_judge()
    if not judge:
        return None
    judge = json.loads(json.dumps(judge))
    for b in judge["benchmarks"].values():
        b["location"] = teachers_hub.dataset_dir(config, b["dataset"], b.get("subset"))
    if "serve" in judge:
        judge["serve"]["location"] = teachers_hub.model_dir(
            config, judge["serve"]["model"]
        )
    return judge


def benchmark_manifests(wildcards=None):
    judge = judge_resolved() or {"benchmarks": {}}
    return [f"{b['location']}/MANIFEST.json" for b in judge["benchmarks"].values()]


def judge_inputs(wildcards):
    judge = judge_resolved()
    out = {"answers": f"{R}/judge/tuned/{wildcards.run}/answers.jsonl"}
    if "serve" in judge:
        out["served"] = teachers_hub.model_manifest(config, judge["serve"]["model"])
    if any(
        b["metric"] == "length_controlled_winrate" for b in judge["benchmarks"].values()
    ):
        out["glm_data"] = f"{MIRROR}/files/{ALPACA_EVAL_FILES}/MANIFEST.json"
    return out


def judge_key_missing():
    """The judge's key variable when it is needed and not set in the environment, else None."""
    judge = teacher_judge()
    if judge and judge["api_key_env"] and not os.environ.get(judge["api_key_env"]):
        return judge["api_key_env"]
    return None


def judged_scores(wildcards=None):
    return {m: f"{R}/judge/{m}/scores.tsv" for m in sorted(GRID.teacher_runs())}


def analyze_teachers_inputs(wildcards):
    out = {
        "rewards": [f"{R}/data/teachers/{g}/rewards.tsv" for g in teacher_generators()],
        "metrics": [f"{R}/studies/teachers/metrics/{s}.tsv" for s in teacher_scorers()],
    }
    if teacher_judge():
        out["judged"] = list(judged_scores().values())
    else:
        out["table"] = f"{R}/tables/scores.tsv"
    return out


def teachers_targets():
    """Without the judge's key, everything of study C but the judge and its analysis."""
    runs = GRID.teacher_runs()
    return (
        [f"{R}/data/teachers/{g}/rewards.tsv" for g in teacher_generators()]
        + [f"{R}/studies/teachers/metrics/{s}.tsv" for s in teacher_scorers()]
        + [f"{R}/judge/{m}/answers.jsonl" for m in sorted(runs)]
    )


# ---- study D: behavior shift ------------------------------------------------------------
def behavior_study():
    return config["studies"]["behavior_shift"]


def behavior_sides():
    if "behavior_shift" not in config["studies"]:
        return []
    return [
        (p, side) for p in sorted(GRID.behavior_pairs) for side in ("base", "tuned")
    ]


def behavior_attribution_files(pair, side):
    return [
        f"{R}/interpret/{pair}/{side}/attributions-{i}.jsonl.gz"
        for i in range(behavior_study()["shards"])
    ]


def behavior_prompt_inputs(wildcards):
    """The prompt file and ratings: local paths, or the fetched copies of their urls."""
    p = behavior_study()["prompts"]
    out = {}
    if p["source"] == "final_dataset":
        out["dataset"] = (
            p.get("path") or f"{R}/data/behavior_shift/downloads/dataset.tsv"
        )
    if "ratings" in p or "ratings_url" in p:
        out["ratings"] = (
            p.get("ratings") or f"{R}/data/behavior_shift/downloads/ratings.tsv"
        )
    return out


def behavior_download(wildcards):
    p = behavior_study()["prompts"]
    # stand-in mode: the file's fixture instead of a download
    standin = {"standin": config["mirror"]["standin"]}
    if wildcards.name == "dataset":
        return {"url": p["url"], "sha256": p["sha256"], **standin}
    return {"url": p["ratings_url"], "sha256": p["ratings_sha256"], **standin}


def behavior_prompt_params():
    if "behavior_shift" not in config["studies"]:
        return {}
    s = behavior_study()
    return {
        "prompts": s["prompts"],
        "tasks": (
            synthetic_tasks(config)
            if s["prompts"]["tasks"] == "all"
            else s["prompts"]["tasks"]
        ),
        "seed": config["seed"],
        "params": config["data"]["params"],
    }


@signed
def behavior_model_inputs(wildcards):
    ref = GRID.behavior_pairs[wildcards.pair][wildcards.side]
    out = {"prompts": f"{R}/data/behavior_shift/prompts.jsonl", "model": list(ref.done)}
    if behavior_study()["prompt_format"] == "chat" and wildcards.side == "base":
        out["template"] = list(GRID.behavior_pairs[wildcards.pair]["tuned"].done)
    return out


def behavior_weights_inputs(wildcards):
    return {"model": list(GRID.behavior_pairs[wildcards.pair][wildcards.side].done)}


def _behavior_model(wildcards):
    ref = GRID.behavior_pairs[wildcards.pair][wildcards.side]
    return {
        "name": f"{wildcards.pair}/{wildcards.side}",
        "key": ref.key,
        "location": ref.location,
        "revision": ref.revision,
        "trust_remote_code": config["trust_remote_code"],
        "device": config["device"],
        "standin": config["mirror"]["standin"],
    }


@signed
def behavior_attribute_params(wildcards):
    s = behavior_study()
    rated = (
        s["prompts"].get("rated_pair") == wildcards.pair and wildcards.side == "tuned"
    )
    return {
        **_behavior_model(wildcards),
        "shard": int(wildcards.shard),
        "shards": s["shards"],
        "rated": rated,
        "prompt_format": s["prompt_format"],
        # chat: both models of a pair read the text of the tuned model's chat template
        **(
            {"template_from": GRID.behavior_pairs[wildcards.pair]["tuned"].location}
            if s["prompt_format"] == "chat"
            else {}
        ),
        "max_new_tokens": s["max_new_tokens"],
        "batch": s["attribution_batch"],
    }


def behavior_weights_params(wildcards):
    s = behavior_study()
    return {
        **_behavior_model(wildcards),
        "words": behavior_words(config),
        "heads_top_k": s["heads"]["top_k"],
        "ffn_top_k": s["ffn"]["top_k"],
        "ffn_components": s["ffn"]["components"],
    }


def behavior_rule_resources(kind):
    """Resources of study D's jobs of ``kind`` (attribution, weights), per pair: all of what
    itlab.grid.behavior_resources gives (GPU model and partition included)."""
    return grid_resources(
        lambda pair: behavior_resources(GRID, pair, kind),
        GRID.behavior_pairs,
        "pair",
        {"gpu": 0} if kind == "attribution" else None,
    )


def behavior_analysis_inputs(wildcards):
    out = {}
    for pair, side in behavior_sides():
        out[f"attr__{pair}__{side}"] = behavior_attribution_files(pair, side)
        out[f"heads__{pair}__{side}"] = f"{R}/interpret/{pair}/{side}/heads.tsv"
        out[f"ffn__{pair}__{side}"] = f"{R}/interpret/{pair}/{side}/ffn.tsv"
        out[f"vocab__{pair}__{side}"] = f"{R}/interpret/{pair}/{side}/vocabulary.json"
    return out


def behavior_analysis_keys():
    return [[pair, side] for pair, side in behavior_sides()]


def behavior_analysis_params():
    if "behavior_shift" not in config["studies"]:
        return {}
    s = behavior_study()
    return {
        "threshold": s["threshold"],
        "min_output_tokens": s["min_output_tokens"],
        "heads_group": s["heads"]["layer_group_size"],
        "ffn_group": s["ffn"]["layer_group_size"],
        "words": behavior_words(config),
    }


# ---- scorecard (itlab/scorecard.py) ------------------------------------------------------
def scorecard_inputs(wildcards):
    """Each scheduled study's statistics file (study C's only when its judge can run)."""
    from itlab.scorecard import STAT_FILES

    out = {"intro": f"{workflow.basedir}/report/workflow.rst"}
    for study in config["studies"]:
        if study in STAT_FILES and study not in scorecard_missing():
            out[study] = f"{R}/{STAT_FILES[study]}"
    return out


def scorecard_missing():
    """Studies in the config whose statistics cannot be computed in this run, with the reason."""
    key = "teachers" in config["studies"] and judge_key_missing()
    return {"teachers": f"not run: the judge's key ${key} is not set"} if key else {}


def scorecard_scales():
    """Per scheduled study: paper / embedded / stand-in, its models and evaluation items."""
    from itlab.scorecard import STUDIES, study_scale

    return {s: study_scale(config, GRID, s) for s in config["studies"] if s in STUDIES}


def report_front_page():
    """The Snakemake report's first page: the scorecard once written, else the description."""
    page = os.path.abspath(f"{R}/reports/scorecard.rst")
    return page if os.path.exists(page) else "report/workflow.rst"
