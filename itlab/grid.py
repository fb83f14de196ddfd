"""The grid: the one place that expands config axes into base models, training sets,
tuning runs and evaluation jobs, with readable ids and their paths.

Everything here is pure Python over the validated config, so a dry-run of a paper-scale
grid costs milliseconds and tests can inspect any run without Snakemake.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from itlab import tasks as task_registry

# Evaluation conditions: (model kind, few-shot, chat template)
CONDITIONS = {
    "base_zero_shot": ("base", False, False),
    "base_k_shot": ("base", True, False),
    "tuned_zero_shot": ("tuned", False, True),
    "tuned_k_shot": ("tuned", True, True),
}


@dataclass(frozen=True)
class BaseModel:
    id: str
    family: str
    size: str
    source: str  # build | hub | local
    location: str | None = None  # hub id or local folder
    architecture: str | None = None


@dataclass(frozen=True)
class TrainSet:
    id: str
    kind: str  # mixture | subset | markov | teacher
    params: tuple = ()

    @property
    def spec(self) -> dict:
        return dict(self.params)


@dataclass(frozen=True)
class TuneRun:
    id: str
    base: str
    trainset: str
    recipe: str
    seed: int
    study: str
    meta: tuple = ()


@dataclass(frozen=True)
class ModelRef:
    """A model study D reads: a key (base/<id>, tuned/<run> or hub:<id>), where it loads from
    (folder or hub id), a revision, and the files that must exist first."""

    key: str
    location: str
    revision: str | None = None
    done: tuple = ()


@dataclass
class EvalJob:
    """All (task, condition) pairs of one model: the model is loaded once per job."""

    model: str  # "base/<id>" or "tuned/<run id>"
    items: set = field(default_factory=set)  # {(eval task id, condition)}
    k_shot: int = 0
    study: str = ""  # the study that evaluates it (its evaluation_by_study block, if any)


def diversity_cells(study: dict) -> list[tuple[int, int, int]]:
    """(I, S, seed) of study B: the I x S product, or S = total_examples / I."""
    if "total_examples" in study:
        pairs = [(i, max(1, study["total_examples"] // i)) for i in study["num_rules"]]
    else:
        pairs = list(itertools.product(study["num_rules"], study["examples_per_rule"]))
    return [(i, s, seed) for (i, s), seed in itertools.product(pairs, study["seeds"])]


def scaling_sizes(study: dict, task: str) -> list[int]:
    sizes = study["train_sizes"]
    return sorted(sizes[task] if isinstance(sizes, dict) else sizes)


def base_model_ids(cfg: dict) -> list[str]:
    return [f"{fam}-{size}" for fam, sizes in cfg["base_models"].items() for size in sizes]


def _selected(value, known):
    return list(known) if value == "all" else list(value)


def task_selection(tasks) -> list[str]:
    """A ``data.tasks`` value ("all" or a list of names) as task names."""
    return _selected(tasks, sorted(task_registry.REGISTRY))


def synthetic_tasks(cfg: dict) -> list[str]:
    return task_selection(cfg["data"]["tasks"])


def corpus_tasks(cfg: dict) -> list[str]:
    """The synthetic tasks whose demonstrations the pretraining corpus holds."""
    return list(cfg["data"]["corpus"].get("tasks") or synthetic_tasks(cfg))


def all_tasks(cfg: dict) -> list[str]:
    return synthetic_tasks(cfg) + sorted(cfg["data"]["hub_tasks"])


def task_cluster(cfg: dict, task: str) -> str:
    hub = cfg["data"]["hub_tasks"]
    return hub[task]["cluster"] if task in hub else task_registry.get(task).cluster


def heldout_tasks(cfg: dict) -> set[str]:
    hub = cfg["data"]["hub_tasks"]
    return set(cfg["data"]["heldout_tasks"]) | {n for n, h in hub.items() if h["heldout"]}


class Grid:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.root = cfg["results_dir"]
        self.base_models: dict[str, BaseModel] = {}
        self.trainsets: dict[str, TrainSet] = {}
        self.runs: dict[str, TuneRun] = {}
        self.evals: dict[str, EvalJob] = {}
        self.generators: dict[str, str | None] = {}  # study C: generator -> model key/location (None: no model)
        self.behavior_pairs: dict[str, dict[str, ModelRef]] = {}
        self._expand_base_models()
        studies = cfg["studies"]
        if "inherent_limits" in studies:
            self._expand_inherent_limits(studies["inherent_limits"])
        if "scaling" in studies:
            self._expand_scaling(studies["scaling"])
        if "diversity" in studies:
            self._expand_diversity(studies["diversity"])
        if "teachers" in studies:
            self._expand_teachers(studies["teachers"])
        if "behavior_shift" in studies:
            self._expand_behavior_shift(studies["behavior_shift"])

    # ---- expansion -------------------------------------------------------------------
    def _expand_base_models(self):
        for fam, sizes in self.cfg["base_models"].items():
            spec = self.cfg["families"][fam]
            for size in sizes:
                bid = f"{fam}-{size}"
                if size in spec.get("hub", {}):
                    bm = BaseModel(bid, fam, size, "hub", spec["hub"][size])
                elif size in spec.get("local", {}):
                    bm = BaseModel(bid, fam, size, "local", spec["local"][size])
                else:
                    bm = BaseModel(bid, fam, size, "build", architecture=spec["architecture"])
                self.base_models[bid] = bm

    def _add_run(self, base, trainset: TrainSet, recipe, seed, study, **meta) -> TuneRun:
        self.trainsets.setdefault(trainset.id, trainset)
        rid = f"{base}__{trainset.id}__{recipe}__seed-{seed}"
        run = TuneRun(rid, base, trainset.id, recipe, seed, study, tuple(sorted(meta.items())))
        if rid in self.runs and self.runs[rid].meta != run.meta:
            raise ValueError(f"run {rid} is defined twice with different settings")
        self.runs.setdefault(rid, run)
        return run

    def _add_eval(self, model: str, items, k_shot: int = 0, study: str = ""):
        if model.startswith("tuned/"):
            study = self.runs[model.split("/", 1)[1]].study
        job = self.evals.setdefault(model, EvalJob(model, study=study))
        job.items.update(items)
        job.k_shot = max(job.k_shot, k_shot)

    def _expand_inherent_limits(self, s):
        bases = _selected(s["base_models"], self.base_models)
        tasks = all_tasks(self.cfg) if s["tasks"] == "all" else list(s["tasks"])
        base_conds = [c for c in s["conditions"] if CONDITIONS[c][0] == "base"]
        tuned_conds = [c for c in s["conditions"] if CONDITIONS[c][0] == "tuned"]
        for base in bases:
            self._add_eval(f"base/{base}", [(t, c) for t in tasks for c in base_conds], s["k_shot"], "inherent_limits")
        blocks = [s] + s["additional_grids"]
        for block in blocks:
            block_bases = _selected(block["base_models"], self.base_models) if "base_models" in block else bases
            for base, mix, seed in itertools.product(block_bases, block["mixtures"], block["seeds"]):
                ts = TrainSet(f"mix-{mix}", "mixture", (("mixture", mix),))
                run = self._add_run(base, ts, s["recipe"], seed, "inherent_limits", mixture=mix)
                self._add_eval(f"tuned/{run.id}", [(t, c) for t in tasks for c in tuned_conds], s["k_shot"])
                if base not in bases:
                    self._add_eval(f"base/{base}", [(t, c) for t in tasks for c in base_conds], s["k_shot"], "inherent_limits")

    def _expand_scaling(self, s):
        bases = _selected(s["base_models"], self.base_models)
        for base, task, seed in itertools.product(bases, s["tasks"], s["seeds"]):
            recipe = s["recipe_by_size"].get(self.base_models[base].size, s["recipe"])
            for n in scaling_sizes(s, task):
                ts = TrainSet(f"sub-{task}-n{n}", "subset", (("n", n), ("task", task)))
                run = self._add_run(base, ts, recipe, seed, "scaling", train_task=task, train_size=n)
                self._add_eval(f"tuned/{run.id}", [(task, "tuned_zero_shot")])

    def _expand_diversity(self, s):
        for rules, per_rule, seed in diversity_cells(s):
            cell = f"markov-I{rules}-S{per_rule}"
            ts = TrainSet(cell, "markov", (("examples_per_rule", per_rule), ("num_rules", rules)))
            run = self._add_run(s["base_model"], ts, s["recipe"], seed, "diversity",
                                num_rules=rules, examples_per_rule=per_rule)
            self._add_eval(f"tuned/{run.id}", [(cell, "tuned_zero_shot")])
        if "code_arm" in s:
            c = s["code_arm"]
            for base, mix, seed in itertools.product(c["base_models"], c["mixtures"], c["seeds"]):
                ts = TrainSet(f"mix-{mix}", "mixture", (("mixture", mix),))
                run = self._add_run(base, ts, c["recipe"], seed, "diversity", mixture=mix)
                self._add_eval(f"tuned/{run.id}", [(t, "tuned_zero_shot") for t in c["eval_tasks"]])

    def _expand_teachers(self, s):
        """Study C: generators (tuned ladder models become tuning runs themselves), then every
        student x generator x seed, tuned on that generator's responses."""
        for name, g in s["generators"].items():
            if g["kind"] == "tuned":
                ts = TrainSet(f"mix-{g['mixture']}", "mixture", (("mixture", g["mixture"]),))
                run = self._add_run(g["base"], ts, s.get("teacher_recipe", s["recipe"]), s["seeds"][0], "teachers")
                self.generators[name] = f"tuned/{run.id}"
            elif g["kind"] == "model":
                self.generators[name] = f"base/{g['model']}" if g["model"] in self.base_models else g["model"]
            else:
                self.generators[name] = None
        tasks = s["evaluation"]["tasks"]
        for student, gen, seed in itertools.product(s["students"], s["generators"], s["seeds"]):
            ts = TrainSet(f"teacher-{gen}", "teacher", (("generator", gen),))
            run = self._add_run(student, ts, s["recipe"], seed, "teachers", generator=gen)
            if tasks:
                self._add_eval(f"tuned/{run.id}", [(t, "tuned_zero_shot") for t in tasks])

    def teacher_runs(self) -> dict[str, dict]:
        """Study C's student runs: model key -> {student, generator, seed}."""
        return {f"tuned/{r.id}": {"student": r.base, "generator": dict(r.meta)["generator"], "seed": r.seed}
                for r in self.runs.values() if r.study == "teachers" and "generator" in dict(r.meta)}

    def responses_path(self, generator: str) -> str:
        return f"{self.root}/data/teachers/{generator}/responses.jsonl"
    def _expand_behavior_shift(self, s):
        """Pairs (base, tuned): built base models with their tuned run, and hub pairs."""
        if "tune" in s:
            t = s["tune"]
            bases = [b for b in _selected(t["base_models"], self.base_models)]
            ts = TrainSet(f"mix-{t['mixture']}", "mixture", (("mixture", t["mixture"]),))
            for base in bases:
                run = self._add_run(base, ts, t["recipe"], t["seeds"][0], "behavior_shift", mixture=t["mixture"])
                self.behavior_pairs[base] = {side: self._model_ref(key) for side, key in
                                             (("base", f"base/{base}"), ("tuned", f"tuned/{run.id}"))}
        from itlab.hub import model_path

        for name, pair in s["pairs"].items():  # compute jobs read hub pairs from the mirror only
            self.behavior_pairs[name] = {
                side: ModelRef(f"hub:{pair[side]['hub']}", model_path(self.cfg["mirror"]["dir"], pair[side]["hub"]),
                               pair[side].get("revision"),
                               (f"{model_path(self.cfg['mirror']['dir'], pair[side]['hub'])}/MANIFEST.json",))
                for side in ("base", "tuned")}

    def _model_ref(self, key: str) -> ModelRef:
        return ModelRef(key, self.model_dir(key), None, tuple(self.model_done(key)))

    # ---- paths -----------------------------------------------------------------------
    def task_split(self, task: str, split: str) -> str:
        return f"{self.root}/data/tasks/{task}/{split}.jsonl"

    def eval_task_files(self, task: str) -> dict:
        """test and few-shot files of an evaluation task (a suite task or a Markov cell)."""
        if task.startswith("markov-I"):
            return {"test": f"{self.root}/data/markov/{task}/test.jsonl",
                    "fewshot": f"{self.root}/data/markov/{task}/train.jsonl"}
        return {"test": self.task_split(task, "test"), "fewshot": self.task_split(task, "train")}

    def trainset_path(self, trainset: str) -> str:
        ts = self.trainsets[trainset]
        if ts.kind == "markov":
            return f"{self.root}/data/markov/{ts.id}/train.jsonl"
        if ts.kind == "teacher":
            return self.responses_path(ts.spec["generator"])
        return f"{self.root}/data/trainsets/{ts.id}.jsonl"

    def base_done(self, base: str) -> str:
        return f"{self.root}/base/{base}/DONE.json"

    def model_dir(self, model: str) -> str:
        """Folder (or hub id) of a model key: base/<id> or tuned/<run>."""
        kind, name = model.split("/", 1)
        if kind == "base":
            bm = self.base_models[name]
            if bm.source == "hub":  # compute jobs read hub models from the mirror only
                from itlab.hub import model_path

                return model_path(self.cfg["mirror"]["dir"], bm.location)
            if bm.source != "build":
                return bm.location
        return f"{self.root}/{kind}/{name}/model"

    def model_done(self, model: str) -> list[str]:
        kind, name = model.split("/", 1)
        if kind == "base":
            bm = self.base_models[name]
            if bm.source == "hub":  # the mirror entry (its manifest enters provenance)
                return [f"{self.model_dir(model)}/MANIFEST.json"]
            return [self.base_done(name)] if bm.source == "build" else []
        return [f"{self.root}/tuned/{name}/DONE.json"]

    def answer_format(self, model: str) -> str:
        """The response format a model was tuned on (its mixture's format), which evaluation
        must parse: samplegen answers after two generated examples; else "regular"."""
        kind, name = model.split("/", 1)
        if kind == "tuned":
            ts = self.trainsets[self.runs[name].trainset]
            if ts.kind == "mixture":
                return self.cfg["data"]["mixtures"][ts.spec["mixture"]].get("format", "regular")
        return "regular"

    def eval_scores(self, model: str) -> str:
        return f"{self.root}/eval/{model}/scores.tsv"

    # ---- metadata for the results table ---------------------------------------------
    def model_meta(self, model: str) -> dict:
        kind, name = model.split("/", 1)
        if kind == "base":
            bm = self.base_models[name]
            return {"model": model, "kind": "base", "base_model": name, "family": bm.family, "size": bm.size}
        run = self.runs[name]
        bm = self.base_models[run.base]
        meta = {"model": model, "kind": "tuned", "base_model": run.base, "family": bm.family, "size": bm.size,
                "trainset": run.trainset, "recipe": run.recipe, "seed": run.seed, "study": run.study}
        meta.update(dict(run.meta))
        return meta

    def summary(self) -> dict:
        built = [b for b in self.base_models.values() if b.source == "build"]
        return {"base_models": len(self.base_models), "pretrained_here": len(built),
                "trainsets": len(self.trainsets), "tuning_runs": len(self.runs), "evaluation_jobs": len(self.evals)}


