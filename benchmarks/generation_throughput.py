"""Study C's generate_responses: batched generation (itlab.generate.generate_hf, one model load,
left-padded batches) against one prompt at a time, measured in one run on the same model and
prompts. Prints responses/s, generated tokens/s and the ratio.

    python benchmarks/generation_throughput.py [--prompts 128] [--batch 32] [--new-tokens 32] [--gpu]

The model is a randomly initialised Llama (hidden 256, 4 layers) with the tokenizer trained
here; generation length is fixed (no end-of-text) so both modes produce the same tokens.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gpu", action="store_true")
    args = ap.parse_args()

    import torch

    from itlab.generate import generate_hf
    from itlab.models import build_model, train_tokenizer

    torch.set_num_threads(args.threads)
    rng = random.Random(0)
    words = ["reverse", "the", "string", "add", "and", "what", "is", "sort", "letters", "abc", "fgh", "12", "7"]
    prompts = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 20))) for _ in range(args.prompts)]
    with tempfile.TemporaryDirectory() as tmp:
        tok = train_tokenizer(prompts * 5, 300, tmp)
    model = build_model("llama", {"hidden_size": 256, "num_layers": 4, "num_heads": 4, "intermediate_size": 512,
                                  "max_position_embeddings": 512}, tok, seed=0).eval()
    if args.gpu:
        model = model.cuda()

    def run(batch: int) -> tuple[float, int]:
        t0 = time.perf_counter()
        out = generate_hf(model, tok, prompts, args.new_tokens, batch_size=batch, eos=False)
        if args.gpu:
            torch.cuda.synchronize()
        return time.perf_counter() - t0, len(out)

    run(args.batch)  # warm-up
    rows = {}
    for name, batch in (("batched", args.batch), ("one at a time", 1)):
        seconds, n = run(batch)
        rows[name] = (n / seconds, n * args.new_tokens / seconds)
        print(f"{name:14s} batch {batch:3d}: {rows[name][0]:8.2f} responses/s  {rows[name][1]:9.1f} tokens/s "
              f"({seconds:.1f} s for {n} prompts x {args.new_tokens} new tokens)")
    print(f"batched / one at a time: {rows['batched'][0] / rows['one at a time'][0]:.2f}x")


if __name__ == "__main__":
    main()
