"""Throughput of tune_model's training (itlab loop: packing + DeepSpeed ZeRO-2) against a plain
HF Trainer with per-batch padding, on the same data, model and number of processes.

Prints useful (non-padding) tokens per second of each and their ratio, measured in one run,
over the same span for both: from the end of the first optimizer step (warm-up: allocation,
DeepSpeed/Trainer set-up, first-iteration costs) to the end of the last, with the useful tokens
of exactly those steps; and the whole training call of each (process start to exit: loading,
set-up, training and, for itlab, the export of the model), as wall seconds.
The MFU of the loop on a GPU is benchmarks/gpu_mfu.py's.

    python benchmarks/tune_throughput.py [--processes 2] [--examples 1500]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_data(work: Path, examples: int, hidden: int, layers: int):
    from itlab import data, io, models, tasks
    from itlab.tasks import TaskParams

    names = sorted(tasks.REGISTRY)
    docs = data.build_corpus(names, 300, 6, 1, 1, TaskParams(), "train")
    tok = models.train_tokenizer(docs, 320, work / "base")
    model = models.build_model("llama", {"hidden_size": hidden, "num_layers": layers, "num_heads": 4,
                                         "intermediate_size": 4 * hidden}, tok, seed=0)
    model.save_pretrained(work / "base")
    per_task = examples // len(names) + 1
    train = {t: data.synthesize_task(t, {"train": per_task, "validation": 1, "test": 1}, 1, TaskParams())["train"]
             for t in names}
    records = data.build_mixture(train, {"cap": per_task}, 1, "bench")[:examples]
    io.write_jsonl(work / "train.jsonl", records)
    return tok, records


def run_itlab(work: Path, processes: int, seq_len: int, batch: int) -> dict:
    from itlab.train.args import TrainArguments
    from itlab.train.launch import launch

    out = work / "itlab"
    args = TrainArguments(model_path=str(work / "base"), train_file=str(work / "train.jsonl"), output_dir=str(out),
                          max_seq_len=seq_len, global_batch_size=batch * processes, per_device_batch_size=batch,
                          epochs=1, learning_rate=1e-3, zero_stage=2, checkpoint_every=10**6, log_every=1)
    t0 = time.perf_counter()
    with open(work / "itlab.log", "w") as log:
        assert launch(args, processes, log=log) == 0, (work / "itlab.log").read_text()[-2000:]
    whole = time.perf_counter() - t0
    steps = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    return _span([s["time"] for s in steps], [s["tokens"] for s in steps], whole)


def _span(ends: list[float], tokens: list[int], whole: float) -> dict:
    """Useful tokens/s from the end of step 1 to the end of the last step (steps 2..N)."""
    assert len(ends) >= 2, "the benchmark needs at least two optimizer steps"
    seconds = ends[-1] - ends[0]
    return {"tokens": sum(tokens[1:]), "seconds": seconds, "tokens_per_s": sum(tokens[1:]) / seconds,
            "steps": len(ends), "whole_s": whole}


HF_WORKER = r'''
import json, os, sys, time, torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainerCallback, TrainingArguments, DataCollatorForSeq2Seq
from datasets import Dataset
sys.path.insert(0, sys.argv[1])
from itlab import data, io
work, batch = sys.argv[2], int(sys.argv[3])
rank = int(os.environ.get("RANK", 0))
tok = AutoTokenizer.from_pretrained(work + "/base")
rows = [dict(zip(("input_ids", "labels"), data.tokenize_example(tok, r, chat=True))) for r in io.read_jsonl(work + "/train.jsonl")]
for r in rows: r["attention_mask"] = [1] * len(r["input_ids"])
ds = Dataset.from_list(rows)
model = AutoModelForCausalLM.from_pretrained(work + "/base")
collate = DataCollatorForSeq2Seq(tok, padding=True)
batches = []  # useful (non-padding) tokens of each batch this rank trains on, in order


def collator(features):
    out = collate(features)
    batches.append(int(out["attention_mask"].sum()))
    return out


class StepEnds(TrainerCallback):
    ends = []

    def on_step_end(self, args, state, control, **kw):
        self.ends.append(time.time())


args = TrainingArguments(output_dir=work + "/hf", per_device_train_batch_size=batch, num_train_epochs=1,
                         learning_rate=1e-3, use_cpu=not torch.cuda.is_available(), report_to=[], save_strategy="no",
                         logging_steps=10**6, disable_tqdm=True, dataloader_drop_last=False, dataloader_num_workers=0)
trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=collator, callbacks=[StepEnds()])
trainer.train()
n = len(StepEnds.ends)
json.dump({"ends": StepEnds.ends, "tokens": batches[:n]}, open(f"{work}/hf-{rank}.json", "w"))
'''


def run_hf_trainer(work: Path, processes: int, batch: int) -> dict:
    script = work / "hf_worker.py"
    script.write_text(HF_WORKER)
    env = dict(os.environ, DS_ACCELERATOR="cpu", PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    with open(work / "hf.log", "w") as log:
        code = subprocess.call([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                f"--nproc_per_node={processes}", str(script), str(ROOT), str(work), str(batch)],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    whole = time.perf_counter() - t0
    assert code == 0, (work / "hf.log").read_text()[-3000:]
    ranks = [json.loads((work / f"hf-{r}.json").read_text()) for r in range(processes)]
    tokens = [sum(step) for step in zip(*(r["tokens"] for r in ranks))]  # a step's tokens over all ranks
    return _span(ranks[0]["ends"], tokens, whole)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--examples", type=int, default=1500)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8, help="rows per process and step (packed rows vs padded examples)")
    ap.add_argument("--seq-len", type=int, default=256, help="packed row length of the itlab loop")
    opt = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="itlab-bench-") as tmp:
        work = Path(tmp)
        make_data(work, opt.examples, opt.hidden, opt.layers)
        t0 = time.time()
        ours = run_itlab(work, opt.processes, opt.seq_len, opt.batch)
        hf = run_hf_trainer(work, opt.processes, opt.batch)
        print(f"data: {opt.examples} instruction examples; llama hidden {opt.hidden} x {opt.layers} layers; "
              f"{opt.processes} processes; wall {time.time() - t0:.0f}s")
        print("same span for both: end of optimizer step 1 to end of the last step, useful tokens of those steps")
        print(f"itlab tune_model (packing {opt.seq_len}, DeepSpeed ZeRO-2): {ours['tokens_per_s']:.0f} useful tokens/s "
              f"({ours['steps']} steps; whole call {ours['whole_s']:.1f} s incl. export)")
        print(f"HF Trainer (padding per batch of {opt.batch}):            {hf['tokens_per_s']:.0f} useful tokens/s "
              f"({hf['steps']} steps; whole call {hf['whole_s']:.1f} s)")
        print(f"ratio itlab / HF Trainer, steps 2..N: {ours['tokens_per_s'] / hf['tokens_per_s']:.2f}x; "
              f"whole call (HF / itlab seconds): {hf['whole_s'] / ours['whole_s']:.2f}x")


if __name__ == "__main__":
    main()
