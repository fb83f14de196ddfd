"""Study C's response generators: one rule (``generate_responses``) turns an instruction pool
into one generator's responses, whatever the generator is:

- ``model``: a causal LM (a tuned model of the embedded ladder, or a hub model) answering each
  instruction through its chat template: batched generation with one model load per job
  (vLLM when it is installed and the device is a GPU, Hugging Face ``generate`` otherwise),
  greedy or sampled (config keys);
- ``gold``: the task's gold answers;
- ``wordy`` / ``noisy`` / ``shuffled``: simple transformations of gold (a verbose wrapper,
  characters replaced at a rate, another instruction's answer);
- ``dataset``: a column of a hub data set of responses (the paper's Magpie Generator Zoo: one
  struct column per generator with ``content`` and reward scores).

Every generator writes records ``{id, prompt, answer, gold, task, generator[, rewards]}``; the
``answer`` field is the response, so the file is a training set for ``tune_model`` as it is.
"""

from __future__ import annotations

import random

WORDY = "Let me think about this carefully. The answer is {gold}. I hope this helps!"


def transform(kind: str, records: list[dict], seed: int, noise: float = 0.3, alphabet: str = "abcdefgh0123456789"):
    """Responses derived from gold answers (deterministic given the seed)."""
    rng = random.Random(f"{kind}-{seed}")
    if kind == "gold":
        return [r["answer"] for r in records]
    if kind == "wordy":
        return [WORDY.format(gold=r["answer"]) for r in records]
    if kind == "noisy":
        return ["".join(rng.choice(alphabet) if ch != " " and rng.random() < noise else ch for ch in r["answer"])
                for r in records]
    if kind == "shuffled":  # a derangement: every instruction gets another instruction's answer
        cycle = list(range(len(records)))
        rng.shuffle(cycle)  # one random cycle through all records: nobody keeps its own answer
        out = [r["answer"] for r in records]
        for k, i in enumerate(cycle):
            out[i] = records[cycle[(k + 1) % len(cycle)]]["answer"]
        return out
    raise ValueError(f"unknown transformation {kind!r}")


def chat_prompts(tokenizer, instructions: list[str]) -> list[str]:
    return [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                          tokenize=False) for p in instructions]


