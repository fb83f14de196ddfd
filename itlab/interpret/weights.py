"""Per-architecture access to the weights study D reads: the query and key projections of each
head with the input norm's weight folded in, and the FFN output (down) projection.

Supported: llama and mistral (``model.layers[i].self_attn.{q,k}_proj``, ``input_layernorm``,
``mlp.down_proj``), gpt_neox (``gpt_neox.layers[i].attention.query_key_value``, per-head
interleaved q|k|v rows; ``mlp.dense_4h_to_h``) and gpt2 (``transformer.h[i].attn.c_attn``,
a Conv1D with q|k|v columns; ``mlp.c_proj``). A LayerNorm's bias is not folded (the authors'
code folds the weight only).
"""

from __future__ import annotations


def architecture(model) -> str:
    kind = model.config.model_type
    if kind in ("llama", "mistral", "gpt_neox", "gpt2"):
        return kind
    raise ValueError(f"study D does not know where {kind!r} keeps W_q, W_k and the FFN down projection "
                     "(supported: llama, mistral, gpt_neox, gpt2)")


def num_layers(model) -> int:
    return model.config.num_hidden_layers if hasattr(model.config, "num_hidden_layers") else model.config.n_layer


def _heads(w, n_heads: int):
    """(hidden, n_heads * head_dim) -> (n_heads, hidden, head_dim)."""
    hidden = w.shape[0]
    return w.reshape(hidden, n_heads, -1).permute(1, 0, 2)


def query_key(model, layer: int):
    """W_q, W_k per head, shape (heads, hidden, head_dim), input-norm weight folded into the
    rows (x -> norm(x) W: the norm's per-dimension weight scales W's input rows). Grouped
    key heads are repeated to the number of query heads."""
    import torch

    kind, cfg = architecture(model), model.config
    with torch.no_grad():
        if kind in ("llama", "mistral"):
            block = model.model.layers[layer]
            norm = block.input_layernorm.weight.float()
            wq = block.self_attn.q_proj.weight.float().T * norm[:, None]
            wk = block.self_attn.k_proj.weight.float().T * norm[:, None]
            n_q, n_kv = cfg.num_attention_heads, getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
            q, k = _heads(wq, n_q), _heads(wk, n_kv)
            if n_kv != n_q:
                k = torch.repeat_interleave(k, n_q // n_kv, dim=0)
            return q, k
        if kind == "gpt_neox":
            block = model.gpt_neox.layers[layer]
            norm = block.input_layernorm.weight.float()
            n, hidden = cfg.num_attention_heads, cfg.hidden_size
            w = block.attention.query_key_value.weight.float().reshape(n, 3, hidden // n, hidden)
            q = w[:, 0].permute(0, 2, 1) * norm[None, :, None]
            k = w[:, 1].permute(0, 2, 1) * norm[None, :, None]
            return q, k
        block = model.transformer.h[layer]  # gpt2: Conv1D weight (hidden, 3 * hidden)
        norm = block.ln_1.weight.float()
        hidden, n = cfg.n_embd, cfg.n_head
        w = block.attn.c_attn.weight.float() * norm[:, None]
        return _heads(w[:, :hidden], n), _heads(w[:, hidden:2 * hidden], n)


def down_projection(model, layer: int):
    """W = down_proj^T: one row per FFN neuron (intermediate), one column per hidden dim."""
    import torch

    kind = architecture(model)
    with torch.no_grad():
        if kind in ("llama", "mistral"):
            return model.model.layers[layer].mlp.down_proj.weight.float().T
        if kind == "gpt_neox":
            return model.gpt_neox.layers[layer].mlp.dense_4h_to_h.weight.float().T
        return model.transformer.h[layer].mlp.c_proj.weight.float()  # Conv1D: already (inter, hidden)
