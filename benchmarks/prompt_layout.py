"""Where a tiny model finds the argument: one task, one layout of its prompt, a llama trained
from scratch on the answers (loss on answer characters only, one token per character),
greedy exact match on 50 fresh items.

    python benchmarks/prompt_layout.py LAYOUT TASK [STEPS WIDTH LAYERS LR]   (defaults 600 64 2 3e-3)

Layouts, each with the task's 3 phrasings unless said: A the argument inside the sentence
(the templates before the bracketed slot: ``Which letters start and end fcfh?``); B the same
with the argument bracketed in place; C one fixed prefix ``Task: [fcfh]``; D the argument
alone; E ``<instruction>: fcfh``; F ``<instruction>: [fcfh]`` (the registered templates' layout); G ``[fcfh] <instruction>.``
(the layout registered before). Tasks: first_last, uppercase, reverse. Prints the training loss
every 100 steps and the exact match.
"""

import math
import random
import sys
import time

import torch

from itlab import tasks
from itlab.tasks import TaskParams

PROSE = {
    "first_last": ["Give the first and the last letter of {s}.", "Which letters start and end {s}?",
                   "Write the first letter of {s} followed by its last letter."],
    "uppercase": ["Convert {s} to upper case.", "Write {s} in capital letters.", "Capitalize every letter of {s}."],
    "reverse": ["Reverse the string {s}.", "Write {s} backwards.", "What is {s} spelled in reverse order?"],
}
INSTRUCTION = {
    "first_last": ["Give the first and the last letter", "Which letters start and end the word",
                   "Write the first letter followed by the last letter"],
    "uppercase": ["Convert to upper case", "Write in capital letters", "Capitalize every letter"],
    "reverse": ["Reverse the string", "Write it backwards", "Spell it in reverse order"],
}
EOS, PAD = 128, 129


def render(layout: str, task: str, ex: dict) -> str:
    s, k = ex["inputs"]["s"], ex["phrasing"] % 3
    return {"A": lambda: PROSE[task][k].format(s=s), "B": lambda: PROSE[task][k].format(s=f"[{s}]"),
            "C": lambda: f"Task: [{s}]", "D": lambda: s, "E": lambda: f"{INSTRUCTION[task][k]}: {s}",
            "F": lambda: f"{INSTRUCTION[task][k]}: [{s}]", "G": lambda: f"[{s}] {INSTRUCTION[task][k]}."}[layout]()


def encode(text: str) -> list[int]:
    return [ord(c) for c in text]


def main(layout, task, steps=600, width=64, layers=2, lr=3e-3, n_train=400, batch=16):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(1)
    params = TaskParams(min_len=3, max_len=8)
    rng = random.Random(0)
    train = []
    for _ in range(n_train):
        ex = tasks.get(task).example(rng, params)
        train.append((encode(render(layout, task, ex) + "\nAnswer:"), encode(" " + ex["answer"]) + [EOS]))
    cfg = LlamaConfig(vocab_size=130, hidden_size=width, num_hidden_layers=layers, num_attention_heads=4,
                      num_key_value_heads=4, intermediate_size=2 * width, max_position_embeddings=512,
                      tie_word_embeddings=True, eos_token_id=EOS, bos_token_id=EOS, pad_token_id=PAD)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    t0 = time.time()
    for step in range(steps):
        rows = [train[rng.randrange(len(train))] for _ in range(batch)]
        length = max(len(p) + len(a) for p, a in rows)
        x = torch.full((batch, length), PAD)
        y = torch.full((batch, length), -100)
        for i, (p, a) in enumerate(rows):
            x[i, : len(p) + len(a)] = torch.tensor(p + a)
            y[i, len(p): len(p) + len(a)] = torch.tensor(a)
        scale = min(1, (step + 1) / 30) * 0.5 * (1 + math.cos(math.pi * step / steps))
        for g in opt.param_groups:
            g["lr"] = lr * scale
        loss = model(input_ids=x, labels=y).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0:
            print(f"step {step} loss {loss.item():.3f} ({time.time() - t0:.0f} s)", flush=True)
    model.eval()
    rng, right, n = random.Random(99), 0, 50
    for _ in range(n):
        ex = tasks.get(task).example(rng, params)
        ids, out = encode(render(layout, task, ex) + "\nAnswer:"), []
        with torch.no_grad():
            for _ in range(len(ex["answer"]) + 2):
                nxt = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
                if nxt >= 128:
                    break
                ids.append(nxt)
                out.append(chr(nxt))
        right += "".join(out).strip() == ex["answer"]
    print(f"layout {layout} task {task} steps {steps} width {width} layers {layers} lr {lr}: "
          f"exact match {right / n:.2f} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], *[f(v) for f, v in zip((int, int, int, float), a[2:])])
