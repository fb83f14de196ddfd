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
    kind: str  # mixture | subset | markov
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


@dataclass
class EvalJob:
    """All (task, condition) pairs of one model: the model is loaded once per job."""

    model: str  # "base/<id>" or "tuned/<run id>"
    items: set = field(default_factory=set)  # {(eval task id, condition)}
    k_shot: int = 0


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


def synthetic_tasks(cfg: dict) -> list[str]:
    tasks = cfg["data"]["tasks"]
    return sorted(task_registry.REGISTRY) if tasks == "all" else list(tasks)


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
        self._expand_base_models()
        studies = cfg["studies"]
        if "inherent_limits" in studies:
            self._expand_inherent_limits(studies["inherent_limits"])
        if "scaling" in studies:
            self._expand_scaling(studies["scaling"])
        if "diversity" in studies:
            self._expand_diversity(studies["diversity"])

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

    def _add_eval(self, model: str, items, k_shot: int = 0):
        job = self.evals.setdefault(model, EvalJob(model))
        job.items.update(items)
        job.k_shot = max(job.k_shot, k_shot)

    def _expand_inherent_limits(self, s):
        bases = _selected(s["base_models"], self.base_models)
        tasks = all_tasks(self.cfg)
        base_conds = [c for c in s["conditions"] if CONDITIONS[c][0] == "base"]
        tuned_conds = [c for c in s["conditions"] if CONDITIONS[c][0] == "tuned"]
        for base in bases:
            self._add_eval(f"base/{base}", [(t, c) for t in tasks for c in base_conds], s["k_shot"])
        blocks = [s] + s["additional_grids"]
        for block in blocks:
            block_bases = _selected(block["base_models"], self.base_models) if "base_models" in block else bases
            for base, mix, seed in itertools.product(block_bases, block["mixtures"], block["seeds"]):
                ts = TrainSet(f"mix-{mix}", "mixture", (("mixture", mix),))
                run = self._add_run(base, ts, s["recipe"], seed, "inherent_limits", mixture=mix)
                self._add_eval(f"tuned/{run.id}", [(t, c) for t in tasks for c in tuned_conds], s["k_shot"])
                if base not in bases:
                    self._add_eval(f"base/{base}", [(t, c) for t in tasks for c in base_conds], s["k_shot"])

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
        return f"{self.root}/data/trainsets/{ts.id}.jsonl"

    def base_done(self, base: str) -> str:
        return f"{self.root}/base/{base}/DONE.json"

    def model_dir(self, model: str) -> str:
        """Folder (or hub id) of a model key: base/<id> or tuned/<run>."""
        kind, name = model.split("/", 1)
        if kind == "base":
            bm = self.base_models[name]
            if bm.source != "build":
                return bm.location
        return f"{self.root}/{kind}/{name}/model"

    def model_done(self, model: str) -> list[str]:
        kind, name = model.split("/", 1)
        if kind == "base":
            return [self.base_done(name)] if self.base_models[name].source == "build" else []
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
    """TrainArguments (as a dict) of pretraining a built base model on the corpus."""
    cfg, base = grid.cfg, grid.base_models[base_id]
    p = cfg["pretraining"]
    out = f"{grid.root}/base/{base_id}"
    return {"model_path": f"{out}/init", "train_file": f"{grid.root}/data/corpus/train.txt",
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
    system = _size(cfg, base)["tune"]
    ts = grid.trainsets[run.trainset]
    batch = recipe["global_batch_size"]
    if "batch_size_by_examples" in recipe and ts.kind == "subset":
        n = ts.spec["n"]
        batch = next((b for limit, b in sorted(recipe["batch_size_by_examples"]) if n <= limit),
                     sorted(recipe["batch_size_by_examples"])[-1][1])
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


def tune_checkpointing(grid: Grid, run_id: str) -> dict:
    """How often a tuning run checkpoints and how many it keeps: read by the job itself, not a
    rule param, so changing them neither reruns a finished job nor deletes its DONE.json."""
    recipe = grid.cfg["recipes"][grid.runs[run_id].recipe]
    return {"checkpoint_every": recipe["checkpoint_every"], "keep_checkpoints": recipe["keep_checkpoints"]}


def tune_launch(grid: Grid, run_id: str) -> dict:
    """Processes and nodes of a tuning job (one process per GPU, or gloo CPU processes).

    A single-node run whose global batch is smaller than processes x per-device batch (study
    E's batch of 2 for <= 100 examples) runs on fewer processes, and asks for fewer GPUs.
    """
    size = _size(grid.cfg, grid.base_models[grid.runs[run_id].base])
    res = size["resources"]
    processes = res["gpus"] if grid.cfg["device"] == "cuda" and res["gpus"] else size["tune"]["processes"]
    if res["nodes"] == 1:
        args = tune_arguments(grid, run_id)
        processes = max(1, min(processes, args["global_batch_size"] // args["per_device_batch_size"]))
    return {"processes": processes, "nodes": res["nodes"], "device": grid.cfg["device"]}


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
    if "partition" in res:
        out["slurm_partition"] = res["partition"]
    return out
