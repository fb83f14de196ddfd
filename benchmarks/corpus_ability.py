"""Where the base ladder loses in-context ability: pretrain one model of the embedded ladder on
the corpus the workflow builds (``itlab.data.build_corpus``: one task per document, demonstrations
in the plain ``prompt\\nAnswer: answer`` format, one token per character) and score greedy exact
match per task, zero-shot and k-shot, in the base evaluation's format (``{prompt}\\nAnswer:``,
examples joined by a blank line, as ``itlab.evaluate.task_yaml`` writes them).

    python benchmarks/corpus_ability.py [--config config.yaml] [--size l] [--family neox] [--seed N]
        [--lr X] [--tokens N] [--batch N] [--seq-len N] [--tasks first_last,reverse]

Reads the corpus, task parameters and the size's shape and budget from the config; prints the
training loss, then per task the exact match of 0-shot and k-shot prompts and how many
characters the k-shot prompts hold (positions beyond the pretraining row length are never
trained). One process, plain torch (no DeepSpeed, no lm-eval), one thread. Whether a model
crosses the jump to ability depends on its initialisation near the budget where it happens, so
compare settings over several ``--seed`` values (rows of 4 Dec 2026:
``benchmarks/measured/corpus_ability-2026-12-04.tsv``).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from itlab import data, tasks  # noqa: E402
from itlab.config import validate  # noqa: E402
from itlab.grid import corpus_tasks as config_corpus_tasks  # noqa: E402
from itlab.tasks import TaskParams  # noqa: E402

EOS, PAD = 256, 257


def encode(text: str) -> list[int]:
    return list(text.encode())


def greedy(model, ids: list[int], max_new: int = 12) -> str:
    out: list[int] = []
    with torch.no_grad():
        for _ in range(max_new):
            logits = model(input_ids=torch.tensor([ids + out])).logits[0, -1]
            nxt = int(logits.argmax())
            if nxt == EOS or nxt == ord("\n"):
                break
            out.append(nxt)
    return bytes(b for b in out if b < 256).decode(errors="replace").strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--size", default="l")
    ap.add_argument("--family", default="llama")
    ap.add_argument("--seq-len", type=int, default=None)
    ap.add_argument("--tokens", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--tasks", default=None, help="comma-separated; default: the config's")
    ap.add_argument("--seed", type=int, default=None, help="model init and row order; default: the config's")
    ap.add_argument("--instructions", choices=["task", "independent"], default=None,
                    help="the corpus demonstrations' instructions (data.corpus.instructions); default: the config's")
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate; default: the config's")
    a = ap.parse_args()
    torch.set_num_threads(1)
    cfg = validate(yaml.safe_load(Path(a.config).read_text()))  # defaults filled, as the workflow sees it
    params = TaskParams(**cfg["data"]["params"])
    corpus_tasks = config_corpus_tasks(cfg)
    names = a.tasks.split(",") if a.tasks else [n for n in corpus_tasks if n != "markov_rewrite"]
    corpus_cfg = cfg["data"]["corpus"]
    docs = data.build_corpus(corpus_tasks, corpus_cfg["documents"], corpus_cfg["demos_per_document"],
                             corpus_cfg["filler_sentences"], cfg["seed"], params, "train",
                             a.instructions or corpus_cfg["instructions"], corpus_cfg["task_weights"])
    stream: list[int] = []
    for d in docs:
        stream += encode(d) + [EOS]
    L = a.seq_len or cfg["pretraining"]["seq_len"]
    B = a.batch or cfg["pretraining"]["batch_size"]
    size = cfg["sizes"][a.size]
    budget = a.tokens or size["pretrain_tokens"]
    steps = max(1, budget // (B * L))
    rows = [stream[i:i + L] for i in range(0, len(stream) - L + 1, L)]
    m = size["model"]
    from itlab.models import build_config

    class Tok:  # what build_config reads of a tokenizer
        eos_token_id, pad_token_id = EOS, PAD

        def __len__(self):
            return 258

    seed = cfg["seed"] if a.seed is None else a.seed
    torch.manual_seed(seed)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(build_config(cfg["families"][a.family]["architecture"], m, Tok()))
    lr = a.lr or cfg["pretraining"]["learning_rate"]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    rng = random.Random(seed)
    warm = max(1, int(0.05 * steps))
    print(f"corpus {len(stream)} chars, {len(rows)} rows of {L}; {steps} steps of batch {B} "
          f"({steps * B * L} tokens, {steps * B * L / len(stream):.2f} epochs)", flush=True)
    t0 = time.time()
    model.train()
    for step in range(steps):
        x = torch.tensor([rows[rng.randrange(len(rows))] for _ in range(B)])
        for g in opt.param_groups:
            g["lr"] = lr * min(1, (step + 1) / warm) * 0.5 * (1 + math.cos(math.pi * step / steps))
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 200 == 0 or step == steps - 1:
            print(f"step {step} loss {loss.item():.3f} ({time.time() - t0:.0f} s)", flush=True)
    model.eval()
    rng = random.Random(1)
    print(f"task            0-shot  {a.k}-shot  chars({a.k}-shot, max)")
    for name in names:
        t = tasks.get(name)
        items = [t.example(rng, params) for _ in range(a.items + a.k * a.items)]
        test, pool = items[:a.items], items[a.items:]
        zero = kshot = 0
        longest = 0
        for i, ex in enumerate(test):
            zero += greedy(model, encode(data.format_plain(ex["prompt"]))) == ex["answer"]
            shots = pool[i * a.k:(i + 1) * a.k]
            text = "\n\n".join([data.format_plain(s["prompt"], s["answer"]) for s in shots]
                               + [data.format_plain(ex["prompt"])])
            longest = max(longest, len(text))
            kshot += greedy(model, encode(text)) == ex["answer"]
        print(f"{name:15s} {zero / a.items:6.2f} {kshot / a.items:7.2f}  {longest}", flush=True)


if __name__ == "__main__":
    main()
