"""Conformance cases: recurrent layers (lstm, gru, rnn), random ops, list ops.

Recurrent references come from torch's nn.LSTM/GRU/RNN with the weights
re-ordered into MIL's gate layouts (lstm: [input, forget, output, cell];
gru: [reset, output, update]), or from numpy loops written from the MIL
documentation where torch has no equivalent (peephole, clip, other
activations, gru without reset_after). A `reverse` layer is torch run on the
flipped sequence, its outputs in processing order (as in coremltools' tests).

Random ops cannot match a generator bit for bit: their degenerate cases
(low == high, stddev 0, prob 0/1, one-hot probabilities) are exact, the
others are marked "check": "shape_only" (the test compares shapes only; the
expected array is a numpy sample of the same distribution).

List ops are checked through programs that build a list, write to it and
read it back (numpy references).
"""

from __future__ import annotations

import numpy as np
import torch

from coremltools.converters.mil import Builder as mb

from gen_conformance_cases import CASES, T15, T17, T18, add, f32, rng


def _np(a):
    return a.detach().numpy().astype(np.float64)


# ---------------------------------------------------------------- lstm
def ifzo_to_ifoz(w):
    i, f, z, o = np.split(w, 4)
    return np.concatenate([i, f, o, z])


def lstm_torch(tag, t_len, batch, inp, hid, direction, seq, target=T17, dtype=np.float32, tol="math"):
    g = rng(f"lstm-{tag}")
    bi = direction == "bidirectional"
    torch.manual_seed(0)
    m = torch.nn.LSTM(inp, hid, bidirectional=bi).double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.from_numpy(g.uniform(-0.6, 0.6, p.shape)))
    nd = 2 if bi else 1
    x = f32(g, t_len, batch, inp, lo=-1, hi=1).astype(dtype)
    h0 = f32(g, batch, nd * hid, lo=-1, hi=1).astype(dtype)
    c0 = f32(g, batch, nd * hid, lo=-1, hi=1).astype(dtype)
    sd = {k: v.detach().numpy() for k, v in m.state_dict().items()}

    def params(sfx):
        return (ifzo_to_ifoz(sd[f"weight_ih_l0{sfx}"]).astype(dtype),
                ifzo_to_ifoz(sd[f"weight_hh_l0{sfx}"]).astype(dtype),
                ifzo_to_ifoz(sd[f"bias_ih_l0{sfx}"] + sd[f"bias_hh_l0{sfx}"]).astype(dtype))

    wi, wh, b = params("")
    kw = dict(weight_ih=wi, weight_hh=wh, bias=b, direction=direction, output_sequence=seq)
    if bi:
        wib, whb, bb = params("_reverse")
        kw.update(weight_ih_back=wib, weight_hh_back=whb, bias_back=bb)

    def build(x, initial_h, initial_c):
        return mb.lstm(x=x, initial_h=initial_h, initial_c=initial_c, **kw)

    def ref(x, initial_h, initial_c):
        xs = torch.from_numpy(x)
        if direction == "reverse":
            xs = torch.flip(xs, [0])
        hs = torch.from_numpy(initial_h).reshape(batch, nd, hid).permute(1, 0, 2).contiguous()
        cs = torch.from_numpy(initial_c).reshape(batch, nd, hid).permute(1, 0, 2).contiguous()
        with torch.no_grad():
            out, (hn, cn) = m(xs, (hs, cs))
        if not seq:
            if bi:
                out = torch.cat([out[-1:, :, :hid], out[:1, :, hid:]], dim=2)
            else:
                out = out[-1:]
        flat = lambda s: _np(s.permute(1, 0, 2).reshape(batch, nd * hid))
        return [_np(out), flat(hn), flat(cn)]

    add("lstm", tag, {"x": x, "initial_h": h0, "initial_c": c0}, build, ref, tol, target=target)


def act(name, x):
    return {
        "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
        "tanh": np.tanh,
        "scaled_tanh": np.tanh,
        "relu": lambda v: np.maximum(v, 0.0),
        "hard_sigmoid": lambda v: np.clip(0.2 * v + 0.5, 0.0, 1.0),
        "linear": lambda v: v,
    }[name](x)