# ---- what each job is given -------------------------------------------------------------
def _size(cfg, base: BaseModel) -> dict:
    return cfg["sizes"][base.size]


def pretrain_arguments(grid: Grid, base_id: str) -> dict:
    """TrainArguments (as a dict) of pretraining a base model built from its family x size
    config (seeded random weights, made in the training process) on the corpus."""
    cfg, base = grid.cfg, grid.base_models[base_id]
    p = cfg["pretraining"]
    out = f"{grid.root}/base/{base_id}"
    return {"model_path": f"{grid.root}/tokenizer", "init_model": {"architecture": base.architecture,
                                                                  "size": _size(cfg, base)["model"]},
            "train_file": f"{grid.root}/data/corpus/train.txt",
            "eval_file": f"{grid.root}/data/corpus/validation.txt", "output_dir": out, "objective": "lm",
            "max_seq_len": p["seq_len"], "global_batch_size": p["batch_size"], "per_device_batch_size": p["batch_size"],
            "learning_rate": p["learning_rate"], "warmup_ratio": p["warmup_ratio"], "lr_scheduler": "cosine",
            "max_tokens": _size(cfg, base)["pretrain_tokens"], "seed": cfg["seed"], "zero_stage": 0,
            "checkpoint_every": 100, "packing": False}


