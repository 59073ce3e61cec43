"""Compressed-weight fixtures: tests/fixtures/compression/.

One small fp16 program (conv 16->64 3x3, relu, global mean, linear 64->64) is
compressed with `coremltools.optimize.coreml` in each mode. For every
`constexpr_*` op the dense value is written to `<name>_dense.npz` (key = the
op's output name), computed by coremltools' own per-op decompression
(`op.materialized_val_inference()` inside `decompress_weights`' own graph
pass, `WeightDecompressor`) on the package re-read from disk; the final
outputs are cross-checked against the constants the pass leaves behind.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import coremltools as ct
import coremltools.optimize.coreml as cto
from coremltools.converters.mil import Builder as mb
from coremltools.models.utils import _apply_graph_pass
from coremltools.optimize.coreml._quantization_passes import WeightDecompressor
from coremltools.converters.mil.mil import types

import fixture_io as fio

SEED = 20240612

_C = cto.OptimizationConfig


def _weights():
    r = np.random.default_rng(SEED)
    return {
        "conv_w": (r.standard_normal((64, 16, 3, 3)) * 0.1).astype(np.float16),
        "conv_b": (r.standard_normal(64) * 0.1).astype(np.float16),
        "fc_w": (r.standard_normal((64, 64)) * 0.2).astype(np.float16),
        "fc_b": (r.standard_normal(64) * 0.1).astype(np.float16),
        "x": r.standard_normal((1, 16, 8, 8)).astype(np.float16),
    }


def base_model(target):
    """The uncompressed fp16 program for deployment target `target`."""
    w = _weights()

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 16, 8, 8), dtype=types.fp16)],
                opset_version=target)
    def prog(x):
        h = mb.conv(x=x, weight=w["conv_w"], bias=w["conv_b"], pad_type="same", name="conv")
        h = mb.relu(x=h, name="relu")
        h = mb.reduce_mean(x=h, axes=[2, 3], keep_dims=False, name="pool")
        return mb.linear(x=h, weight=w["fc_w"], bias=w["fc_b"], name="out")

    return ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=target,
                      compute_precision=ct.precision.FLOAT32)


def _pal(**kw):
    return cto.OpPalettizerConfig(mode="kmeans", **kw)


def _lin(**kw):
    return cto.OpLinearQuantizerConfig(**kw)


def _prune(m):
    return cto.prune_weights(m, _C(global_config=cto.OpMagnitudePrunerConfig(target_sparsity=0.5)))


# name -> (target, description of the config, function compressing the base model)
CASES = {
    "lut4_grouped": (
        ct.target.iOS18, "kmeans 4-bit LUT, per_grouped_channel, group_size=16",
        lambda m: cto.palettize_weights(m, _C(global_config=_pal(
            nbits=4, granularity="per_grouped_channel", group_size=16)))),
    "lut6_grouped": (
        ct.target.iOS18, "kmeans 6-bit LUT, per_grouped_channel, group_size=32",
        lambda m: cto.palettize_weights(m, _C(global_config=_pal(
            nbits=6, granularity="per_grouped_channel", group_size=32)))),
    "lut2_vector": (
        ct.target.iOS18, "kmeans 2-bit vector LUT (cluster_dim=2), per_tensor",
        lambda m: cto.palettize_weights(m, _C(global_config=_pal(nbits=2, cluster_dim=2)))),
    "lut4_channel_scale": (
        ct.target.iOS18, "kmeans 4-bit LUT per_tensor with enable_per_channel_scale",
        lambda m: cto.palettize_weights(m, _C(global_config=_pal(
            nbits=4, enable_per_channel_scale=True)))),
    "int8_per_channel": (
        ct.target.iOS18, "linear_symmetric int8, per_channel",
        lambda m: cto.linear_quantize_weights(m, _C(global_config=_lin(
            mode="linear_symmetric", dtype="int8", granularity="per_channel")))),
    "uint8_per_tensor": (
        ct.target.iOS18, "linear (asymmetric) uint8, per_tensor",
        lambda m: cto.linear_quantize_weights(m, _C(global_config=_lin(
            mode="linear", dtype="uint8", granularity="per_tensor")))),
    "int4_block": (
        ct.target.iOS18, "linear (asymmetric) int4, per_block, block_size=8",
        lambda m: cto.linear_quantize_weights(m, _C(global_config=_lin(
            mode="linear", dtype="int4", granularity="per_block", block_size=8)))),
    "int8_block": (
        ct.target.iOS18, "linear_symmetric int8, per_block, block_size=16",
        lambda m: cto.linear_quantize_weights(m, _C(global_config=_lin(
            mode="linear_symmetric", dtype="int8", granularity="per_block", block_size=16)))),
    "sparse50": (
        ct.target.iOS18, "magnitude pruning, target_sparsity=0.5",
        _prune),
    "sparse_lut4": (
        ct.target.iOS18, "pruning 0.5 then kmeans 4-bit LUT per_grouped_channel 16, joint",
        lambda m: cto.palettize_weights(_prune(m), _C(global_config=_pal(
            nbits=4, granularity="per_grouped_channel", group_size=16)), joint_compression=True)),
    "sparse_int8": (
        ct.target.iOS18, "pruning 0.5 then linear_symmetric int8 per_channel, joint",
        lambda m: cto.linear_quantize_weights(_prune(m), _C(global_config=_lin(
            mode="linear_symmetric", dtype="int8")), joint_compression=True)),
    "ios16_lut_affine": (
        ct.target.iOS16, "iOS16: conv kmeans 4-bit LUT per_tensor; linear int8 affine per_channel",
        lambda m: cto.linear_quantize_weights(
            cto.palettize_weights(m, _C(op_type_configs={"conv": _pal(nbits=4)})),
            _C(op_type_configs={"linear": _lin(mode="linear", dtype="int8")}))),
    "ios16_sparse": (
        ct.target.iOS16, "iOS16: magnitude pruning, target_sparsity=0.5",
        _prune),
}


def _reference(conv_w, conv_b, fc_w, fc_b, x):
    """Forward pass in fp32 torch with the given (dense) weights."""
    t = lambda a: torch.from_numpy(np.asarray(a, np.float32))
    with torch.no_grad():
        h = torch.nn.functional.conv2d(t(x), t(conv_w), t(conv_b), padding=1)
        h = torch.relu(h).mean(dim=(2, 3))
        return (h @ t(fc_w).T + t(fc_b)).numpy()


def _type_of(var) -> dict:
    shape = [int(d) for d in var.shape] if hasattr(var, "shape") else []
    return {"dtype": types.builtin_to_string(var.dtype), "shape": shape}


class _RecordingDecompressor(WeightDecompressor):
    """decompress_weights' own pass, recording each constexpr op's values."""

    def __init__(self):
        super().__init__(op_selector=lambda op: True)
        self.dense, self.ops = {}, []

    def transform_op(self, op):
        vals = op.materialized_val_inference()
        vals = list(vals) if isinstance(vals, (list, tuple)) else [vals]
        for var, val in zip(op.outputs, vals):
            self.dense[var.name] = np.asarray(val)
        self.ops.append({
            "type": op.op_type,
            "name": op.name,
            "params": {k: _type_of(v) for k, v in sorted(op.inputs.items())},
            "outputs": [dict(name=v.name, **_type_of(v)) for v in op.outputs],
        })
        super().transform_op(op)


def dense_values(pkg: Path):
    """Per constexpr output: coremltools' decompressed value; plus op summaries.

    Runs `decompress_weights`' graph pass (`WeightDecompressor`) on the package
    re-read from disk; chained constexpr ops see their producers' dense values.
    """
    model = ct.models.MLModel(str(pkg), skip_model_load=True)
    rec = _RecordingDecompressor()
    prog = _apply_graph_pass(model, rec, return_pymil_prog=True)
    consts = {op.outputs[0].name: op.outputs[0].val
              for op in prog.functions["main"].operations if op.op_type == "const"}
    checked = 0
    for name, val in rec.dense.items():
        if name in consts:
            np.testing.assert_array_equal(np.asarray(consts[name]), val)
            checked += 1
    left = [o.op_type for o in prog.functions["main"].operations
            if o.op_type.startswith("constexpr_")]
    if checked == 0 or left:
        raise RuntimeError(f"{pkg}: decompression left constexpr ops or checked nothing")
    return rec.dense, rec.ops


def _final_weight(dense, ops, consumer_hint: str, fallback):
    """The dense weight feeding `consumer_hint` (conv/linear), else the original.

    The last float output of the chain is the weight: in joint chains an
    earlier op also outputs a (uint1) mask of the same shape.
    """
    for op in reversed(ops):
        for out in op["outputs"]:
            if (out["shape"] == list(fallback.shape) and out["dtype"] in ("fp16", "fp32")
                    and out["name"].startswith(consumer_hint + "_")):
                return dense[out["name"]]
    return fallback


def generate(out: Path, tmp: Path) -> None:
    """Write every case of CASES into `out`."""
    w = _weights()
    for name, (target, config, compress) in CASES.items():
        model = compress(base_model(target))
        tmp_pkg = tmp / f"{name}.mlpackage"
        model.save(str(tmp_pkg))
        pkg = out / f"{name}.mlpackage"
        spec = fio.resave_package(tmp_pkg, pkg, name, {"fixture.compression": config})
        dense, ops = dense_values(pkg)
        fio.write_npz(out / f"{name}_dense.npz", dense)
        conv_w = _final_weight(dense, ops, "conv", w["conv_w"])
        fc_w = _final_weight(dense, ops, "out", w["fc_w"])
        fio.write_npz(out / f"{name}.npz", {
            "input:x": w["x"],
            "output:out": _reference(conv_w, w["conv_b"], fc_w, w["fc_b"], w["x"]),
        })
        fio.write_description(spec, out / f"{name}.json", name, f"{name}.mlpackage", "mlpackage", {
            "compression": {
                "config": config,
                "constexpr_ops": ops,
                "dense_npz": f"{name}_dense.npz",
                "dense_source": "coremltools decompress_weights (WeightDecompressor, per op)",
            }
        })
