"""Tuning engine: arguments, DeepSpeed config, schedules, and real multi-process runs
(ZeRO-2, ZeRO-3, LoRA), kill-and-resume, concurrency, and no double runs."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from itlab.train.args import TrainArguments, accumulation_steps, deepspeed_config, lr_at
from itlab.train.launch import command

ROOT = Path(__file__).resolve().parents[1]


# ---- unit -------------------------------------------------------------------------------
def test_accumulation_is_derived_from_global_batch():
    assert accumulation_steps(64, 4, 2) == 8
    assert accumulation_steps(32, 1, 4) == 8
    with pytest.raises(ValueError, match="not a multiple"):
        accumulation_steps(30, 4, 2)


def test_deepspeed_config_per_stage():
    args = TrainArguments(global_batch_size=32, per_device_batch_size=4, zero_stage=3, offload_optimizer=True,
                          offload_params=True)
    ds = deepspeed_config(args, world=4)
    assert ds["train_batch_size"] == 32 == ds["train_micro_batch_size_per_gpu"] * ds["gradient_accumulation_steps"] * 4
    assert ds["zero_optimization"]["stage"] == 3
    assert ds["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert ds["zero_optimization"]["offload_param"]["device"] == "cpu"
    assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"]
    assert "offload_param" not in deepspeed_config(TrainArguments(zero_stage=2), 2)["zero_optimization"]


def test_lr_schedule_warmup_then_cosine_to_zero():
    args = TrainArguments(learning_rate=1.0, warmup_ratio=0.1, lr_scheduler="cosine")
    lrs = [lr_at(s, 100, args) for s in range(100)]
    assert lrs[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert max(lrs) == pytest.approx(1.0)
    assert lrs[-1] < 0.001 and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    linear = TrainArguments(learning_rate=2.0, warmup_ratio=0.0, lr_scheduler="linear")
    assert lr_at(50, 100, linear) == pytest.approx(1.0)


def test_arguments_from_yaml_and_command_line(tmp_path):
    f = tmp_path / "a.yaml"
    f.write_text("learning_rate: 0.01\nzero_stage: 3\npacking: true\n")
    args = TrainArguments.parse(["--args", str(f), "--learning_rate", "0.5", "--packing", "false"])
    assert args.learning_rate == 0.5 and args.zero_stage == 3 and args.packing is False
    with pytest.raises(ValueError, match="unknown training argument"):
        TrainArguments.from_dict({"learnin_rate": 1})
    with pytest.raises(ValueError, match="LoRA with ZeRO-3"):
        TrainArguments.from_dict({"lora_r": 8, "zero_stage": 3})
    # a run that loads its model has the fingerprint it had before init_model existed (1af9bef's
    # code gave this one), so its checkpoints resume across the upgrade
    old = TrainArguments(learning_rate=2e-5, lora_r=8, train_data_sha256="a" * 64,
                         model_revision="meta-llama/Llama-2-7b-hf@abc:def")
    assert old.fingerprint() == "5d88ebb5740aed44"
    # the fingerprint ignores where a run is written, not what it computes
    assert TrainArguments(output_dir="a").fingerprint() == TrainArguments(output_dir="b").fingerprint()
    assert TrainArguments(seed=1).fingerprint() != TrainArguments(seed=2).fingerprint()


def test_list_arguments_from_the_command_line_are_lists_of_names(tmp_path):
    """--lora_target_modules q_proj,v_proj is two module names, not a list of characters."""
    import dataclasses

    args = TrainArguments.parse(["--lora_target_modules", "q_proj,v_proj", "--lora_r", "8"])
    assert args.lora_target_modules == ["q_proj", "v_proj"]
    assert TrainArguments.parse(["--lora_target_modules", "all"]).lora_target_modules == "all"
    assert TrainArguments.parse(["--lora_target_modules", "o_proj"]).lora_target_modules == ["o_proj"]
    # the same from a YAML string and a YAML list; every list field is parsed this way
    f = tmp_path / "a.yaml"
    f.write_text("lora_target_modules: q_proj, k_proj\n")
    assert TrainArguments.parse(["--args", str(f)]).lora_target_modules == ["q_proj", "k_proj"]
    f.write_text("lora_target_modules: [q_proj]\n")
    assert TrainArguments.parse(["--args", str(f)]).lora_target_modules == ["q_proj"]
    for field in dataclasses.fields(TrainArguments):
        if field.type in ("list", list):
            assert getattr(TrainArguments.parse([f"--{field.name}", "a,b"]), field.name) == ["a", "b"], field.name


def test_fingerprint_hashes_data_content_and_model_revision_not_paths(tmp_path):
    import shutil

    def place(where):
        (where / "model").mkdir(parents=True)
        (where / "model" / "config.json").write_text('{"model_type": "llama"}')
        (where / "model" / "model.safetensors").write_bytes(b"weights-v1")
        (where / "train.jsonl").write_text('{"prompt": "p", "answer": "a"}\n')
        return TrainArguments(model_path=str(where / "model"), train_file=str(where / "train.jsonl"),
                              output_dir=str(where / "out"))

    a = place(tmp_path / "a")
    b = place(tmp_path / "elsewhere" / "b")  # the same content under other paths
    assert a.fingerprint() == b.fingerprint() == a.resolved().fingerprint()
    # checkpointing and logging are not part of the result
    assert TrainArguments(**{**vars(a), "checkpoint_every": 7, "keep_checkpoints": 9}).fingerprint() == a.fingerprint()
    # the same paths with other content: another result
    (tmp_path / "a" / "train.jsonl").write_text('{"prompt": "p", "answer": "b"}\n')
    assert a.fingerprint() != b.fingerprint()
    shutil.copy(tmp_path / "elsewhere" / "b" / "train.jsonl", tmp_path / "a" / "train.jsonl")
    assert a.fingerprint() == b.fingerprint()
    (tmp_path / "a" / "model" / "model.safetensors").write_bytes(b"weights-v2")
    assert a.fingerprint() != b.fingerprint()
    # a hub mirror entry: its manifest's commit and content hash name the revision
    (tmp_path / "a" / "model" / "MANIFEST.json").write_text(
        json.dumps({"id": "org/m", "commit": "abc123", "content_sha256": "f00d"}))
    assert a.resolved().model_revision == "org/m@abc123:f00d"
    # resolved() recomputes: stale identity fields never survive a relaunch
    stale = TrainArguments(**{**vars(b), "train_data_sha256": "0" * 64})
    assert stale.fingerprint() != b.fingerprint() and stale.resolved().fingerprint() == b.fingerprint()


def test_launch_commands_single_and_multi_node():
    one = command("a.json", 4)
    assert one[1:4] == ["-m", "itlab.train.launch", "--standalone"] and "--nproc_per_node=4" in one
    # one process is its own rank 0: the worker without torchrun
    assert command("a.json", 1)[1:] == ["-m", "itlab.train", "--args", "a.json"]
    env = {"SLURM_JOB_ID": "77", "SLURM_JOB_NODELIST": "gpu[1-4]", "ITLAB_HEAD_NODE": "gpu1"}
    multi = command("a.json", 8, nodes=4, env=env)
    # inside the plugin's own srun step: --overlap, and explicit task counts
    assert multi[:6] == ["srun", "--overlap", "--nodes=4", "--ntasks=4", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    assert "--nnodes=4" in multi and "--nproc_per_node=8" in multi
    assert "--rdzv_endpoint=gpu1:29400" in multi and "--rdzv_id=77" in multi
    assert multi.count("itlab.train") == 1  # one torchrun per node, never one per GPU
    with pytest.raises(RuntimeError, match="Slurm allocation"):
        command("a.json", 8, nodes=2, env={})
    # torchrun's grace period after a signal, and the signals it forwards to the workers
    assert "--shutdown-timeout=900" in one and "--shutdown-timeout=1800" in command("a.json", 2, shutdown_grace=1800)
    assert any(a.startswith("--signals-to-handle=") and "SIGURG" in a for a in one)


def test_nested_srun_sees_the_job_not_the_plugins_step():
    from itlab.train.launch import srun_env

    step = {"SLURM_JOB_ID": "7", "SLURM_JOB_NODELIST": "n[1-2]", "SLURM_JOB_NUM_NODES": "2", "SLURM_NTASKS": "1",
            "SLURM_NNODES": "1", "SLURM_STEP_ID": "0", "SLURM_STEP_NODELIST": "n1", "SLURM_CPU_BIND": "none",
            "SLURM_CONF": "/etc/slurm/slurm.conf", "PATH": "/bin"}
    env = srun_env(step)
    assert set(env) == {"SLURM_JOB_ID", "SLURM_JOB_NODELIST", "SLURM_JOB_NUM_NODES", "SLURM_CONF", "PATH"}
    # inside the plugin's step SLURM_JOB_NODELIST names the step's node: the controller's wins
    fixed = srun_env({**step, "SLURM_JOB_NODELIST": "n1"}, {"NodeList": "n[1-2]", "NumNodes": "2", "JobId": "7"})
    assert fixed["SLURM_JOB_NODELIST"] == "n[1-2]" and fixed["SLURM_JOB_NUM_NODES"] == "2"


# ---- real runs --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny Llama base model with the real tokenizer, and an instruction mixture."""
    from itlab import data, io, models
    from itlab.tasks import TaskParams

    root = tmp_path_factory.mktemp("tiny")
    docs = data.build_corpus(["add", "reverse"], 200, 4, 1, 1, TaskParams(), "train")
    tok = models.train_tokenizer(docs, 200, root / "tok")
    model = models.build_model("llama", {"hidden_size": 32, "num_layers": 2, "num_heads": 2,
                                         "intermediate_size": 64}, tok, seed=0)
    model.save_pretrained(root / "base")
    tok.save_pretrained(root / "base")
    train = {t: data.synthesize_task(t, {"train": 120, "validation": 1, "test": 1}, 1, TaskParams())["train"]
             for t in ("add", "reverse", "is_palindrome")}
    io.write_jsonl(root / "mix.jsonl", data.build_mixture(train, {"cap": 120}, 1, "m"))
    return root


