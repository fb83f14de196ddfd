"""Configuration: schema validation (defaults filled in) plus the checks a schema cannot express.

Every problem is reported before any job starts, as a ``ConfigError`` naming the offending
key, e.g. ``studies.inherent_limits.mixtures[1]``.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

SCHEMA = Path(__file__).parent / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A bad configuration value; the message starts with the key path."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"config key '{key}': {message}")


def _key_path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<root>"


@functools.lru_cache(maxsize=1)
def _schema_json() -> str:
    """The schema as a JSON file (cached in the temp folder by content hash): snakemake's
    validate reads JSON directly but runs YAML through yte, ~0.3 s a call on 2 cores, and a
    composed config validates once per study config plus once for the union."""
    import hashlib
    import json
    import os
    import tempfile

    import yaml

    text = SCHEMA.read_text(encoding="utf-8")
    path = Path(tempfile.gettempdir()) / f"itlab-schema-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    if not path.is_file():
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(yaml.load(text, Loader=loader)), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:  # no writable temp folder: the YAML schema itself (slower)
            return str(SCHEMA)
    return str(path)


def _schema_validate(config: dict) -> None:
    """Validate with snakemake.utils.validate (fills defaults) and re-raise with the key path."""
    import jsonschema
    from snakemake.utils import validate

    try:
        validate(config, _schema_json(), set_default=True)
    except Exception as err:  # snakemake wraps the jsonschema error in a WorkflowError
        candidates = [err, *err.args, err.__cause__, err.__context__]
        cause = next((c for c in candidates if isinstance(c, jsonschema.ValidationError)), None)
        if cause is None:
            raise
        best = jsonschema.exceptions.best_match([cause]) or cause
        path = list(best.absolute_path)
        message = best.message
        if best.validator == "required":
            missing = [k for k in best.validator_value if k not in best.instance]
            path, message = path + missing[:1], "is required but missing"
        if best.validator == "additionalProperties":
            extra = sorted(set(best.instance) - set(best.schema.get("properties", {})))
            if extra:
                path, message = path + [extra[0]], f"unknown key (allowed: {sorted(best.schema.get('properties', {}))})"
        raise ConfigError(_key_path(path), message) from None


def validate(config: dict, base_dir: str | Path = ".") -> dict:
    """Return a validated copy of ``config`` with defaults filled in, or raise ConfigError."""
    config = copy.deepcopy(config)
    if "compose" in config:  # several study configs in one (itlab/compose.py)
        from itlab.compose import compose

        config = compose(config, base_dir)
    elif "compose_share" in config:
        raise ConfigError("compose_share", "is only valid beside compose")
    _schema_validate(config)
    _check_semantics(config, Path(base_dir))
    return config


def _require(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise ConfigError(key, message)


def _check_names(values, known, key: str, what: str) -> None:
    for i, v in enumerate(values):
        _require(v in known, f"{key}[{i}]", f"{v!r} is not {what} (known: {', '.join(sorted(known)) or 'none'})")


def _check_semantics(cfg: dict, base_dir: Path) -> None:
    from itlab import tasks as task_registry

    data = cfg["data"]
    p = data["params"]
    _require(p["min_len"] <= p["max_len"], "data.params.min_len", f"{p['min_len']} > max_len {p['max_len']}")

    synthetic = sorted(task_registry.REGISTRY) if data["tasks"] == "all" else data["tasks"]
    if data["tasks"] != "all":
        _check_names(data["tasks"], task_registry.REGISTRY, "data.tasks", "a registered task")
    all_tasks = set(synthetic) | set(data["hub_tasks"])
    _check_names(data["heldout_tasks"], all_tasks, "data.heldout_tasks", "a task of data.tasks")
    for task in data.get("scoring", {}):
        _require(task in all_tasks, f"data.scoring.{task}", f"{task!r} is not a task of data.tasks or data.hub_tasks")

    from itlab.data import mixture_tasks
    from itlab.grid import heldout_tasks, task_cluster

    task_clusters = {t: task_cluster(cfg, t) for t in all_tasks}
    clusters = set(task_clusters.values())
    heldout = heldout_tasks(cfg)
    for name, mix in data["mixtures"].items():
        key = f"data.mixtures.{name}"
        if mix["clusters"] != "all":
            _check_names(mix["clusters"], clusters, f"{key}.clusters", "a cluster")
        _check_names(mix["exclude_clusters"], clusters, f"{key}.exclude_clusters", "a cluster")
        _check_names(mix["exclude_tasks"], all_tasks, f"{key}.exclude_tasks", "a task")
        _check_names(list(mix.get("task_counts", {})), all_tasks, f"{key}.task_counts", "a task")
        members = mixture_tasks(mix, task_clusters, heldout)
        _require(bool(members), key, "selects no task (every task is excluded or held out)")

    _check_names(data["corpus"].get("tasks", []), task_registry.REGISTRY, "data.corpus.tasks", "a registered task")
    from itlab.grid import corpus_tasks

    in_corpus = corpus_tasks(cfg)
    for name in data["corpus"]["task_weights"]:
        _require(name in in_corpus, f"data.corpus.task_weights.{name}",
                 f"{name!r} is not a corpus task (data.corpus.tasks, default data.tasks: {', '.join(in_corpus)})")
    if data["corpus"]["instructions"] == "independent":
        unbracketed = [t for t in in_corpus if t in task_registry.REGISTRY
                       and not all("[" in ph for ph in task_registry.REGISTRY[t].phrasings)]
        _require(not unbracketed, "data.corpus.instructions",
                 f"independent instructions need every corpus task's inputs in [...]; "
                 f"{unbracketed} have phrasings without them")
    for i, f in enumerate(data["corpus"]["extra_files"]):
        _require((base_dir / f).is_file(), f"data.corpus.extra_files[{i}]", f"file {f!r} does not exist")

    families, sizes = cfg["families"], cfg["sizes"]
    for fam, spec in families.items():
        has = [k for k in ("architecture", "hub", "local") if k in spec]
        _require(bool(has), f"families.{fam}", "needs one of architecture, hub or local")
        for size, folder in spec.get("local", {}).items():
            _require((base_dir / folder).is_dir(), f"families.{fam}.local.{size}", f"folder {folder!r} does not exist")

    for fam, fam_sizes in cfg["base_models"].items():
        _require(fam in families, f"base_models.{fam}", f"{fam!r} is not a family (known: {', '.join(sorted(families))})")
        _check_names(fam_sizes, sizes, f"base_models.{fam}", "a size under sizes")
        spec = families[fam]
        for i, size in enumerate(fam_sizes):
            key = f"base_models.{fam}[{i}]"
            if size in spec.get("hub", {}) or size in spec.get("local", {}):
                continue
            _require("architecture" in spec, key, f"family {fam!r} has no hub/local entry for size {size!r} and no architecture to build it")
            _require("model" in sizes[size], f"sizes.{size}.model", f"needed to build {fam}-{size}")
            _require("pretrain_tokens" in sizes[size], f"sizes.{size}.pretrain_tokens", f"needed to build {fam}-{size}")
            m = sizes[size]["model"]
            _require(m["hidden_size"] % m["num_heads"] == 0, f"sizes.{size}.model.hidden_size",
                     f"{m['hidden_size']} is not divisible by num_heads {m['num_heads']}")

    for name, size in sizes.items():
        t = size["tune"]
        _require(not t["offload_params"] or t["zero_stage"] == 3, f"sizes.{name}.tune.offload_params", "needs zero_stage 3")
        _require(not t["bf16"] or cfg["device"] == "cuda", f"sizes.{name}.tune.bf16", "bf16 tuning needs device: cuda")
        res = size["resources"]
        _require(t["shutdown_grace"] <= res["signal_lead"], f"sizes.{name}.tune.shutdown_grace",
                 f"{t['shutdown_grace']} s exceeds resources.signal_lead {res['signal_lead']} s: the time limit "
                 "would kill the workers while they save")
        _require("runtime" not in res or res["signal_lead"] < 60 * res["runtime"], f"sizes.{name}.resources.signal_lead",
                 f"{res['signal_lead']} s is not shorter than the runtime ({res.get('runtime')} min)")

    from itlab.grid import base_model_ids

    bases = base_model_ids(cfg)
    studies = cfg["studies"]
    for study in ("inherent_limits", "scaling"):
        if study in studies:
            s = studies[study]
            if s["base_models"] != "all":
                _check_names(s["base_models"], bases, f"studies.{study}.base_models", "a base model id")
            _require(s["recipe"] in cfg["recipes"], f"studies.{study}.recipe", f"{s['recipe']!r} is not under recipes")
    if "inherent_limits" in studies:
        s = studies["inherent_limits"]
        _check_names(s["mixtures"], data["mixtures"], "studies.inherent_limits.mixtures", "a mixture under data.mixtures")
        if s["tasks"] != "all":
            _check_names(s["tasks"], all_tasks, "studies.inherent_limits.tasks", "a task of data.tasks or data.hub_tasks")
        for i, block in enumerate(s["additional_grids"]):
            key = f"studies.inherent_limits.additional_grids[{i}]"
            _check_names(block["mixtures"], data["mixtures"], f"{key}.mixtures", "a mixture under data.mixtures")
            if block["base_models"] != "all":
                _check_names(block["base_models"], bases, f"{key}.base_models", "a base model id")
    if "scaling" in studies:
        s = studies["scaling"]
        _check_names(s["tasks"], all_tasks, "studies.scaling.tasks", "a task of data.tasks")
        sizes = s["train_sizes"]
        if isinstance(sizes, dict):
            _check_names(list(sizes), s["tasks"], "studies.scaling.train_sizes", "a task of studies.scaling.tasks")
            for t in s["tasks"]:
                _require(t in sizes, f"studies.scaling.train_sizes.{t}", "missing: every task needs its sizes")
        for t in s["tasks"]:
            if t in synthetic:
                biggest = max(sizes[t] if isinstance(sizes, dict) else sizes)
                _require(biggest <= data["splits"]["train"], "studies.scaling.train_sizes",
                         f"largest size {biggest} for {t} exceeds data.splits.train {data['splits']['train']}")
        for size, recipe in s["recipe_by_size"].items():
            _require(recipe in cfg["recipes"], f"studies.scaling.recipe_by_size.{size}", f"{recipe!r} is not under recipes")
    for name, h in data["hub_tasks"].items():
        _require("dataset" in h or "lm_eval_task" in h, f"data.hub_tasks.{name}", "needs a dataset or an lm_eval_task")
        _require("dataset" in h or h["heldout"], f"data.hub_tasks.{name}.heldout",
                 "an evaluation-only task (no dataset) must be held out of every mixture")
    if "diversity" in studies:
        s = studies["diversity"]
        _require(("examples_per_rule" in s) != ("total_examples" in s), "studies.diversity.examples_per_rule",
                 "give exactly one of examples_per_rule and total_examples")
        if "code_arm" in s:
            c = s["code_arm"]
            _check_names(c["mixtures"], data["mixtures"], "studies.diversity.code_arm.mixtures", "a mixture under data.mixtures")
            _check_names(c["base_models"], bases, "studies.diversity.code_arm.base_models", "a base model id")
            _check_names(c["eval_tasks"], all_tasks, "studies.diversity.code_arm.eval_tasks", "a task")
            _require(c["recipe"] in cfg["recipes"], "studies.diversity.code_arm.recipe", f"{c['recipe']!r} is not under recipes")
        _require(s["base_model"] in bases, "studies.diversity.base_model", f"{s['base_model']!r} is not a base model id (known: {', '.join(bases)})")
        _require(s["recipe"] in cfg["recipes"], "studies.diversity.recipe", f"{s['recipe']!r} is not under recipes")
        for k in ("x_len", "y_len", "z_len"):
            _require(s[k][0] <= s[k][1], f"studies.diversity.{k}", f"{s[k]} is not an increasing range")
        from itlab.tasks import markov

        space = markov.rule_space(markov.MarkovParams(alphabet=s["alphabet"], x_len=tuple(s["x_len"]),
                                                      y_len=tuple(s["y_len"]), family=s["family"]))
        if space is not None:
            _require(max(s["num_rules"]) + s["test_rules"] <= space, "studies.diversity.num_rules",
                     f"{max(s['num_rules'])} training rules + {s['test_rules']} test rules exceed the {space} distinct "
                     f"rules that alphabet {s['alphabet']!r}, x_len {s['x_len']} and y_len {s['y_len']} allow "
                     f"(at most {space - s['test_rules']} training rules)")
        if "template" in s:
            try:
                filled = s["template"].format(x="\0x", y="\0y", z="\0z")
            except (KeyError, IndexError, ValueError) as e:
                filled = f"error {e!r}"
            _require(all(f"\0{k}" in filled for k in "xyz"), "studies.diversity.template",
                     f"{s['template']!r} must be a format string that uses each of {{x}}, {{y}} and {{z}} (and no other field)")

    if "teachers" in studies:
        _check_teachers(cfg, studies["teachers"], bases, all_tasks)
    if "behavior_shift" in studies:
        _check_behavior_shift(cfg, base_dir)
    _check_runs(cfg)


def _check_teachers(cfg: dict, s: dict, bases: list[str], all_tasks: set[str]) -> None:
    key = "studies.teachers"
    if "select_generators" in s:  # thinning: only these generators enter the grid
        _check_names(s["select_generators"], list(s["generators"]), f"{key}.select_generators",
                     "a generator under studies.teachers.generators")
        s["generators"] = {n: s["generators"][n] for n in s["select_generators"]}
    _check_names(s["students"], bases, f"{key}.students", "a base model id")
    for recipe_key in ("recipe", "teacher_recipe"):
        if recipe_key in s:
            _require(s[recipe_key] in cfg["recipes"], f"{key}.{recipe_key}", f"{s[recipe_key]!r} is not under recipes")
    _require("reference_model" in s, f"{key}.reference_model",
             "is required: the fixed model of IFD and perplexity (a base model id or hub id, e.g. gpt2)")
    needs = {"model": ["model"], "tuned": ["base", "mixture"], "dataset": ["dataset", "column"]}
    for name, g in s["generators"].items():
        gkey = f"{key}.generators.{name}"
        for field in needs.get(g["kind"], []):
            _require(field in g, f"{gkey}.{field}", f"is required for kind {g['kind']!r}")
        if g["kind"] == "tuned":
            _require(g["base"] in bases, f"{gkey}.base", f"{g['base']!r} is not a base model id (known: {', '.join(bases)})")
            _require(g["mixture"] in cfg["data"]["mixtures"], f"{gkey}.mixture", f"{g['mixture']!r} is not under data.mixtures")
        for rm in g.get("reward_fields", {}):
            _require(rm in s["reward_models"], f"{gkey}.reward_fields.{rm}", "is not under studies.teachers.reward_models")
    for name, rm in s["reward_models"].items():
        if rm["kind"] == "classifier":
            _require("model" in rm, f"{key}.reward_models.{name}.model", "is required for kind 'classifier'")
    _require(s["car"]["reward_model"] in s["reward_models"], f"{key}.car.reward_model",
             f"{s['car']['reward_model']!r} is not under studies.teachers.reward_models")
    ev = s["evaluation"]
    _check_names(ev["tasks"], all_tasks, f"{key}.evaluation.tasks", "a task of data.tasks")
    _require(bool(ev["tasks"]) != ("judge" in ev), f"{key}.evaluation",
             "give exactly one of tasks (embedded AP) and judge (paper AP)")
    if s["instructions"]["tasks"] != "all":
        _check_names(s["instructions"]["tasks"], all_tasks, f"{key}.instructions.tasks", "a task of data.tasks")


def _check_behavior_shift(cfg: dict, base_dir: Path) -> None:
    """Study D: the pairs exist, the prompt files exist, names refer to known things."""
    from itlab.grid import Grid

    s, key = cfg["studies"]["behavior_shift"], "studies.behavior_shift"
    _require("tune" in s or bool(s["pairs"]), key, "needs tune (pairs tuned here) or pairs (hub pairs)")
    if "tune" in s:
        t = s["tune"]
        _require(t["mixture"] in cfg["data"]["mixtures"], f"{key}.tune.mixture", f"{t['mixture']!r} is not under data.mixtures")
        _require(t["recipe"] in cfg["recipes"], f"{key}.tune.recipe", f"{t['recipe']!r} is not under recipes")
        built = [b for b, m in Grid({**cfg, "studies": {}}).base_models.items() if m.source == "build"]
        if t["base_models"] != "all":
            _check_names(t["base_models"], built, f"{key}.tune.base_models", "a built base model id")
    for name in s["pairs"]:
        _require(name.replace("-", "").replace("_", "").replace(".", "").isalnum(), f"{key}.pairs.{name}",
                 "a pair name holds only letters, digits, '-', '_' and '.'")
    pinned = dict(cfg["mirror"]["revisions"])  # one mirror entry per hub id: one revision
    for name, pair in sorted(s["pairs"].items()):
        for side in ("base", "tuned"):
            hid, rev = pair[side]["hub"], pair[side].get("revision")
            _require(rev is None or pinned.setdefault(hid, rev) == rev, f"{key}.pairs.{name}.{side}.revision",
                     f"{rev!r} differs from the revision {pinned.get(hid)!r} given elsewhere for {hid}")
    p = s["prompts"]
    if p["source"] == "final_dataset":
        _require(("path" in p) != ("url" in p), f"{key}.prompts.path", "give exactly one of path and url for source final_dataset")
        if "path" in p:
            _require((base_dir / p["path"]).is_file(), f"{key}.prompts.path", f"file {p['path']!r} does not exist")
        else:
            _require("sha256" in p, f"{key}.prompts.sha256", "is required with url (downloads are checked)")
    _require(not ("ratings" in p and "ratings_url" in p), f"{key}.prompts.ratings", "give at most one of ratings and ratings_url")
    if "ratings_url" in p:
        _require("ratings_sha256" in p, f"{key}.prompts.ratings_sha256", "is required with ratings_url")
    elif p["tasks"] != "all":
        from itlab import tasks as task_registry

        _check_names(p["tasks"], task_registry.REGISTRY, f"{key}.prompts.tasks", "a registered task")
    if "ratings" in p:
        _require((base_dir / p["ratings"]).is_file(), f"{key}.prompts.ratings", f"file {p['ratings']!r} does not exist")
    if "ratings" in p or "ratings_url" in p:
        _require(p.get("rated_pair") in s["pairs"], f"{key}.prompts.rated_pair",
                 f"{p.get('rated_pair')!r} is not under {key}.pairs")
    vocab = s["vocabulary"]
    if vocab not in ("tokenizer", "suite"):
        _require((base_dir / vocab).is_file(), f"{key}.vocabulary", f"{vocab!r} is not tokenizer, suite or an existing file")


def _check_runs(cfg: dict) -> None:
    """Every tuning run's global batch must split over its processes (caught at dry-run, not
    hours into a queue)."""
    from itlab.grid import Grid, tune_arguments, tune_launch
    from itlab.train.args import TrainArguments, deepspeed_config

    grid = Grid(cfg)
    for run_id, run in grid.runs.items():
        launch = tune_launch(grid, run_id)
        try:  # the same computation the training job does at start-up
            deepspeed_config(TrainArguments(**tune_arguments(grid, run_id)), launch["processes"] * launch["nodes"])
        except ValueError as err:
            key = f"recipes.{run.recipe}." + ("batch_size_by_examples" if "batch_size_by_examples" in cfg["recipes"][run.recipe]
                                               else "global_batch_size")
            raise ConfigError(key, f"run {run_id}: {err} ({launch['nodes']} node(s) x {launch['processes']} processes)") from None
        _check_memory(cfg, grid, run_id)
    _check_eval_memory(cfg, grid)


def _check_memory(cfg: dict, grid, run_id: str) -> None:
    """A run's model states (weights, gradients, Adam; sharded by ZeRO, minus what is offloaded)
    must fit its GPUs, and offloaded states the node's memory."""
    from itlab.grid import tune_launch, tune_memory, tune_system

    system = tune_system(grid, run_id)
    mem = tune_memory(grid, run_id, system)
    if mem is None:
        return
    size = grid.base_models[grid.runs[run_id].base].size
    res = cfg["sizes"][size]["resources"]
    world = tune_launch(grid, run_id)["processes"] * res["nodes"]
    if mem["gpu"] > res["gpu_mem_gb"]:
        fix = next((k for k, bad in (("zero_stage", system["zero_stage"] < 3), ("offload_optimizer", not system["offload_optimizer"]),
                                     ("offload_params", not system["offload_params"])) if bad), None)
        key = f"sizes.{size}.tune.{fix}" if fix else f"sizes.{size}.resources.gpus"
        raise ConfigError(key, f"run {run_id}: model states need ~{mem['gpu']:.0f} GB per GPU on {world} GPU(s) "
                               f"(ZeRO-{system['zero_stage']}, offload optimizer {system['offload_optimizer']}, params "
                               f"{system['offload_params']}), more than sizes.{size}.resources.gpu_mem_gb = {res['gpu_mem_gb']}")
    if mem["cpu_per_node"] * 1000 > res.get("mem_mb", 4000):
        raise ConfigError(f"sizes.{size}.resources.mem_mb", f"run {run_id}: offloaded model states need "
                                                           f"~{mem['cpu_per_node']:.0f} GB per node, more than {res.get('mem_mb', 4000)} MB")


def _check_eval_memory(cfg: dict, grid) -> None:
    """Evaluation holds a model's bf16 weights (2 bytes per parameter) on its GPUs."""
    if cfg["device"] != "cuda":
        return
    for base in {grid.model_meta(m)["base_model"] for m in grid.evals}:
        size = grid.base_models[base].size
        spec = cfg["sizes"][size]
        own = "evaluate_resources" in spec
        res = spec["evaluate_resources"] if own else cfg["resources"]["evaluate"]
        if "params_b" not in spec or not res["gpus"]:
            continue
        need = 2 * spec["params_b"]
        if need > res["gpus"] * res["gpu_mem_gb"]:
            key = f"sizes.{size}.evaluate_resources.gpus" if own else f"sizes.{size}.evaluate_resources"
            raise ConfigError(key, f"{base}: bf16 weights need ~{need:.0f} GB, more than {res['gpus']} GPU(s) x "
                                   f"{res['gpu_mem_gb']} GB ({'its' if own else 'resources.evaluate'}); give this size more GPUs")

