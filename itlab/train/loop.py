"""One training run under DeepSpeed: data -> packed rows -> ZeRO engine -> checkpoints ->
exported HF model. Resumes from the newest complete checkpoint; SIGTERM/SIGUSR1 make it
checkpoint at the next step boundary and exit with ``EXIT_PREEMPTED``.

Run under a launcher (see itlab.train.launch): ``python -m itlab.train --args FILE``.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path

from itlab.io import atomic_path, fsync_tree, write_json, write_synced
from itlab.train.args import TrainArguments, deepspeed_config, lr_at

EXIT_PREEMPTED = 3
_STOP = {"requested": False}

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "V100": 125.0}


def device_peak_tflops() -> float:
    """Peak dense bf16 TFLOP/s of this process's CUDA device by its name (PEAK_TFLOPS; A100 is
    listed before A10, so it matches first); 0 for a device not in the table."""
    import torch

    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), 0.0)


def _request_stop(signum, frame):
    _STOP["requested"] = True


def skip_shared_memory_op() -> None:
    """Mark DeepSpeed's CPU shared-memory all-reduce op incompatible, so that its CPU backend does
    not JIT-compile it at the first process group: the op serves ``inference_all_reduce``
    (tensor-parallel inference) only, never training, and its first build cost 32 s wall and 65 s
    CPU on 2 cores, with every other job of the environment waiting on the build's lock."""
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def checkpoint_dir(args: TrainArguments) -> Path:
    """Where a run's checkpoints live: ``checkpoint_dir`` (scratch storage) or <output_dir>/checkpoints."""
    return Path(args.checkpoint_dir) if args.checkpoint_dir else Path(args.output_dir) / "checkpoints"


def log_dir(args: TrainArguments) -> Path:
    """Where a run's logs live (metrics.jsonl, tensorboard/, arguments file, lock): ``log_dir``
    (the rule's log folder in the workflow) or the run folder itself."""
    return Path(args.log_dir) if args.log_dir else Path(args.output_dir)


def complete_checkpoints(out: Path, fingerprint: str | None = None, ckdir: Path | None = None) -> list[Path]:
    """Complete checkpoints, oldest first; with ``fingerprint``, only those of the same settings
    (a run whose config changed starts afresh instead of resuming someone else's state)."""
    ckdir = Path(ckdir) if ckdir else out / "checkpoints"
    if not ckdir.is_dir():
        return []
    found = [p for p in ckdir.glob("step-*") if not p.name.endswith(".partial") and (p / "COMPLETE").exists()]
    if fingerprint is not None:
        found = [p for p in found if (p / "COMPLETE").read_text().strip() == fingerprint]
    return sorted(found, key=lambda p: p.name)


def is_done(out: Path, args: TrainArguments) -> bool:
    done = Path(out) / "DONE.json"
    if not done.exists():
        return False
    return json.loads(done.read_text()).get("fingerprint") == args.fingerprint()


# ---- data ---------------------------------------------------------------------------------
def build_rows(args: TrainArguments, tokenizer, path: str) -> list[dict]:
    from itlab import data
    from itlab.io import read_jsonl

    pad = tokenizer.pad_token_id
    if args.objective == "lm":  # documents -> one token stream -> rows of max_seq_len
        docs = Path(path).read_text().split(data.DOC_SEPARATOR)
        stream: list[int] = []
        for d in docs:
            stream += tokenizer.encode(d, add_special_tokens=False) + [tokenizer.eos_token_id]
        L = args.max_seq_len
        rows = []
        for i in range(0, len(stream) - L + 1, L):
            ids = stream[i : i + L]
            rows.append({"input_ids": ids, "labels": ids, "position_ids": list(range(L)), "n_tokens": L})
        return rows
    examples = [data.tokenize_example(tokenizer, r, chat=args.chat) for r in read_jsonl(path)]
    rows = (data.pack(examples, args.max_seq_len, pad) if args.packing
            else data.pad_batches(examples, pad, args.max_seq_len))
    for r in rows:  # real (non-padding) tokens, for throughput
        r["n_tokens"] = len(r["input_ids"]) - (_trailing_pad(r, pad) if args.packing else 0)
    return rows


