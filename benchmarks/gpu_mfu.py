"""Model FLOPs utilisation on one GPU, measured, for the defaults the compute plan and study D's
runtime estimate assume (plan.gpu_models.<gpu>.mfu, plan.eval_mfu, behavior_shift.resources.gpu_tflops).

Three parts, each with randomly initialised Llama models of real shapes (a 32,000-token vocabulary;
"7B-wide" is Llama-2-7B's width, 4096 hidden / 11,008 FFN / 32 heads, with fewer layers: MFU is
per layer, and the plan's N counts the layers it has):

- **tune**: itlab's own tuning loop (``itlab.train.launch``: DeepSpeed, bf16, the recipes' ZeRO
  stage, gradient checkpointing and LoRA settings), steps after the first ``--skip`` excluded;
  MFU = (4 N + 2 N_trainable) x tokens / seconds / peak, as the loop logs it.
- **eval**: the two kinds of call lm-eval's HF backend makes, without its bookkeeping: a batched
  forward (log-likelihood tasks) and batched greedy generation with left padding; MFU by the
  plan's formula, items x (prompt + new tokens) x 2 N / seconds / peak. An upper bound on a whole
  evaluation job's.
- **attribution**: study D's ``attribute`` (fp32, output tokens batched as the config's
  ``attribution_batch``); sustained TFLOP/s by the formula the runtime estimate uses,
  output tokens x 6 x params x sequence length / seconds.

    python benchmarks/gpu_mfu.py [--parts tune eval attribution] [--out results.json]
    python benchmarks/gpu_mfu.py --smoke   # tiny shapes on the CPU: checks the script, measures nothing

The README's two runs on an H200 (rows in benchmarks/measured/): the defaults, then Llama-2-7B's
own depth: ``--layers 32 --attribution-layers 32 --attribution-batches 4 --no-tf32
--generate-batches 16 64 --recipes lora zero3 --tune-layers zero3=16 --steps 10 --skip 3``.
(The first run's script named its rows differently and timed 12 steps, skipping 4.)
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VOCAB = 32000
WIDE = {"hidden_size": 4096, "num_heads": 32, "intermediate_size": 11008}  # Llama-2-7B's width
# recipe: (what, model shape, TrainArguments settings); the 7B-wide ones are the paper configs' on one GPU
TUNE = {
    "zero0-1.1b": ("1.1B llama, full, ZeRO-0, seq 2048 x 8",
                   {"hidden_size": 2048, "num_layers": 22, "num_heads": 32, "intermediate_size": 5632},
                   {"max_seq_len": 2048, "per_device_batch_size": 8, "global_batch_size": 8, "zero_stage": 0}),
    "zero3": ("full, ZeRO-3 + grad ckpt, seq 4096 x 1 (scaling.yaml)", WIDE,
              {"max_seq_len": 4096, "per_device_batch_size": 1, "global_batch_size": 4, "zero_stage": 3,
               "gradient_checkpointing": True}),
    "zero2": ("full, ZeRO-2 + grad ckpt, seq 4096 x 2", WIDE,
              {"max_seq_len": 4096, "per_device_batch_size": 2, "global_batch_size": 4, "zero_stage": 2,
               "gradient_checkpointing": True}),
    "lora": ("LoRA r64 all-linear, ZeRO-2 + grad ckpt, seq 4096 x 2 (inherent-limits.yaml, bf16 base)", WIDE,
             {"max_seq_len": 4096, "per_device_batch_size": 2, "global_batch_size": 4, "zero_stage": 2,
              "gradient_checkpointing": True, "lora_r": 64, "lora_alpha": 16.0, "lora_dropout": 0.1}),
}
SMOKE_SHAPE = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128}


def shape_of(size: dict, smoke: bool, layers: int) -> dict:
    """The model shape; the 7B-wide one with ``layers`` layers (32: Llama-2-7B's own)."""
    size = dict(size, num_layers=size.get("num_layers", layers))
    return dict(SMOKE_SHAPE if smoke else size, max_position_embeddings=4096)


def label(size: dict) -> str:
    return f"llama {size['hidden_size']} x {size['num_layers']} layers"


def tokenizer_and_corpus(work: Path, tokens: int):
    """itlab's BPE tokenizer and a document file of at least ``tokens`` tokens (the lm objective
    packs it into full rows, so every row is as long as the recipe's max_seq_len)."""
    from itlab import data, models, tasks
    from itlab.tasks import TaskParams

    names = sorted(tasks.REGISTRY)
    docs = data.build_corpus(names, 200, 6, 1, 1, TaskParams(), "train")
    tok = models.train_tokenizer(docs, 320, work / "tok")
    per_doc = sum(len(tok.encode(d, add_special_tokens=False)) for d in docs[:50]) / 50
    copies = int(tokens / (per_doc * len(docs))) + 1
    (work / "corpus.txt").write_text(data.DOC_SEPARATOR.join(docs * copies))
    return tok


def build(size: dict, tok, smoke: bool, dtype, device):
    import torch
    from transformers import AutoModelForCausalLM

    from itlab import models

    cfg = models.build_config("llama", size, tok)
    if not smoke:
        cfg.vocab_size = VOCAB  # real models' vocabulary: the LM head is part of N and of the time
    torch.manual_seed(0)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(cfg, dtype=dtype)


def measure_tune(work: Path, tok, smoke: bool, steps: int, skip: int, recipes: list[str], layers: dict,
                 sink) -> None:
    import torch

    from itlab.train.args import TrainArguments
    from itlab.train.launch import launch

    device = "cpu" if smoke else "cuda"
    saved = {}
    for i, recipe in enumerate(recipes):
        what, shape, settings = TUNE[recipe]
        size = shape_of(shape, smoke, layers.get(recipe, 8))
        name = what if "num_layers" in shape else f"{label(size)}, {what}"
        key = json.dumps(size, sort_keys=True)
        if key not in saved:  # one base model per shape
            path = work / f"base{len(saved)}"
            model = build(size, tok, smoke, torch.bfloat16, device)
            model.save_pretrained(path, safe_serialization=True)
            tok.save_pretrained(path)
            del model
            saved[key] = path
        if device == "cuda":  # the worker is another process: give it back what this one cached
            gc.collect()
            torch.cuda.empty_cache()
        out, log_path = work / f"tune{i}", work / f"tune{i}.log"
        settings = dict(settings, max_seq_len=64 if smoke else settings["max_seq_len"])
        args = TrainArguments(model_path=str(saved[key]), train_file=str(work / "corpus.txt"), output_dir=str(out),
                              objective="lm", max_steps=steps, bf16=True, learning_rate=1e-5,
                              checkpoint_every=10**6, **settings)
        t0 = time.perf_counter()
        try:
            with open(log_path, "w") as log:
                code = launch(args, 1, device=device, log=log)
            if code != 0:
                raise RuntimeError(log_path.read_text()[-3000:])
            lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()][skip:]
            done = json.loads((out / "DONE.json").read_text())
            tokens = sum(l["tokens"] for l in lines)
            seconds = sum(l["tokens"] / l["tokens_per_s"] for l in lines)
            row = {"part": "tune", "name": name, "params": done["parameters"],
                   "trainable": done["trainable_parameters"], "steps_timed": len(lines),
                   "tokens_per_s": tokens / seconds, "mfu": statistics.median(l.get("mfu", 0.0) for l in lines),
                   "whole_s": time.perf_counter() - t0}
        except Exception:
            row = {"part": "tune", "name": name, "error": traceback.format_exc()[-3000:]}
        sink(row)
        shutil.rmtree(out, ignore_errors=True)