def lstm_numpy(tag, ract, cact, oact, clip, direction="forward", seq=True):
    """Peephole, clip and other activations (formulas of the MIL docs)."""
    g = rng(f"lstm-{tag}")
    t_len, batch, inp, hid = 4, 2, 3, 5
    wi = f32(g, 4 * hid, inp, lo=-0.7, hi=0.7)
    wh = f32(g, 4 * hid, hid, lo=-0.7, hi=0.7)
    b = f32(g, 4 * hid, lo=-0.5, hi=0.5)
    p = f32(g, 3 * hid, lo=-0.5, hi=0.5)
    x = f32(g, t_len, batch, inp, lo=-1.5, hi=1.5)
    h0 = f32(g, batch, hid, lo=-1, hi=1)
    c0 = f32(g, batch, hid, lo=-1, hi=1)

    def build(x, initial_h, initial_c):
        return mb.lstm(x=x, initial_h=initial_h, initial_c=initial_c, weight_ih=wi, weight_hh=wh, bias=b,
                       peephole=p, direction=direction, output_sequence=seq, recurrent_activation=ract,
                       cell_activation=cact, activation=oact, clip=np.float32(clip))

    def ref(x, initial_h, initial_c):
        W, R, B, P = (a.astype(np.float64) for a in (wi, wh, b, p))
        h, c = initial_h, initial_c
        outs = []
        steps = range(t_len - 1, -1, -1) if direction == "reverse" else range(t_len)
        for k in steps:
            gt = x[k] @ W.T + h @ R.T + B
            gi, gf, go, gz = np.split(gt, 4, axis=1)
            pi, pf, po = np.split(P, 3)
            i = act(ract, gi + c * pi)
            f = act(ract, gf + c * pf)
            z = act(cact, gz)
            c = np.clip(f * c + i * z, -clip, clip)
            o = act(ract, go + c * po)
            h = o * act(oact, c)
            outs.append(h)
        out = np.stack(outs) if seq else h[None]
        return [out, h, c]

    add("lstm", tag, {"x": x, "initial_h": h0, "initial_c": c0}, build, ref, "math", target=T15)


def lstm_cases():
    lstm_torch("forward_seq", 5, 2, 3, 4, "forward", True, target=T15)
    lstm_torch("forward_last", 3, 1, 4, 2, "forward", False)
    lstm_torch("reverse_seq", 4, 3, 2, 3, "reverse", True, target=T18)
    lstm_torch("bidirectional_seq", 4, 2, 3, 3, "bidirectional", True)
    lstm_torch("bidirectional_last", 3, 2, 2, 4, "bidirectional", False)
    lstm_torch("fp16", 4, 2, 3, 4, "forward", True, dtype=np.float16, tol="fp16")
    lstm_numpy("peephole_clip", "sigmoid", "tanh", "tanh", 0.8)
    lstm_numpy("hard_sigmoid_relu_linear", "hard_sigmoid", "relu", "linear", 3.0, "reverse", False)
    lstm_numpy("scaled_tanh", "sigmoid", "scaled_tanh", "sigmoid", 50.0)


# ---------------------------------------------------------------- gru
def gru_numpy(tag, direction, seq, ract="sigmoid", oact="tanh", target=T15, dtype=np.float32, tol="math"):
    """reset_after = False: o = act(W_o x + b_o + R_o (r * h)) (MIL docs, coremltools' tests)."""
    g = rng(f"gru-{tag}")
    t_len, batch, inp, hid = 4, 2, 3, 4
    wi = f32(g, 3 * hid, inp, lo=-0.7, hi=0.7).astype(dtype)
    wh = f32(g, 3 * hid, hid, lo=-0.7, hi=0.7).astype(dtype)
    b = f32(g, 3 * hid, lo=-0.5, hi=0.5).astype(dtype)
    x = f32(g, t_len, batch, inp, lo=-1.5, hi=1.5).astype(dtype)
    h0 = f32(g, batch, hid, lo=-1, hi=1).astype(dtype)

    def build(x, initial_h):
        return mb.gru(x=x, initial_h=initial_h, weight_ih=wi, weight_hh=wh, bias=b, direction=direction,
                      output_sequence=seq, recurrent_activation=ract, activation=oact)

    def ref(x, initial_h):
        W, R, B = (a.astype(np.float64) for a in (wi, wh, b))
        (Wr, Wo, Wz), (Rr, Ro, Rz), (br, bo, bz) = (np.split(a, 3) for a in (W, R, B))
        h = initial_h
        outs = []
        steps = range(t_len - 1, -1, -1) if direction == "reverse" else range(t_len)
        for k in steps:
            xt = x[k]
            r = act(ract, xt @ Wr.T + h @ Rr.T + br)
            z = act(ract, xt @ Wz.T + h @ Rz.T + bz)
            o = act(oact, xt @ Wo.T + (r * h) @ Ro.T + bo)
            h = (1 - z) * o + z * h
            outs.append(h)
        return [np.stack(outs) if seq else h[None], h]

    add("gru", tag, {"x": x, "initial_h": h0}, build, ref, tol, target=target)