def _trailing_pad(row, pad) -> int:
    n = 0
    for tok, lab in zip(reversed(row["input_ids"]), reversed(row["labels"])):
        if tok != pad or lab != -100:
            break
        n += 1
    return n


def row_order(n_rows: int, seed: int):
    """Row index of global position i: a fresh seeded permutation per epoch."""
    perms: dict[int, list[int]] = {}

    def at(i: int) -> int:
        epoch = i // n_rows
        if epoch not in perms:
            perm = list(range(n_rows))
            random.Random(seed * 1_000_003 + epoch).shuffle(perm)
            perms[epoch] = perm
        return perms[epoch][i % n_rows]

    return at


def collate(rows: list[dict], pad: int, device):
    import torch

    L = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), L), pad, dtype=torch.long)
    labels = torch.full((len(rows), L), -100, dtype=torch.long)
    pos = torch.zeros((len(rows), L), dtype=torch.long)
    mask = torch.zeros((len(rows), L), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n] = torch.tensor(r["input_ids"])
        labels[i, :n] = torch.tensor(r["labels"])
        pos[i, :n] = torch.tensor(r["position_ids"])
        mask[i, :n] = 1
    # use_cache=False matters: with a KV cache transformers ignores position_ids when building
    # the mask, and packed examples would attend to each other
    batch = {"input_ids": ids.to(device), "labels": labels.to(device), "position_ids": pos.to(device),
             "use_cache": False}
    if not bool(mask.all()):  # padded (unpacked) batch: a 2D mask; packed rows rely on position_ids
        batch["attention_mask"] = mask.to(device)
    return batch


def target_tokens(row: dict) -> int:
    """Tokens of a row that carry loss: a label at position i is predicted from position i - 1."""
    return sum(1 for lab in row["labels"][1:] if lab != -100)


def token_loss_sum(logits, labels):
    """Summed next-token cross-entropy over the target tokens of a micro-batch (fp32)."""
    import torch.nn.functional as F

    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100,
                           reduction="sum")


def backward_objective(summed, step_targets, world: int, reduction: str):
    """What one micro-batch back-propagates so that the step's gradient is that of

    - ``mean``: the mean loss over every target token of the optimizer step, across its
      micro-batches and processes (not a mean of per-micro-batch means, which weighs the
      tokens of a short micro-batch more);
    - ``sum``: the sum of the token losses of the step.

    Gradients are accumulated over micro-batches as they come (backward without DeepSpeed's
    1/accumulation scaling) and averaged over the ``world`` processes by DeepSpeed, hence the
    factor ``world``.
    """
    if reduction == "sum":
        return summed * world
    return summed * world / step_targets.clamp(min=1.0)


def total_steps(args: TrainArguments, n_rows: int) -> int:
    if args.max_steps:
        return args.max_steps
    if args.objective == "lm" and args.max_tokens:
        return max(1, math.ceil(args.max_tokens / (args.global_batch_size * args.max_seq_len)))
    return max(1, math.ceil(args.epochs * n_rows / args.global_batch_size))