def tune_arguments(grid: Grid, run_id: str) -> dict:
    """TrainArguments (as a dict) of one tuning run: recipe x the base model's size settings."""
    cfg, run = grid.cfg, grid.runs[run_id]
    base = grid.base_models[run.base]
    recipe = cfg["recipes"][run.recipe]
    system = tune_system(grid, run_id)
    batch = _global_batch(grid, run_id)
    args = {
        "model_path": grid.model_dir(f"base/{run.base}"), "train_file": grid.trainset_path(run.trainset),
        "output_dir": f"{grid.root}/tuned/{run_id}", "objective": "sft", "chat": True,
        "max_seq_len": recipe["max_seq_len"], "packing": recipe["packing"], "global_batch_size": batch,
        "loss_reduction": recipe["loss_reduction"],
        "per_device_batch_size": system["per_device_batch_size"], "learning_rate": recipe["learning_rate"],
        "lr_scheduler": recipe["lr_scheduler"], "warmup_ratio": recipe["warmup_ratio"],
        "weight_decay": recipe["weight_decay"], "epochs": recipe["epochs"], "max_steps": recipe.get("max_steps", 0),
        "seed": run.seed, "zero_stage": system["zero_stage"], "offload_optimizer": system["offload_optimizer"],
        "offload_params": system["offload_params"], "bf16": system["bf16"],
        "gradient_checkpointing": system["gradient_checkpointing"], "trust_remote_code": cfg["trust_remote_code"],
    }  # checkpointing is not part of the result: tune_checkpointing, outside the job's params
    if "lora" in recipe:
        lora = recipe["lora"]
        args.update(lora_r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                    lora_target_modules=lora["target_modules"], quantize_4bit=lora["quantize_4bit"])
    return args


