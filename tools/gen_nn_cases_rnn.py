"""NeuralNetwork cases: simpleRecurrent, gru, uniDirectionalLSTM, biDirectionalLSTM
(see gen_conformance_neuralnetwork.py). Inputs are [Seq, Batch, I, 1, 1] blobs; the references
run the equations of NeuralNetwork.proto step by step in numpy.

A layer with reverseInput returns its output sequence in processing order (the output after
the last input first), as coremltools' MIL lstm/gru/rnn with direction "reverse" (which it
converts to these layers) documents.
"""

from __future__ import annotations

import numpy as np

from gen_nn_common import f32, nn, rng, sigmoid

ACTS = {"SIGMOID": sigmoid, "TANH": np.tanh, "RELU": lambda v: np.maximum(v, 0), "LINEAR": lambda v: v,
        "SIGMOID_HARD": lambda v: np.clip(0.2 * v + 0.5, 0, 1)}


def run_seq(x, step, state, reverse):
    """Applies `step(x_t, state) -> (y_t, state)` over x [S, B, I]; outputs in processing order."""
    order = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    ys = []
    for i in order:
        y, state = step(x[i], state)
        ys.append(y)
    return np.stack(ys), state


def to5(v):
    """[S, B, H] or [B, H] -> rank-5 [S or 1, B, H, 1, 1]."""
    v = np.asarray(v)
    if v.ndim == 2:
        v = v[None]
    return v[..., None, None]


def rnn_cases():
    g = rng("simpleRecurrent")
    s, bsz, i, h = 4, 2, 3, 5
    x = f32(g, s, bsz, i, 1, 1)
    w, r, b = f32(g, h, i, lo=-1, hi=1), f32(g, h, h, lo=-1, hi=1), f32(g, h)
    h0 = f32(g, 1, bsz, h, 1, 1)
    for name, act, seq, rev, with_h0 in [("tanh_sequence", "TANH", True, False, False),
                                         ("relu_last_reverse", "RELU", False, True, True),
                                         ("sigmoid_h0_sequence", "SIGMOID", True, False, True)]:
        def ref(x, h0=None, act=act, seq=seq, rev=rev):
            state = np.zeros((bsz, h)) if h0 is None else h0[0, :, :, 0, 0]
            ys, hT = run_seq(x[..., 0, 0], lambda xt, hp: (ACTS[act](xt @ w.T + hp @ r.T + b),) * 2, state, rev)
            return {"y": to5(ys if seq else ys[-1]), "hT": to5(hT)}

        ins = {"x": x, "h0": h0} if with_h0 else {"x": x}
        nn("simpleRecurrent", name, ins,
           lambda bb, act=act, seq=seq, rev=rev, ins=ins: bb.add_simple_rnn(
               "rnn", r, w, b, h, i, act, list(ins), ["y", "hT"], output_all=seq, reverse_input=rev),
           ref, nd=True, tol="math", outputs=["y", "hT"])


def gru_cases():
    g = rng("gru")
    s, bsz, i, h = 4, 2, 3, 5
    x = f32(g, s, bsz, i, 1, 1)
    wz, wr, wo = (f32(g, h, i, lo=-1, hi=1) for _ in range(3))
    rz, rr, ro = (f32(g, h, h, lo=-1, hi=1) for _ in range(3))
    bz, br, bo = (f32(g, h) for _ in range(3))
    h0 = f32(g, 1, bsz, h, 1, 1)
    for name, inner, act, seq, rev in [("sigmoid_tanh_sequence", "SIGMOID", "TANH", True, False),
                                       ("hard_sigmoid_last", "SIGMOID_HARD", "TANH", False, False),
                                       ("reverse_sequence", "SIGMOID", "TANH", True, True)]:
        def ref(x, h0, inner=inner, act=act, seq=seq, rev=rev):
            f, gg = ACTS[inner], ACTS[act]

            def step(xt, hp):
                z = f(xt @ wz.T + hp @ rz.T + bz)
                rg = f(xt @ wr.T + hp @ rr.T + br)
                o = gg(xt @ wo.T + (hp * rg) @ ro.T + bo)
                hn = (1 - z) * o + z * hp
                return hn, hn

            ys, hT = run_seq(x[..., 0, 0], step, h0[0, :, :, 0, 0], rev)
            return {"y": to5(ys if seq else ys[-1]), "hT": to5(hT)}

        nn("gru", name, {"x": x, "h0": h0},
           lambda bb, inner=inner, act=act, seq=seq, rev=rev: bb.add_gru(
               "gru", [rz, rr, ro], [wz, wr, wo], [bz, br, bo], h, i, ["x", "h0"], ["y", "hT"], activation=act,
               inner_activation=inner, output_all=seq, reverse_input=rev),
           ref, nd=True, tol="math", outputs=["y", "hT"])


def lstm_step(wx, wh, b, peep, acts, clip, forget_bias=False, coupled=False):
    """One LSTM step of NeuralNetwork.proto; gates in [i, f, o, z] order."""
    f, gg, hh = (ACTS[a] for a in acts)
    bi, bf, bo, bz = b
    if forget_bias:
        bf = bf + 1.0
    pi, pf, po = peep

    def step(xt, state):
        yp, cp = state
        i = f(xt @ wx[0].T + yp @ wh[0].T + pi * cp + bi)
        fg = 1 - i if coupled else f(xt @ wx[1].T + yp @ wh[1].T + pf * cp + bf)
        z = gg(xt @ wx[3].T + yp @ wh[3].T + bz)
        c = np.clip(cp * fg + i * z, -clip, clip)
        o = f(xt @ wx[2].T + yp @ wh[2].T + po * c + bo)
        y = hh(c) * o
        return y, (y, c)

    return step