def peak_tflops() -> float:
    """The loop's own table (itlab.train.loop.device_peak_tflops), which must know this GPU."""
    from itlab.train.loop import device_peak_tflops

    peak = device_peak_tflops()
    assert peak > 0, "this GPU is not in itlab.train.loop.PEAK_TFLOPS: MFU needs its peak"
    return peak


def timed(fn, device: str, repeats: int) -> float:
    """Median seconds of ``fn`` after one warm-up call."""
    import torch

    fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure_eval(tok, smoke: bool, layers: int, batches: list[int], prompt: int, new: int, repeats: int,
                 sink) -> None:
    import torch

    device = "cpu" if smoke else "cuda"
    size = shape_of(WIDE, smoke, layers)
    model = build(size, tok, smoke, torch.float32 if smoke else torch.bfloat16, device).eval()
    n = sum(p.numel() for p in model.parameters())
    peak = 1.0 if smoke else peak_tflops()
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(1)
    batch = batches[0]
    ctx = torch.randint(3, vocab, (batch, 2 * prompt), generator=g).to(device)
    with torch.no_grad():
        s = timed(lambda: model(ctx).logits, device, repeats)
    sink({"part": "eval", "name": f"{label(size)}: forward (log-likelihood), batch {batch} x {2 * prompt} tokens, bf16",
          "params": n, "tokens_per_s": batch * 2 * prompt / s, "mfu": batch * 2 * prompt * 2 * n / s / (peak * 1e12)})
    for batch in batches:
        ids = torch.randint(3, vocab, (batch, prompt), generator=g)
        mask = torch.ones_like(ids)
        mask[: batch // 2, : prompt // 4] = 0  # left padding on half the rows, as a batch of uneven prompts has
        ids, mask = ids.to(device), mask.to(device)
        gen = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=tok.pad_token_id)
        with torch.no_grad():
            s = timed(lambda: model.generate(input_ids=ids, attention_mask=mask, **gen), device, max(1, repeats // 3))
        # the plan's formula: items x (prompt + new tokens) x 2 N; decode alone: new tokens x 2 N
        sink({"part": "eval", "name": f"{label(size)}: greedy generation, batch {batch}, prompt {prompt} + {new} "
              "new tokens, bf16", "params": n, "tokens_per_s": batch * new / s, "seconds": s,
              "mfu": batch * (prompt + new) * 2 * n / s / (peak * 1e12)})


def measure_attribution(smoke: bool, layers: int, prompt: int, output: int, batches: list[int], tf32: bool,
                        sink) -> None:
    import torch

    from itlab.interpret.attribution import attribute, prepare

    device = "cpu" if smoke else "cuda"
    size = shape_of(WIDE, smoke, layers)
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(hidden_size=size["hidden_size"], num_hidden_layers=size["num_layers"],
                      num_attention_heads=size["num_heads"], intermediate_size=size["intermediate_size"],
                      vocab_size=400 if smoke else VOCAB, max_position_embeddings=4096)
    torch.manual_seed(0)
    with torch.device(device):
        model = prepare(AutoModelForCausalLM.from_config(cfg))
    params = sum(p.numel() for p in model.parameters())
    g = torch.Generator().manual_seed(1)
    inp = torch.randint(3, cfg.vocab_size, (prompt,), generator=g).tolist()
    out = torch.randint(3, cfg.vocab_size, (output,), generator=g).tolist()
    # itlab runs attribution in strict fp32 (torch's default: no TF32); TF32 shown for comparison
    for b, tf in [(b, False) for b in batches] + ([(max(batches), True)] if tf32 else []):
        torch.backends.cuda.matmul.allow_tf32 = tf
        s = timed(lambda: attribute(model, inp, out, batch=b), device, 2)
        sink({"part": "attribution", "name": f"attribute, {'TF32' if tf else 'fp32'}, {label(size)}, prompt {prompt} + "
              f"{output} output tokens, batch {b}", "params": params, "tokens_per_s": output / s,
              "tflops": output * 6 * params * (prompt + output) / s / 1e12})
    torch.backends.cuda.matmul.allow_tf32 = False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", nargs="+", default=["tune", "eval", "attribution"], choices=["tune", "eval", "attribution"])
    ap.add_argument("--steps", type=int, default=12, help="optimizer steps of each tuning run")
    ap.add_argument("--skip", type=int, default=4, help="first steps left out of the tuning MFU (warm-up)")
    ap.add_argument("--recipes", nargs="+", default=list(TUNE), choices=list(TUNE), help="tuning recipes to time")
    ap.add_argument("--layers", type=int, default=8, help="layers of the 7B-wide models (32: Llama-2-7B's shape)")
    ap.add_argument("--tune-layers", nargs="*", default=[], metavar="RECIPE=LAYERS",
                    help="layers of one recipe's 7B-wide model (e.g. zero3=16: its optimizer states fit one GPU)")
    ap.add_argument("--attribution-layers", type=int, default=4)
    ap.add_argument("--generate-batches", type=int, nargs="+", default=[16])
    ap.add_argument("--attribution-batches", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--no-tf32", action="store_true", help="leave out the TF32 attribution row")
    ap.add_argument("--out", type=Path, help="write the rows here as JSON (after each row)")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU: runs every path, measures nothing")
    opt = ap.parse_args()
    if not opt.smoke:
        import torch

        assert torch.cuda.is_available(), "gpu_mfu.py measures a GPU; --smoke runs its paths on the CPU"
        print(f"GPU: {torch.cuda.get_device_name()}, peak {peak_tflops():.0f} TFLOP/s bf16 dense (itlab's table); "
              f"torch {torch.__version__}", flush=True)
    rows: list[dict] = []

    def sink(row: dict) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
        if opt.out:
            opt.out.write_text(json.dumps(rows, indent=1))

    layers = {r: int(n) for r, n in (item.split("=") for item in opt.tune_layers)}
    layers = {r: layers.get(r, opt.layers) for r in TUNE}
    with tempfile.TemporaryDirectory(prefix="itlab-gpu-mfu-") as tmp:
        work = Path(tmp)
        tok = tokenizer_and_corpus(work, 20_000 if opt.smoke else 8192 * 4 * opt.steps)
        if "eval" in opt.parts:
            measure_eval(tok, opt.smoke, opt.layers, [4] if opt.smoke else opt.generate_batches, 16 if opt.smoke else 256,
                         4 if opt.smoke else 64, 2 if opt.smoke else 6, sink)
        if "attribution" in opt.parts:
            measure_attribution(opt.smoke, opt.attribution_layers, 16 if opt.smoke else 200, 8 if opt.smoke else 64,
                                [1, 4] if opt.smoke else opt.attribution_batches, not opt.no_tf32, sink)
        if "tune" in opt.parts:
            measure_tune(work, tok, opt.smoke, 3 if opt.smoke else opt.steps, 1 if opt.smoke else opt.skip,
                         opt.recipes, layers, sink)
    print("\n| part | what | params | tokens/s | MFU or TFLOP/s |\n|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['part']} | {r['name']} | failed: {r['error'].strip().splitlines()[-1][:200]} | | |")
            continue
        figure = f"{r['tflops']:.1f} TFLOP/s" if "tflops" in r else f"MFU {r['mfu']:.1%}"
        print(f"| {r['part']} | {r['name']} | {r['params'] / 1e9:.2f}B | {r['tokens_per_s']:,.0f} | {figure} |")
    sys.exit(1 if any("error" in r for r in rows) else 0)


if __name__ == "__main__":
    main()
