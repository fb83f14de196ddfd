"""Arguments of one training run: one dataclass, overridable from YAML/JSON files and the
command line (``--learning_rate 1e-4``), as in open-instruct's finetune.py."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml


def _f(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class TrainArguments:
    model_path: str = _f("", "Folder or hub id of the model to start from (with init_model: of its tokenizer only).")
    init_model: dict = field(default_factory=dict, metadata={"help": (
        "Pretraining from scratch: {architecture, size} of a model built here (itlab.models.build_initial_model, "
        "seeded with seed) on model_path's tokenizer, instead of weights loaded from model_path. JSON on the command "
        "line.")})
    train_file: str = _f("", "JSONL of instruction records (sft) or a text file of documents (lm).")
    output_dir: str = _f("", "Run folder: model/ and DONE.json (and, unless set apart, checkpoints/ and the logs).")
    objective: str = _f("sft", "sft: loss on response tokens only; lm: loss on every token (pretraining).")
    chat: bool = _f(True, "Format sft examples with the tokenizer's chat template.")
    eval_file: str = _f("", "lm objective: held-out documents whose loss is reported at the end.")
    max_seq_len: int = _f(128, "Sequence length of packed rows; longer examples are truncated to it (packed or not).")
    packing: bool = _f(True, "Pack several short examples per row (block-diagonal attention).")
    loss_reduction: str = _f("mean", "mean: the loss of an optimizer step is the mean over all its target tokens, "
                                     "across micro-batches and processes (each token weighs the same); sum: their "
                                     "sum (the gradient grows with the tokens per step).")
    global_batch_size: int = _f(16, "Rows per optimizer step over all processes.")
    per_device_batch_size: int = _f(8, "Rows per micro-batch and process; accumulation is derived.")
    learning_rate: float = _f(5e-5, "Peak learning rate.")
    lr_scheduler: str = _f("cosine", "cosine | linear | constant, after linear warmup; decays to 0.")
    warmup_ratio: float = _f(0.03, "Share of the steps spent warming up.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    epochs: float = _f(1.0, "Passes over the training rows (ignored when max_steps or max_tokens is set).")
    max_steps: int = _f(0, "Stop after this many optimizer steps (0: from epochs).")
    max_tokens: int = _f(0, "lm objective: token budget (0: from epochs).")
    seed: int = _f(1, "Seed of data order, dropout and LoRA initialisation.")
    zero_stage: int = _f(2, "DeepSpeed ZeRO stage 0-3.")
    offload_optimizer: bool = _f(False, "Offload optimizer states to CPU.")
    offload_params: bool = _f(False, "Offload parameters to CPU (stage 3).")
    bf16: bool = _f(False, "bf16 mixed precision.")
    gradient_checkpointing: bool = _f(False, "Recompute activations in the backward pass.")
    lora_r: int = _f(0, "LoRA rank; 0 tunes all weights.")
    lora_alpha: float = _f(16.0, "LoRA alpha.")
    lora_dropout: float = _f(0.1, "LoRA dropout.")
    lora_target_modules: list = _f("all", "Module names to adapt (a list; on the command line comma-separated: "
                                          "q_proj,v_proj), or 'all' linear layers.")
    quantize_4bit: bool = _f(False, "QLoRA: load the base weights in 4 bit (bitsandbytes; its CPU backend runs too).")
    checkpoint_every: int = _f(50, "Optimizer steps between checkpoints.")
    keep_checkpoints: int = _f(2, "Complete checkpoints kept; older ones are pruned.")
    log_every: int = _f(1, "Optimizer steps between metric lines.")
    trust_remote_code: bool = _f(False, "Allow model code from the hub (only if the config asks).")
    peak_tflops: float = _f(0.0, "Accelerator peak TFLOP/s for MFU (0: look up the GPU, none on CPU).")
    stop_after_steps: int = _f(0, "Testing aid: checkpoint and exit with code 3 after this many steps.")
    checkpoint_dir: str = _f("", "Checkpoint folder (on scratch storage); empty: <output_dir>/checkpoints.")
    log_dir: str = _f("", "Folder of the run's logs: metrics.jsonl, tensorboard/, the launcher's arguments "
                          "file and lock; empty: output_dir.")

    train_data_sha256: str = _f("", "Set by the launcher: sha256 of train_file (the fingerprint hashes content, "
                                    "not paths).")
    eval_data_sha256: str = _f("", "Set by the launcher: sha256 of eval_file.")
    model_revision: str = _f("", "Set by the launcher: resolved revision of model_path (mirror commit + content "
                                 "hash, folder content hash, or hub commit).")

    def fingerprint(self) -> str:
        """Hash of what defines the result: the settings, the content of the data files and the
        resolved revision of the starting model; not paths, nor how often it checkpoints or logs."""
        skip = {"output_dir", "log_every", "stop_after_steps", "checkpoint_every", "keep_checkpoints", "checkpoint_dir",
                "log_dir", "model_path", "train_file", "eval_file", "train_data_sha256", "eval_data_sha256", "model_revision"}
        data = {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}
        if not data["init_model"]:  # a run that loads its model keeps the fingerprint it had before this field
            del data["init_model"]  # (so its checkpoints, made by an older checkout, still resume)
        data.update(self.identity())
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def identity(self) -> dict:
        """Content hashes of the data files and the model's revision (resolved now unless set)."""
        from itlab.train.identity import content_digest, model_revision

        return {"train_data_sha256": self.train_data_sha256 or content_digest(self.train_file),
                "eval_data_sha256": self.eval_data_sha256 or content_digest(self.eval_file),
                "model_revision": self.model_revision or model_revision(self.model_path)}

    def resolved(self) -> "TrainArguments":
        """A copy with the identity fields computed afresh (the launcher does it once; the
        workers read them from the arguments file instead of hashing the data again)."""
        fresh = dataclasses.replace(self, train_data_sha256="", eval_data_sha256="", model_revision="")
        return dataclasses.replace(fresh, **fresh.identity())

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def parse(cls, argv=None) -> "TrainArguments":
        """``--args FILE`` (YAML or JSON, repeatable) then ``--field value`` overrides."""
        parser = argparse.ArgumentParser(description=cls.__doc__)
        parser.add_argument("--args", action="append", default=[], help="YAML/JSON file(s) of arguments")
        for f in dataclasses.fields(cls):
            kind = {bool: _bool, int: int, float: float}.get(type(f.default), str)
            if f.type in ("list", list):  # every list field: comma-separated on the command line
                kind = _list
            elif f.type in ("dict", dict):
                kind = json.loads
            parser.add_argument(f"--{f.name}", type=kind, default=None, help=f.metadata["help"])
        ns = parser.parse_args(argv)
        values: dict = {}
        for path in ns.args:
            text = Path(path).read_text()
            # JSON files are read as JSON: YAML 1.1 reads json.dumps' "5e-05" as a string
            values.update((json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)) or {})
        values.update({k: v for k, v in vars(ns).items() if k != "args" and v is not None})
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainArguments":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training argument(s): {', '.join(unknown)}")
        args = cls(**values)
        args.check()
        return args

    def check(self) -> None:
        for f in dataclasses.fields(self):  # a list field given as one string (YAML/JSON): comma-separated
            value = getattr(self, f.name)
            if f.type in ("list", list) and isinstance(value, str) and value != "all":
                setattr(self, f.name, _list(value))
        if self.objective not in ("sft", "lm"):
            raise ValueError(f"objective must be sft or lm, not {self.objective!r}")
        if self.loss_reduction not in ("mean", "sum"):
            raise ValueError(f"loss_reduction must be mean or sum, not {self.loss_reduction!r}")
        if self.lr_scheduler not in ("cosine", "linear", "constant"):
            raise ValueError(f"unknown lr_scheduler {self.lr_scheduler!r}")
        if not 0 <= self.zero_stage <= 3:
            raise ValueError(f"zero_stage must be 0-3, not {self.zero_stage}")
        if self.lora_r and self.zero_stage == 3:
            raise ValueError("LoRA with ZeRO-3 is not supported: use zero_stage <= 2 for LoRA runs")
        if self.init_model and (self.lora_r or self.quantize_4bit):
            raise ValueError("init_model builds a model to train in full: not with lora_r or quantize_4bit")
        if self.init_model and set(self.init_model) != {"architecture", "size"}:
            raise ValueError(f"init_model needs exactly the keys architecture and size, not {sorted(self.init_model)}")


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def _list(text: str) -> list[str] | str:
    """A list argument from the command line: comma-separated names (``q_proj,v_proj``);
    ``all`` stays the keyword it is."""
    if text.strip() == "all":
        return "all"
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"not a comma-separated list: {text!r}")
    return items


