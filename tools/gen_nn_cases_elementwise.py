"""NeuralNetwork cases: activations, elementwise and unary layers, comparisons (see
gen_conformance_neuralnetwork.py). References follow the formulas of NeuralNetwork.proto."""

from __future__ import annotations

import math

import numpy as np

from gen_nn_common import f32, nn, rng, sigmoid, t

import torch


def softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def activation_cases():
    g = rng("activation")
    x = f32(g, 3, 4, 5)
    chan = lambda v: np.asarray(v, np.float64).reshape(-1, 1, 1)  # noqa: E731
    alpha_c = f32(g, 3, lo=0.1, hi=0.9)
    beta_c = f32(g, 3, lo=0.5, hi=2.0)
    modes = [
        ("relu", "RELU", None, lambda x: np.maximum(x, 0)),
        ("sigmoid", "SIGMOID", None, sigmoid),
        ("tanh", "TANH", None, np.tanh),
        ("scaled_tanh", "SCALED_TANH", [1.7, 0.6], lambda x: 1.7 * np.tanh(0.6 * x)),
        ("softplus", "SOFTPLUS", None, softplus),
        ("softsign", "SOFTSIGN", None, lambda x: x / (1 + np.abs(x))),
        ("sigmoid_hard", "SIGMOID_HARD", [0.3, 0.4], lambda x: np.clip(0.3 * x + 0.4, 0, 1)),
        ("leaky_relu", "LEAKYRELU", [0.15], lambda x: np.where(x >= 0, x, 0.15 * x)),
        ("prelu", "PRELU", alpha_c, lambda x: np.where(x >= 0, x, chan(alpha_c) * x)),
        ("elu", "ELU", 0.8, lambda x: np.where(x > 0, x, 0.8 * (np.exp(x) - 1))),
        ("parametric_softplus", "PARAMETRICSOFTPLUS", [alpha_c, beta_c],
         lambda x: chan(alpha_c) * softplus(chan(beta_c) * x)),
        ("thresholded_relu", "THRESHOLDEDRELU", 0.7, lambda x: np.where(x > 0.7, x, 0)),
        ("linear", "LINEAR", [1.5, -0.25], lambda x: 1.5 * x - 0.25),
    ]
    for name, mode, params, fn in modes:
        nn("activation", name, {"x": x}, lambda b, mode=mode, params=params: b.add_activation(
            "act", mode, "x", "y", params=params), lambda x, fn=fn: fn(x), tol="math")
    # PReLU with a single shared alpha; an activation in ND mode on a rank-2 tensor.
    nn("activation", "prelu_shared", {"x": x}, lambda b: b.add_activation(
        "act", "PRELU", "x", "y", params=np.array([0.2], np.float32)), lambda x: np.where(x >= 0, x, 0.2 * x))
    nn("activation", "relu_nd_rank2", {"x": f32(g, 4, 6)}, lambda b: b.add_activation("act", "RELU", "x", "y"),
       lambda x: np.maximum(x, 0), nd=True)
    nn("activation", "rank1_input", {"x": f32(g, 7)}, lambda b: b.add_activation("act", "TANH", "x", "y"),
       np.tanh, tol="math")
    nn("clampedReLU", "basic", {"x": x}, lambda b: b.add_clamped_relu("c", "x", "y", alpha=0.1, beta=1.5),
       lambda x: np.where(x >= 0, np.minimum(1.5, x), np.minimum(1.5, 0.1 * x)), nd=True)
    gx = f32(g, 2, 3, 4)
    for mode, ref in [("EXACT", lambda x: 0.5 * x * (1 + torch.erf(t(x) / math.sqrt(2)).numpy())),
                      ("TANH_APPROXIMATION",
                       lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
                      ("SIGMOID_APPROXIMATION", lambda x: x * sigmoid(1.702 * x))]:
        nn("gelu", mode.lower(), {"x": gx}, lambda b, mode=mode: b.add_gelu("g", "x", "y", mode=mode), ref,
           nd=True, tol="math")


def elementwise_cases():
    g = rng("elementwise")
    a, b_, c = f32(g, 3, 4, 5), f32(g, 3, 4, 5), f32(g, 3, 4, 5)
    per_c = f32(g, 3, 1, 1)
    ins3 = {"a": a, "b": b_, "c": c}
    names3 = ["a", "b", "c"]
    nn("add", "three", ins3, lambda bb: bb.add_elementwise("e", names3, "y", "ADD"), lambda a, b, c: a + b + c)
    nn("add", "alpha", {"a": a}, lambda bb: bb.add_elementwise("e", ["a"], "y", "ADD", alpha=2.5),
       lambda a: a + 2.5)
    nn("add", "broadcast_channel", {"a": a, "p": per_c},
       lambda bb: bb.add_elementwise("e", ["a", "p"], "y", "ADD"), lambda a, p: a + p)
    nn("multiply", "two", {"a": a, "b": b_}, lambda bb: bb.add_elementwise("e", ["a", "b"], "y", "MULTIPLY"),
       lambda a, b: a * b)
    nn("multiply", "alpha", {"a": a}, lambda bb: bb.add_elementwise("e", ["a"], "y", "MULTIPLY", alpha=-1.5),
       lambda a: -1.5 * a)
    nn("multiply", "broadcast_channel", {"a": a, "p": per_c},
       lambda bb: bb.add_elementwise("e", ["a", "p"], "y", "MULTIPLY"), lambda a, p: a * p)
    nn("average", "three", ins3, lambda bb: bb.add_elementwise("e", names3, "y", "AVE"),
       lambda a, b, c: (a + b + c) / 3)
    nn("max", "three", ins3, lambda bb: bb.add_elementwise("e", names3, "y", "MAX"),
       lambda a, b, c: np.maximum(np.maximum(a, b), c))
    nn("min", "three", ins3, lambda bb: bb.add_elementwise("e", names3, "y", "MIN"),
       lambda a, b, c: np.minimum(np.minimum(a, b), c))
    u, v = f32(g, 6), f32(g, 6)
    nn("dot", "dot", {"u": u, "v": v}, lambda bb: bb.add_elementwise("e", ["u", "v"], "y", "DOT"),
       lambda u, v: np.array([np.sum(u * v)]))
    nn("dot", "cosine", {"u": u, "v": v}, lambda bb: bb.add_elementwise("e", ["u", "v"], "y", "COS"),
       lambda u, v: np.array([np.sum(u * v) / (np.linalg.norm(u) * np.linalg.norm(v))]), tol="math")
    # scale and bias layers, each supported parameter shape.
    for shape in [(1,), (3,), (1, 4, 5), (3, 4, 5)]:
        tag = "x".join(map(str, shape))
        w = f32(g, *shape, lo=0.5, hi=2)
        bias = f32(g, *shape)
        bshape = shape if len(shape) == 3 else (shape[0], 1, 1)
        nn("scale", f"scale_{tag}", {"x": a},
           lambda bb, w=w, bias=bias, shape=shape: bb.add_scale(
               "s", w, bias, True, "x", "y", shape_scale=list(shape), shape_bias=list(shape)),
           lambda x, w=w, bias=bias, bshape=bshape: x * w.reshape(bshape) + bias.reshape(bshape))
        nn("bias", f"bias_{tag}", {"x": a},
           lambda bb, bias=bias, shape=shape: bb.add_bias("s", bias, "x", "y", shape_bias=list(shape)),
           lambda x, bias=bias, bshape=bshape: x + bias.reshape(bshape))
    w = f32(g, 3, lo=0.5, hi=2)
    nn("scale", "no_bias", {"x": a}, lambda bb: bb.add_scale("s", w, None, False, "x", "y", shape_scale=[3]),
       lambda x: x * w.reshape(3, 1, 1))


def unary_cases():
    g = rng("unary")
    pos = f32(g, 2, 3, 4, lo=0.2, hi=3.0)
    anyx = f32(g, 2, 3, 4)
    modes = [
        ("sqrt", "SQRT", pos, {}, np.sqrt),
        ("rsqrt", "RSQRT", pos, {"epsilon": 1e-3}, lambda x: 1 / np.sqrt(x + 1e-3)),
        ("inverse", "INVERSE", pos, {"epsilon": 1e-2}, lambda x: 1 / (x + 1e-2)),
        ("power", "POWER", pos, {"alpha": 2.5}, lambda x: x ** 2.5),
        ("exp", "EXP", anyx, {}, np.exp),
        ("log", "LOG", pos, {}, np.log),
        ("abs", "ABS", anyx, {}, np.abs),
        ("threshold", "THRESHOLD", anyx, {"alpha": 0.5}, lambda x: np.maximum(0.5, x)),
        ("exp_shift_scale", "EXP", anyx, {"shift": 0.5, "scale": 0.75}, lambda x: np.exp(0.75 * x + 0.5)),
        ("sqrt_shift_scale", "SQRT", pos, {"shift": 1.0, "scale": 2.0}, lambda x: np.sqrt(2 * x + 1)),
    ]
    for name, mode, x, kw, fn in modes:
        nn("unary", name, {"x": x}, lambda b, mode=mode, kw=kw: b.add_unary("u", "x", "y", mode, **kw),
           lambda x, fn=fn: fn(x), tol="math")
    # The ND-era one-function layers.
    unit = f32(g, 2, 3, 4, lo=-0.9, hi=0.9)
    big = f32(g, 2, 3, 4, lo=1.1, hi=3.0)
    trig = [
        ("sin", anyx, np.sin), ("cos", anyx, np.cos), ("tan", f32(g, 2, 3, 4, lo=-1.2, hi=1.2), np.tan),
        ("asin", unit, np.arcsin), ("acos", unit, np.arccos), ("atan", anyx, np.arctan),
        ("sinh", anyx, np.sinh), ("cosh", anyx, np.cosh), ("tanh", anyx, np.tanh),
        ("asinh", anyx, np.arcsinh), ("acosh", big, np.arccosh), ("atanh", unit, np.arctanh),
        ("exp2", anyx, np.exp2), ("erf", anyx, lambda x: torch.erf(t(x)).numpy()),
    ]
    for layer, x, fn in trig:
        nn(layer, "basic", {"x": x}, lambda b, layer=layer: getattr(b, f"add_{layer}")(layer, "x", "y"),
           lambda x, fn=fn: fn(x), nd=True, tol="math")
    halves = np.array([[-2.5, -1.5, -0.5, 0.5], [1.5, 2.5, -0.7, 0.2], [0.7, 1.49, -1.51, 3.0]], np.float32)
    signs = anyx.copy()
    signs.flat[:4] = 0.0
    for layer, x, fn in [("ceil", anyx, np.ceil), ("floor", anyx, np.floor), ("sign", signs, np.sign),
                         ("round", halves, np.round)]:
        nn(layer, "basic", {"x": x}, lambda b, layer=layer: getattr(b, f"add_{layer}")(layer, "x", "y"),
           lambda x, fn=fn: fn(x), nd=True, tol="exact")
    nn("clip", "basic", {"x": anyx}, lambda b: b.add_clip("c", "x", "y", min_value=-1.0, max_value=1.5),
       lambda x: np.clip(x, -1.0, 1.5), nd=True)
    nn("copy", "basic", {"x": anyx}, lambda b: b.add_copy("c", "x", "y"), lambda x: x, nd=True, tol="exact")


def broadcastable_cases():
    g = rng("broadcastable")
    x, y = f32(g, 2, 3, 4), f32(g, 3, 1)
    ypos = f32(g, 3, 1, lo=0.5, hi=2.0)
    layers = [
        ("addBroadcastable", "add_broadcastable", y, np.add),
        ("subtractBroadcastable", "subtract_broadcastable", y, np.subtract),
        ("multiplyBroadcastable", "multiply_broadcastable", y, np.multiply),
        ("divideBroadcastable", "divide_broadcastable", ypos, np.divide),
        ("maxBroadcastable", "max_broadcastable", y, np.maximum),
        ("minBroadcastable", "min_broadcastable", y, np.minimum),
        ("floorDivBroadcastable", "floor_div_broadcastable", ypos, np.floor_divide),
        ("modBroadcastable", "mod_broadcastable", ypos, np.mod),
        ("powBroadcastable", "pow_broadcastable", f32(g, 3, 1, lo=0.5, hi=2.0), np.power),
    ]
    for layer, method, yv, fn in layers:
        xv = np.abs(x) + 0.1 if layer == "powBroadcastable" else x
        nn(layer, "broadcast", {"x": xv, "z": yv},
           lambda b, method=method: getattr(b, f"add_{method}")("op", ["x", "z"], "y"),
           lambda x, z, fn=fn: fn(x, z), nd=True, tol="math")
    nn("addBroadcastable", "rank_grows", {"x": f32(g, 4), "z": f32(g, 2, 3, 1)},
       lambda b: b.add_add_broadcastable("op", ["x", "z"], "y"), lambda x, z: x + z, nd=True)


def comparison_cases():
    g = rng("comparison")
    x = np.round(f32(g, 2, 3, 4))
    z = np.round(f32(g, 3, 1))
    f = lambda v: v.astype(np.float64)  # noqa: E731
    cmps = [
        ("greaterThan", lambda b, **kw: b.add_greater_than("c", **kw), np.greater, {}),
        ("greaterEqual", lambda b, **kw: b.add_greater_than("c", use_greater_than_equal=True, **kw),
         np.greater_equal, {}),
        ("lessThan", lambda b, **kw: b.add_less_than("c", **kw), np.less, {}),
        ("lessEqual", lambda b, **kw: b.add_less_than("c", use_less_than_equal=True, **kw), np.less_equal, {}),
        ("equal", lambda b, **kw: b.add_equal("c", **kw), np.equal, {}),
        ("notEqual", lambda b, **kw: b.add_not_equal("c", **kw), np.not_equal, {}),
    ]
    for layer, add, fn, _ in cmps:
        nn(layer, "broadcast", {"x": x, "z": z},
           lambda b, add=add: add(b, input_names=["x", "z"], output_name="y"),
           lambda x, z, fn=fn: f(fn(x, z)), nd=True, tol="exact")
        nn(layer, "alpha", {"x": x}, lambda b, add=add: add(b, input_names=["x"], output_name="y", alpha=1.0),
           lambda x, fn=fn: f(fn(x, 1.0)), nd=True, tol="exact")
    p = (f32(g, 2, 5) > 0).astype(np.float32) * f32(g, 2, 5, lo=0.5, hi=2)
    q = (f32(g, 2, 5) > 0).astype(np.float32)
    for layer, mode, fn in [("logicalAnd", "AND", np.logical_and), ("logicalOr", "OR", np.logical_or),
                            ("logicalXor", "XOR", np.logical_xor)]:
        nn(layer, "basic", {"p": p, "q": q}, lambda b, mode=mode: b.add_logical("l", ["p", "q"], "y", mode),
           lambda p, q, fn=fn: f(fn(p != 0, q != 0)), nd=True, tol="exact")
    nn("logicalNot", "basic", {"p": p}, lambda b: b.add_logical("l", ["p"], "y", "NOT"),
       lambda p: f(p == 0), nd=True, tol="exact")
    cond = (f32(g, 3, 1) > 0).astype(np.float32)
    a, bb = f32(g, 2, 3, 4), f32(g, 4)
    nn("whereBroadcastable", "basic", {"c": cond, "a": a, "b": bb},
       lambda b: b.add_where_broadcastable("w", ["c", "a", "b"], "y"),
       lambda c, a, b: np.where(c != 0, a, b), nd=True, tol="exact")


def cases():
    activation_cases()
    elementwise_cases()
    unary_cases()
    broadcastable_cases()
    comparison_cases()
