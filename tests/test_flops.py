"""Parameter counts behind MFU: full fine-tuning, LoRA, ZeRO-3 shards and 4-bit packing,
each against an independent count of the same tiny model."""

import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from itlab.train.flops import parameter_counts, parameter_numel, train_flops_per_token

ROOT = Path(__file__).resolve().parents[1]
H, LAYERS, INTER, VOCAB = 32, 2, 64, 100


def _tiny():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=H, num_hidden_layers=LAYERS, num_attention_heads=2, num_key_value_heads=2,
                      intermediate_size=INTER, vocab_size=VOCAB, max_position_embeddings=64, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg)


def _by_hand() -> int:
    """Llama weights from the architecture: tied embedding, 4 attention and 3 MLP matrices and
    2 norms per layer, a final norm (no biases)."""
    per_layer = 4 * H * H + 3 * H * INTER + 2 * H
    return VOCAB * H + LAYERS * per_layer + H


def test_full_fine_tuning_is_6n():
    counts = parameter_counts(_tiny())
    assert counts == {"total": _by_hand(), "trainable": _by_hand()}
    assert train_flops_per_token(counts) == 6 * _by_hand()


def test_lora_counts_frozen_weights_in_forward_and_activation_gradients_only():
    from peft import LoraConfig, get_peft_model

    r = 4
    model = get_peft_model(_tiny(), LoraConfig(r=r, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                               task_type="CAUSAL_LM"))
    adapters = LAYERS * 2 * r * (H + H)  # A: r x in, B: out x r, for q and v in every layer
    counts = parameter_counts(model)
    assert counts == {"total": _by_hand() + adapters, "trainable": adapters}
    # forward 2N + activation gradients 2N over all weights, weight gradients 2N for adapters only
    assert train_flops_per_token(counts) == 4 * (_by_hand() + adapters) + 2 * adapters
    assert train_flops_per_token(counts) < 6 * counts["total"]


def test_4bit_packed_weights_count_as_the_weights_they_hold():
    """bitsandbytes' Params4bit stores two 4-bit weights per byte and keeps the original shape
    in quant_state (bitsandbytes needs a GPU here: a parameter of the same layout stands in)."""
    import torch

    class Params4bit(torch.nn.Parameter):
        pass

    packed = Params4bit(torch.zeros(64 * 32 // 2, 1, dtype=torch.uint8), requires_grad=False)
    packed.quant_state = SimpleNamespace(shape=torch.Size([64, 32]))
    assert packed.numel() == 1024 and parameter_numel(packed) == 2048
    pending = Params4bit(torch.zeros(10, dtype=torch.uint8), requires_grad=False)  # before quantization
    assert parameter_numel(pending) == 20
    model = torch.nn.Module()
    model.w = packed
    model.lora = torch.nn.Parameter(torch.zeros(8, 4))
    assert parameter_counts(model) == {"total": 2048 + 32, "trainable": 32}


ZERO3 = """
import json, sys
import deepspeed, torch
import torch._dynamo  # imported inside zero.Init, its Tensor.__new__ patch breaks dynamo's polyfills
from itlab.train.flops import parameter_counts
from itlab.train.loop import skip_shared_memory_op
skip_shared_memory_op()  # as the training loop does: no JIT build of DeepSpeed's CPU comm op
sys.path.insert(0, {tests!r})
from test_flops import _tiny
deepspeed.init_distributed(dist_backend="gloo")
cfg = {{"train_micro_batch_size_per_gpu": 1, "zero_optimization": {{"stage": 3}}}}
with deepspeed.zero.Init(config_dict_or_path=cfg):
    model = _tiny()
print(json.dumps({{"numel": sum(p.numel() for p in model.parameters()), **parameter_counts(model)}}))
"""


@pytest.mark.slow
def test_zero3_sharded_parameters_count_their_full_size(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port), "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(ROOT)}
    # an empty extensions folder: the process group must start without building any op (a
    # build of DeepSpeed's CPU comm op cost this test 24 s wall, 7 Dec 2026, 2 cores)
    env["TORCH_EXTENSIONS_DIR"] = str(tmp_path / "torch_extensions")
    res = subprocess.run([sys.executable, "-c", ZERO3.format(tests=str(ROOT / "tests"))], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert not (tmp_path / "torch_extensions").exists() or not any((tmp_path / "torch_extensions").iterdir())
    import json

    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["numel"] == 0  # every weight is a shard: numel() sees nothing
    assert got["total"] == got["trainable"] == _by_hand()