def gru_reset_after(tag, direction, seq):
    """iOS18 reset_after = True with input_bias: torch.nn.GRU semantics."""
    g = rng(f"gru-{tag}")
    t_len, batch, inp, hid = 5, 2, 3, 4
    torch.manual_seed(0)
    m = torch.nn.GRU(inp, hid).double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.from_numpy(g.uniform(-0.6, 0.6, p.shape)))
    sd = {k: v.detach().numpy() for k, v in m.state_dict().items()}

    def rzn_to_roz(w):
        r, z, n = np.split(w, 3)
        return np.concatenate([r, n, z]).astype(np.float32)

    kw = dict(weight_ih=rzn_to_roz(sd["weight_ih_l0"]), weight_hh=rzn_to_roz(sd["weight_hh_l0"]),
              input_bias=rzn_to_roz(sd["bias_ih_l0"]), bias=rzn_to_roz(sd["bias_hh_l0"]), reset_after=True,
              direction=direction, output_sequence=seq)
    x = f32(g, t_len, batch, inp, lo=-1, hi=1)
    h0 = f32(g, batch, hid, lo=-1, hi=1)

    def build(x, initial_h):
        return mb.gru(x=x, initial_h=initial_h, **kw)

    def ref(x, initial_h):
        xs = torch.from_numpy(x)
        if direction == "reverse":
            xs = torch.flip(xs, [0])
        with torch.no_grad():
            out, hn = m(xs, torch.from_numpy(initial_h)[None])
        return [_np(out) if seq else _np(out[-1:]), _np(hn[0])]

    add("gru", tag, {"x": x, "initial_h": h0}, build, ref, "math", target=T18)


def gru_cases():
    gru_numpy("forward_seq", "forward", True)
    gru_numpy("reverse_last", "reverse", False, target=T17)
    gru_numpy("tanh_sigmoid_acts", "forward", True, ract="tanh", oact="sigmoid")
    gru_numpy("fp16", "forward", True, target=T17, dtype=np.float16, tol="fp16")
    gru_reset_after("reset_after_seq", "forward", True)
    gru_reset_after("reset_after_reverse", "reverse", False)


# ---------------------------------------------------------------- rnn
def rnn_case(tag, nonlin, direction, seq, target=T15, bias=True):
    g = rng(f"rnn-{tag}")
    t_len, batch, inp, hid = 5, 3, 4, 3
    torch.manual_seed(0)
    m = torch.nn.RNN(inp, hid, nonlinearity=nonlin, bias=bias).double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.from_numpy(g.uniform(-0.6, 0.6, p.shape)))
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in m.state_dict().items()}
    kw = dict(weight_ih=sd["weight_ih_l0"], weight_hh=sd["weight_hh_l0"], direction=direction,
              output_sequence=seq, activation=nonlin)
    if bias:
        kw["bias"] = sd["bias_ih_l0"] + sd["bias_hh_l0"]
    x = f32(g, t_len, batch, inp, lo=-1, hi=1)
    h0 = f32(g, batch, hid, lo=-1, hi=1)

    def build(x, initial_h):
        return mb.rnn(x=x, initial_h=initial_h, **kw)

    def ref(x, initial_h):
        xs = torch.from_numpy(x)
        if direction == "reverse":
            xs = torch.flip(xs, [0])
        with torch.no_grad():
            out, hn = m(xs, torch.from_numpy(initial_h)[None])
        return [_np(out) if seq else _np(out[-1:]), _np(hn[0])]

    add("rnn", tag, {"x": x, "initial_h": h0}, build, ref, "math", target=target)


def rnn_cases():
    rnn_case("tanh_seq", "tanh", "forward", True)
    rnn_case("relu_reverse_last", "relu", "reverse", False, target=T17)
    rnn_case("no_bias", "tanh", "forward", True, target=T18, bias=False)


# ---------------------------------------------------------------- random
def shape_only():
    CASES[-1].check = "shape_only"