# ---- the run ------------------------------------------------------------------------------
def run(args: TrainArguments) -> int:
    out = Path(args.output_dir)
    if is_done(out, args):
        print(f"[itlab] {out} is already complete with these settings; nothing to do", flush=True)
        return 0
    from itlab.train.launch import die_with_parent

    die_with_parent()
    import torch
    import torch.distributed as dist

    import deepspeed

    cuda = torch.cuda.is_available() and os.environ.get("DS_ACCELERATOR", "cuda") != "cpu"
    if not cuda:
        skip_shared_memory_op()
    deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    # SIGTERM: Slurm's time limit or scancel. SIGURG: the profile's pre-timeout warning
    # (ignored by default by every other process). SIGUSR1: by hand.
    for sig in (signal.SIGTERM, signal.SIGURG, signal.SIGUSR1):
        signal.signal(sig, _request_stop)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    out.mkdir(parents=True, exist_ok=True)

    from itlab.models import build_initial_model, load_model, load_tokenizer

    tokenizer = load_tokenizer(args.model_path, args.trust_remote_code)
    ds_config = deepspeed_config(args, world)
    hf_ds = None
    if args.zero_stage == 3:  # shard weights while loading (70B does not fit one GPU)
        from transformers.integrations import HfDeepSpeedConfig

        hf_ds = HfDeepSpeedConfig(ds_config)  # noqa: F841 (must stay alive during from_pretrained)
    load_kwargs = {}
    if args.quantize_4bit:
        from transformers import BitsAndBytesConfig

        load_kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                                bnb_4bit_compute_dtype=torch.bfloat16)
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    if args.init_model:  # pretraining from scratch: the seeded model itself, no weights file in between
        model = build_initial_model(args.init_model, tokenizer, args.seed).to(dtype)
        torch.manual_seed(args.seed)  # dropout draws as after loading saved weights
    else:
        model = load_model(args.model_path, args.trust_remote_code, dtype=dtype, **load_kwargs)
    if args.quantize_4bit and rank == 0:
        kinds = sorted({type(m).__name__ for m in model.modules() if "4bit" in type(m).__name__})
        print(f"[itlab] base loaded in 4 bit: {', '.join(kinds) or 'no 4-bit layer'}", flush=True)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if args.lora_r:
        from peft import LoraConfig, get_peft_model

        targets = "all-linear" if args.lora_target_modules == "all" else list(args.lora_target_modules)
        model = get_peft_model(model, LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                                                 target_modules=targets, task_type="CAUSAL_LM"))
    from itlab.train.flops import parameter_counts, train_flops_per_token

    counts = parameter_counts(model)  # right under ZeRO-3 shards, 4-bit packing and LoRA
    n_params = counts["total"]

    rows = build_rows(args, tokenizer, args.train_file)
    if not rows:
        raise ValueError(f"{args.train_file} yields no training rows")
    steps = total_steps(args, len(rows))
    micro, accum = ds_config["train_micro_batch_size_per_gpu"], ds_config["gradient_accumulation_steps"]
    order = row_order(len(rows), args.seed)

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.learning_rate, weight_decay=args.weight_decay)
    engine, optimizer, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_config)

    start = 0
    ckdir = checkpoint_dir(args)
    ckpts = complete_checkpoints(out, args.fingerprint(), ckdir)
    if ckpts:
        _, client = engine.load_checkpoint(str(ckdir), tag=ckpts[-1].name)
        start = int(client["step"])
        rng_file = ckpts[-1] / f"rng_rank{rank}.pt"
        if rng_file.exists():
            state = torch.load(rng_file, weights_only=True)  # tensors and tuples of ints only
            torch.set_rng_state(state["torch"])
            random.setstate(state["python"])
        if rank == 0:
            print(f"[itlab] resumed from {ckpts[-1].name} at step {start}/{steps}", flush=True)

    log = _Logger(log_dir(args), rank, steps, start, train_flops_per_token(counts), world, cuda, args)
    global_rows = args.global_batch_size
    stop_code = 0
    for step in range(start, steps):
        lr = lr_at(step, steps, args)
        for group in optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        loss_sum, tokens = 0.0, 0
        micro_rows = []
        for a in range(accum):
            first = step * global_rows + (a * world + rank) * micro
            micro_rows.append([rows[order(first + j)] for j in range(micro)])
        # every token of the optimizer step weighs the same, whatever its micro-batch or process
        step_targets = torch.tensor(float(sum(target_tokens(r) for b in micro_rows for r in b)), device=device)
        dist.all_reduce(step_targets)
        for batch_rows in micro_rows:
            tokens += sum(r["n_tokens"] for r in batch_rows)
            batch = collate(batch_rows, tokenizer.pad_token_id, device)
            labels = batch.pop("labels")
            summed = token_loss_sum(engine(**batch).logits, labels)
            objective = backward_objective(summed, step_targets, world, args.loss_reduction)
            engine.backward(objective, scale_wrt_gas=False)
            engine.step()
            loss_sum += float(summed.detach())
        stats = torch.tensor([loss_sum, float(tokens), float(_STOP["requested"])], device=device)
        dist.all_reduce(stats)
        # logged: the mean loss per target token of the whole step (both reductions)
        log.step(step + 1, stats[0].item() / max(step_targets.item(), 1.0), lr, stats[1].item(),
                 time.perf_counter() - t0)
        stop = stats[2].item() > 0 or (args.stop_after_steps and step + 1 >= args.stop_after_steps)
        if (step + 1) % args.checkpoint_every == 0 or (stop and step + 1 < steps):
            save_checkpoint(engine, out, step + 1, rank, args.keep_checkpoints, args.fingerprint(), ckdir)
        if stop and step + 1 < steps:
            if rank == 0:
                print(f"[itlab] stop requested: checkpointed at step {step + 1}, exiting to be resumed", flush=True)
            stop_code = EXIT_PREEMPTED
            break
    log.close()
    if stop_code:
        dist.barrier()
        dist.destroy_process_group()
        return stop_code

    eval_loss = evaluate_loss(engine, args, tokenizer, device, rank, world) if args.eval_file else None
    export(engine, tokenizer, args, out, rank, {"steps": steps, "final_loss": log.last_loss, "eval_loss": eval_loss,
                                                "tokens": log.tokens_seen, "parameters": n_params,
                                                "trainable_parameters": counts["trainable"], "world_size": world})
    dist.barrier()
    dist.destroy_process_group()  # explicit teardown: avoids rare aborts at interpreter exit
    return 0


