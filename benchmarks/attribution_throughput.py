"""Throughput of study D's attribution (itlab.interpret.attribution.attribute): output tokens
attributed per second with output tokens batched (one forward + backward over B copies of the
sequence) against one backward pass per output token (B = 1, the authors' loop), same model,
prompt and response, measured in one run. Also checks that both give the same matrix.

    python benchmarks/attribution_throughput.py [--hidden 256] [--layers 4] [--prompt 128] [--output 64] [--gpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=4000)
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--output", type=int, default=64)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 16, 32])
    ap.add_argument("--gpu", action="store_true")
    args = ap.parse_args()

    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from itlab.interpret.attribution import attribute, prepare

    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=max(1, args.hidden // 64),
                      intermediate_size=4 * args.hidden, vocab_size=args.vocab, max_position_embeddings=2048)
    model = prepare(AutoModelForCausalLM.from_config(cfg))
    if args.gpu:
        model = model.cuda()
    g = torch.Generator().manual_seed(1)
    inp = torch.randint(0, args.vocab, (args.prompt,), generator=g).tolist()
    out = torch.randint(0, args.vocab, (args.output,), generator=g).tolist()
    params = sum(p.numel() for p in model.parameters())
    print(f"llama {args.hidden}x{args.layers} ({params / 1e6:.1f}M params, fp32, "
          f"{'cuda' if args.gpu else 'cpu'}), prompt {args.prompt} + response {args.output} tokens")
    attribute(model, inp, out[:4], batch=4)  # warm-up
    rates, ref = {}, None
    for b in args.batches:
        if args.gpu:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        mat = attribute(model, inp, out, batch=b)
        if args.gpu:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        rates[b] = args.output / dt
        ref = mat if ref is None else ref
        err = float(np.max(np.abs(mat - ref)) / (np.max(np.abs(ref)) + 1e-30))
        print(f"batch {b:3d}: {rates[b]:8.1f} output tokens/s ({dt:.2f} s); max relative difference to batch "
              f"{args.batches[0]}: {err:.1e}")
    base = rates[args.batches[0]]
    best = max(rates, key=rates.get)
    print(f"speed-up of batch {best} over batch {args.batches[0]} (one backward per output token): "
          f"{rates[best] / base:.2f}x")


if __name__ == "__main__":
    main()