def _args(tiny, out, **kw):
    base = dict(model_path=str(tiny / "base"), train_file=str(tiny / "mix.jsonl"), output_dir=str(out),
                learning_rate=3e-3, max_seq_len=96, global_batch_size=8, per_device_batch_size=4, max_steps=16,
                checkpoint_every=4, warmup_ratio=0.1, seed=3)
    base.update(kw)
    return TrainArguments.from_dict(base)


def _launch_process(args, processes=2):
    """The launcher in its own process (as the rule script runs it), killable from the test."""
    args_file = Path(args.output_dir + ".json")
    Path(args.output_dir).parent.mkdir(parents=True, exist_ok=True)
    args.save(args_file)
    code = ("import sys; from itlab.train.args import TrainArguments as A; from itlab.train.launch import launch; "
            f"sys.exit(launch(A.parse(['--args', {str(args_file)!r}]), {processes}, log=sys.stdout))")
    log = open(args.output_dir + ".log", "w")
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _run(args, processes=2, timeout=300):
    proc = _launch_process(args, processes)
    assert proc.wait(timeout=timeout) == 0, Path(args.output_dir + ".log").read_text()[-3000:]


def _metrics(out):
    return [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tiny, tmp_path_factory):
    """An uninterrupted 2-process ZeRO-2 run, the yardstick of the resume tests."""
    out = tmp_path_factory.mktemp("runs") / "reference"
    _run(_args(tiny, out))
    return out