def accumulation_steps(global_batch: int, micro_batch: int, world: int) -> int:
    """Gradient accumulation that makes micro_batch * world * accumulation == global_batch."""
    per_step = micro_batch * world
    if global_batch % per_step:
        raise ValueError(f"global_batch_size {global_batch} is not a multiple of per_device_batch_size "
                         f"{micro_batch} x {world} processes")
    return global_batch // per_step


def deepspeed_config(args: TrainArguments, world: int) -> dict:
    """The DeepSpeed config of a run; the optimizer and schedule stay in itlab (torch AdamW,
    so no fused-kernel compile, and a schedule that depends only on the step for resuming)."""
    micro = min(args.per_device_batch_size, max(1, args.global_batch_size // world))
    accum = accumulation_steps(args.global_batch_size, micro, world)
    zero: dict = {"stage": args.zero_stage}
    if args.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if args.offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    if args.zero_stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": accum,
        "train_batch_size": micro * accum * world,
        "gradient_clipping": 1.0,
        "zero_optimization": zero,
        "bf16": {"enabled": args.bf16},
        "zero_force_ds_cpu_optimizer": False,
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def lr_at(step: int, total: int, args: TrainArguments) -> float:
    """Learning rate before optimizer step ``step`` (0-based): linear warmup, then decay to 0."""
    import math

    warmup = int(round(args.warmup_ratio * total))
    if step < warmup:
        return args.learning_rate * (step + 1) / warmup
    if args.lr_scheduler == "constant":
        return args.learning_rate
    progress = (step - warmup) / max(1, total - warmup)
    if args.lr_scheduler == "linear":
        return args.learning_rate * (1 - progress)
    return args.learning_rate * 0.5 * (1 + math.cos(math.pi * progress))
