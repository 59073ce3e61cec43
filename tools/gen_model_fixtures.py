"""Model-level fixtures: small torch and transformers models converted by
coremltools, with torch's own outputs as the expected values.

    tools/.venv/bin/python tools/gen_model_fixtures.py [--only NAME ...]

Writes `crates/candle-coreml/tests/fixtures/torch/`:

- `<name>.mlpackage`: the converted model (ML Program, random weights,
  `torch.manual_seed`, metadata scrubbed so the bytes are deterministic);
- `<name>.npz` (uncompressed): feed-forward models have `input:<name>` and
  `output:<name>`; stateful ones have `stepK/input:<name>` and
  `stepK/output:<name>` for the calls in order on one fresh state, and
  `final_state:<name>` for the state after the last step (torch's buffers);
  the two-chunk model has `stepK/chunk1/...` and `stepK/chunk2/...`;
- `<name>.json`: `{"rtol", "atol", "precision", "kind", ...}`; `kind` is
  `feedforward`, `stateful`, `multifunction` (with `steps`: the function of
  each step) or `chunked` (with `chunks`: the two package names).

Expected outputs are torch float32 outputs of the fp32 model, also for the
fp16 variants (compare those with the looser tolerance).
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

import coremltools as ct

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fixture_io as fio  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "crates" / "candle-coreml" / "tests" / "fixtures" / "torch"
SEED = 20240611

# |got - want| <= atol + rtol * |want|. fp32 programs: only summation-order
# differences remain. fp16 programs: weights and activations rounded to 11 bits.
TOL_FP32 = {"rtol": 1e-4, "atol": 1e-4}
TOL_FP16 = {"rtol": 1e-2, "atol": 1e-2}

# Stateful decoder sizes.
VOCAB, HIDDEN, HEADS, HEAD_DIM, LAYERS, CTX = 64, 32, 2, 16, 2, 16
PROMPT, STEPS = 5, 4
NEG = -1e4  # additive mask value for masked positions


def _seed(tag: str) -> None:
    torch.manual_seed(SEED + sum(map(ord, tag)))


def _trace(module: nn.Module, example):
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.trace(module, example, check_trace=False)


def _convert(traced, inputs, outputs, precision="fp32", target=ct.target.iOS17, states=None):
    kwargs = {}
    if states:
        kwargs["states"] = states
    return ct.convert(
        traced,
        inputs=inputs,
        outputs=[ct.TensorType(name=n) for n in outputs],
        convert_to="mlprogram",
        minimum_deployment_target=target,
        compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
        **kwargs,
    )


def _save_package(mlmodel, name: str, tmp: Path) -> None:
    tmp_pkg = tmp / f"{name}.mlpackage"
    mlmodel.save(str(tmp_pkg))
    _resave(tmp_pkg, name)


def _resave(tmp_pkg: Path, name: str) -> None:
    fio.resave_package(tmp_pkg, OUT / f"{name}.mlpackage", name)


def _write(name: str, npz: dict, meta: dict) -> None:
    fio.write_npz(OUT / f"{name}.npz", npz)
    fio.write_json(OUT / f"{name}.json", meta)


def _f32(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


# --------------------------------------------------------------------------
# Feed-forward models
# --------------------------------------------------------------------------


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.fc2 = nn.Linear(32, 32)
        self.fc3 = nn.Linear(32, 8)

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        x = nn.functional.gelu(self.fc2(x))
        return torch.softmax(self.fc3(x), dim=-1)


class SmallCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = nn.functional.avg_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(torch.flatten(x, 1))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        skip = x if self.down is None else self.down(x)
        return torch.relu(y + skip)


class TinyResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = BasicBlock(8, 8, 1)
        self.layer2 = BasicBlock(8, 16, 2)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        x = nn.functional.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


class DwSeparable(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, act: nn.Module):
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = act

    def forward(self, x):
        return self.act(self.bn2(self.pw(self.act(self.bn1(self.dw(x))))))


class TinyMobileNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8),
                                  nn.Hardswish())
        self.b1 = DwSeparable(8, 16, 1, nn.ReLU6())
        self.b2 = DwSeparable(16, 24, 2, nn.Hardswish())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        x = self.pool(self.b2(self.b1(self.stem(x))))
        return self.fc(torch.flatten(x, 1))


def _randomize_bn(module: nn.Module) -> nn.Module:
    """Non-trivial running statistics so batch-norm is not an identity."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn_like(m.running_mean) * 0.1)
                m.running_var.copy_(torch.rand_like(m.running_var) + 0.5)
                m.weight.copy_(torch.rand_like(m.weight) + 0.5)
                m.bias.copy_(torch.randn_like(m.bias) * 0.1)
    return module.eval()


