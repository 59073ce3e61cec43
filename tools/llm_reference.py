"""Greedy references for a converted bundle, computed by Hugging Face transformers.

The reference model is the family's `transformers` class (eager attention,
fp32) holding the bundle's own dequantized weights (`llm_weights`). Each
step runs the whole sequence again without a KV cache, so nothing but the
model's own forward decides the logits. Prompt ids come from the bundle's
tokenizer.json through transformers' `AutoTokenizer` and its
`apply_chat_template` (transformers' own jinja2 rendering).

The fp16 figure: the same model cast to fp16 (CPU) is run along the fp32
greedy path (the same input ids at every step) and the largest absolute
logit difference is recorded, per case and per bundle.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
import transformers

import llm_models
import llm_weights

STOP_TOKENS = ["<|endoftext|>", "<|im_end|>", "<end_of_turn>", "<|eot_id|>"]


def reference_model(family: str, hf_dir: Path, bundle: Path, original) -> tuple:
    """The HF model with the bundle's weights, and the matching report."""
    tensors = {}
    vocab = original.config.vocab_size
    for pkg in sorted(bundle.glob("*.mlpackage")):
        if "_lm_head" in pkg.name:
            tensors[f"{pkg.name}:joined_splits"] = llm_weights.lm_head_parts(pkg, vocab)
        elif "_monolithic" in pkg.name:
            tensors.update(llm_weights.package_tensors(pkg))
            tensors[f"{pkg.name}:joined_splits"] = llm_weights.lm_head_parts(pkg, vocab)
        else:
            tensors.update(llm_weights.package_tensors(pkg))
    params = dict(original.named_parameters())
    values, report = llm_weights.assign(params, tensors, offset_norm=family == "gemma3")
    cfg = transformers.AutoConfig.from_pretrained(hf_dir)
    cfg._attn_implementation = "eager"
    model = llm_models.model_class(family)(cfg).eval()
    state = {k: torch.from_numpy(v) for k, v in values.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if "rotary" not in m]
    if missing or unexpected:
        raise RuntimeError(f"reference model: missing {missing}, unexpected {unexpected}")
    return model, report


def tokenizer(bundle: Path):
    return transformers.AutoTokenizer.from_pretrained(str(bundle), use_fast=True)


def stop_ids(tok) -> set[int]:
    ids = set()
    if tok.eos_token_id is not None:
        ids.add(tok.eos_token_id)
    vocab = tok.get_vocab()
    ids.update(vocab[t] for t in STOP_TOKENS if t in vocab)
    return ids


def prompt_ids(tok, case: dict) -> list[int]:
    if "append_ids" in case:  # token history kept by a session, then the next turn's ids
        return list(case["history_ids"]) + list(case["append_ids"])
    if "messages" in case:
        ids = tok.apply_chat_template(case["messages"], tokenize=True,
                                      **case.get("template_kwargs", {}))
        return list(ids["input_ids"] if isinstance(ids, dict) else ids)
    return tok(case["text"], add_special_tokens=case.get("add_special_tokens", True))["input_ids"]


@torch.no_grad()
def _logits(model, ids: list[int], masks=None) -> torch.Tensor:
    x = torch.tensor([ids], dtype=torch.long)
    kw = {} if masks is None else {"attention_mask": masks(len(ids), next(model.parameters()).dtype)}
    return model(input_ids=x, use_cache=False, **kw).logits[0, -1].float()


def anemll_gemma_masks(prompt_len: int, window: int, batch: int):
    """Per-layer-type masks reproducing ANEMLL 0.3.5's Gemma 3 prefill loop.

    ANEMLL (tests/chat.py) prefills full windows of `batch` tokens and feeds
    the rest one at a time; a window starting at or after `window` goes
    through `prefill_rotate`, which shifts the whole window into the local
    cache and attends with the causal mask's columns 0..window-1, all 0 on
    those rows: on sliding layers every token of such a window sees the
    last `window` cached tokens, later tokens of its own window included.
    Everything else (global layers, prefill below the window, one-token
    steps) is the usual causal / sliding-window attention.
    Returns masks(n, dtype) -> {"full_attention": ..., "sliding_attention": ...}.
    """
    def masks(n, dtype):
        neg = torch.finfo(dtype).min
        q = torch.arange(n)[:, None]
        k = torch.arange(n)[None, :]
        full_ok = k <= q
        slide_ok = full_ok & (k > q - window)
        b = 0
        while b + batch <= prompt_len:
            if b >= window:
                rows = slice(b, b + batch)
                slide_ok[rows] = (k[0] >= b + batch - window) & (k[0] < b + batch)
            b += batch
        to_mask = lambda ok: torch.where(ok, 0.0, neg).to(dtype)[None, None]  # noqa: E731
        return {"full_attention": to_mask(full_ok), "sliding_attention": to_mask(slide_ok)}
    return masks


@torch.no_grad()
def greedy(model, ids: list[int], steps: int, stops: set[int], abort_below: float = 0.0,
           masks=None) -> dict:
    """Greedy decoding; stops after a stop token (not included in greedy_ids).

    With abort_below > 0 it gives up (returns "aborted": True) at the first
    step whose top-1/top-2 gap is smaller: the prompt is then not used.
    """
    seq = list(ids)
    out, rows, margins = [], [], []
    for _ in range(steps):
        logits = _logits(model, seq, masks)
        rows.append(logits.numpy().astype(np.float32))
        top2 = torch.topk(logits, 2).values
        margins.append(float(top2[0] - top2[1]))
        if margins[-1] < abort_below:
            return {"greedy_ids": out, "logits": np.stack(rows), "stop": None,
                    "margins": margins, "aborted": True}
        nxt = int(torch.argmax(logits))
        if nxt in stops:
            return {"greedy_ids": out, "logits": np.stack(rows), "stop": nxt, "margins": margins}
        out.append(nxt)
        seq.append(nxt)
    return {"greedy_ids": out, "logits": np.stack(rows), "stop": None, "margins": margins}


@torch.no_grad()
def fp16_diff(model, ids: list[int], greedy_ids: list[int], want: np.ndarray, masks=None) -> float:
    """Max |logit_fp16 - logit_fp32| along the fp32 greedy path."""
    # A copy: casting in place and back would round the fp32 model's rotary
    # inv_freq buffer (its weights are fp16 values already).
    half = copy.deepcopy(model).to(torch.float16)
    worst = 0.0
    seq = list(ids)
    for step in range(want.shape[0]):
        got = _logits(half, seq, masks).numpy()
        worst = max(worst, float(np.abs(got - want[step]).max()))
        if step < len(greedy_ids):
            seq.append(greedy_ids[step])
    return worst


def write(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