@pytest.mark.slow
def test_zero2_two_processes_trains_and_exports(reference, tiny):
    from transformers import AutoModelForCausalLM

    done = json.loads((reference / "DONE.json").read_text())
    assert done["world_size"] == 2 and done["steps"] == 16
    m = _metrics(reference)
    assert [r["step"] for r in m] == list(range(1, 17))
    assert m[-1]["loss"] < m[0]["loss"] - 0.5
    assert all(r["tokens_per_s"] > 0 for r in m)
    assert not (reference / "checkpoints").exists()  # pruned once the model is exported
    assert (reference / "model" / "model.safetensors").exists()
    assert list((reference / "tensorboard").iterdir())
    model = AutoModelForCausalLM.from_pretrained(reference / "model")
    base = AutoModelForCausalLM.from_pretrained(tiny / "base")
    assert any((a - b).abs().max() > 1e-4 for a, b in zip(model.parameters(), base.parameters()))


def _step_rows(tiny, args):
    """Records of the first optimizer step (global positions 0 .. global_batch - 1), tokenized
    and truncated to max_seq_len, the way the run sees them."""
    from itlab.data import tokenize_example
    from itlab.io import read_jsonl
    from itlab.models import load_tokenizer
    from itlab.train.loop import row_order

    tok = load_tokenizer(str(tiny / "base"))
    records = list(read_jsonl(args.train_file))
    order = row_order(len(records), args.seed)
    out = []
    for i in range(args.global_batch_size):
        ids, labels = tokenize_example(tok, records[order(i)], chat=True)
        out.append((ids[: args.max_seq_len], labels[: args.max_seq_len], len(ids)))
    return out