def checkpoint_folder(cfg: dict, name: str, kind: str = "tuned") -> str:
    """Where a training job keeps its checkpoints: ``<scratch_dir>/...`` when set, else
    ``<results_dir>/checkpoints/<kind>/<name>``. Never a declared output (Snakemake deletes
    those when a job fails, and a failed job resumes from here); deleted once the model is
    exported. ``kind``: tuned (a tuning run) or base (a pretrained base model)."""
    if cfg.get("scratch_dir"):
        return scratch_checkpoint_dir(cfg, name if kind == "tuned" else f"{kind}/{name}")
    return f"{cfg['results_dir']}/checkpoints/{kind}/{name}"


def scratch_checkpoint_dir(cfg: dict, run_id: str) -> str:
    """A run's checkpoint folder under scratch_dir, unique per results_dir (two checkouts
    sharing one scratch never meet; a checkpoint also carries the run's fingerprint)."""
    import hashlib
    import os

    root = os.path.abspath(cfg["results_dir"])
    tag = f"{os.path.basename(root)}-{hashlib.sha256(root.encode()).hexdigest()[:8]}"
    return f"{cfg['scratch_dir']}/{tag}/{run_id}/checkpoints"


def param_count(cfg: dict, base: BaseModel) -> float:
    """Parameters of a base model: sizes.<size>.params_b, or for a model built here 12 L h^2
    for the blocks plus the tied in/out embeddings."""
    size = _size(cfg, base)
    if "params_b" in size:
        return size["params_b"] * 1e9
    m = size["model"]
    return 12 * m["num_layers"] * m["hidden_size"] ** 2 + cfg["tokenizer"]["vocab_size"] * m["hidden_size"]