def random_cases():
    g = rng("random")
    x = f32(g, 3, 4)
    sh = lambda x: mb.shape(x=x)
    add("random_uniform", "low_eq_high", {"x": x}, lambda x: mb.random_uniform(shape=sh(x), low=1.5, high=1.5),
        lambda x: np.full(x.shape, 1.5), "exact")
    add("random_uniform", "seeded_shape", {"x": x},
        lambda x: mb.random_uniform(shape=sh(x), low=-1.0, high=2.0, seed=5),
        lambda x: g.uniform(-1.0, 2.0, x.shape), "exact")
    shape_only()
    add("random_normal", "zero_stddev", {"x": x}, lambda x: mb.random_normal(shape=sh(x), mean=0.25, stddev=0.0),
        lambda x: np.full(x.shape, 0.25), "exact")
    add("random_normal", "seeded_shape", {"x": x},
        lambda x: mb.random_normal(shape=sh(x), mean=1.0, stddev=2.0, seed=3),
        lambda x: g.normal(1.0, 2.0, x.shape), "exact")
    shape_only()
    add("random_bernoulli", "prob_one", {"x": x}, lambda x: mb.random_bernoulli(shape=sh(x), prob=1.0, seed=1),
        lambda x: np.ones(x.shape), "exact")
    add("random_bernoulli", "prob_zero", {"x": x}, lambda x: mb.random_bernoulli(shape=sh(x), prob=0.0),
        lambda x: np.zeros(x.shape), "exact")
    add("random_bernoulli", "seeded_shape", {"x": x},
        lambda x: mb.random_bernoulli(shape=sh(x), prob=0.3, seed=9),
        lambda x: (g.uniform(size=x.shape) < 0.3).astype(np.float64), "exact")
    shape_only()
    onehot = np.zeros((2, 3, 5), np.float32)
    cats = np.array([[4, 0, 2], [1, 3, 3]])
    for i in range(2):
        for j in range(3):
            onehot[i, j, cats[i, j]] = 1.0
    add("random_categorical", "one_hot_probs", {"x": onehot},
        lambda x: mb.random_categorical(x=x, mode="probs", size=4, seed=2),
        lambda x: np.repeat(cats[..., None], 4, axis=2).astype(np.float64), "exact")
    logits = (onehot * 200.0 - 100.0).astype(np.float32)
    add("random_categorical", "peaked_logits", {"x": logits}, lambda x: mb.random_categorical(x=x),
        lambda x: cats[..., None].astype(np.float64), "exact")
    add("random_categorical", "seeded_shape", {"x": f32(g, 4, 6)},
        lambda x: mb.random_categorical(x=x, size=7, seed=4),
        lambda x: g.integers(0, 6, (4, 7)).astype(np.float64), "exact")
    shape_only()


# ---------------------------------------------------------------- lists
def _rows(x, n):
    return [mb.slice_by_index(x=x, begin=[i, 0], end=[i + 1, x.shape[1]], squeeze_mask=[True, False])
            for i in range(n)]


def list_cases():
    g = rng("list")
    x = f32(g, 3, 4)

    def filled(x, length=3, dynamic=False):
        ls = mb.make_list(init_length=length, dynamic_length=dynamic, elem_shape=[4], dtype="fp32")
        for i, r in enumerate(_rows(x, 3)):
            ls = mb.list_write(ls=ls, index=i, value=r)
        return ls

    add("make_list", "zeros", {"x": x},
        lambda x: mb.add(x=mb.list_gather(ls=mb.make_list(init_length=2, elem_shape=[3, 4], dtype="fp32"),
                                          indices=[1, 0]), y=x),
        lambda x: np.stack([x, x]), "exact")
    add("list_write", "fixed_length", {"x": x}, lambda x: mb.list_gather(ls=filled(x), indices=[0, 1, 2]),
        lambda x: x, "exact")
    add("list_write", "grow", {"x": x}, lambda x: mb.list_gather(ls=filled(x, length=0, dynamic=True),
                                                                indices=[2, 0]),
        lambda x: x[[2, 0]], "exact")
    add("list_read", "basic", {"x": x}, lambda x: mb.list_read(ls=filled(x), index=1), lambda x: x[1], "exact")
    add("list_gather", "repeat", {"x": x}, lambda x: mb.list_gather(ls=filled(x), indices=[2, 2, 0, 1]),
        lambda x: x[[2, 2, 0, 1]], "exact")
    add("list_length", "dynamic", {"x": x},
        lambda x: mb.reshape(x=mb.list_length(ls=filled(x, length=1, dynamic=True)), shape=[1]),
        lambda x: np.array([3], np.int32), "exact")
    add("list_scatter", "basic", {"x": x},
        lambda x: mb.list_gather(
            ls=mb.list_scatter(ls=mb.make_list(init_length=4, dynamic_length=False, elem_shape=[4], dtype="fp32"),
                               indices=[3, 0, 1], value=x),
            indices=[0, 1, 2, 3]),
        lambda x: np.stack([x[1], x[2], np.zeros(4), x[0]]), "exact")

    def loop(x):
        # while i < 3: ls[i] = x[i] * i; i += 1
        ls0 = mb.make_list(init_length=3, dynamic_length=False, elem_shape=[4], dtype="fp32")

        def cond(i, ls):
            return mb.less(x=i, y=3)

        def body(i, ls):
            row = mb.gather(x=x, indices=i, axis=0)
            val = mb.mul(x=row, y=mb.cast(x=i, dtype="fp32"))
            return mb.add(x=i, y=1), mb.list_write(ls=ls, index=i, value=val)

        _, ls = mb.while_loop(_cond=cond, _body=body, loop_vars=(np.int32(0), ls0))
        return mb.list_gather(ls=ls, indices=[0, 1, 2])

    add("list_write", "while_loop", {"x": x}, loop, lambda x: x * np.arange(3)[:, None], "exact")


def rnn_family_cases():
    """Every case of this module, in a fixed order."""
    lstm_cases()
    gru_cases()
    rnn_cases()
    random_cases()
    list_cases()
