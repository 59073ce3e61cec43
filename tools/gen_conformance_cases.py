"""Op cases of the conformance suite (see gen_conformance.py).

Every case: inputs (numpy arrays fed to the model), a MIL builder function of
those inputs (all parameters Python constants), and expected outputs computed
here with numpy/torch from the formulas of the MIL op documentation.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch

import coremltools as ct
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import Function, Program, types

T15, T16, T17, T18 = ct.target.iOS15, ct.target.iOS16, ct.target.iOS17, ct.target.iOS18
TOL = {"exact": (0.0, 0.0), "fp32": (1e-5, 1e-6), "math": (1e-4, 1e-5), "fp16": (5e-3, 5e-3)}


@dataclass
class Case:
    """One conformance case."""

    op: str
    name: str
    inputs: dict
    build: object
    expected: list
    rtol: float
    atol: float
    dtype: str = "fp32"
    target: object = T17
    program: object = None
    error: str | None = None


CASES: list[Case] = []


def rng(tag: str) -> np.random.Generator:
    """A generator seeded from `tag` (deterministic)."""
    return np.random.default_rng(zlib.crc32(tag.encode()))


def f32(g, *shape, lo=-3.0, hi=3.0):
    return g.uniform(lo, hi, shape).astype(np.float32)


def i32(g, *shape, lo=-5, hi=6):
    return g.integers(lo, hi, shape).astype(np.int32)


def _f64(a):
    a = np.asarray(a)
    return a.astype(np.float64) if a.dtype.kind == "f" else a


def add(op, name, inputs, build, ref, tol="fp32", target=T17, dtype=None):
    """Registers a case; `ref(**inputs)` gets float64 copies of float inputs."""
    rtol, atol = TOL[tol] if isinstance(tol, str) else tol
    exp = ref(**{k: _f64(v) for k, v in inputs.items()})
    if not isinstance(exp, (list, tuple)):
        exp = [exp]
    if dtype is None:
        dtype = "fp16" if any(np.asarray(v).dtype == np.float16 for v in inputs.values()) else "fp32"
    c = Case(op, name, inputs, build, [np.asarray(e) for e in exp], rtol, atol, dtype, target)
    # Built right away so that the builder sees the values its closure sees now.
    try:
        c.program = build_program(inputs, build, target)
    except Exception as e:  # coremltools rejects the case: reported and skipped
        c.error = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"[:300]
    CASES.append(c)


_NP_TO_MIL = {
    np.dtype(np.float32): types.fp32,
    np.dtype(np.float16): types.fp16,
    np.dtype(np.int32): types.int32,
    np.dtype(np.bool_): types.bool,
}


def build_program(inputs: dict, build, target) -> Program:
    """A one-function MIL program with `inputs` as function inputs."""
    specs = {k: mb.TensorSpec(shape=v.shape, dtype=_NP_TO_MIL[v.dtype]) for k, v in inputs.items()}
    with Function(specs, opset_version=target) as func:
        outs = build(**func.inputs)
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        func.set_outputs(list(outs))
    prog = Program()
    prog.add_function("main", func)
    return prog


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def erf(x):
    return torch.erf(t(x)).numpy()


# ---------------------------------------------------------------- elementwise unary
UNARY = {
    "abs": (np.abs, (-3, 3), "fp32"),
    "acos": (np.arccos, (-0.9, 0.9), "math"),
    "asin": (np.arcsin, (-0.9, 0.9), "math"),
    "atan": (np.arctan, (-3, 3), "math"),
    "atanh": (np.arctanh, (-0.9, 0.9), "math"),
    "ceil": (np.ceil, (-3, 3), "exact"),
    "cos": (np.cos, (-3, 3), "math"),
    "cosh": (np.cosh, (-3, 3), "math"),
    "erf": (erf, (-3, 3), "math"),
    "exp": (np.exp, (-3, 3), "math"),
    "exp2": (np.exp2, (-3, 3), "math"),
    "floor": (np.floor, (-3, 3), "exact"),
    "log": (lambda x: np.log(x + 1e-45), (0.1, 5), "math"),
    "rsqrt": (lambda x: 1.0 / np.sqrt(x + 1e-12), (0.1, 5), "math"),
    "sign": (np.sign, (-3, 3), "exact"),
    "sin": (np.sin, (-3, 3), "math"),
    "sinh": (np.sinh, (-3, 3), "math"),
    "sqrt": (np.sqrt, (0, 5), "math"),
    "square": (np.square, (-3, 3), "fp32"),
    "tan": (np.tan, (-1.2, 1.2), "math"),
    "tanh": (np.tanh, (-3, 3), "math"),
    "inverse": (lambda x: 1.0 / (x + 1e-4), (0.5, 3), "math"),
}
FP16_UNARY = {"abs", "exp", "sqrt", "tanh", "sin", "floor"}


def unary_cases():
    for op, (fn, (lo, hi), tol) in UNARY.items():
        g = rng(op)
        x = f32(g, 2, 3, 4, lo=lo, hi=hi)
        if op == "sign":
            x.flat[:3] = 0.0
        add(op, "basic", {"x": x}, lambda x, op=op: getattr(mb, op)(x=x), lambda x, fn=fn: fn(x), tol)
        add(op, "rank1", {"x": x.reshape(-1)}, lambda x, op=op: getattr(mb, op)(x=x), lambda x, fn=fn: fn(x), tol)
        if op in FP16_UNARY:
            add(op, "fp16", {"x": x.astype(np.float16)}, lambda x, op=op: getattr(mb, op)(x=x),
                lambda x, fn=fn: fn(x), "fp16")
    g = rng("unary-extra")
    x = f32(g, 3, 5)
    add("inverse", "epsilon", {"x": np.abs(x) + 0.5}, lambda x: mb.inverse(x=x, epsilon=0.5),
        lambda x: 1.0 / (x + 0.5), "math")
    add("log", "epsilon", {"x": np.abs(x) + 0.1}, lambda x: mb.log(x=x, epsilon=1.0),
        lambda x: np.log(x + 1.0), "math")
    add("rsqrt", "epsilon", {"x": np.abs(x)}, lambda x: mb.rsqrt(x=x, epsilon=0.25),
        lambda x: 1.0 / np.sqrt(x + 0.25), "math")
    halves = np.array([[-2.5, -1.5, -0.5, 0.5, 1.5, 2.5], [-0.7, 0.2, 0.7, 1.49, -1.51, 3.0]], np.float32)
    add("round", "basic", {"x": x}, lambda x: mb.round(x=x), lambda x: np.round(x), "exact")
    add("round", "half_to_even", {"x": halves}, lambda x: mb.round(x=x), lambda x: np.round(x), "exact")
    add("clip", "basic", {"x": x}, lambda x: mb.clip(x=x, alpha=-1.0, beta=1.5), lambda x: np.clip(x, -1, 1.5))
    add("clip", "fp16", {"x": x.astype(np.float16)},
        lambda x: mb.clip(x=x, alpha=np.float16(-1.0), beta=np.float16(1.5)),
        lambda x: np.clip(x, -1, 1.5), "fp16")
    add("threshold", "basic", {"x": x}, lambda x: mb.threshold(x=x, alpha=0.5), lambda x: np.maximum(x, 0.5))
    add("logical_not", "basic", {"x": x}, lambda x: mb.logical_not(x=mb.greater(x=x, y=0.0)),
        lambda x: ~(x > 0))
    xi = np.array([[1.0, -2.0, 3.0, 0.0], [7.0, -8.0, 100.0, -1.0]], np.float32)
    add("cast", "fp32_to_int32", {"x": xi}, lambda x: mb.cast(x=x, dtype="int32"), lambda x: x.astype(np.int32),
        "exact")
    add("cast", "int32_to_fp32", {"x": i32(g, 2, 5)}, lambda x: mb.cast(x=x, dtype="fp32"),
        lambda x: x.astype(np.float32), "exact")
    add("cast", "fp32_to_fp16", {"x": x}, lambda x: mb.cast(x=x, dtype="fp16"), lambda x: x.astype(np.float16),
        (1e-3, 1e-3), dtype="fp16")
    add("cast", "fp32_to_bool", {"x": xi}, lambda x: mb.cast(x=mb.cast(x=x, dtype="bool"), dtype="fp32"),
        lambda x: (x != 0).astype(np.float32), "exact")
    add("cast", "int32_to_bool", {"x": i32(g, 3, 3, lo=-1, hi=2)},
        lambda x: mb.cast(x=mb.cast(x=x, dtype="bool"), dtype="int32"), lambda x: (x != 0).astype(np.int32),
        "exact")
    add("identity", "basic", {"x": x}, lambda x: mb.identity(x=x), lambda x: x, "exact")


# ---------------------------------------------------------------- elementwise binary
def floor_div_ref(x, y):
    return np.floor_divide(x, y)


BINARY = {
    "add": (np.add, "fp32"),
    "sub": (np.subtract, "fp32"),
    "mul": (np.multiply, "fp32"),
    "real_div": (np.divide, "fp32"),
    "floor_div": (floor_div_ref, "exact"),
    "mod": (np.mod, "math"),
    "pow": (np.power, "math"),
    "maximum": (np.maximum, "exact"),
    "minimum": (np.minimum, "exact"),
}
COMPARE = {
    "equal": np.equal,
    "not_equal": np.not_equal,
    "greater": np.greater,
    "greater_equal": np.greater_equal,
    "less": np.less,
    "less_equal": np.less_equal,
}


def _nonzero(a):
    a = a.copy()
    a[np.abs(a) < 0.3] = 0.7
    return a


def binary_cases():
    for op, (fn, tol) in BINARY.items():
        g = rng(op)
        x, y = f32(g, 2, 3, 4), f32(g, 2, 3, 4)
        if op in ("real_div", "floor_div", "mod"):
            y = _nonzero(y)
        if op == "pow":
            x = np.abs(x) + 0.1
        b = lambda x, y, op=op: getattr(mb, op)(x=x, y=y)
        add(op, "same_shape", {"x": x, "y": y}, b, lambda x, y, fn=fn: fn(x, y), tol)
        add(op, "broadcast_last", {"x": x, "y": y[0, 0]}, b, lambda x, y, fn=fn: fn(x, y), tol)
        add(op, "broadcast_both", {"x": x[:, :1, :], "y": y[0, :, :1]}, b, lambda x, y, fn=fn: fn(x, y), tol)
        yc = y[1, 2].copy()
        add(op, "const_y", {"x": x}, lambda x, op=op, yc=yc: getattr(mb, op)(x=x, y=yc),
            lambda x, fn=fn, yc=yc: fn(x, yc.astype(np.float64)), tol)
        add(op, "scalar_y", {"x": x}, lambda x, op=op: getattr(mb, op)(x=x, y=np.float32(1.5)),
            lambda x, fn=fn: fn(x, 1.5), tol)
        x5 = f32(g, 1, 2, 1, 3, 2)
        add(op, "rank5", {"x": np.abs(x5) if op == "pow" else x5, "y": y[0, :2, :2].reshape(2, 1, 2) if op != "pow" else
                          np.abs(y[0, :2, :2]).reshape(2, 1, 2)}, b, lambda x, y, fn=fn: fn(x, y), tol)
        if op not in ("pow",):
            xi, yi = i32(g, 3, 4), i32(g, 3, 4)
            if op in ("real_div", "floor_div", "mod"):
                yi[yi == 0] = 3
            if op != "real_div":
                add(op, "int32", {"x": xi, "y": yi}, b, lambda x, y, fn=fn: fn(x, y), "exact")
        if op in ("add", "mul", "sub", "real_div", "maximum"):
            add(op, "fp16", {"x": x.astype(np.float16), "y": y.astype(np.float16)}, b,
                lambda x, y, fn=fn: fn(x, y), "fp16")
    g = rng("pow-neg")
    xb = f32(g, 2, 4)
    add("pow", "negative_base_int_exp", {"x": xb}, lambda x: mb.pow(x=x, y=np.array([2.0, 3.0, 0.0, -1.0], np.float32)),
        lambda x: np.power(x, np.array([2.0, 3.0, 0.0, -1.0])), "math")
    add("pow", "int32", {"x": i32(g, 2, 3, lo=-3, hi=4), "y": i32(g, 2, 3, lo=0, hi=4)},
        lambda x, y: mb.pow(x=x, y=y), lambda x, y: np.power(x, y), "exact")
    for op, fn in COMPARE.items():
        g = rng(op)
        x, y = np.round(f32(g, 3, 4)), np.round(f32(g, 3, 4))
        b = lambda x, y, op=op: getattr(mb, op)(x=x, y=y)
        add(op, "fp32", {"x": x, "y": y}, b, lambda x, y, fn=fn: fn(x, y), "exact")
        add(op, "broadcast", {"x": x, "y": y[:1, :]}, b, lambda x, y, fn=fn: fn(x, y), "exact")
        add(op, "int32", {"x": i32(g, 3, 4, lo=-2, hi=3), "y": i32(g, 4, lo=-2, hi=3)}, b,
            lambda x, y, fn=fn: fn(x, y), "exact")
        add(op, "const_scalar", {"x": x}, lambda x, op=op: getattr(mb, op)(x=x, y=0.0),
            lambda x, fn=fn: fn(x, 0.0), "exact")
    for op, fn in (("logical_and", np.logical_and), ("logical_or", np.logical_or), ("logical_xor", np.logical_xor)):
        g = rng(op)
        x, y = f32(g, 3, 4), f32(g, 3, 4)
        add(op, "basic", {"x": x, "y": y},
            lambda x, y, op=op: getattr(mb, op)(x=mb.greater(x=x, y=0.0), y=mb.less(x=y, y=0.5)),
            lambda x, y, fn=fn: fn(x > 0, y < 0.5), "exact")
        add(op, "broadcast", {"x": x, "y": y[0]},
            lambda x, y, op=op: getattr(mb, op)(x=mb.greater(x=x, y=0.0), y=mb.less(x=y, y=0.5)),
            lambda x, y, fn=fn: fn(x > 0, y < 0.5), "exact")


# ---------------------------------------------------------------- activations
def gelu_ref(mode):
    def f(x):
        if mode == "EXACT":
            return 0.5 * x * (1 + erf(x / math.sqrt(2)))
        if mode == "TANH_APPROXIMATION":
            return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
        return x * sigmoid(1.702 * x)

    return f


ACT = {
    "relu": ({}, lambda x: np.maximum(x, 0)),
    "relu6": ({}, lambda x: np.clip(x, 0, 6)),
    "leaky_relu": ({"alpha": 0.1}, lambda x: np.where(x >= 0, x, 0.1 * x)),
    "elu": ({"alpha": 0.7}, lambda x: np.where(x > 0, x, 0.7 * (np.exp(x) - 1))),
    "sigmoid": ({}, sigmoid),
    "sigmoid_hard": ({"alpha": 0.3, "beta": 0.4}, lambda x: np.clip(0.3 * x + 0.4, 0, 1)),
    "silu": ({}, lambda x: x * sigmoid(x)),
    "softplus": ({}, lambda x: np.log1p(np.exp(x))),
    "softsign": ({}, lambda x: x / (1 + np.abs(x))),
    "scaled_tanh": ({"alpha": 1.5, "beta": 0.7}, lambda x: 1.5 * np.tanh(0.7 * x)),
    "clamped_relu": ({"alpha": 0.1, "beta": 2.0}, lambda x: np.where(x >= 0, np.minimum(2.0, x),
                                                                     np.minimum(2.0, 0.1 * x))),
    "thresholded_relu": ({"alpha": 0.5}, lambda x: np.where(x >= 0.5, x, 0)),
    "linear_activation": ({"alpha": 2.0, "beta": -0.5}, lambda x: 2.0 * x - 0.5),
}


def softmax_ref(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def activation_cases():
    for op, (params, fn) in ACT.items():
        g = rng(op)
        x = f32(g, 2, 3, 4, lo=-8 if op == "relu6" else -3, hi=8 if op == "relu6" else 3)
        x.flat[0] = 0.0
        b = lambda x, op=op, params=params: getattr(mb, op)(x=x, **params)
        add(op, "basic", {"x": x}, b, lambda x, fn=fn: fn(x), "math")
        add(op, "fp16", {"x": x.astype(np.float16)}, b, lambda x, fn=fn: fn(x), "fp16")
    g = rng("relu-ranks")
    for r in range(1, 6):
        x = f32(g, *([2, 3, 1, 2, 2][:r]))
        add("relu", f"rank{r}", {"x": x}, lambda x: mb.relu(x=x), lambda x: np.maximum(x, 0))
    x = f32(g, 1)
    add("relu", "rank0", {"x": x}, lambda x: mb.relu(x=mb.squeeze(x=x)), lambda x: np.maximum(x[0], 0))
    x = f32(g, 2, 3, 5)
    for mode in ("EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION"):
        add("gelu", mode.lower(), {"x": x}, lambda x, mode=mode: mb.gelu(x=x, mode=mode), gelu_ref(mode), "math")
    add("gelu", "default", {"x": x}, lambda x: mb.gelu(x=x), gelu_ref("EXACT"), "math")
    add("gelu", "fp16", {"x": x.astype(np.float16)}, lambda x: mb.gelu(x=x, mode="TANH_APPROXIMATION"),
        gelu_ref("TANH_APPROXIMATION"), "fp16")
    for axis in (-1, 0, 1, -2):
        add("softmax", f"axis{axis}".replace("-", "m"), {"x": x}, lambda x, a=axis: mb.softmax(x=x, axis=a),
            lambda x, a=axis: softmax_ref(x, a), "math")
    add("softmax", "default_axis", {"x": x}, lambda x: mb.softmax(x=x), lambda x: softmax_ref(x, -1), "math")
    add("softmax", "rank1", {"x": x[0, 0]}, lambda x: mb.softmax(x=x), lambda x: softmax_ref(x, -1), "math")
    add("softmax", "large_values", {"x": x * 40}, lambda x: mb.softmax(x=x), lambda x: softmax_ref(x, -1), "math")
    add("softmax", "fp16", {"x": x.astype(np.float16)}, lambda x: mb.softmax(x=x, axis=1),
        lambda x: softmax_ref(x, 1), "fp16")
    for shape in ((2, 3, 5), (1, 3, 2, 4), (1, 3, 2, 2, 2)):
        xp = f32(g, *shape)
        # coremltools accepts per-channel alpha only at rank 4
        alpha = np.array([0.1, -0.5, 2.0] if len(shape) == 4 else [0.25] * 3, np.float32)
        a = alpha.reshape((1, 3) + (1,) * (len(shape) - 2))
        add("prelu", f"rank{len(shape)}", {"x": xp}, lambda x, al=alpha: mb.prelu(x=x, alpha=al),
            lambda x, a=a: np.where(x > 0, x, a * x))
    for name, shape in (("basic", (1, 3, 2, 4)), ("batch2", (2, 3, 1, 3))):
        xs = f32(g, *shape)
        al, be = np.array([1.0, 0.5, 2.0], np.float32), np.array([1.0, 2.0, 0.5], np.float32)
        sh = (1, 3, 1, 1)
        add("softplus_parametric", name, {"x": xs},
            lambda x, al=al, be=be: mb.softplus_parametric(x=x, alpha=al, beta=be),
            lambda x, al=al, be=be, sh=sh: al.reshape(sh) * np.log1p(np.exp(be.reshape(sh) * x)), "math")


# ---------------------------------------------------------------- linear
def linear_cases():
    g = rng("linear")
    w, bias = f32(g, 5, 4), f32(g, 5)
    for shape in ((4,), (3, 4), (2, 3, 4)):
        x = f32(g, *shape)
        add("linear", f"rank{len(shape)}", {"x": x}, lambda x: mb.linear(x=x, weight=w, bias=bias),
            lambda x: x @ w.T.astype(np.float64) + bias, "math")
    x = f32(g, 3, 4)
    add("linear", "no_bias", {"x": x}, lambda x: mb.linear(x=x, weight=w), lambda x: x @ w.T.astype(np.float64),
        "math")
    add("linear", "fp16", {"x": x.astype(np.float16)},
        lambda x: mb.linear(x=x, weight=w.astype(np.float16), bias=bias.astype(np.float16)),
        lambda x: x @ w.astype(np.float16).T.astype(np.float64) + bias.astype(np.float16), "fp16")
    mm = [
        ("2d", (3, 4), (4, 5), False, False),
        ("transpose_x", (4, 3), (4, 5), True, False),
        ("transpose_y", (3, 4), (5, 4), False, True),
        ("transpose_both", (4, 3), (5, 4), True, True),
        ("batch", (2, 3, 4), (2, 4, 5), False, False),
        ("batch_broadcast", (2, 1, 3, 4), (3, 4, 5), False, False),
        ("x_rank1", (4,), (2, 4, 5), False, False),
    ]
    for name, sx, sy, tx, ty in mm:
        x, y = f32(g, *sx), f32(g, *sy)

        def ref(x, y, tx=tx, ty=ty):
            if tx and x.ndim > 1:
                x = np.swapaxes(x, -1, -2)
            if ty and y.ndim > 1:
                y = np.swapaxes(y, -1, -2)
            return np.matmul(x, y)

        add("matmul", name, {"x": x, "y": y},
            lambda x, y, tx=tx, ty=ty: mb.matmul(x=x, y=y, transpose_x=tx, transpose_y=ty), ref, "math")
    x, yc = f32(g, 3, 4), f32(g, 4, 2)
    add("matmul", "const_y", {"x": x}, lambda x: mb.matmul(x=x, y=yc), lambda x: x @ yc.astype(np.float64), "math")
    add("matmul", "fp16", {"x": x.astype(np.float16), "y": f32(g, 4, 6).astype(np.float16)},
        lambda x, y: mb.matmul(x=x, y=y), lambda x, y: x @ y, "fp16")
    a, b = f32(g, 2, 3, 4, 5), f32(g, 2, 5, 4, 6)
    add("einsum", "rank4", {"x": a, "y": b}, lambda x, y: mb.einsum(values=(x, y), equation="nchw,nwhu->nchu"),
        lambda x, y: np.einsum("nchw,nwhu->nchu", x, y), "math")
    a, b = f32(g, 3, 4, 5), f32(g, 5, 4, 2)
    add("einsum", "rank3", {"x": a, "y": b}, lambda x, y: mb.einsum(values=(x, y), equation="chw,whr->chr"),
        lambda x, y: np.einsum("chw,whr->chr", x, y), "math")
    a, b = f32(g, 1, 3, 4, 5), f32(g, 2, 5, 1, 6)
    add("einsum", "broadcast", {"x": a, "y": b},
        lambda x, y: mb.einsum(values=(x, y), equation="nchw,nwhu->nchu"),
        lambda x, y: np.einsum("nchw,nwhu->nchu", np.broadcast_to(x, (2, 3, 4, 5)), np.broadcast_to(y, (2, 5, 4, 6))),
        "math")


def register_all() -> list[Case]:
    """Every case, in a fixed order."""
    CASES.clear()
    from gen_conformance_nn import nn_cases
    from gen_conformance_tensor import tensor_cases
    from gen_conformance_rnn import rnn_family_cases
    from gen_conformance_sampling import sampling_cases
    from gen_conformance_extra import extra_cases

    unary_cases()
    binary_cases()
    activation_cases()
    linear_cases()
    nn_cases()
    tensor_cases()
    rnn_family_cases()
    sampling_cases()
    extra_cases()
    return list(CASES)