def lstm_weights(g, i, h, peephole):
    wx = [f32(g, h, i, lo=-1, hi=1) for _ in range(4)]
    wh = [f32(g, h, h, lo=-1, hi=1) for _ in range(4)]
    b = [f32(g, h) for _ in range(4)]
    peep = [f32(g, h, lo=-0.5, hi=0.5) for _ in range(3)] if peephole else [np.zeros(h)] * 3
    return wx, wh, b, peep


def lstm_cases():
    g = rng("lstm")
    s, bsz, i, h = 4, 2, 3, 5
    x = f32(g, s, bsz, i, 1, 1)
    h0, c0 = f32(g, 1, bsz, h, 1, 1), f32(g, 1, bsz, h, 1, 1)
    specs = [
        ("sequence", dict(seq=True)),
        ("last_state_inputs", dict(seq=False, states=True)),
        ("peephole_clip", dict(seq=True, peephole=True, clip=0.8, states=True)),
        ("forget_bias", dict(seq=True, forget_bias=True)),
        ("reverse", dict(seq=True, rev=True, states=True)),
        ("hard_sigmoid_linear", dict(seq=True, acts=("SIGMOID_HARD", "TANH", "LINEAR"))),
    ]
    for name, o in specs:
        wx, wh, b, peep = lstm_weights(g, i, h, o.get("peephole", False))
        acts = o.get("acts", ("SIGMOID", "TANH", "TANH"))
        clip = o.get("clip", 50.0)

        def ref(x, h0=None, c0=None, wx=wx, wh=wh, b=b, peep=peep, o=o, acts=acts, clip=clip):
            st = (np.zeros((bsz, h)), np.zeros((bsz, h))) if h0 is None else (h0[0, :, :, 0, 0], c0[0, :, :, 0, 0])
            step = lstm_step(wx, wh, b, peep, acts, clip, o.get("forget_bias", False))
            ys, (yT, cT) = run_seq(x[..., 0, 0], step, st, o.get("rev", False))
            return {"y": to5(ys if o["seq"] else ys[-1]), "hT": to5(yT), "cT": to5(cT)}

        ins = {"x": x, "h0": h0, "c0": c0} if o.get("states") else {"x": x}
        nn("uniDirectionalLSTM", name, ins,
           lambda bb, wx=wx, wh=wh, b=b, peep=peep, o=o, acts=acts, clip=clip, ins=ins: bb.add_unilstm(
               "lstm", [wh[0], wh[1], wh[2], wh[3]], [wx[0], wx[1], wx[2], wx[3]], b, h, i, list(ins),
               ["y", "hT", "cT"], inner_activation=acts[0], cell_state_update_activation=acts[1],
               output_activation=acts[2], peep=peep if o.get("peephole") else None, output_all=o["seq"],
               forget_bias=o.get("forget_bias", False), cell_clip_threshold=clip, reverse_input=o.get("rev", False)),
           ref, nd=True, tol="math", outputs=["y", "hT", "cT"])
    # Rank-5 mapping: an input [I] is a one-step sequence [1, 1, I, 1, 1].
    wx, wh, b, peep = lstm_weights(g, i, h, False)
    xv = f32(g, i)
    def one_step(x):
        z = (np.zeros((1, h)), np.zeros((1, h)))
        y, (yT, cT) = lstm_step(wx, wh, b, peep, ("SIGMOID", "TANH", "TANH"), 50.0)(x[None], z)
        return {"y": y.reshape(-1), "hT": yT.reshape(-1), "cT": cT.reshape(-1)}

    nn("uniDirectionalLSTM", "rank5_mapping_one_step", {"x": xv},
       lambda bb: bb.add_unilstm("lstm", wh, wx, b, h, i, ["x"], ["y", "hT", "cT"]), one_step, tol="math",
       outputs=["y", "hT", "cT"])
    # Bidirectional: outputs [yf_t, yb_t] aligned with the input time steps.
    for name, seq, peephole in [("sequence", True, False), ("last_peephole", False, True)]:
        fw = lstm_weights(g, i, h, peephole)
        bw = lstm_weights(g, i, h, peephole)

        def ref(x, fw=fw, bw=bw, seq=seq):
            acts = ("SIGMOID", "TANH", "TANH")
            z = (np.zeros((bsz, h)), np.zeros((bsz, h)))
            yf, (hf, cf) = run_seq(x[..., 0, 0], lstm_step(*fw, acts, 50.0), z, False)
            yb, (hb, cb) = run_seq(x[..., 0, 0], lstm_step(*bw, acts, 50.0), z, True)
            yb = yb[::-1]
            y = np.concatenate([yf, yb], axis=-1) if seq else np.concatenate([yf[-1], yb[0]], axis=-1)
            return {"y": to5(y), "hf": to5(hf), "cf": to5(cf), "hb": to5(hb), "cb": to5(cb)}

        nn("biDirectionalLSTM", name, {"x": x},
           lambda bb, fw=fw, bw=bw, seq=seq, peephole=peephole: bb.add_bidirlstm(
               "bilstm", fw[1], fw[0], fw[2], bw[1], bw[0], bw[2], h, i, ["x"], ["y", "hf", "cf", "hb", "cb"],
               peep=fw[3] if peephole else None, peep_back=bw[3] if peephole else None, output_all=seq),
           ref, nd=True, tol="math", outputs=["y", "hf", "cf", "hb", "cb"])


def cases():
    rnn_cases()
    gru_cases()
    lstm_cases()