def save_checkpoint(engine, out: Path, step: int, rank: int, keep: int, fingerprint: str,
                    ckdir: Path | None = None) -> None:
    """Write to step-N.partial, then rename and mark COMPLETE: a crash never leaves a
    checkpoint that looks usable."""
    import torch
    import torch.distributed as dist

    ckdir = Path(ckdir) if ckdir else out / "checkpoints"
    tag = f"step-{step:08d}"
    partial = f"{tag}.partial"
    if rank == 0:
        shutil.rmtree(ckdir / partial, ignore_errors=True)
    dist.barrier()
    engine.save_checkpoint(str(ckdir), tag=partial, client_state={"step": step}, save_latest=False)
    torch.save({"torch": torch.get_rng_state(), "python": random.getstate()}, ckdir / partial / f"rng_rank{rank}.pt")
    dist.barrier()
    if rank == 0:
        shutil.rmtree(ckdir / tag, ignore_errors=True)
        (ckdir / partial).rename(ckdir / tag)
        fsync_tree(ckdir / tag)  # durable before it is marked COMPLETE
        write_synced(ckdir / tag / "COMPLETE", fingerprint)
        for old in complete_checkpoints(out, ckdir=ckdir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    dist.barrier()


def evaluate_loss(engine, args, tokenizer, device, rank, world) -> float:
    """Token-weighted loss on held-out rows, split over the processes."""
    import torch
    import torch.distributed as dist

    rows = build_rows(args, tokenizer, args.eval_file)
    engine.eval()
    total = torch.zeros(2, device=device)
    size = args.per_device_batch_size
    n_batches = math.ceil(len(rows) / size)
    with torch.no_grad():
        # every rank runs the same number of forwards (ZeRO-3 gathers weights collectively);
        # a rank without a batch in the last round repeats batch 0 with weight 0
        for rnd in range(math.ceil(n_batches / world)):
            b = rnd * world + rank
            weight = 1.0 if b < n_batches else 0.0
            b = b if b < n_batches else 0
            batch = collate(rows[b * size : (b + 1) * size], tokenizer.pad_token_id, device)
            n = int((batch["labels"][:, 1:] != -100).sum()) * weight
            total += torch.tensor([float(engine(**batch).loss) * n, n], device=device)
    dist.all_reduce(total)
    engine.train()
    return (total[0] / total[1]).item()


def export(engine, tokenizer, args, out: Path, rank: int, metrics: dict) -> None:
    """Gather the weights to rank 0 and write model/ (safetensors) and DONE.json atomically."""
    state = engine._zero3_consolidated_16bit_state_dict() if args.zero_stage == 3 else None
    if rank == 0:
        # model/ is built beside the old one (same file system), then swapped in with no window
        with atomic_path(out / "model", directory=True) as tmp:
            if args.lora_r:
                merged = merge_adapter(engine.module, args, tmp)
                merged.save_pretrained(tmp, safe_serialization=True)
            else:
                engine.module.save_pretrained(tmp, state_dict=state, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            args.save(tmp / "train_args.json")
        write_json(out / "DONE.json", {"fingerprint": args.fingerprint(), **metrics})
        fsync_tree(out / "DONE.json")
        shutil.rmtree(checkpoint_dir(args), ignore_errors=True)  # the exported model supersedes them
        print(f"[itlab] exported {out / 'model'} (final loss {metrics['final_loss']:.4f})", flush=True)


def merge_adapter(peft_model, args: TrainArguments, work: Path):
    """Save the trained adapter, reload the base model in full precision and merge into it.

    For QLoRA this is the only sound export: merging into 4-bit weights would give a
    quantized, lossy checkpoint. The adapter itself is kept in model/adapter/.
    """
    import torch
    from peft import PeftModel

    from itlab.models import load_model

    adapter = work / "adapter"
    peft_model.save_pretrained(adapter, safe_serialization=True)
    base = load_model(args.model_path, args.trust_remote_code, dtype=torch.bfloat16 if args.bf16 else torch.float32)
    return PeftModel.from_pretrained(base, adapter).merge_and_unload()


class _Logger:
    """metrics.jsonl + tensorboard on rank 0, and a progress bar when attached to a terminal."""

    def __init__(self, out, rank, steps, start, flops_per_token, world, cuda, args):
        self.rank, self.flops_per_token, self.world, self.cuda = rank, flops_per_token, world, cuda
        self.last_loss, self.tokens_seen, self.every = float("nan"), 0, args.log_every
        self.peak = args.peak_tflops
        if cuda and not self.peak:
            self.peak = device_peak_tflops()
        self.fh = self.tb = self.bar = None
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            self.fh = open(out / "metrics.jsonl", "a")
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tensorboard"), purge_step=start + 1)
            except ImportError:
                self.tb = None
            if sys.stderr.isatty():
                from tqdm import tqdm

                self.bar = tqdm(total=steps, initial=start, desc=Path(args.output_dir).name, unit="step")

    def step(self, step, loss, lr, tokens, seconds):
        self.last_loss, self.tokens_seen = loss, self.tokens_seen + int(tokens)
        if self.rank != 0:
            return
        rec = {"step": step, "loss": round(loss, 6), "lr": lr, "tokens": int(tokens),
               "tokens_per_s": round(tokens / max(seconds, 1e-9), 1), "time": time.time()}
        if self.cuda and self.peak:
            from itlab.train.flops import mfu

            rec["mfu"] = round(mfu(self.flops_per_token, tokens, seconds, self.peak, self.world), 4)
        if step % self.every == 0:
            self.fh.write(json.dumps(rec) + "\n")
            self.fh.flush()
            if self.tb:
                for k in ("loss", "lr", "tokens_per_s", "mfu"):
                    if k in rec:
                        self.tb.add_scalar(f"train/{k}", rec[k], step)
        if self.bar:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.3f}")

    def close(self):
        for h in (self.fh, self.tb, self.bar):
            if h:
                h.close()


def main(argv=None) -> None:
    code = run(TrainArguments.parse(argv))
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave without running C++ static destructors: the process group is already torn down,
    # and a gloo/shm thread destroyed at interpreter exit occasionally aborts a finished run.
    os._exit(code)
