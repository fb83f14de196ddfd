"""Models: the tokenizer trained here (characters or byte-level BPE), base models built from a config
(families x sizes), and loading of built, local or hub models with safe defaults."""

from __future__ import annotations

from pathlib import Path

EOS, PAD, USER, ASSISTANT = "<|endoftext|>", "<|pad|>", "<|user|>", "<|assistant|>"

# One chat format for every model that brings none; training and evaluation both use it.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\n' + m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ '<|endoftext|>' }}{% endif %}{{ '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def train_tokenizer(texts, vocab_size: int, out_dir: str | Path, kind: str = "bpe"):
    """A tokenizer trained on the corpus, saved with itlab's chat template.

    ``kind="bpe"``: byte-level BPE of ``vocab_size`` pieces with single-digit tokens (numbers
    stay compositional). ``kind="char"``: one piece per byte (every character of the synthetic
    tasks is one token, so reversing or sorting a word is a permutation of tokens; a BPE would
    merge letters into pieces whose spelling the model never sees). The character vocabulary
    is the 256 byte symbols plus the special tokens, whatever the corpus holds.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if kind not in ("bpe", "char"):
        raise ValueError(f"unknown tokenizer kind {kind!r} (bpe or char)")
    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    if kind == "bpe":
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS, PAD, USER, ASSISTANT],
                                      show_progress=False)
    else:  # an alphabet and no merges: a vocabulary no larger than the alphabet stops the trainer there
        tok.pre_tokenizer = byte_level
        trainer = trainers.BpeTrainer(vocab_size=1, special_tokens=[EOS, PAD, USER, ASSISTANT], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD, bos_token=EOS,
                                   additional_special_tokens=[USER, ASSISTANT])
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)
    return fast


def ensure_chat_template(tokenizer):
    """Base hub models (e.g. Llama-2) have no chat template: give them itlab's."""
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_config(architecture: str, size: dict, tokenizer):
    """A transformers config for a model built here; families differ in architecture, not just name."""
    from transformers import GPT2Config, GPTNeoXConfig, LlamaConfig

    common = dict(vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id,
                  bos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    h, n, heads, inter = size["hidden_size"], size["num_layers"], size["num_heads"], size["intermediate_size"]
    pos = size.get("max_position_embeddings", 256)
    if architecture == "llama":  # RMSNorm, SwiGLU, rotary, tied embeddings
        return LlamaConfig(hidden_size=h, num_hidden_layers=n, num_attention_heads=heads, num_key_value_heads=heads,
                           intermediate_size=inter, max_position_embeddings=pos, tie_word_embeddings=True, **common)
    if architecture == "gpt_neox":  # LayerNorm, GELU, parallel residual, partial rotary, untied
        return GPTNeoXConfig(hidden_size=h, num_hidden_layers=n, num_attention_heads=heads, intermediate_size=inter,
                             max_position_embeddings=pos, rotary_pct=0.25, use_parallel_residual=True,
                             tie_word_embeddings=False, **common)
    if architecture == "gpt2":  # learned positions, pre-LayerNorm (study B's model)
        return GPT2Config(n_embd=h, n_layer=n, n_head=heads, n_inner=inter, n_positions=pos, **common)
    raise ValueError(f"unknown architecture {architecture!r}")


def build_model(architecture: str, size: dict, tokenizer, seed: int):
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(build_config(architecture, size, tokenizer))


def build_initial_model(spec: dict, tokenizer, seed: int):
    """The seeded model a from-scratch run starts from (TrainArguments.init_model: architecture, size)."""
    return build_model(spec["architecture"], spec["size"], tokenizer, seed)


def load_tokenizer(location: str, trust_remote_code: bool = False, **kwargs):
    from transformers import AutoTokenizer

    return ensure_chat_template(AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code, **kwargs))


def load_model(location: str, trust_remote_code: bool = False, dtype=None, **kwargs):
    """Load a causal LM from a folder or a hub id: safetensors only, remote code only if asked."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(location, dtype=dtype or torch.float32, use_safetensors=True,
                                                trust_remote_code=trust_remote_code, **kwargs)