def build_feedforward(name: str, model: nn.Module, x: torch.Tensor, tmp: Path, precisions=("fp32",)) -> None:
    model = _randomize_bn(model)
    with torch.no_grad():
        y = model(x)
    traced = _trace(model, x)
    for prec in precisions:
        full = f"{name}_{prec}"
        ml = _convert(traced, [ct.TensorType(name="x", shape=tuple(x.shape))], ["y"], prec)
        _save_package(ml, full, tmp)
        tol = TOL_FP32 if prec == "fp32" else TOL_FP16
        _write(full, {"input:x": _f32(x), "output:y": _f32(y)},
               {**tol, "precision": prec, "kind": "feedforward"})


def build_mlp(tmp: Path) -> None:
    _seed("mlp")
    build_feedforward("mlp", Mlp(), torch.randn(2, 16), tmp, ("fp32", "fp16"))


def build_cnn(tmp: Path) -> None:
    _seed("cnn")
    build_feedforward("cnn", SmallCnn(), torch.randn(1, 3, 16, 16), tmp, ("fp32", "fp16"))


def build_resnet(tmp: Path) -> None:
    _seed("resnet")
    build_feedforward("resnet", TinyResNet(), torch.randn(1, 3, 16, 16), tmp)


def build_mobilenet(tmp: Path) -> None:
    _seed("mobilenet")
    build_feedforward("mobilenet", TinyMobileNet(), torch.randn(1, 3, 16, 16), tmp)


# --------------------------------------------------------------------------
# transformers models
# --------------------------------------------------------------------------


class BertWrapper(nn.Module):
    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask):
        return self.bert(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)[0]


def build_bert(tmp: Path) -> None:
    from transformers import BertConfig, BertModel

    _seed("bert")
    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=32, torchscript=True,
                     attn_implementation="eager")
    model = BertWrapper(BertModel(cfg, add_pooling_layer=False)).eval()
    ids = torch.randint(0, 100, (1, 8), dtype=torch.int32)
    mask = torch.ones(1, 8, dtype=torch.int32)
    mask[0, 6:] = 0  # two padding tokens
    with torch.no_grad():
        y = model(ids.long(), mask.long())
    traced = _trace(model, (ids, mask))
    ml = _convert(traced, [ct.TensorType(name="input_ids", shape=(1, 8), dtype=np.int32),
                           ct.TensorType(name="attention_mask", shape=(1, 8), dtype=np.int32)],
                  ["last_hidden_state"])
    _save_package(ml, "bert_fp32", tmp)
    _write("bert_fp32", {"input:input_ids": ids.numpy(), "input:attention_mask": mask.numpy(),
                         "output:last_hidden_state": _f32(y)},
           {**TOL_FP32, "precision": "fp32", "kind": "feedforward"})


