"""Shared helpers of the NeuralNetwork conformance cases (gen_conformance_neuralnetwork.py)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import torch

from coremltools.models import datatypes
from coremltools.models.neural_network import NeuralNetworkBuilder
from coremltools.proto import FeatureTypes_pb2

TOL = {"exact": (0.0, 0.0), "fp32": (1e-5, 1e-6), "math": (1e-4, 1e-5), "loose": (1e-3, 1e-4)}
FLOAT32 = FeatureTypes_pb2.ArrayFeatureType.FLOAT32
DOUBLE = FeatureTypes_pb2.ArrayFeatureType.DOUBLE
INT32 = FeatureTypes_pb2.ArrayFeatureType.INT32
NP_OF_ARRAY_TYPE = {FLOAT32: np.float32, DOUBLE: np.float64, INT32: np.int32}
# Layer types first available in specification version 5 (iOS 14).
SPEC5 = {"oneHot", "cumSum", "clampedReLU", "argSort", "pooling3d", "globalPooling3d", "sliceBySize",
         "convolution3d"}


@dataclass
class Case:
    """One conformance case: a one-layer (or few-layer) NeuralNetwork and its expected outputs."""

    layer: str
    name: str
    inputs: dict
    expected: dict
    spec: object = None
    rtol: float = 0.0
    atol: float = 0.0
    check: str | None = None
    error: str | None = None
    extra: dict = field(default_factory=dict)


CASES: list[Case] = []


def rng(tag: str) -> np.random.Generator:
    """A generator seeded from `tag` (deterministic)."""
    return np.random.default_rng(zlib.crc32(tag.encode()))


def f32(g, *shape, lo=-3.0, hi=3.0):
    return g.uniform(lo, hi, shape).astype(np.float32)


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def nn(layer, name, inputs, build, ref, nd=False, tol="fp32", out_shapes=None, in_types=None, check=None,
       in_shapes=None, outputs=None):
    """Registers a case.

    `inputs`: name -> array fed. `build(builder)` adds the layers. `ref(*inputs)` gets float64
    copies and returns the expected outputs (an array, or a dict name -> array; a single array is
    output "y"). `nd`: exact shape mapping (spec 4+), outputs declared without shapes; otherwise the
    rank-5 mapping with each output declared in the shape of its expected array.
    `in_types`: name -> ArrayFeatureType data type (FLOAT32 by default). `in_shapes`: declared input
    shapes when they differ from the arrays' (flexible inputs). `outputs`: output names in order
    when `ref` returns a dict.
    """
    rtol, atol = TOL[tol] if isinstance(tol, str) else tol
    exp = ref(*[np.asarray(v, dtype=np.float64) for v in inputs.values()])
    if not isinstance(exp, dict):
        exp = {"y": exp}
    exp = {k: np.asarray(v) for k, v in exp.items()}
    names = outputs or list(exp)
    c = Case(layer, name, inputs, exp, rtol=rtol, atol=atol, check=check)
    try:
        c.spec = make_spec(inputs, names, exp, build, nd, out_shapes, in_types or {}, in_shapes or {})
    except Exception as e:  # the builder rejects the case: reported and skipped
        c.error = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"[:300]
    CASES.append(c)
    return c


def make_spec(inputs, names, exp, build, nd, out_shapes, in_types, in_shapes):
    ins = [(n, datatypes.Array(*in_shapes.get(n, np.asarray(a).shape))) for n, a in inputs.items()]
    outs = []
    for n in names:
        shape = None
        if out_shapes is not None:
            shape = out_shapes.get(n)
        elif not nd:
            shape = exp[n].shape
        outs.append((n, datatypes.Array(*shape) if shape else None))
    b = NeuralNetworkBuilder(ins, outs, disable_rank5_shape_mapping=nd)
    build(b)
    spec = b.spec
    for f in list(spec.description.input) + list(spec.description.output):
        if f.type.WhichOneof("Type") == "multiArrayType":
            f.type.multiArrayType.dataType = in_types.get(f.name, FLOAT32)
    kinds = {l.WhichOneof("layer") for l in spec.neuralNetwork.layers}
    if kinds & SPEC5:
        spec.specificationVersion = max(spec.specificationVersion, 5)
    return spec


# ---------------------------------------------------------------- quantized weights (NeuralNetwork.proto)
def pack_bits(q, nbits):
    """uintN values packed MSB-first, as WeightParams.rawValue stores them."""
    bits = []
    for v in np.asarray(q).reshape(-1):
        bits += [(int(v) >> i) & 1 for i in reversed(range(nbits))]
    bits += [0] * (-len(bits) % 8)
    out = bytearray()
    for i in range(0, len(bits), 8):
        byte = 0
        for b in bits[i:i + 8]:
            byte = (byte << 1) | b
        out.append(byte)
    return bytes(out)


def linear_quantize(w, nbits, axis=0):
    """Per-channel linear quantization: returns (q, scale, bias) with w ~= q * scale + bias."""
    w = np.asarray(w, np.float64)
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    lo, hi = moved.min(axis=1), moved.max(axis=1)
    scale = np.where(hi > lo, (hi - lo) / (2 ** nbits - 1), 1.0)
    q = np.clip(np.round((moved - lo[:, None]) / scale[:, None]), 0, 2 ** nbits - 1)
    q = np.moveaxis(q.reshape(np.moveaxis(w, axis, 0).shape), 0, axis)
    return q.astype(np.uint8), scale.astype(np.float32), lo.astype(np.float32)


def dequantize_linear(q, scale, bias, axis=0):
    shape = [1] * q.ndim
    shape[axis] = -1
    return q.astype(np.float64) * np.asarray(scale, np.float64).reshape(shape) + np.asarray(
        bias, np.float64).reshape(shape)


def set_linear_quantized(wp, q, scale, bias, nbits):
    """Fills a WeightParams with linearly quantized values (float fields cleared)."""
    del wp.floatValue[:]
    wp.float16Value = b""
    wp.rawValue = pack_bits(q, nbits)
    wp.quantization.numberOfBits = nbits
    wp.quantization.linearQuantization.scale.extend([float(s) for s in np.atleast_1d(scale)])
    wp.quantization.linearQuantization.bias.extend([float(s) for s in np.atleast_1d(bias)])


def set_lut_quantized(wp, q, lut, nbits):
    """Fills a WeightParams with look-up-table quantized values."""
    del wp.floatValue[:]
    wp.float16Value = b""
    wp.rawValue = pack_bits(q, nbits)
    wp.quantization.numberOfBits = nbits
    wp.quantization.lookupTableQuantization.floatValue.extend([float(v) for v in lut])


def set_fp16(wp, w):
    """Stores a WeightParams as float16 bytes."""
    del wp.floatValue[:]
    wp.float16Value = np.asarray(w, np.float16).reshape(-1).tobytes()
