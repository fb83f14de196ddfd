"""Parameter counts and training FLOPs per token, for model FLOPs utilisation (MFU).

``p.numel()`` is the wrong count in three set-ups the tuning runs use:

- ZeRO-3 partitions every weight: on each process a sharded parameter reports ``numel() == 0``
  and keeps its true size in ``ds_numel`` (DeepSpeed's attribute).
- 4-bit (QLoRA, bitsandbytes ``Params4bit``): the stored tensor packs two weights per byte, so
  ``numel()`` is half the weights (times the storage item size); the original shape is kept in
  ``quant_state.shape``.
- LoRA: the frozen base weights take part in the forward pass and in back-propagating the
  activation gradients, but no weight gradient is computed for them.

FLOPs per token of one training step (the usual dense-transformer estimate, attention's
sequence-length term left out, as in the 6N rule):

- forward: 2 N_total (one multiply-add per weight),
- backward, gradients of the activations: 2 N_total (every layer propagates them, frozen or not),
- backward, gradients of the weights: 2 N_trainable.

Total 4 N_total + 2 N_trainable, which is 6N for full fine-tuning. Gradient checkpointing's
recomputed forward is not counted: MFU counts the model's FLOPs, not the hardware's.
"""

from __future__ import annotations

import math


def parameter_numel(p) -> int:
    """Number of weights a parameter stands for, whatever the sharding or quantization."""
    if hasattr(p, "ds_numel"):  # ZeRO-3: the full size of a partitioned parameter
        return int(p.ds_numel)
    state = getattr(p, "quant_state", None)
    if state is not None and getattr(state, "shape", None) is not None:  # bitsandbytes 4-bit
        return int(math.prod(state.shape))
    if type(p).__name__ == "Params4bit":  # not quantized yet: the packing rule of bitsandbytes
        return int(p.numel()) * 2 * p.element_size()
    return int(p.numel())


def parameter_counts(model) -> dict[str, int]:
    """{"total": all weights, "trainable": those that get a gradient} (shared weights once)."""
    seen: set[int] = set()
    total = trainable = 0
    for p in model.parameters():  # parameters() yields a tied weight once
        if id(p) in seen:
            continue
        seen.add(id(p))
        n = parameter_numel(p)
        total += n
        if p.requires_grad:
            trainable += n
    return {"total": total, "trainable": trainable}


def train_flops_per_token(counts: dict[str, int]) -> int:
    """Forward 2 N_total + backward 2 N_total (activation gradients) + 2 N_trainable (weight gradients)."""
    return 4 * counts["total"] + 2 * counts["trainable"]


def mfu(flops_per_token: float, tokens: float, seconds: float, peak_tflops: float, world: int) -> float:
    """Achieved model FLOP/s over the peak of all ``world`` accelerators."""
    return flops_per_token * tokens / max(seconds, 1e-9) / (peak_tflops * 1e12 * world)