class LlamaWrapper(nn.Module):
    """Full-sequence logits with an explicit 4D additive causal mask and
    explicit position ids (traces cleanly, FORMATS.md section 6)."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, position_ids, causal_mask):
        out = self.lm(input_ids=input_ids, attention_mask=causal_mask, position_ids=position_ids,
                      use_cache=False, return_dict=False)
        return out[0]


def build_llama(tmp: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    _seed("llama")
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                      attn_implementation="eager", tie_word_embeddings=False)
    model = LlamaWrapper(LlamaForCausalLM(cfg)).eval()
    t = 8
    ids = torch.randint(0, 64, (1, t), dtype=torch.int32)
    pos = torch.arange(t, dtype=torch.int32).unsqueeze(0)
    mask = torch.triu(torch.full((t, t), NEG), diagonal=1).reshape(1, 1, t, t)
    with torch.no_grad():
        y = model(ids.long(), pos.long(), mask)
        # The wrapper with an explicit mask must equal the plain causal model.
        plain = model.lm(input_ids=ids.long(), use_cache=False, return_dict=False)[0]
    assert torch.allclose(y, plain, atol=1e-5), "explicit mask disagrees with the causal model"
    traced = _trace(model, (ids, pos, mask))
    ml = _convert(traced, [ct.TensorType(name="input_ids", shape=(1, t), dtype=np.int32),
                           ct.TensorType(name="position_ids", shape=(1, t), dtype=np.int32),
                           ct.TensorType(name="causal_mask", shape=(1, 1, t, t), dtype=np.float32)],
                  ["logits"])
    _save_package(ml, "llama_fp32", tmp)
    _write("llama_fp32", {"input:input_ids": ids.numpy(), "input:position_ids": pos.numpy(),
                          "input:causal_mask": mask.numpy(), "output:logits": _f32(y)},
           {**TOL_FP32, "precision": "fp32", "kind": "feedforward"})


# --------------------------------------------------------------------------
# Stateful KV-cache decoder (hand-written; RoPE, RMSNorm, SiLU MLP)
# --------------------------------------------------------------------------

CACHE_SHAPE = (LAYERS, HEADS, CTX, HEAD_DIM)


def _rope_tables():
    inv = 1.0 / (10000.0 ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float32) / HEAD_DIM))
    freqs = torch.outer(torch.arange(CTX, dtype=torch.float32), inv)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def _rotate_half(x):
    half = HEAD_DIM // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def _rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w


class DecoderLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1 = nn.Parameter(torch.rand(HIDDEN) + 0.5)
        self.q = nn.Linear(HIDDEN, HEADS * HEAD_DIM, bias=False)
        self.k = nn.Linear(HIDDEN, HEADS * HEAD_DIM, bias=False)
        self.v = nn.Linear(HIDDEN, HEADS * HEAD_DIM, bias=False)
        self.o = nn.Linear(HEADS * HEAD_DIM, HIDDEN, bias=False)
        self.norm2 = nn.Parameter(torch.rand(HIDDEN) + 0.5)
        self.gate = nn.Linear(HIDDEN, 64, bias=False)
        self.up = nn.Linear(HIDDEN, 64, bias=False)
        self.down = nn.Linear(64, HIDDEN, bias=False)

    def forward(self, h, cos, sin, mask, k_cache, v_cache, layer: int, pos, round_cache: bool):
        t = h.shape[1]
        x = _rms_norm(h, self.norm1)
        q = self.q(x).view(1, t, HEADS, HEAD_DIM).transpose(1, 2)
        k = self.k(x).view(1, t, HEADS, HEAD_DIM).transpose(1, 2)
        v = self.v(x).view(1, t, HEADS, HEAD_DIM).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        if round_cache:
            # The reference run stores what Core ML's fp16 state holds.
            k, v = k.half().float(), v.half().float()
        # In-place cache update at the dynamic position (becomes slice_update).
        k_cache[layer:layer + 1, :, pos:pos + t, :] = k
        v_cache[layer:layer + 1, :, pos:pos + t, :] = v
        keys = k_cache[layer:layer + 1]
        values = v_cache[layer:layer + 1]
        att = torch.matmul(q, keys.transpose(-1, -2)) / math.sqrt(HEAD_DIM) + mask
        o = torch.matmul(torch.softmax(att, dim=-1), values)
        h = h + self.o(o.transpose(1, 2).reshape(1, t, HEADS * HEAD_DIM))
        x = _rms_norm(h, self.norm2)
        return h + self.down(nn.functional.silu(self.gate(x)) * self.up(x))


class DecoderParts(nn.Module):
    """The weights, shared by every traced module below."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, HIDDEN)
        self.layers = nn.ModuleList([DecoderLayer() for _ in range(LAYERS)])
        self.norm = nn.Parameter(torch.rand(HIDDEN) + 0.5)
        self.head = nn.Linear(HIDDEN, VOCAB, bias=False)