def generate_hf(model, tokenizer, instructions: list[str], max_new_tokens: int, batch_size: int = 32,
                sampling: dict | None = None, seed: int = 0, eos: bool = True) -> list[str]:
    """Batched generation (left padding, longest prompts first); one call per batch.
    ``eos=False`` ignores the end-of-text token (fixed-length generation, for benchmarks)."""
    import torch

    tokenizer.padding_side = "left"
    prompts = chat_prompts(tokenizer, instructions)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    out = [""] * len(prompts)
    device = next(model.parameters()).device
    gen = dict(do_sample=False) if not sampling else dict(do_sample=True, **sampling)
    torch.manual_seed(seed)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(device) for k, v in enc.items()}
        with torch.no_grad():
            ids = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id, min_new_tokens=0 if eos else max_new_tokens,
                                 **gen)
        for j, i in enumerate(idx):
            out[i] = tokenizer.decode(ids[j, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    return out


def generate_one_at_a_time(model, tokenizer, instructions: list[str], max_new_tokens: int, eos: bool = True) -> list[str]:
    """The unbatched baseline of benchmarks/generation_throughput.py."""
    return [generate_hf(model, tokenizer, [p], max_new_tokens, batch_size=1, eos=eos)[0] for p in instructions]


def generate_vllm(location: str, instructions: list[str], max_new_tokens: int, sampling: dict | None,
                  trust_remote_code: bool, seed: int) -> list[str]:
    from vllm import LLM, SamplingParams

    llm = LLM(model=location, trust_remote_code=trust_remote_code, seed=seed)
    params = SamplingParams(max_tokens=max_new_tokens, temperature=(sampling or {}).get("temperature", 0.0),
                            top_p=(sampling or {}).get("top_p", 1.0), seed=seed)
    prompts = chat_prompts(llm.get_tokenizer(), instructions)
    return [o.outputs[0].text.strip() for o in llm.generate(prompts, params)]


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def dataset_responses(spec: dict, limit: int | None = None) -> list[dict]:
    """A generator's column of a responses data set (``content`` + reward scores per row), read
    from its mirror folder (``location``) when the rule gives one."""
    ds = _split(spec, spec.get("split", "train"), "dataset")
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    col, id_col, prompt_col = spec["column"], spec.get("id_field", "uuid"), spec.get("instruction_field", "instruction")
    records = []
    for i, row in enumerate(ds):
        cell = row[col]
        rewards = {name: float(cell[field]) for name, field in spec.get("reward_fields", {}).items()
                   if cell.get(field) is not None}
        records.append({"id": str(row.get(id_col, i)), "prompt": row[prompt_col], "answer": cell["content"],
                        "task": "dataset", "rewards": rewards})
    return records


def responses(name: str, spec: dict, instructions: list[dict], seed: int, model_dir: str | None = None,
              trust_remote_code: bool = False, device: str = "cpu") -> list[dict]:
    """Records of one generator (see the module docstring)."""
    kind = spec["kind"]
    if kind == "dataset":
        out = dataset_responses(spec, spec.get("limit"))
    else:
        if kind in ("model", "tuned"):
            g = spec.get("generation", {})
            prompts = [r["prompt"] for r in instructions]
            sampling = {k: g[k] for k in ("temperature", "top_p") if k in g} if g.get("do_sample") else None
            if vllm_available() and device == "cuda":
                texts = generate_vllm(model_dir, prompts, g.get("max_new_tokens", 256), sampling, trust_remote_code,
                                      seed)
            else:
                from itlab.models import load_model, load_tokenizer

                tok = load_tokenizer(model_dir, trust_remote_code=trust_remote_code)
                model = load_model(model_dir, trust_remote_code=trust_remote_code).to(device).eval()
                texts = generate_hf(model, tok, prompts, g.get("max_new_tokens", 256), g.get("batch_size", 32),
                                    sampling, seed)
        else:
            texts = transform(kind, instructions, seed, spec.get("noise", 0.3))
        out = [{"id": r["id"], "prompt": r["prompt"], "answer": t, "gold": r.get("answer"), "task": r.get("task")}
               for r, t in zip(instructions, texts)]
    for r in out:
        r["generator"] = name
    return out


def instruction_pool(task_records: dict[str, list[dict]], per_task: int, seed: int) -> list[dict]:
    """The shared instructions every generator answers: ``per_task`` train examples of each task."""
    from itlab.data import rng_for

    pool = []
    for task in sorted(task_records):
        records = list(task_records[task])
        rng_for("teachers", task, seed).shuffle(records)
        pool += [{"id": r["id"], "task": task, "prompt": r["prompt"], "answer": r["answer"]}
                 for r in records[:per_task]]
    return pool


def _split(spec: dict, split: str, what: str):
    """One split of a hub data set: from the mirror folder ``spec['location']`` (offline), else the hub."""
    if spec.get("location"):
        from itlab.hub import load_split

        return load_split(spec["location"], split, f"{what} {spec['dataset']}")
    from datasets import load_dataset

    return load_dataset(spec["dataset"], spec.get("subset"), split=split)


def benchmark_prompts(name: str, spec: dict, max_items: int | None = None) -> list[dict]:
    ds = _split(spec, spec.get("split", "eval"), "benchmark")
    if max_items is not None:
        ds = ds.select(range(min(max_items, len(ds))))
    return [{"benchmark": name, "instruction": row[spec["instruction_field"]],
             "baseline": row.get(spec.get("baseline_field", "output"))} for row in ds]


def answer(model_dir: str, judge: dict, generation: dict, seed: int, trust_remote_code: bool = False,
           device: str = "cpu") -> list[dict]:
    """Every prompt of study C's judged benchmarks (AlpacaEval 2, Arena-Hard) answered by one
    model (loaded once); the judging is itlab.judge's, in its own environment."""
    prompts = [p for name, spec in sorted(judge["benchmarks"].items())
               for p in benchmark_prompts(name, spec, judge.get("max_items"))]
    texts = [p["instruction"] for p in prompts]
    sampling = {k: generation[k] for k in ("temperature", "top_p") if k in generation} \
        if generation.get("do_sample") else None
    if vllm_available() and device == "cuda":
        outputs = generate_vllm(model_dir, texts, judge["max_new_tokens"], sampling, trust_remote_code, seed)
    else:
        from itlab.models import load_model, load_tokenizer

        tok = load_tokenizer(model_dir, trust_remote_code=trust_remote_code)
        model = load_model(model_dir, trust_remote_code=trust_remote_code).to(device).eval()
        outputs = generate_hf(model, tok, texts, judge["max_new_tokens"], generation.get("batch_size", 32), sampling,
                              seed)
    return [{**p, "output": o} for p, o in zip(prompts, outputs)]
