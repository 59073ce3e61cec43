"""Conformance cases: tensor shape/transform ops, gather/scatter, control flow, iOS17/18 ops."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from coremltools.converters.mil import Builder as mb

from gen_conformance_cases import T16, T18, add, f32, i32, rng, t


def shape_cases():
    g = rng("shape")
    x = f32(g, 2, 3, 4)
    for name, shape, ref in (("basic", [4, 6], (4, 6)), ("minus_one", [2, -1], (2, 12)),
                             ("zero_copy", [0, -1], (3, 8)), ("rank5", [1, 2, 1, 3, 4], (1, 2, 1, 3, 4)),
                             ("rank1", [24], (24,))):
        add("reshape", name, {"x": x}, lambda x, s=shape: mb.reshape(x=x, shape=s),
            lambda x, r=ref: x.reshape(r), "exact")
    add("reshape", "zero_copy_ios16", {"x": x}, lambda x: mb.reshape(x=x, shape=[0, -1, 2]),
        lambda x: x.reshape(2, 6, 2), "exact", target=T16)
    add("reshape", "to_rank0", {"x": x[:1, :1, :1].reshape(1)}, lambda x: mb.reshape(x=x, shape=np.zeros(0, np.int32)),
        lambda x: x.reshape(()), "exact")
    add("reshape", "int32", {"x": i32(g, 2, 6)}, lambda x: mb.reshape(x=x, shape=[3, 4]),
        lambda x: x.reshape(3, 4), "exact")
    add("reshape", "fp16", {"x": x.astype(np.float16)}, lambda x: mb.reshape(x=x, shape=[6, 4]),
        lambda x: x.reshape(6, 4), "exact")
    for name, perm in (("swap_last", [0, 2, 1]), ("reverse", [2, 1, 0]), ("identity", [0, 1, 2])):
        add("transpose", name, {"x": x}, lambda x, p=perm: mb.transpose(x=x, perm=p),
            lambda x, p=perm: np.transpose(x, p), "exact")
    x5 = f32(g, 1, 2, 3, 2, 2)
    add("transpose", "rank5", {"x": x5}, lambda x: mb.transpose(x=x, perm=[4, 2, 0, 3, 1]),
        lambda x: np.transpose(x, [4, 2, 0, 3, 1]), "exact")
    add("transpose", "int32", {"x": i32(g, 2, 3)}, lambda x: mb.transpose(x=x, perm=[1, 0]),
        lambda x: x.T, "exact")
    for name, axes, sh in (("axis0", [0], (1, 2, 3, 4)), ("neg_axis", [-1], (2, 3, 4, 1)),
                           ("multiple", [0, 3], (1, 2, 3, 1, 4)), ("multiple_neg", [-1, -3], (2, 3, 1, 4, 1))):
        add("expand_dims", name, {"x": x}, lambda x, a=axes: mb.expand_dims(x=x, axes=a),
            lambda x, s=sh: x.reshape(s), "exact")
    add("expand_dims", "from_rank0", {"x": x[0, 0, :1]},
        lambda x: mb.expand_dims(x=mb.squeeze(x=x), axes=[0, 1]), lambda x: x.reshape(1, 1), "exact")
    xs = f32(g, 1, 3, 1, 2)
    for name, axes, sh in (("axis0", [0], (3, 1, 2)), ("neg_axis", [-2], (1, 3, 2)), ("all", None, (3, 2)),
                           ("two", [0, 2], (3, 2))):
        kw = {} if axes is None else {"axes": axes}
        add("squeeze", name, {"x": xs}, lambda x, kw=kw: mb.squeeze(x=x, **kw), lambda x, s=sh: x.reshape(s),
            "exact")
    add("squeeze", "to_rank0", {"x": f32(g, 1, 1)}, lambda x: mb.squeeze(x=x), lambda x: x.reshape(()), "exact")
    add("flatten2d", "axis1", {"x": x}, lambda x: mb.flatten2d(x=x), lambda x: x.reshape(2, 12), "exact")
    add("flatten2d", "neg_axis", {"x": x}, lambda x: mb.flatten2d(x=x, axis=-1), lambda x: x.reshape(6, 4), "exact")
    add("flatten2d", "axis0", {"x": x}, lambda x: mb.flatten2d(x=x, axis=0), lambda x: x.reshape(1, 24), "exact")
    add("flatten2d", "axis_rank", {"x": x}, lambda x: mb.flatten2d(x=x, axis=3), lambda x: x.reshape(24, 1), "exact")
    add("shape", "basic", {"x": x}, lambda x: mb.shape(x=x), lambda x: np.array(x.shape, np.int32), "exact")
    add("shape", "rank1", {"x": x[0, 0]}, lambda x: mb.shape(x=x), lambda x: np.array(x.shape, np.int32), "exact")
    add("fill", "const_shape", {"x": x}, lambda x: mb.add(x=x, y=mb.fill(shape=[2, 3, 4], value=1.5)),
        lambda x: x + 1.5, "exact")
    add("fill", "runtime_shape", {"x": x}, lambda x: mb.fill(shape=mb.shape(x=x), value=-2.0),
        lambda x: np.full(x.shape, -2.0), "exact")
    add("fill_like", "basic", {"x": x}, lambda x: mb.fill_like(ref_tensor=x, value=3.0),
        lambda x: np.full(x.shape, 3.0), "exact")
    add("fill_like", "int32_ref", {"x": i32(g, 2, 2)},
        lambda x: mb.add(x=mb.fill_like(ref_tensor=x, value=7), y=x), lambda x: x + 7, "exact")
    add("range_1d", "int", {"x": i32(g, 5)}, lambda x: mb.add(x=x, y=mb.range_1d(start=0, end=10, step=2)),
        lambda x: x + np.arange(0, 10, 2), "exact")
    add("range_1d", "float", {"x": f32(g, 4)},
        lambda x: mb.add(x=x, y=mb.range_1d(start=-1.0, end=1.0, step=0.5)),
        lambda x: x + np.arange(-1.0, 1.0, 0.5), "fp32")
    add("range_1d", "negative_step", {"x": i32(g, 3)},
        lambda x: mb.add(x=x, y=mb.range_1d(start=5, end=-1, step=-2)), lambda x: x + np.arange(5, -1, -2), "exact")
    add("range_1d", "runtime_end", {"x": np.array([4], np.int32)},
        lambda x: mb.range_1d(start=1, end=mb.squeeze(x=x), step=1), lambda x: np.arange(1, 4, dtype=np.int32),
        "exact")
    add("reshape_like", "basic", {"x": x, "r": f32(g, 4, 3, 5)},
        lambda x, r: mb.reshape_like(x=x, ref_tensors=(r, x), begins=(0, 0), ends=(2, 1), end_masks=(False, False)),
        lambda x, r: x.reshape(4, 3, 2), "exact")


def slice_cases():
    g = rng("slice")
    x = f32(g, 3, 4, 5)

    def sbi(name, ref, **kw):
        add("slice_by_index", name, {"x": x}, lambda x, kw=kw: mb.slice_by_index(x=x, **kw), ref, "exact")

    sbi("basic", lambda x: x[1:3, 0:2, 2:5], begin=[1, 0, 2], end=[3, 2, 5])
    sbi("stride", lambda x: x[0:3:2, 1:4:2, 0:5:3], begin=[0, 1, 0], end=[3, 4, 5], stride=[2, 2, 3])
    sbi("negative_indices", lambda x: x[-2:, 1:-1, -4:-1], begin=[-2, 1, -4], end=[3, -1, -1])
    sbi("negative_stride", lambda x: x[2:0:-1, ::-1, 4:0:-2], begin=[2, 0, 4], end=[0, 0, 0], stride=[-1, -1, -2],
        begin_mask=[False, True, False], end_mask=[False, True, False])
    sbi("masks", lambda x: x[:2, 1:, :], begin=[0, 1, 3], end=[2, 0, 1], begin_mask=[True, False, True],
        end_mask=[False, True, True])
    sbi("squeeze_mask", lambda x: x[1, :, 2], begin=[1, 0, 2], end=[2, 4, 3], squeeze_mask=[True, False, True])
    sbi("squeeze_all", lambda x: x[2, 3, 4], begin=[2, 3, 4], end=[3, 4, 5], squeeze_mask=[True, True, True])
    sbi("out_of_range_end", lambda x: x[1:, :, 3:], begin=[1, 0, 3], end=[10, 4, 100])
    add("slice_by_index", "runtime_begin", {"x": x, "b": np.array([1, 0, 1], np.int32)},
        lambda x, b: mb.slice_by_index(x=x, begin=b, end=[3, 4, 4]), lambda x, b: x[1:3, 0:4, 1:4], "exact")
    add("slice_by_index", "fp16", {"x": x.astype(np.float16)},
        lambda x: mb.slice_by_index(x=x, begin=[0, 1, 0], end=[2, 3, 5]), lambda x: x[0:2, 1:3], "exact")
    add("slice_by_size", "basic", {"x": x}, lambda x: mb.slice_by_size(x=x, begin=[1, 0, 2], size=[2, 3, 2]),
        lambda x: x[1:3, 0:3, 2:4], "exact")
    add("slice_by_size", "minus_one", {"x": x}, lambda x: mb.slice_by_size(x=x, begin=[1, 2, 0], size=[-1, -1, 3]),
        lambda x: x[1:, 2:, 0:3], "exact")
    add("slice_by_size", "runtime_begin", {"x": x, "b": np.array([0, 1, 2], np.int32)},
        lambda x, b: mb.slice_by_size(x=x, begin=b, size=[2, 2, 2]), lambda x, b: x[0:2, 1:3, 2:4], "exact")
    u = f32(g, 2, 2, 5)
    add("slice_update", "basic", {"x": x, "u": u},
        lambda x, u: mb.slice_update(x=x, update=u, begin=[1, 1, 0], end=[3, 3, 5]),
        lambda x, u: _assign(x, (slice(1, 3), slice(1, 3), slice(0, 5)), u), "exact", target=T18)
    u2 = f32(g, 2, 2, 2)
    add("slice_update", "stride", {"x": x, "u": u2},
        lambda x, u: mb.slice_update(x=x, update=u, begin=[0, 0, 1], end=[3, 4, 5], stride=[2, 3, 2]),
        lambda x, u: _assign(x, (slice(0, 3, 2), slice(0, 4, 3), slice(1, 5, 2)), u), "exact", target=T18)
    u3 = f32(g, 4, 5)
    add("slice_update", "squeeze_mask", {"x": x, "u": u3},
        lambda x, u: mb.slice_update(x=x, update=u, begin=[2, 0, 0], end=[3, 4, 5], squeeze_mask=[True, False, False]),
        lambda x, u: _assign(x, (2,), u), "exact", target=T18)
    # begin_mask on a squeezed axis: numpy takes index 0 (the op's reference
    # sets begin to None there); the same spans serve both ops.
    sbi("squeeze_begin_mask", lambda x: x[0, 1:3, :], begin=[2, 1, 0], end=[3, 3, 5],
        begin_mask=[True, False, False], squeeze_mask=[True, False, False])
    add("slice_update", "squeeze_begin_mask", {"x": x, "u": u3},
        lambda x, u: mb.slice_update(x=x, update=u, begin=[2, 0, 0], end=[3, 4, 5],
                                     begin_mask=[True, False, False], squeeze_mask=[True, False, False]),
        lambda x, u: _assign(x, (0,), u), "exact", target=T18)
    u4 = f32(g, 2, 4, 2)
    add("slice_update", "negative_stride_masks", {"x": x, "u": u4},
        lambda x, u: mb.slice_update(x=x, update=u, begin=[2, 0, 4], end=[0, 0, 0], stride=[-1, -1, -2],
                                     begin_mask=[False, True, False], end_mask=[False, True, False]),
        lambda x, u: _assign(x, (slice(2, 0, -1), slice(None, None, -1), slice(4, 0, -2)), u), "exact",
        target=T18)


def _assign(x, idx, v):
    y = x.copy()
    y[idx] = v
    return y


def combine_cases():
    g = rng("combine")
    a, b, c = f32(g, 2, 3), f32(g, 2, 3), f32(g, 2, 1)
    add("concat", "axis0", {"a": a, "b": b}, lambda a, b: mb.concat(values=(a, b), axis=0),
        lambda a, b: np.concatenate([a, b], 0), "exact")
    add("concat", "neg_axis_three", {"a": a, "b": b, "c": c}, lambda a, b, c: mb.concat(values=(a, c, b), axis=-1),
        lambda a, b, c: np.concatenate([a, c, b], -1), "exact")
    add("concat", "interleave", {"a": a, "b": b}, lambda a, b: mb.concat(values=(a, b), axis=0, interleave=True),
        lambda a, b: np.stack([a, b], 1).reshape(4, 3), "exact")
    add("concat", "with_const", {"a": a}, lambda a: mb.concat(values=(a, np.ones((1, 3), np.float32)), axis=0),
        lambda a: np.concatenate([a, np.ones((1, 3))], 0), "exact")
    add("concat", "int32", {"a": i32(g, 2, 2), "b": i32(g, 2, 3)}, lambda a, b: mb.concat(values=(a, b), axis=1),
        lambda a, b: np.concatenate([a, b], 1), "exact")
    add("concat", "fp16", {"a": a.astype(np.float16), "b": b.astype(np.float16)},
        lambda a, b: mb.concat(values=(a, b), axis=1), lambda a, b: np.concatenate([a, b], 1), "exact")
    for axis in (0, 1, 2, -1):
        add("stack", f"axis{axis}".replace("-", "m"), {"a": a, "b": b}, lambda a, b, ax=axis: mb.stack(values=(a, b), axis=ax),
            lambda a, b, ax=axis: np.stack([a, b], ax), "exact")
    x = f32(g, 2, 6, 3)
    add("split", "num_splits", {"x": x}, lambda x: mb.split(x=x, num_splits=3, axis=1),
        lambda x: np.split(x, 3, axis=1), "exact")
    add("split", "split_sizes", {"x": x}, lambda x: mb.split(x=x, split_sizes=[1, 3, 2], axis=1),
        lambda x: np.split(x, [1, 4], axis=1), "exact")
    add("split", "neg_axis", {"x": x}, lambda x: mb.split(x=x, split_sizes=[2, 1], axis=-1),
        lambda x: np.split(x, [2], axis=-1), "exact")
    for name, reps in (("basic", [2, 1, 3]), ("ones", [1, 1, 1]), ("rank2", [3, 2])):
        xi = x if len(reps) == 3 else x[0]
        add("tile", name, {"x": xi}, lambda x, r=reps: mb.tile(x=x, reps=r), lambda x, r=reps: np.tile(x, r), "exact")
    xp = f32(g, 2, 3, 4)
    for name, pad, mode, npmode in (
        ("constant", [1, 2, 0, 1, 2, 0], "constant", "constant"),
        ("constant_last_dims", [1, 1, 2, 3], "constant", "constant"),
        ("reflect", [0, 0, 1, 2, 2, 3], "reflect", "reflect"),
        ("replicate", [0, 0, 2, 1, 3, 3], "replicate", "edge"),
        ("replicate_last_dim", [3, 1], "replicate", "edge"),
    ):
        n = len(pad) // 2
        pw = [(0, 0)] * (3 - n) + [(pad[2 * i], pad[2 * i + 1]) for i in range(n)]
        kw = {"pad": pad, "mode": mode}
        if mode == "constant":
            kw["constant_val"] = 0.5
        add("pad", name, {"x": xp}, lambda x, kw=kw: mb.pad(x=x, **kw),
            lambda x, pw=pw, m=npmode: np.pad(x, pw, mode=m, **({"constant_values": 0.5} if m == "constant" else {})),
            "exact")
    add("pad", "fp16", {"x": xp.astype(np.float16)}, lambda x: mb.pad(x=x, pad=[1, 1], mode="reflect"),
        lambda x: np.pad(x, [(0, 0), (0, 0), (1, 1)], mode="reflect"), "exact")
    for name, axes in (("axis0", [0]), ("neg_axes", [-1, 1]), ("all", None)):
        kw = {} if axes is None else {"axes": axes}
        add("reverse", name, {"x": xp}, lambda x, kw=kw: mb.reverse(x=x, **kw),
            lambda x, a=axes: np.flip(x, axis=None if a is None else tuple(a)), "exact")
    xr = f32(g, 3, 4, 2)
    add("reverse_sequence", "basic", {"x": xr},
        lambda x: mb.reverse_sequence(x=x, lengths=np.array([2, 4, 1], np.int32), seq_axis=1, batch_axis=0),
        lambda x: np.stack([np.concatenate([x[i, :n][::-1], x[i, n:]]) for i, n in enumerate([2, 4, 1])]), "exact")
    xw = f32(g, 2, 6)
    add("sliding_windows", "basic", {"x": xw}, lambda x: mb.sliding_windows(x=x, axis=1, size=3),
        lambda x: np.stack([x[:, i:i + 3] for i in range(4)], 1), "exact")
    add("sliding_windows", "axis0", {"x": f32(g, 5, 2)}, lambda x: mb.sliding_windows(x=x, axis=0, size=2),
        lambda x: np.stack([x[i:i + 2] for i in range(4)], 0), "exact")


def op_cases():
    g = rng("tensor_op")
    x = f32(g, 4, 4)
    for name, lo, up in (("lower", -1, 0), ("upper", 0, -1), ("diag", 0, 0), ("band", 1, 2)):
        def ref(x, lo=lo, up=up):
            m, n = np.indices(x.shape[-2:])
            keep = ((lo < 0) | (m - n <= lo)) & ((up < 0) | (n - m <= up))
            return x * keep
        add("band_part", name, {"x": x}, lambda x, lo=lo, up=up: mb.band_part(x=x, lower=lo, upper=up), ref, "exact")
    add("band_part", "batched", {"x": f32(g, 2, 3, 4)}, lambda x: mb.band_part(x=x, lower=1, upper=0),
        lambda x: x * np.tril(np.triu(np.ones((3, 4)), -1)), "exact")
    c, a, b = f32(g, 3, 4), f32(g, 3, 4), f32(g, 3, 4)
    add("select", "basic", {"c": c, "a": a, "b": b}, lambda c, a, b: mb.select(cond=mb.greater(x=c, y=0.0), a=a, b=b),
        lambda c, a, b: np.where(c > 0, a, b), "exact")
    add("select", "broadcast", {"c": c[:, :1], "a": a, "b": b[0]},
        lambda c, a, b: mb.select(cond=mb.greater(x=c, y=0.0), a=a, b=b), lambda c, a, b: np.where(c > 0, a, b),
        "exact")
    add("select", "const_branch", {"c": c, "a": a}, lambda c, a: mb.select(cond=mb.less(x=c, y=0.5), a=a, b=-1.0),
        lambda c, a: np.where(c < 0.5, a, -1.0), "exact")
    xt = g.permutation(24).reshape(2, 3, 4).astype(np.float32) - 10
    for name, kw, ax, asc, k in (("default", {}, -1, False, 1), ("k2_axis1", {"k": 2, "axis": 1}, 1, False, 2),
                                 ("ascending", {"k": 3, "ascending": True}, -1, True, 3),
                                 ("axis0", {"k": 2, "axis": 0}, 0, False, 2)):
        def ref(x, ax=ax, asc=asc, k=k):
            idx = np.argsort(x if asc else -x, axis=ax, kind="stable")
            idx = np.take(idx, range(k), axis=ax)
            return [np.take_along_axis(x, idx, ax), idx.astype(np.int32)]
        add("topk", name, {"x": xt}, lambda x, kw=kw: mb.topk(x=x, **kw), ref, "exact")
    add("topk", "int32", {"x": xt.astype(np.int32)}, lambda x: mb.topk(x=x, k=2),
        lambda x: [-np.sort(-x, -1)[..., :2], np.argsort(-x, -1)[..., :2].astype(np.int32)], "exact")
    for name, kw, ax, asc in (("default", {}, -1, False), ("ascending_axis0", {"axis": 0, "ascending": True}, 0, True),
                              ("axis1", {"axis": 1}, 1, False)):
        add("argsort", name, {"x": xt}, lambda x, kw=kw: mb.argsort(x=x, **kw),
            lambda x, ax=ax, asc=asc: np.argsort(x if asc else -x, axis=ax, kind="stable").astype(np.int32), "exact")
    xc = f32(g, 2, 3, 4)
    for name, kw in (("default", {}), ("axis1", {"axis": 1}), ("neg_axis", {"axis": -1}),
                     ("exclusive", {"axis": 1, "exclusive": True}), ("reverse", {"axis": 2, "reverse": True}),
                     ("exclusive_reverse", {"axis": 0, "exclusive": True, "reverse": True})):
        def ref(x, kw=kw):
            ax = kw.get("axis", 0)
            y = np.flip(x, ax) if kw.get("reverse") else x
            cs = np.cumsum(y, axis=ax)
            if kw.get("exclusive"):
                cs = cs - y
            return np.flip(cs, ax) if kw.get("reverse") else cs
        add("cumsum", name, {"x": xc}, lambda x, kw=kw: mb.cumsum(x=x, **kw), ref, "fp32")
    add("cumsum", "int32", {"x": i32(g, 3, 4)}, lambda x: mb.cumsum(x=x, axis=1), lambda x: np.cumsum(x, 1), "exact")
    ind = np.array([[0, 2, 1], [3, 0, 2]], np.int32)
    add("one_hot", "default", {"i": ind}, lambda i: mb.one_hot(indices=i, one_hot_vector_size=4),
        lambda i: np.eye(4, dtype=np.float32)[i], "exact")
    add("one_hot", "axis0_values", {"i": ind},
        lambda i: mb.one_hot(indices=i, one_hot_vector_size=4, axis=0, on_value=5.0, off_value=-1.0),
        lambda i: np.moveaxis(np.where(np.eye(4)[i] > 0, 5.0, -1.0), -1, 0), "exact")
    add("one_hot", "int_values_axis1", {"i": ind[0]},
        lambda i: mb.one_hot(indices=i, one_hot_vector_size=3, axis=1, on_value=7, off_value=0),
        lambda i: (np.eye(3, dtype=np.int32)[i] * 7), "exact")
    xn = np.array([[0, 1.5, 0], [2, 0, -1]], np.float32)
    add("non_zero", "basic", {"x": xn}, lambda x: mb.non_zero(x=x), lambda x: np.argwhere(x != 0).astype(np.int32),
        "exact")
    add("non_zero", "rank3", {"x": (f32(g, 2, 2, 3) > 0.5).astype(np.float32)}, lambda x: mb.non_zero(x=x),
        lambda x: np.argwhere(x != 0).astype(np.int32), "exact")


def space_cases():
    g = rng("space")
    x = f32(g, 1, 8, 2, 3)
    add("pixel_shuffle", "basic", {"x": x}, lambda x: mb.pixel_shuffle(x=x, upscale_factor=2),
        lambda x: F.pixel_shuffle(t(x), 2).numpy(), "exact")
    add("pixel_unshuffle", "basic", {"x": f32(g, 1, 2, 4, 6)},
        lambda x: mb.pixel_unshuffle(x=x, downscale_factor=np.uint32(2)),
        lambda x: F.pixel_unshuffle(t(x), 2).numpy(), "exact", target=T16)

    def d2s(x, b):
        n, c, h, w = x.shape
        y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
        return y.reshape(n, c // (b * b), h * b, w * b)

    def s2d(x, b):
        n, c, h, w = x.shape
        y = x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4)
        return y.reshape(n, c * b * b, h // b, w // b)

    add("depth_to_space", "basic", {"x": x}, lambda x: mb.depth_to_space(x=x, block_size=2),
        lambda x: d2s(x, 2), "exact")
    xs = f32(g, 2, 2, 4, 6)
    add("space_to_depth", "basic", {"x": xs}, lambda x: mb.space_to_depth(x=x, block_size=2),
        lambda x: s2d(x, 2), "exact")
    assert np.array_equal(d2s(s2d(xs, 2), 2), xs)

    def s2b(x, bs, pads):
        n, c, h, w = x.shape
        xp = np.pad(x, [(0, 0), (0, 0), tuple(pads[0]), tuple(pads[1])])
        hp, wp = xp.shape[2:]
        y = xp.reshape(n, c, hp // bs[0], bs[0], wp // bs[1], bs[1]).transpose(3, 5, 0, 1, 2, 4)
        return y.reshape(bs[0] * bs[1] * n, c, hp // bs[0], wp // bs[1])

    def b2s(x, bs, crops):
        n, c, h, w = x.shape
        nb = n // (bs[0] * bs[1])
        y = x.reshape(bs[0], bs[1], nb, c, h, w).transpose(2, 3, 4, 0, 5, 1).reshape(nb, c, h * bs[0], w * bs[1])
        return y[:, :, crops[0][0]:h * bs[0] - crops[0][1], crops[1][0]:w * bs[1] - crops[1][1]]

    xb = f32(g, 2, 2, 3, 4)
    pads = [[1, 0], [0, 2]]
    add("space_to_batch", "basic", {"x": xb},
        lambda x: mb.space_to_batch(x=x, block_shape=[2, 3], paddings=pads), lambda x: s2b(x, [2, 3], pads), "exact")
    xb2 = f32(g, 12, 2, 2, 2)
    crops = [[1, 0], [0, 2]]
    add("batch_to_space", "basic", {"x": xb2},
        lambda x: mb.batch_to_space(x=x, block_shape=[2, 3], crops=crops), lambda x: b2s(x, [2, 3], crops), "exact")
    assert np.array_equal(b2s(s2b(xb, [2, 3], pads), [2, 3], pads), xb)


def gather_cases():
    g = rng("gather")
    x = f32(g, 4, 3, 5)
    add("gather", "axis0", {"x": x, "i": np.array([3, 0, 0, 2], np.int32)},
        lambda x, i: mb.gather(x=x, indices=i, axis=0), lambda x, i: np.take(x, i, 0), "exact")
    add("gather", "neg_axis_2d_indices", {"x": x, "i": np.array([[4, 0], [1, 1], [2, 3]], np.int32)},
        lambda x, i: mb.gather(x=x, indices=i, axis=-1), lambda x, i: np.take(x, i, -1), "exact")
    add("gather", "scalar_index", {"x": x}, lambda x: mb.gather(x=x, indices=np.int32(2), axis=1),
        lambda x: x[:, 2], "exact")
    add("gather", "const_indices", {"x": x}, lambda x: mb.gather(x=x, indices=np.array([1, 2], np.int32), axis=1),
        lambda x: x[:, [1, 2]], "exact")
    add("gather", "negative_indices_ios16", {"x": x, "i": np.array([-1, 0, -4], np.int32)},
        lambda x, i: mb.gather(x=x, indices=i, axis=0), lambda x, i: np.take(x, i, 0), "exact", target=T16)
    ib = np.array([[0, 2], [1, 1], [2, 0], [0, 0]], np.int32)
    add("gather", "batch_dims1", {"x": x, "i": ib}, lambda x, i: mb.gather(x=x, indices=i, axis=1, batch_dims=1),
        lambda x, i: np.stack([x[b][i[b]] for b in range(4)]), "exact")
    add("gather", "int32_data", {"x": i32(g, 5, 2), "i": np.array([4, 1], np.int32)},
        lambda x, i: mb.gather(x=x, indices=i, axis=0), lambda x, i: x[i], "exact")
    add("gather", "fp16", {"x": x.astype(np.float16), "i": np.array([1, 0], np.int32)},
        lambda x, i: mb.gather(x=x, indices=i, axis=2), lambda x, i: np.take(x, i, 2), "exact")
    ia = g.integers(0, 4, (2, 3, 5)).astype(np.int32)
    add("gather_along_axis", "axis0", {"x": x, "i": ia}, lambda x, i: mb.gather_along_axis(x=x, indices=i, axis=0),
        lambda x, i: np.take_along_axis(x, i, 0), "exact")
    ib = g.integers(0, 5, (4, 3, 2)).astype(np.int32)
    add("gather_along_axis", "neg_axis", {"x": x, "i": ib},
        lambda x, i: mb.gather_along_axis(x=x, indices=i, axis=-1), lambda x, i: np.take_along_axis(x, i, -1), "exact")
    ind = np.array([[0, 1], [3, 2], [1, 0]], np.int32)
    add("gather_nd", "pairs", {"x": x, "i": ind}, lambda x, i: mb.gather_nd(x=x, indices=i),
        lambda x, i: x[i[:, 0], i[:, 1]], "exact")
    ind3 = np.array([[[0, 1, 4]], [[3, 2, 0]]], np.int32)
    add("gather_nd", "full_index", {"x": x, "i": ind3}, lambda x, i: mb.gather_nd(x=x, indices=i),
        lambda x, i: x[i[..., 0], i[..., 1], i[..., 2]], "exact")
    add("gather_nd", "single", {"x": x, "i": np.array([[2], [0]], np.int32)}, lambda x, i: mb.gather_nd(x=x, indices=i),
        lambda x, i: x[i[:, 0]], "exact")
    indb = np.array([[[1], [0]], [[2], [2]], [[0], [1]], [[1], [1]]], np.int32)
    add("gather_nd", "batch_dims1", {"x": x, "i": indb},
        lambda x, i: mb.gather_nd(x=x, indices=i, batch_dims=1),
        lambda x, i: np.stack([x[b][i[b][:, 0]] for b in range(4)]), "exact")


SCATTER_MODES = {
    "update": lambda a, u: u,
    "add": lambda a, u: a + u,
    "sub": lambda a, u: a - u,
    "mul": lambda a, u: a * u,
    "div": lambda a, u: a / u,
    "max": np.maximum,
    "min": np.minimum,
}


def scatter_cases():
    g = rng("scatter")
    data = f32(g, 4, 3)
    idx = np.array([2, 0], np.int32)
    for mode, fn in SCATTER_MODES.items():
        upd = f32(g, 2, 3, lo=0.5, hi=2)

        def ref(d, u, i, fn=fn):
            y = d.copy()
            y[i] = fn(y[i], u)
            return y
        add("scatter", mode, {"d": data, "u": upd, "i": idx},
            lambda d, u, i, mode=mode: mb.scatter(data=d, indices=i, updates=u, mode=mode), ref, "fp32")
    upd = f32(g, 4, 2)
    add("scatter", "axis1", {"d": data, "u": upd, "i": np.array([2, 0], np.int32)},
        lambda d, u, i: mb.scatter(data=d, indices=i, updates=u, axis=1, mode="update"),
        lambda d, u, i: _assign(d, (slice(None), i), u), "exact")
    upd = f32(g, 3, 3)

    def dup_add(d, u, i):
        y = d.copy()
        np.add.at(y, i, u)
        return y
    add("scatter", "add_duplicates", {"d": data, "u": upd, "i": np.array([1, 1, 3], np.int32)},
        lambda d, u, i: mb.scatter(data=d, indices=i, updates=u, mode="add"), dup_add, "fp32")
    ia = np.array([[1, 0, 2], [3, 2, 0]], np.int32)
    for mode in ("update", "add", "mul"):
        ua = f32(g, 2, 3)

        def ref(d, u, i, mode=mode):
            y = d.copy()
            for r in range(i.shape[0]):
                for col in range(i.shape[1]):
                    y[i[r, col], col] = SCATTER_MODES[mode](y[i[r, col], col], u[r, col])
            return y
        add("scatter_along_axis", f"{mode}_axis0", {"d": data, "u": ua, "i": ia},
            lambda d, u, i, mode=mode: mb.scatter_along_axis(data=d, indices=i, updates=u, axis=0, mode=mode),
            ref, "fp32")
    ib = np.array([[2], [0], [1], [1]], np.int32)
    ub = f32(g, 4, 1)
    add("scatter_along_axis", "update_neg_axis", {"d": data, "u": ub, "i": ib},
        lambda d, u, i: mb.scatter_along_axis(data=d, indices=i, updates=u, axis=-1, mode="update"),
        lambda d, u, i: _put_along(d, i, u), "exact")
    d3 = f32(g, 3, 4, 2)
    ind = np.array([[0, 1], [2, 3], [1, 0]], np.int32)
    for mode in ("update", "add", "max"):
        un = f32(g, 3, 2)

        def ref(d, u, i, mode=mode):
            y = d.copy()
            for k in range(i.shape[0]):
                y[i[k, 0], i[k, 1]] = SCATTER_MODES[mode](y[i[k, 0], i[k, 1]], u[k])
            return y
        add("scatter_nd", mode, {"d": d3, "u": un, "i": ind},
            lambda d, u, i, mode=mode: mb.scatter_nd(data=d, indices=i, updates=u, mode=mode), ref, "fp32")
    ind1 = np.array([[2], [0]], np.int32)
    un1 = f32(g, 2, 4, 2)
    add("scatter_nd", "slices", {"d": d3, "u": un1, "i": ind1},
        lambda d, u, i: mb.scatter_nd(data=d, indices=i, updates=u, mode="update"),
        lambda d, u, i: _assign(d, (i[:, 0],), u), "exact")


def _put_along(d, i, u):
    y = d.copy()
    np.put_along_axis(y, i, u, axis=-1)
    return y


def control_cases():
    g = rng("control")
    x = f32(g, 2, 3)

    def cond_prog(x):
        pred = mb.greater(x=mb.reduce_sum(x=x), y=0.0)
        return mb.cond(pred=pred, _true_fn=lambda: mb.mul(x=x, y=2.0), _false_fn=lambda: mb.sub(x=x, y=1.0))

    for name, xv in (("true_branch", np.abs(x)), ("false_branch", -np.abs(x))):
        add("cond", name, {"x": xv}, cond_prog, lambda x: x * 2 if x.sum() > 0 else x - 1, "exact")

    def cond_two(x):
        pred = mb.less(x=mb.reduce_max(x=x), y=1.0)
        return mb.cond(pred=pred, _true_fn=lambda: (mb.relu(x=x), mb.exp(x=x)),
                       _false_fn=lambda: (mb.add(x=x, y=1.0), mb.mul(x=x, y=-1.0)))

    add("cond", "two_outputs", {"x": x}, cond_two,
        lambda x: [np.maximum(x, 0), np.exp(x)] if x.max() < 1 else [x + 1, -x], "math")

    def loop_prog(x):
        i0 = mb.const(val=np.int32(0))

        def body(i, acc):
            return mb.add(x=i, y=1), mb.add(x=mb.mul(x=acc, y=0.5), y=1.0)

        def cond_fn(i, acc):
            return mb.less(x=i, y=4)

        return mb.while_loop(_cond=cond_fn, _body=body, loop_vars=(i0, x))[1]

    def loop_ref(x):
        for _ in range(4):
            x = x * 0.5 + 1.0
        return x

    add("while_loop", "counter", {"x": x}, loop_prog, loop_ref, "fp32")

    def loop_data(x):
        def body(acc):
            return (mb.mul(x=acc, y=2.0),)

        def cond_fn(acc):
            return mb.less(x=mb.reduce_sum(x=acc), y=100.0)

        return mb.while_loop(_cond=cond_fn, _body=body, loop_vars=(x,))

    def loop_data_ref(x):
        while x.sum() < 100:
            x = x * 2
        return x

    add("while_loop", "data_dependent", {"x": np.abs(x) + 0.1}, loop_data, loop_data_ref, "fp32")


def sdpa_ref(q, k, v, mask=None):
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
    s = s - s.max(-1, keepdims=True)
    e = np.exp(s)
    return (e / e.sum(-1, keepdims=True)) @ v


def ios18_cases():
    g = rng("sdpa")
    q, k, v = f32(g, 1, 2, 3, 4), f32(g, 1, 2, 5, 4), f32(g, 1, 2, 5, 6)
    add("scaled_dot_product_attention", "no_mask", {"q": q, "k": k, "v": v},
        lambda q, k, v: mb.scaled_dot_product_attention(query=q, key=k, value=v), sdpa_ref, "math", target=T18)
    m = f32(g, 3, 5)
    add("scaled_dot_product_attention", "float_mask", {"q": q, "k": k, "v": v, "m": m},
        lambda q, k, v, m: mb.scaled_dot_product_attention(query=q, key=k, value=v, attn_mask=m), lambda q, k, v, m: sdpa_ref(q, k, v, m), "math",
        target=T18)
    causal = np.tril(np.ones((3, 5), bool), 2)
    add("scaled_dot_product_attention", "bool_mask", {"q": q, "k": k, "v": v},
        lambda q, k, v: mb.scaled_dot_product_attention(query=q, key=k, value=v, attn_mask=causal),
        lambda q, k, v: sdpa_ref(q, k, v, causal), "math", target=T18)
    add("scaled_dot_product_attention", "rank3", {"q": q[0], "k": k[0], "v": v[0]},
        lambda q, k, v: mb.scaled_dot_product_attention(query=q, key=k, value=v), sdpa_ref, "math", target=T18)
    add("scaled_dot_product_attention", "fp16",
        {"q": q.astype(np.float16), "k": k.astype(np.float16), "v": v.astype(np.float16)},
        lambda q, k, v: mb.scaled_dot_product_attention(query=q, key=k, value=v), sdpa_ref, "fp16", target=T18)
    g = rng("quant")
    x = f32(g, 2, 6, lo=-2, hi=2)
    add("quantize", "roundtrip_uint8", {"x": x},
        lambda x: mb.dequantize(input=mb.quantize(input=x, scale=np.float32(0.02), zero_point=np.uint8(128),
                                                  output_dtype="uint8"), scale=np.float32(0.02),
                                zero_point=np.uint8(128)),
        lambda x: (np.clip(np.round(x / 0.02) + 128, 0, 255) - 128) * 0.02, (1e-5, 1e-5))
    add("quantize", "roundtrip_int8_axis", {"x": x},
        lambda x: mb.dequantize(input=mb.quantize(input=x, scale=np.array([0.01, 0.02], np.float32), axis=0,
                                                  output_dtype="int8"), scale=np.array([0.01, 0.02], np.float32),
                                axis=0),
        lambda x: np.clip(np.round(x / np.array([[0.01], [0.02]])), -128, 127) * np.array([[0.01], [0.02]]),
        (1e-5, 1e-5))
    q8 = g.integers(-128, 128, (3, 4)).astype(np.int8)
    add("dequantize", "const_int8", {"x": f32(g, 3, 4)},
        lambda x: mb.add(x=x, y=mb.dequantize(input=q8, scale=np.float32(0.05), zero_point=np.int8(3))),
        lambda x: x + (q8.astype(np.float64) - 3) * 0.05, (1e-5, 1e-5))


def constexpr_cases():
    g = rng("constexpr")
    x = f32(g, 3, 4)
    q = g.integers(0, 256, (3, 4)).astype(np.uint8)
    zp, sc = np.array([1, 128, 255], np.uint8), np.array([0.1, 0.02, 0.5], np.float32)
    add("constexpr_affine_dequantize", "axis0", {"x": x},
        lambda x: mb.add(x=x, y=mb.constexpr_affine_dequantize(quantized_data=q, zero_point=zp, scale=sc, axis=0)),
        lambda x: x + (q.astype(np.float64) - zp[:, None]) * sc[:, None], (1e-5, 1e-5), target=T16)
    h = f32(g, 3, 4).astype(np.float16)
    add("constexpr_cast", "fp16_to_fp32", {"x": x},
        lambda x: mb.add(x=x, y=mb.constexpr_cast(source_val=h, output_dtype="fp32")),
        lambda x: x + h.astype(np.float64), (1e-6, 1e-6), target=T16)
    d = g.integers(-8, 8, (4, 6)).astype(np.int8)
    bs, bo = f32(g, 2, 3, lo=0.1, hi=1), g.integers(-2, 3, (2, 3)).astype(np.int8)
    xs = f32(g, 4, 6)

    def bss_ref(x):
        return x + (d - np.repeat(np.repeat(bo, 2, 0), 2, 1)) * np.repeat(np.repeat(bs.astype(np.float64), 2, 0), 2, 1)

    add("constexpr_blockwise_shift_scale", "blocks2x2", {"x": xs},
        lambda x: mb.add(x=x, y=mb.constexpr_blockwise_shift_scale(data=d, scale=bs, offset=bo)), bss_ref,
        (1e-5, 1e-5), target=T18)


def tensor_cases():
    shape_cases()
    slice_cases()
    combine_cases()
    op_cases()
    space_cases()
    gather_cases()
    scatter_cases()
    control_cases()
    ios18_cases()
    constexpr_cases()