class _CachedModule(nn.Module):
    """A module owning `k_cache`/`v_cache` buffers (the Core ML states) and
    running layers `first..last` of `parts`; `embed` and `head` choose whether
    it takes token ids / returns logits or passes hidden states."""

    def __init__(self, parts: DecoderParts, first: int, last: int, embed: bool, head: bool):
        super().__init__()
        self.parts = parts
        self.first, self.last, self.embed, self.head = first, last, embed, head
        self.round_cache = False  # True for the torch reference runs only
        cos, sin = _rope_tables()
        self.register_buffer("cos_table", cos)
        self.register_buffer("sin_table", sin)
        self.register_buffer("k_cache", torch.zeros(CACHE_SHAPE))
        self.register_buffer("v_cache", torch.zeros(CACHE_SHAPE))

    def forward(self, tokens_or_hidden, position_ids, causal_mask, current_pos):
        h = self.parts.embed(tokens_or_hidden) if self.embed else tokens_or_hidden
        cos = self.cos_table[position_ids].unsqueeze(0).unsqueeze(0)
        sin = self.sin_table[position_ids].unsqueeze(0).unsqueeze(0)
        pos = current_pos[0]
        for i in range(self.first, self.last):
            h = self.parts.layers[i](h, cos, sin, causal_mask, self.k_cache, self.v_cache, i, pos,
                                       self.round_cache)
        if self.head:
            return self.parts.head(_rms_norm(h, self.parts.norm))
        return h


def _decoder_parts() -> DecoderParts:
    _seed("kv_decoder")
    parts = DecoderParts().eval()
    with torch.no_grad():
        for p in parts.parameters():
            if p.dim() == 2:
                p.mul_(2.0)  # livelier attention than the default init
    return parts


def _step_inputs(ids: np.ndarray, pos: int) -> dict:
    """Inputs of one call: `ids` [1, T] at absolute positions pos..pos+T."""
    t = ids.shape[1]
    rows = np.arange(pos, pos + t)[:, None]
    mask = np.where(np.arange(CTX)[None, :] <= rows, 0.0, NEG).astype(np.float32)
    return {
        "input_ids": ids.astype(np.int32),
        "position_ids": np.arange(pos, pos + t, dtype=np.int32),
        "causal_mask": mask.reshape(1, 1, t, CTX),
        "current_pos": np.array([pos], dtype=np.int32),
    }


def _token_schedule() -> list:
    """Prompt of PROMPT tokens, then STEPS single tokens: [(ids, pos)]."""
    rng = np.random.default_rng(SEED)
    toks = rng.integers(0, VOCAB, size=PROMPT + STEPS)
    calls = [(toks[None, :PROMPT], 0)]
    calls += [(toks[None, PROMPT + i:PROMPT + i + 1], PROMPT + i) for i in range(STEPS)]
    return calls


def _torch_call(mod, inputs: dict, first_input: str = "input_ids"):
    mod.round_cache = True
    with torch.no_grad():
        x = torch.from_numpy(inputs[first_input])
        if first_input == "input_ids":
            x = x.long()
        return mod(x, torch.from_numpy(inputs["position_ids"]).long(),
                   torch.from_numpy(inputs["causal_mask"]), torch.from_numpy(inputs["current_pos"]).long())


def _reference_steps(parts: DecoderParts) -> tuple[list, dict]:
    """Runs the schedule in torch on one fresh cache; checks it against one
    uncached full-sequence pass. Returns [(inputs, logits)] and final caches."""
    mod = _CachedModule(parts, 0, LAYERS, True, True).eval()
    steps = []
    for ids, pos in _token_schedule():
        inputs = _step_inputs(ids, pos)
        steps.append((inputs, _f32(_torch_call(mod, inputs))))
    full = _CachedModule(parts, 0, LAYERS, True, True).eval()
    all_ids = np.concatenate([ids for ids, _ in _token_schedule()], axis=1)
    full_logits = _f32(_torch_call(full, _step_inputs(all_ids, 0)))
    stepped = np.concatenate([lg for _, lg in steps], axis=1)
    assert np.allclose(full_logits, stepped, atol=1e-4), "cached steps disagree with the full sequence"
    final = {"k_cache": _f32(mod.k_cache), "v_cache": _f32(mod.v_cache)}
    return steps, final