def test_unpacked_rows_are_truncated_to_max_seq_len(tiny):
    from itlab.models import load_tokenizer
    from itlab.train.loop import build_rows

    tok = load_tokenizer(str(tiny / "base"))
    full = build_rows(_args(tiny, tiny / "x", packing=False, max_seq_len=4096), tok, str(tiny / "mix.jsonl"))
    cut = build_rows(_args(tiny, tiny / "x", packing=False, max_seq_len=24), tok, str(tiny / "mix.jsonl"))
    assert max(len(r["input_ids"]) for r in full) > 24  # some examples are longer than the limit
    assert all(len(r["input_ids"]) == min(len(f["input_ids"]), 24) == len(r["labels"]) == len(r["position_ids"])
               for r, f in zip(cut, full))
    assert all(r["input_ids"] == f["input_ids"][:24] for r, f in zip(cut, full))


def test_pretraining_rows_are_the_documents_token_stream_cut_into_full_rows(tiny, tmp_path):
    """objective lm: every document's tokens then an end of sequence, in corpus order, cut into
    rows of max_seq_len; the tail shorter than a row is dropped."""
    from itlab import data
    from itlab.models import load_tokenizer
    from itlab.tasks import TaskParams
    from itlab.train.loop import build_rows

    tok = load_tokenizer(str(tiny / "base"))
    docs = data.build_corpus(["add", "reverse"], 30, 3, 1, 7, TaskParams(), "train")
    corpus = tmp_path / "train.txt"
    corpus.write_text(data.DOC_SEPARATOR.join(docs))
    stream = [t for d in docs for t in [tok.convert_tokens_to_ids(c) for c in tok.tokenize(d)] + [tok.eos_token_id]]
    rows = build_rows(_args(tiny, tmp_path / "x", objective="lm", max_seq_len=40), tok, str(corpus))
    assert len(rows) == len(stream) // 40 > 10
    assert [t for r in rows for t in r["input_ids"]] == stream[: len(rows) * 40]
    assert all(r["labels"] == r["input_ids"] and r["position_ids"] == list(range(40)) and r["n_tokens"] == 40
               for r in rows)


def test_backward_objective_gives_the_token_weighted_gradient():
    """Micro-batches of 1 and 5 target tokens on 2 processes, accumulated as the loop does
    (no 1/accumulation scaling, DeepSpeed's mean over processes): the gradient is that of the
    mean over all tokens (or their sum), not the mean of the micro-batch means."""
    import torch

    from itlab.train.loop import backward_objective

    losses = {0: [torch.tensor([2.0]), torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0])],
              1: [torch.tensor([4.0, 0.5]), torch.tensor([3.0])]}
    n = sum(t.numel() for ts in losses.values() for t in ts)
    for reduction, expected in (("mean", sum(float(t.sum()) for ts in losses.values() for t in ts) / n),
                                ("sum", sum(float(t.sum()) for ts in losses.values() for t in ts))):
        w = torch.tensor(1.0, requires_grad=True)  # d(objective)/dw = the objective at w = 1
        per_rank = []
        for rank, ts in losses.items():
            grad = 0.0
            for t in ts:
                (g,) = torch.autograd.grad(backward_objective((w * t).sum(), torch.tensor(float(n)), 2, reduction), w)
                grad += float(g)
            per_rank.append(grad)
        assert sum(per_rank) / 2 == pytest.approx(expected)  # the all-reduce mean over processes