def checkpoint_mb(grid: Grid, run_id: str) -> int:
    """Disk a run's checkpoints take at their peak (keep_checkpoints complete ones plus the
    one being written), in MB: bf16/fp32 weights plus fp32 Adam state (master copy in bf16
    runs, two moments) for full tuning; the frozen weights plus a small adapter for LoRA."""
    run = grid.runs[run_id]
    n = param_count(grid.cfg, grid.base_models[run.base])
    args = tune_arguments(grid, run_id)
    weight = 2 if args["bf16"] else 4
    if args.get("lora_r"):
        per_param = (0.5 if args.get("quantize_4bit") else weight) * 1.02
    else:
        per_param = weight + (12 if args["bf16"] else 8)
    keep = tune_checkpointing(grid, run_id)["keep_checkpoints"]
    return max(1, round((keep + 1) * n * per_param / 1e6))


def tune_checkpointing(grid: Grid, run_id: str) -> dict:
    """How often a tuning run checkpoints, how many it keeps and where: read by the job itself,
    not a rule param, so changing them neither reruns a finished job nor deletes its DONE.json."""
    recipe = grid.cfg["recipes"][grid.runs[run_id].recipe]
    return {"checkpoint_every": recipe["checkpoint_every"], "keep_checkpoints": recipe["keep_checkpoints"],
            "checkpoint_dir": checkpoint_folder(grid.cfg, run_id)}