def _decoder_ct_inputs(t, first=("input_ids", np.int32, 2)):
    name, dtype, rank = first
    lead = (1, t) if rank == 2 else (1, t, HIDDEN)
    return [
        ct.TensorType(name=name, shape=lead, dtype=dtype),
        ct.TensorType(name="position_ids", shape=(t,), dtype=np.int32),
        ct.TensorType(name="causal_mask", shape=(1, 1, t, CTX), dtype=np.float32),
        ct.TensorType(name="current_pos", shape=(1,), dtype=np.int32),
    ]


def _ct_states():
    return [ct.StateType(wrapped_type=ct.TensorType(shape=CACHE_SHAPE, dtype=np.float16), name=n)
            for n in ("k_cache", "v_cache")]


def _trace_cached(mod: nn.Module, t: int, hidden_in: bool = False):
    inputs = _step_inputs(np.zeros((1, t), dtype=np.int32), 0)
    first = torch.zeros(1, t, HIDDEN) if hidden_in else torch.from_numpy(inputs["input_ids"])
    example = (first, torch.from_numpy(inputs["position_ids"]), torch.from_numpy(inputs["causal_mask"]),
               torch.from_numpy(inputs["current_pos"]))
    return _trace(mod, example)


def _steps_npz(steps: list, final: dict, prefix=lambda k: "") -> dict:
    npz = {}
    for k, (inputs, logits) in enumerate(steps):
        for n, v in inputs.items():
            npz[f"step{k}/{prefix(k)}input:{n}"] = v
        npz[f"step{k}/{prefix(k)}output:logits"] = logits
    for n, v in final.items():
        npz[f"final_state:{n}"] = v
    return npz


# The states are fp16 (the program casts around slice_update); the torch
# reference rounds cached keys/values to fp16 the same way, so what remains is
# fp32 summation order plus the odd key/value landing on the other side of an
# fp16 rounding boundary: a little looser than TOL_FP32.
TOL_STATE = {"rtol": 1e-3, "atol": 1e-3}


def build_kv_decoder(tmp: Path) -> None:
    parts = _decoder_parts()
    steps, final = _reference_steps(parts)
    mod = _CachedModule(parts, 0, LAYERS, True, True).eval()
    traced = _trace_cached(mod, PROMPT)
    t = ct.RangeDim(lower_bound=1, upper_bound=CTX, default=PROMPT, symbol="T")
    ml = _convert(traced, _decoder_ct_inputs(t), ["logits"], target=ct.target.iOS18, states=_ct_states())
    _save_package(ml, "kv_decoder", tmp)
    _write("kv_decoder", _steps_npz(steps, final),
           {**TOL_STATE, "precision": "fp32", "kind": "stateful", "prompt": PROMPT, "steps": STEPS + 1})


def build_kv_multifunction(tmp: Path) -> None:
    parts = _decoder_parts()
    steps, final = _reference_steps(parts)
    paths = {}
    for fname, t in (("prefill", PROMPT), ("infer", 1)):
        mod = _CachedModule(parts, 0, LAYERS, True, True).eval()
        ml = _convert(_trace_cached(mod, t), _decoder_ct_inputs(t), ["logits"], target=ct.target.iOS18,
                      states=_ct_states())
        paths[fname] = tmp / f"kvmf_{fname}.mlpackage"
        ml.save(str(paths[fname]))
    desc = ct.utils.MultiFunctionDescriptor()
    for fname, p in paths.items():
        desc.add_function(str(p), src_function_name="main", target_function_name=fname)
    desc.default_function_name = "infer"
    merged = tmp / "kv_multifunction.mlpackage"
    ct.utils.save_multifunction(desc, str(merged))
    _resave(merged, "kv_multifunction")
    functions = ["prefill"] + ["infer"] * STEPS
    _write("kv_multifunction", _steps_npz(steps, final),
           {**TOL_STATE, "precision": "fp32", "kind": "multifunction", "steps": functions})