@pytest.mark.slow
def test_logged_loss_is_token_weighted_across_micro_batches_and_processes(tiny, tmp_path):
    """2 processes x 2 accumulation micro-batches of 2 unpacked rows: the logged loss of the
    first step equals the mean cross-entropy over all its target tokens, computed here with
    the starting model, row by row."""
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path / "weighted"
    args = _args(tiny, out, packing=False, max_seq_len=30, global_batch_size=8, per_device_batch_size=2,
                 max_steps=1)
    rows = _step_rows(tiny, args)
    assert any(n > 30 for *_, n in rows)  # truncation matters for this step
    model = AutoModelForCausalLM.from_pretrained(tiny / "base").eval()
    sums, counts = [], []
    with torch.no_grad():
        for ids, labels, _ in rows:
            logits = model(torch.tensor([ids])).logits[0, :-1]
            target = torch.tensor(labels[1:])
            keep = target != -100
            sums.append(float(torch.nn.functional.cross_entropy(logits[keep], target[keep], reduction="sum")))
            counts.append(int(keep.sum()))
    weighted = sum(sums) / sum(counts)
    # the old logging: mean over the 4 micro-batches (2 rows each) of their per-token means
    micro_means = [(sums[i] + sums[i + 1]) / (counts[i] + counts[i + 1]) for i in range(0, 8, 2)]
    assert abs(sum(micro_means) / 4 - weighted) > 1e-3  # the test can tell the two apart
    _run(args)
    assert _metrics(out)[0]["loss"] == pytest.approx(weighted, abs=2e-5)


LONG = 200  # steps: long enough to be killed mid-run


