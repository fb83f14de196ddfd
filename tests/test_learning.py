"""The embedded ladder's mechanism on a seeded tiny run: a base model that cannot answer
``uppercase`` is tuned through the real launcher and loop (character tokenizer, chat
template, packing, loss on responses) and afterwards answers a test split it never saw.

The task needs the model to find WHICH letters of the prompt are the argument. The task
templates end with the argument in a bracketed slot (``Upper case: [fcfh]``), right before the
answer; written inside the prose instead (``Write fcfh in capital letters.``, letters shared
with the prose words) a model this size stays near ln 8 nats per answer letter (uniform over
the alphabet) for hundreds of steps: ``benchmarks/prompt_layout.py`` (layout A against C and
F) measures that negative control outside the suite."""

import json
from pathlib import Path

import pytest

from itlab import tasks
from itlab.tasks import TaskParams

PARAMS = TaskParams(min_len=2, max_len=5, phrasing=0)  # as config.yaml: one phrasing per task
STEPS = 300


def _exact_match(model_dir, records):
    import torch

    from itlab.models import load_model, load_tokenizer

    tok, model = load_tokenizer(model_dir), load_model(model_dir).eval()
    tok.padding_side = "left"
    prompts = [tok.apply_chat_template([{"role": "user", "content": r["prompt"]}], add_generation_prompt=True,
                                       tokenize=False) for r in records]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    answers = [tok.decode(row, skip_special_tokens=True).split("\n")[0].strip()
               for row in out[:, enc["input_ids"].shape[1]:]]
    return sum(a == r["answer"] for a, r in zip(answers, records)) / len(records)


def _tune(tmp_path, split):
    from itlab import data, io, models
    from itlab.train.args import TrainArguments
    from itlab.train.launch import launch

    tok = models.train_tokenizer([r["prompt"] + " " + r["answer"] for r in split["train"]], 320, tmp_path / "tok",
                                 kind="char")
    base = models.build_model("llama", {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128},
                              tok, seed=0)
    base.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    io.write_jsonl(tmp_path / "train.jsonl", split["train"])
    args = TrainArguments.from_dict(dict(
        model_path=str(tmp_path / "base"), train_file=str(tmp_path / "train.jsonl"), output_dir=str(tmp_path / "run"),
        learning_rate=3e-3, max_seq_len=128, global_batch_size=16, per_device_batch_size=16, max_steps=STEPS,
        warmup_ratio=0.05, zero_stage=0, checkpoint_every=1000, seed=1))
    with open(tmp_path / "launch.log", "w") as log:  # a real file: the workers write to its descriptor
        code = launch(args, processes=1, log=log)
    assert code == 0, (tmp_path / "launch.log").read_text()[-3000:]
    assert json.loads((tmp_path / "run" / "DONE.json").read_text())["steps"] == STEPS
    return _exact_match(str(tmp_path / "base"), split["test"]), _exact_match(str(tmp_path / "run" / "model"),
                                                                            split["test"])


def _split():
    from itlab import data

    return data.synthesize_task("uppercase", {"train": 400, "validation": 0, "test": 50}, 3, PARAMS)


@pytest.mark.slow
def test_tuning_teaches_uppercase_that_the_base_cannot_answer(tmp_path):
    assert all(p.endswith(": [{s}]") for p in tasks.get("uppercase").phrasings)
    before, after = _tune(tmp_path, _split())
    assert before == 0.0  # an untrained model never writes the word in capitals
    assert after >= 0.5, (before, after)
