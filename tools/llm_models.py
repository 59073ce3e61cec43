"""Tiny random Hugging Face models for the LLM test bundles.

Each spec builds a `transformers` model of the family with a fixed seed and
weights scaled so that logits are well spread (the default 0.02 init gives
nearly flat logits, where fp16 error would decide greedy ties), and saves it
as a Hugging Face folder (config.json + model.safetensors) for ANEMLL's
converter, with a tokenizer from `llm_tokenizers`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers

import llm_tokenizers


@dataclass
class ModelSpec:
    """Geometry of one tiny model."""
    family: str                 # "qwen3" | "llama3" | "gemma3"
    vocab: int = 1536           # tokenizer size; the model's vocab is that rounded up to a multiple of 128
    hidden: int = 128
    intermediate: int = 384
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 64
    seed: int = 0
    sliding_window: int | None = None
    layer_types: list[str] | None = None
    extra: dict = field(default_factory=dict)


def _config(spec: ModelSpec, vocab_size: int, ids: dict, context: int):
    common = dict(vocab_size=vocab_size, hidden_size=spec.hidden,
                  intermediate_size=spec.intermediate, num_hidden_layers=spec.layers,
                  num_attention_heads=spec.heads, num_key_value_heads=spec.kv_heads,
                  head_dim=spec.head_dim, max_position_embeddings=max(context, 2048),
                  tie_word_embeddings=False, torch_dtype="float32")
    if spec.family == "qwen3":
        return transformers.Qwen3Config(
            **common, rms_norm_eps=1e-6, rope_theta=1_000_000.0, hidden_act="silu",
            bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"], attention_bias=False, use_sliding_window=False)
    if spec.family == "llama3":
        return transformers.LlamaConfig(
            **common, rms_norm_eps=1e-5, rope_theta=500_000.0, hidden_act="silu",
            bos_token_id=ids["<|begin_of_text|>"], eos_token_id=ids["<|eot_id|>"],
            pad_token_id=ids["<|end_of_text|>"], attention_bias=False, mlp_bias=False)
    if spec.family == "gemma3":
        return transformers.Gemma3TextConfig(
            **common, rms_norm_eps=1e-6, rope_theta=1_000_000.0, rope_local_base_freq=10_000.0,
            hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=spec.head_dim,
            sliding_window=spec.sliding_window, layer_types=spec.layer_types,
            bos_token_id=ids["<bos>"], eos_token_id=[ids["<eos>"], ids["<end_of_turn>"]],
            pad_token_id=ids["<pad>"], attn_logit_softcapping=None, final_logit_softcapping=None,
            rope_scaling=None)
    raise ValueError(spec.family)


def model_class(family: str):
    return {"qwen3": transformers.Qwen3ForCausalLM, "llama3": transformers.LlamaForCausalLM,
            "gemma3": transformers.Gemma3ForCausalLM}[family]


def _randomize(model, spec: ModelSpec) -> None:
    """Seeded weights with useful spread: N(0, 1/sqrt(fan_in)) matrices, norms near 1."""
    g = torch.Generator().manual_seed(spec.seed)
    gemma = spec.family == "gemma3"
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if p.ndim == 1:  # norm weights (Gemma's are offsets: scale = 1 + w)
                base = 0.0 if gemma else 1.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 if not gemma else 0.1))
            elif "lm_head" in name:
                # Rows with log-normal norms: a few tokens stand out at each
                # step, so greedy paths have top-1/top-2 gaps well above fp16
                # error far more often than with equal-norm rows.
                rows = torch.exp(torch.randn(p.shape[0], 1, generator=g))
                p.copy_(torch.randn(p.shape, generator=g) * rows / p.shape[1] ** 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)


def build(spec: ModelSpec, out_dir: Path, context: int, tokenizer_texts=None):
    """Writes an HF folder (model + tokenizer) to out_dir; returns (model, special ids)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    n_added = len(llm_tokenizers.FAMILIES[spec.family]["added"])
    tok = llm_tokenizers.train(spec.family, spec.vocab - n_added, tokenizer_texts)
    ids = llm_tokenizers.write(tok, spec.family, out_dir, context)
    # ANEMLL splits the LM head into 8 or 16 parts and palettizes each in
    # groups of 8 rows: a vocabulary that is a multiple of 128 keeps it LUT.
    vocab_size = -(-tok.get_vocab_size() // 128) * 128
    cfg = _config(spec, vocab_size, ids, context)
    torch.manual_seed(spec.seed)
    model = model_class(spec.family)(cfg).eval()
    _randomize(model, spec)
    model.save_pretrained(out_dir, safe_serialization=True)
    # ANEMLL reads rope_theta (and, for Gemma, the text fields) from the top
    # level of config.json; write it explicitly whatever transformers did.
    cfg_path = out_dir / "config.json"
    data = json.loads(cfg_path.read_text())
    data["rope_theta"] = cfg.rope_theta
    cfg_path.write_text(json.dumps(data, indent=2) + "\n")
    return model, ids