def build_kv_chunks(tmp: Path) -> None:
    parts = _decoder_parts()
    steps, final = _reference_steps(parts)
    # Check in torch that the two chunks on shared buffers give the same logits.
    c1 = _CachedModule(parts, 0, 1, True, False).eval()
    c2 = _CachedModule(parts, 1, LAYERS, False, True).eval()
    c2.k_cache, c2.v_cache = c1.k_cache, c1.v_cache
    npz = {}
    for k, (inputs, logits) in enumerate(steps):
        h = _torch_call(c1, inputs)
        got = _torch_call(c2, {**inputs, "hidden_states": h.numpy()}, "hidden_states")
        assert np.allclose(_f32(got), logits, atol=1e-5), "chunks disagree with the whole model"
        for n, v in inputs.items():
            npz[f"step{k}/input:{n}"] = v
        npz[f"step{k}/output:hidden_states"] = _f32(h)
        npz[f"step{k}/output:logits"] = logits
    for n, v in final.items():
        npz[f"final_state:{n}"] = v
    t = ct.RangeDim(lower_bound=1, upper_bound=CTX, default=PROMPT, symbol="T")
    m1 = _CachedModule(parts, 0, 1, True, False).eval()
    m2 = _CachedModule(parts, 1, LAYERS, False, True).eval()
    ml1 = _convert(_trace_cached(m1, PROMPT), _decoder_ct_inputs(t), ["hidden_states"],
                   target=ct.target.iOS18, states=_ct_states())
    t = ct.RangeDim(lower_bound=1, upper_bound=CTX, default=PROMPT, symbol="T")
    ml2 = _convert(_trace_cached(m2, PROMPT, hidden_in=True),
                   _decoder_ct_inputs(t, ("hidden_states", np.float32, 3)), ["logits"],
                   target=ct.target.iOS18, states=_ct_states())
    _save_package(ml1, "kv_chunk1", tmp)
    _save_package(ml2, "kv_chunk2", tmp)
    _write("kv_chunks", npz, {**TOL_STATE, "precision": "fp32", "kind": "chunked",
                              "chunks": ["kv_chunk1.mlpackage", "kv_chunk2.mlpackage"]})


class OtherState(nn.Module):
    """A state named like the decoder's (`k_cache`) with another shape."""

    def __init__(self):
        super().__init__()
        self.register_buffer("k_cache", torch.zeros(1, 4))

    def forward(self, x):
        self.k_cache[:, :] = self.k_cache + x
        return self.k_cache * 2.0


def build_state_other(tmp: Path) -> None:
    mod = OtherState().eval()
    x = torch.arange(4, dtype=torch.float32).reshape(1, 4)
    with torch.no_grad():
        y = mod(x)
    traced = _trace(OtherState().eval(), x)
    ml = _convert(traced, [ct.TensorType(name="x", shape=(1, 4), dtype=np.float32)], ["y"],
                  target=ct.target.iOS18,
                  states=[ct.StateType(wrapped_type=ct.TensorType(shape=(1, 4), dtype=np.float16),
                                       name="k_cache")])
    _save_package(ml, "state_other", tmp)
    _write("state_other", {"step0/input:x": _f32(x), "step0/output:y": _f32(y),
                           "final_state:k_cache": _f32(mod.k_cache)},
           {**TOL_FP32, "precision": "fp32", "kind": "stateful", "steps": 1})

BUILDERS = {
    "mlp": build_mlp,
    "cnn": build_cnn,
    "resnet": build_resnet,
    "mobilenet": build_mobilenet,
    "bert": build_bert,
    "llama": build_llama,
    "kv_decoder": build_kv_decoder,
    "kv_multifunction": build_kv_multifunction,
    "kv_chunks": build_kv_chunks,
    "state_other": build_state_other,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", choices=sorted(BUILDERS), help="builders to run (default: all)")
    args = ap.parse_args()
    names = args.only or list(BUILDERS)
    if not args.only and OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for n in names:
            print(f"== {n}", flush=True)
            BUILDERS[n](Path(tmp))
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"{OUT}: {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