@pytest.fixture(scope="module")
def long_reference(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "long"
    _run(_args(tiny, out, max_steps=LONG, checkpoint_every=4))
    return out


def _newest_checkpoint(ck: Path) -> int:
    steps = [int(p.name.split("-")[1]) for p in ck.glob("step-*") if not p.name.endswith(".partial")
             and (p / "COMPLETE").exists()] if ck.is_dir() else []
    return max(steps, default=0)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_killed_run_resumes_from_checkpoint(long_reference, tiny, tmp_path, sig):
    """Kill mid-run (SIGTERM: graceful checkpoint; SIGKILL of the whole job: like a node
    failure), rerun, and check that the step counter continues from the checkpoint and the
    final loss matches the uninterrupted run."""
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    args = _args(tiny, out, max_steps=LONG, checkpoint_every=4)
    proc = _launch_process(args)
    ck = out / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and _newest_checkpoint(ck) < 8 and proc.poll() is None:
        time.sleep(0.05)
    assert _newest_checkpoint(ck) >= 8, Path(str(out) + ".log").read_text()[-3000:]
    os.killpg(proc.pid, sig) if sig == signal.SIGKILL else proc.send_signal(sig)
    code = proc.wait(timeout=120)
    assert code != 0 and not (out / "DONE.json").exists(), "the run finished before it was killed"
    resumed_from = _newest_checkpoint(ck)
    assert 8 <= resumed_from < LONG

    _run(args)
    log = Path(str(out) + ".log").read_text()
    assert f"resumed from step-{resumed_from:08d} at step {resumed_from}/{LONG}" in log
    steps = [r["step"] for r in _metrics(out)]
    # the rerun logs exactly the steps after the checkpoint, in order
    assert steps[len(steps) - (LONG - resumed_from):] == list(range(resumed_from + 1, LONG + 1))
    ref, got = _metrics(long_reference)[-1]["loss"], _metrics(out)[-1]["loss"]
    assert got == pytest.approx(ref, rel=1e-3, abs=1e-3)
    AutoModelForCausalLM.from_pretrained(out / "model")  # the export loads


@pytest.mark.slow
def test_zero3_two_processes(tiny, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "z3"
    _run(_args(tiny, out, zero_stage=3, max_steps=6))
    assert json.loads((out / "DONE.json").read_text())["steps"] == 6
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    assert model.model.embed_tokens.weight.shape[1] == 32  # gathered, not a ZeRO-3 shard


@pytest.mark.slow
def test_pretraining_from_scratch_starts_from_the_seeded_built_model(tiny, tmp_path):
    """init_model: the training process builds the base model itself (no init folder, no job
    of its own). At learning rate 0 one step leaves the weights where they started: exactly
    build_model's with the run's seed. A zero budget exports that same model untrained."""
    import torch

    from itlab import data, models
    from itlab.train.launch import finish_without_training

    size = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(data.DOC_SEPARATOR.join(["12 + 30 = 42 reversed: olleh"] * 40))
    init = {"architecture": "gpt_neox", "size": size}
    common = dict(model_path=str(tiny / "tok"), init_model=init, train_file=str(corpus), objective="lm",
                  max_seq_len=32, global_batch_size=4, per_device_batch_size=4, seed=11, zero_stage=0)
    trained = TrainArguments.from_dict({**common, "output_dir": str(tmp_path / "lr0"), "learning_rate": 0.0,
                                        "max_steps": 1})
    _run(trained, processes=1)
    untrained = TrainArguments.from_dict({**common, "output_dir": str(tmp_path / "zero"), "max_tokens": 0})
    finish_without_training(untrained)
    expected = models.build_model("gpt_neox", size, models.load_tokenizer(str(tiny / "tok")), seed=11).state_dict()
    other_seed = models.build_model("gpt_neox", size, models.load_tokenizer(str(tiny / "tok")), seed=12).state_dict()
    for out in ("lr0", "zero"):
        got = models.load_model(str(tmp_path / out / "model")).state_dict()
        assert set(got) == set(expected) and len(got) > 4
        assert all(torch.equal(got[k], expected[k]) for k in got), out
        assert not all(torch.equal(got[k], other_seed[k]) for k in got)
        assert models.load_tokenizer(str(tmp_path / out / "model")).get_vocab() == \
            models.load_tokenizer(str(tiny / "tok")).get_vocab()
    assert json.loads((tmp_path / "lr0" / "DONE.json").read_text())["steps"] == 1
    # what the model is built as is part of the run's identity
    assert trained.fingerprint() != dataclasses.replace(trained, init_model={**init, "architecture": "llama"}).fingerprint()
    with pytest.raises(ValueError, match="init_model needs exactly"):
        TrainArguments.from_dict({**common, "init_model": {"architecture": "llama"}})


@pytest.mark.slow
def test_lora_is_merged_at_export(tiny, tmp_path):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    out = tmp_path / "lora"
    _run(_args(tiny, out, lora_r=4, lora_alpha=8, lora_dropout=0.0, learning_rate=1e-2, max_steps=6))
    keys = load_file(out / "model" / "model.safetensors").keys()
    assert not any("lora" in k for k in keys)
    tuned = AutoModelForCausalLM.from_pretrained(out / "model")
    base = AutoModelForCausalLM.from_pretrained(tiny / "base")
    diffs = {n: (p - dict(base.named_parameters())[n]).abs().max().item() for n, p in tuned.named_parameters()}
    assert diffs["model.layers.0.self_attn.q_proj.weight"] > 0  # adapters merged into linear layers
    assert diffs["model.embed_tokens.weight"] == 0  # non-adapted weights untouched
    # independent merge: W + (alpha / r) * B @ A from the saved adapter
    adapter = load_file(out / "model" / "adapter" / "adapter_model.safetensors")
    a = next(v for k, v in adapter.items() if "layers.0.self_attn.q_proj.lora_A" in k)
    b = next(v for k, v in adapter.items() if "layers.0.self_attn.q_proj.lora_B" in k)
    expected = dict(base.named_parameters())["model.layers.0.self_attn.q_proj.weight"] + (8 / 4) * b @ a
    assert torch.allclose(dict(tuned.named_parameters())["model.layers.0.self_attn.q_proj.weight"], expected, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_two_jobs_at_once_do_not_collide(tiny, tmp_path, processes):
    procs = [_launch_process(_args(tiny, tmp_path / f"run{i}", max_steps=4, seed=i), processes) for i in range(2)]
    for p, i in zip(procs, range(2)):
        assert p.wait(timeout=300) == 0, (tmp_path / f"run{i}.log").read_text()[-2000:]
        assert json.loads((tmp_path / f"run{i}" / "DONE.json").read_text())["steps"] == 4


@pytest.mark.slow
def test_cpu_training_builds_no_deepspeed_op(tiny, tmp_path, monkeypatch):
    """DeepSpeed's CPU backend would JIT-compile its shared-memory all-reduce op (inference only)
    into TORCH_EXTENSIONS_DIR at the first process group: 32 s on 2 cores, others waiting."""
    extensions = tmp_path / "torch_extensions"
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(extensions))
    out = tmp_path / "run"
    _run(_args(tiny, out, max_steps=2), processes=1)
    assert json.loads((out / "DONE.json").read_text())["steps"] == 2
    assert not list(extensions.glob("*shm*")), sorted(p.name for p in extensions.iterdir())
    assert "built successfully" not in Path(str(out) + ".log").read_text()


@pytest.mark.slow
def test_finished_or_running_job_never_runs_twice(reference, tiny):
    import fcntl

    from itlab.train.launch import launch

    args = _args(tiny, reference)
    before = (reference / "DONE.json").read_text()
    assert launch(args, 2) == 0  # complete with the same settings: returns at once
    assert (reference / "DONE.json").read_text() == before
    with open(reference / ".lock", "w") as held:  # a duplicate (e.g. requeued) job is running
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(RuntimeError, match="already training"):
            launch(args, 2)


@pytest.mark.slow
@pytest.mark.parametrize("sig, processes", [(signal.SIGTERM, 2), (signal.SIGURG, 2), (signal.SIGTERM, 1)],
                         ids=["sigterm", "sigurg", "sigterm-one-process"])
def test_signal_before_any_checkpoint_saves_at_that_step_and_resumes(long_reference, tiny, tmp_path, sig, processes):
    """No periodic checkpoint exists when the signal comes (checkpoint_every is beyond the
    run), so the only way to keep the progress is the signal handler: the run must save at
    the step it had reached, exit with EXIT_PREEMPTED, and resume there. SIGURG is the
    profile's pre-timeout warning; SIGTERM a cancel or a preemption. One process: the launcher
    signals the worker itself, with no torchrun between them."""
    from itlab.train.loop import EXIT_PREEMPTED

    out = tmp_path / "run"
    args = _args(tiny, out, max_steps=LONG, checkpoint_every=10 * LONG)
    proc = _launch_process(args, processes)
    ck, deadline = out / "checkpoints", time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (out / "metrics.jsonl").exists() and len(_metrics(out)) >= 5:
            break
        time.sleep(0.02)
    seen = len(_metrics(out))
    assert 5 <= seen < LONG and _newest_checkpoint(ck) == 0, Path(str(out) + ".log").read_text()[-3000:]
    proc.send_signal(sig)
    code = proc.wait(timeout=300)
    log = Path(str(out) + ".log").read_text()
    assert code == EXIT_PREEMPTED, log[-3000:]
    saved = _newest_checkpoint(ck)
    # saved at the step the run stopped at, soon after the signal, and at no other step
    assert saved == _metrics(out)[-1]["step"] and seen <= saved < min(seen + 25, LONG), (seen, saved)
    assert [p.name for p in ck.glob("step-*")] == [f"step-{saved:08d}"]

    # resume for a few steps (stop_after_steps does not change the run's fingerprint): the
    # losses continue exactly as in the uninterrupted run
    more = _args(tiny, out, max_steps=LONG, checkpoint_every=10 * LONG, stop_after_steps=saved + 4)
    rerun = _launch_process(more, processes)
    rerun.wait(timeout=600)
    log = Path(str(out) + ".log").read_text()
    assert f"resumed from step-{saved:08d} at step {saved}/{LONG}" in log, log[-3000:]
    steps = [r["step"] for r in _metrics(out)]
    assert steps == list(range(1, saved + 5))  # every step exactly once across the two runs
    ref = {r["step"]: r["loss"] for r in _metrics(long_reference)}
    for r in _metrics(out)[saved:]:
        assert r["loss"] == pytest.approx(ref[r["step"]], rel=1e-3, abs=1e-3), r


def test_model_folder_is_swapped_in_with_no_window(tmp_path, monkeypatch):
    """The exported model replaces the old one in one exchange: no moment without model/
    (the old code renamed the old folder away first, then the new one in)."""
    from itlab.io import swap_in

    model, new = tmp_path / "model", tmp_path / ".model.new"
    model.mkdir()
    (model / "w").write_text("old")
    new.mkdir()
    (new / "w").write_text("new")
    renames = []
    real_rename = Path.rename
    monkeypatch.setattr(Path, "rename", lambda self, target: renames.append((self, target)) or real_rename(self, target))
    swap_in(new, model)
    assert (model / "w").read_text() == "new" and not new.exists()
    assert renames == []  # exchanged (renameat2), never renamed away first
    new.mkdir()
    swap_in(new, tmp_path / "fresh")  # no old folder: a plain rename
    assert (tmp_path / "fresh").is_dir() and len(renames) == 1


def test_requeue_only_after_the_warning_signal(tmp_path, monkeypatch):
    """A run stopped by the pre-timeout warning requeues its Slurm job; a cancel (SIGTERM),
    a real failure, or a run outside Slurm does not."""
    from itlab.train import launch as L
    from itlab.train.loop import EXIT_PREEMPTED

    calls = tmp_path / "calls"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    (fake / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setitem(L.RECEIVED, "signal", signal.SIGTERM)
    assert not L.requeue_after_warning(EXIT_PREEMPTED)  # scancel: the run fails
    monkeypatch.setitem(L.RECEIVED, "signal", signal.SIGURG)
    assert not L.requeue_after_warning(1)  # a real failure after the warning still fails
    assert not calls.exists()
    assert L.requeue_after_warning(EXIT_PREEMPTED)
    assert calls.read_text().split() == ["requeue", "42"]
    monkeypatch.delenv("SLURM_JOB_ID")
    assert not L.requeue_after_warning(EXIT_PREEMPTED)  # not under Slurm: rerun by hand


def test_signal_lead_and_grace_are_per_size_config_keys(default_config):
    """Defaults fit a 70B step + save; a grace longer than the lead, or a lead not shorter
    than the runtime, is rejected naming the key; the sbatch signal and torchrun's timeout
    follow the size."""
    import copy

    from itlab.config import ConfigError, validate
    from itlab.grid import Grid, tune_launch, tune_resources

    cfg = validate(copy.deepcopy(default_config), ROOT)
    size = next(iter(cfg["sizes"].values()))
    assert size["resources"]["signal_lead"] == 1200 and size["tune"]["shutdown_grace"] == 900
    grid = Grid(cfg)
    run = next(iter(grid.runs))
    assert tune_resources(grid, run)["slurm_extra"] == "--signal=URG@1200"
    assert tune_launch(grid, run)["shutdown_grace"] == 900
    name = next(iter(default_config["sizes"]))
    bad = copy.deepcopy(default_config)
    bad["sizes"][name].setdefault("tune", {})["shutdown_grace"] = 2000
    with pytest.raises(ConfigError, match=f"sizes.{name}.tune.shutdown_grace"):
        validate(bad, ROOT)
    bad = copy.deepcopy(default_config)
    bad["sizes"][name].setdefault("resources", {}).update(runtime=10, signal_lead=900)
    bad["sizes"][name]["tune"] = {**bad["sizes"][name].get("tune", {}), "shutdown_grace": 600}
    with pytest.raises(ConfigError, match=f"sizes.{name}.resources.signal_lead"):
        validate(bad, ROOT)


def test_scratch_dir_holds_checkpoints_and_the_plan_shows_their_size(default_config):
    import copy

    from itlab.config import validate
    from itlab.grid import Grid, checkpoint_mb, tune_arguments, tune_checkpointing, tune_resources

    cfg = copy.deepcopy(default_config)
    run = next(iter(Grid(validate(copy.deepcopy(cfg), ROOT)).runs))
    # no scratch: beside the results, never inside the run folder (whose outputs a failed job loses)
    ck = tune_checkpointing(Grid(validate(copy.deepcopy(cfg), ROOT)), run)["checkpoint_dir"]
    assert ck == f"{cfg['results_dir']}/checkpoints/tuned/{run}"
    cfg["scratch_dir"] = "/scratch/me"
    grid = Grid(validate(cfg, ROOT))
    ck = tune_checkpointing(grid, run)["checkpoint_dir"]
    assert ck.startswith("/scratch/me/") and ck.endswith(f"/{run}/checkpoints")
    # where the checkpoints live is not a rule param (moving them reruns nothing) ...
    assert "checkpoint_dir" not in tune_arguments(grid, run)
    # ... nor part of what the run computes
    known = {"train_data_sha256": "t", "eval_data_sha256": "e", "model_revision": "m"}  # no data files here
    args = TrainArguments.from_dict({**tune_arguments(grid, run), **tune_checkpointing(grid, run), **known})
    assert args.fingerprint() == TrainArguments.from_dict(
        {**tune_arguments(grid, run), **known, "checkpoint_dir": "", "log_dir": "/elsewhere"}).fingerprint()
    assert tune_resources(grid, run)["checkpoint_mb"] == checkpoint_mb(grid, run) >= 1
    # a 70B bf16 full fine-tune keeping 2 checkpoints: 3 x 70e9 x 14 bytes
    cfg = copy.deepcopy(default_config)
    name = next(iter(cfg["sizes"]))
    cfg["sizes"][name]["params_b"] = 70
    cfg["device"] = "cuda"
    cfg["sizes"][name].setdefault("tune", {})["bf16"] = True
    grid = Grid(validate(cfg, ROOT))
    run = next(r for r, v in grid.runs.items() if grid.base_models[v.base].size == name)
    assert checkpoint_mb(grid, run) == pytest.approx(3 * 70e9 * 14 / 1e6, rel=1e-6)