def tune_launch(grid: Grid, run_id: str) -> dict:
    """Processes and nodes of a tuning job (one process per GPU, or gloo CPU processes).

    A single-node run whose global batch is smaller than processes x per-device batch (study
    E's batch of 2 for <= 100 examples) runs on fewer processes, and asks for fewer GPUs.
    """
    size = _size(grid.cfg, grid.base_models[grid.runs[run_id].base])
    res = size["resources"]
    processes = res["gpus"] if grid.cfg["device"] == "cuda" and res["gpus"] else size["tune"]["processes"]
    if res["nodes"] == 1:
        processes = max(1, min(processes, _global_batch(grid, run_id) // size["tune"]["per_device_batch_size"]))
    return {"processes": processes, "nodes": res["nodes"], "device": grid.cfg["device"],
            "shutdown_grace": size["tune"]["shutdown_grace"]}


def _global_batch(grid: Grid, run_id: str) -> int:
    run = grid.runs[run_id]
    recipe, ts = grid.cfg["recipes"][run.recipe], grid.trainsets[run.trainset]
    if "batch_size_by_examples" in recipe and ts.kind == "subset":
        n = ts.spec["n"]
        return next((b for limit, b in sorted(recipe["batch_size_by_examples"]) if n <= limit),
                    sorted(recipe["batch_size_by_examples"])[-1][1])
    return recipe["global_batch_size"]


def model_state_gb(params_b: float, system: dict, world: int, nodes: int, lora: dict | None = None) -> dict:
    """Memory (GB) of a run's model states: weights, gradients and AdamW states, per GPU and
    per node's CPU (offloaded states), sharded as ZeRO does. Activations come on top.

    Full fine-tuning in bf16 keeps 2 (weights) + 2 (gradients) + 12 (fp32 master copy, Adam m
    and v) bytes per parameter, fp32 4 + 4 + 8. ZeRO-1 shards the optimizer states over the
    world, ZeRO-2 also the gradients, ZeRO-3 also the weights. LoRA/QLoRA keeps one copy of the
    frozen base per GPU (4-bit: ~0.55 bytes per parameter with its scales); adapters are small.
    """
    w = 2 if system["bf16"] else 4
    if lora:
        return {"gpu": params_b * (0.55 if lora.get("quantize_4bit") else w), "cpu_per_node": 0.0}
    parts = {"weights": w, "grads": w, "optimizer": 12 if system["bf16"] else 8}
    sharded = {0: (), 1: ("optimizer",), 2: ("optimizer", "grads"), 3: ("optimizer", "grads", "weights")}
    gpu = cpu = 0.0
    for part, nbytes in parts.items():
        total = params_b * nbytes
        per_gpu = total / world if part in sharded[system["zero_stage"]] else total
        offloaded = (part == "optimizer" and system["offload_optimizer"]) or (part == "weights" and system["offload_params"])
        if offloaded:
            cpu += per_gpu * world / nodes
        else:
            gpu += per_gpu
    return {"gpu": gpu, "cpu_per_node": cpu}


def tune_memory(grid: Grid, run_id: str, system: dict | None = None) -> dict | None:
    """model_state_gb of a tuning run on its GPUs, or None (no params_b, or not on GPUs)."""
    run = grid.runs[run_id]
    size = _size(grid.cfg, grid.base_models[run.base])
    if grid.cfg["device"] != "cuda" or not size["resources"]["gpus"] or "params_b" not in size:
        return None
    launch = tune_launch(grid, run_id)
    system = system or size["tune"]
    return model_state_gb(size["params_b"], system, launch["processes"] * launch["nodes"], launch["nodes"],
                          grid.cfg["recipes"][run.recipe].get("lora"))


def tune_system(grid: Grid, run_id: str) -> dict:
    """sizes.<size>.tune of a run, with ZeRO offload turned on where the run was shrunk to
    fewer GPUs than the size asks (a small global batch) and its model states no longer fit:
    optimizer states first, then (ZeRO-3) the weights."""
    size = _size(grid.cfg, grid.base_models[grid.runs[run_id].base])
    system = dict(size["tune"])
    mem = tune_memory(grid, run_id, system)
    if mem is None or tune_launch(grid, run_id)["processes"] >= size["resources"]["gpus"]:
        return system
    for key in ("offload_optimizer", "offload_params"):
        if tune_memory(grid, run_id, system)["gpu"] <= size["resources"]["gpu_mem_gb"]:
            break
        if system["zero_stage"] == 0 or (key == "offload_params" and system["zero_stage"] != 3):
            break
        system[key] = True
    return system


def tune_resources(grid: Grid, run_id: str) -> dict:
    """Scheduler resources of a tuning job, from sizes.<size>.resources."""
    size = _size(grid.cfg, grid.base_models[grid.runs[run_id].base])
    res, launch = size["resources"], tune_launch(grid, run_id)
    out = {"nodes": res["nodes"], "mem_mb": res.get("mem_mb", 4000), "runtime": res.get("runtime", 60),
           "cpus_per_task": res.get("cpus_per_task", launch["processes"])}
    # One Slurm task per node runs the launcher; torchrun starts one process per GPU. No
    # `tasks` resource: for GPU jobs the plugin turns it into --ntasks-per-gpu, which would
    # start a launcher per GPU.
    if res["gpus"] and res["nodes"] == 1:
        out["gpu"] = launch["processes"]
        if "gpu_model" in res:
            out["gpu_model"] = res["gpu_model"]
    elif res["gpus"]:  # several nodes: --gres is per node, --gpus would be a job total
        model = f"{res['gpu_model']}:" if "gpu_model" in res else ""
        out["gres"] = f"gpu:{model}{res['gpus']}"
    elif res["nodes"] > 1:  # CPU: the plugin adds --ntasks=<tasks> (default 1), which caps the nodes
        out["tasks"] = res["nodes"]
    if "partition" in res:
        out["slurm_partition"] = res["partition"]
    out["checkpoint_mb"] = checkpoint_mb(grid, run_id)  # shown in the dry-run; cap with --resources
    # the pre-timeout warning: the workers checkpoint and the job requeues itself
    out["slurm_extra"] = f"--signal=URG@{int(res['signal_lead'])}"
    return out


def eval_resources_block(grid: Grid, model: str) -> tuple[str, dict]:
    """(config key, block) of a model's evaluation resources: sizes.<size>.evaluate_resources
    where the base model's size has them (a 70B model needs several GPUs), else
    resources.evaluate. Errors and the plan name the key."""
    size = grid.base_models[grid.model_meta(model)["base_model"]].size
    own = grid.cfg["sizes"][size].get("evaluate_resources")
    if own is not None:
        return f"sizes.{size}.evaluate_resources", own
    return "resources.evaluate", grid.cfg["resources"]["evaluate"]


def eval_resources(grid: Grid, model: str) -> dict:
    """Resources of a model's evaluation job (eval_resources_block)."""
    res = eval_resources_block(grid, model)[1]
    out = {"mem_mb": res.get("mem_mb", 4000), "runtime": res.get("runtime", 60), "gpu": res["gpus"],
           "cpus_per_task": res.get("cpus_per_task"), "slurm_partition": res.get("partition"),
           "gpu_model": res.get("gpu_model") if res["gpus"] else None}
    return out


# SampleGen-tuned models generate until EOS with this many times max_new_tokens (itlab.evaluate)
SAMPLEGEN_TOKEN_FACTOR = 4


def eval_settings(grid: Grid, model: str) -> dict:
    """evaluation settings of a model's evaluation: ``evaluation`` with its study's
    ``evaluation_by_study`` block on top (a composed config)."""
    return {**grid.cfg["evaluation"], **grid.cfg["evaluation_by_study"].get(grid.evals[model].study, {})}


def eval_items(grid: Grid, task: str, settings: dict) -> int:
    """Items evaluated of a task: max_items_per_task capped by what the task has (its hub
    max_items, plan.lm_eval_items of an lm-eval task, data.splits.test, a Markov cell's test set)."""
    cfg = grid.cfg
    if task.startswith("markov-I"):
        return min(settings["max_items_per_task"], cfg["studies"]["diversity"]["test_examples"])
    if task in cfg["data"]["hub_tasks"]:
        spec = cfg["data"]["hub_tasks"][task]
        cap = spec.get("max_items", settings["max_items_per_task"])
        known = cfg["plan"]["lm_eval_items"].get(spec.get("lm_eval_task"))
        return min(cap, known) if known else cap
    return min(settings["max_items_per_task"], cfg["data"]["splits"]["test"])


def eval_pair_tokens(grid: Grid, model: str, task: str, condition: str) -> int:
    """Estimated tokens a model processes for one (task, condition): items x (prompt +
    generated). A prompt is plan.eval_prompt_tokens, (1 + k) of them under a k-shot condition
    (each in-context example about one more item); generated: max_new_tokens, x
    SAMPLEGEN_TOKEN_FACTOR for a model tuned on SampleGen (it generates to EOS)."""
    settings = eval_settings(grid, model)
    shots = grid.evals[model].k_shot if CONDITIONS[condition][1] else 0
    new = settings["max_new_tokens"] * (SAMPLEGEN_TOKEN_FACTOR if grid.answer_format(model) == "samplegen" else 1)
    return eval_items(grid, task, settings) * (grid.cfg["plan"]["eval_prompt_tokens"] * (1 + shots) + new)


def eval_shard_count(grid: Grid, model: str) -> int:
    """sizes.<size>.evaluate_shards of the model's size, at most one shard per (task, condition)."""
    base = grid.base_models[grid.model_meta(model)["base_model"]]
    return max(1, min(_size(grid.cfg, base).get("evaluate_shards", 1), len(grid.evals[model].items)))


def balance_shards(weights: dict, n: int) -> list[list]:
    """``weights`` (key -> estimated cost) split into ``n`` non-empty shards of near-equal total
    cost: the heaviest key first onto the lightest shard so far (longest-processing-time
    first; ties by key, so the split is deterministic). Each shard's keys sorted."""
    n = max(1, min(n, len(weights)))
    bins: list[list] = [[] for _ in range(n)]
    load = [0] * n
    for key in sorted(weights, key=lambda k: (-weights[k], k)):
        i = min(range(n), key=lambda b: (load[b], b))
        bins[i].append(key)
        load[i] += weights[key]
    return [sorted(b) for b in bins]


def eval_shards(grid: Grid, model: str, n: int | None = None) -> list[list[tuple[str, str]]]:
    """A model's (task, condition) pairs split into its evaluation shards (eval_shard_count, or
    ``n``), balanced by estimated tokens (eval_pair_tokens): each shard is one evaluation job
    that loads the model and evaluates its pairs; rules/evaluate.smk merges their outputs."""
    weights = {pair: eval_pair_tokens(grid, model, *pair) for pair in grid.evals[model].items}
    return balance_shards(weights, eval_shard_count(grid, model) if n is None else n)


def teachers_runs_a_model(grid: Grid, rule: str, name: str | None = None) -> bool:
    """Whether a study-C job loads a model: generate_responses only for a generator of kind
    model or tuned (a zoo generator's responses are a data set column, gold/wordy/noisy/shuffled
    transform the pool); score_rewards only if a reward model is a classifier (kind dataset reads
    the zoo's score fields, checker is a rule); measure_responses and answer_benchmarks always."""
    if rule == "generate_responses":
        return grid.generators[name] is not None
    if rule == "score_rewards":
        return any(r["kind"] == "classifier"
                   for r in grid.cfg["studies"].get("teachers", {}).get("reward_models", {}).values())
    return True


def teachers_resources(grid: Grid, rule: str, name: str | None = None) -> dict:
    """Scheduler resources of a study-C job: resources.evaluate where it runs a model, else
    resources.data (no GPU; its partition, or the profile's default partition where unset)."""
    res = grid.cfg["resources"]["evaluate" if teachers_runs_a_model(grid, rule, name) else "data"]
    out = {"mem_mb": res.get("mem_mb", 4000), "runtime": res.get("runtime", 60),
           "cpus_per_task": res.get("cpus_per_task", 1), "gpu": res["gpus"]}
    if res["gpus"] and "gpu_model" in res:
        out["gpu_model"] = res["gpu_model"]
    if "partition" in res:
        out["slurm_partition"] = res["partition"]
    return out


# ---- study D: behavior shift ---------------------------------------------------------------
def behavior_prompt_count(cfg: dict) -> int:
    """Prompts of study D (for the runtime estimate and shard sizes)."""
    p = cfg["studies"]["behavior_shift"]["prompts"]
    if p["source"] == "synthetic":
        tasks = synthetic_tasks(cfg) if p["tasks"] == "all" else p["tasks"]
        return len(tasks) * p["per_task"]
    if "path" not in p:
        return 632  # a downloaded FinalDataset.tsv: the authors' 632 prompts
    with open(p["path"], encoding="utf-8") as fh:
        return max(0, sum(1 for line in fh if line.strip()) - 1)


def behavior_resources(grid: Grid, pair: str, kind: str) -> dict:
    """Scheduler resources of a study-D job. Attribution: one forward + backward over a copy
    of the sequence per output token, ~6 x params x sequence length FLOPs each; runtime =
    prompts per shard x max_new_tokens x that / sustained FLOP/s, x 1.5, at least 10 minutes."""
    s = grid.cfg["studies"]["behavior_shift"]
    res = s["resources"]
    params = s["pairs"].get(pair, {}).get("params_billion", 0.01) * 1e9
    seq = res["mean_prompt_tokens"] + s["max_new_tokens"]
    per_shard = -(-behavior_prompt_count(grid.cfg) // s["shards"])
    flops = per_shard * s["max_new_tokens"] * 6 * params * seq
    minutes = max(10, int(1.5 * flops / (res["gpu_tflops"] * 1e12 * max(1, res["gpus"])) / 60) + 1)
    out = {"mem_mb": res["mem_mb"], "runtime": res.get("runtime", minutes), "cpus_per_task": 2}
    if kind == "weights":  # on CPU: fp32 load, one SVD per layer, E x W_q / W_k per head (~10 min per 1B)
        out["runtime"] = res.get("runtime", max(10, int(10 * params / 1e9)))
        # a CPU job: resources.data's partition (else the profile's default), not the GPU one
        if "partition" in grid.cfg["resources"].get("data", {}):
            out["slurm_partition"] = grid.cfg["resources"]["data"]["partition"]
        return out
    if res["gpus"]:
        out["gpu"] = res["gpus"]
        if "gpu_model" in res:
            out["gpu_model"] = res["gpu_model"]
    if "partition" in res:
        out["slurm_partition"] = res["partition"]
    return out


def behavior_words(cfg: dict) -> dict:
    """Word lists of study D: instruction and general words (heads), FFN categories."""
    from itlab.data import FILLER_WORDS
    from itlab.interpret import words as w

    s = cfg["studies"]["behavior_shift"]
    tasks = synthetic_tasks(cfg)
    suite = w.suite_words(tasks)
    suite_all = sorted({x for ws in suite.values() for x in ws})
    h, f = s["heads"], s["ffn"]
    instruction = {"suite": suite_all, "paper": w.INSTRUCTION_VERBS}.get(h["instruction_words"], h["instruction_words"])
    general = {"corpus": sorted({x for x in FILLER_WORDS if len(x) >= 3} - set(suite_all)),
               "paper": w.GENERAL_VERBS}.get(h["general_words"], h["general_words"])
    if f["categories"] == "clusters":  # words unique to one cluster's phrasings
        by_cluster: dict[str, set] = {}
        for t, ws in suite.items():
            by_cluster.setdefault(task_cluster(cfg, t), set()).update(ws)
        categories = {c: sorted(ws - set().union(*(o for k, o in by_cluster.items() if k != c)))
                      for c, ws in sorted(by_cluster.items())}
    else:
        categories = w.FFN_CATEGORIES if f["categories"] == "paper" else f["categories"]
    vocab = s["vocabulary"]
    if vocab == "suite":
        vocab = sorted(set(suite_all) | {x for x in FILLER_WORDS if len(x) >= 3})
    return {"instruction": list(instruction), "general": list(general), "categories": categories, "vocabulary": vocab}
