"""Conformance cases: conv, pooling, normalization, reductions, image resizing."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from coremltools.converters.mil import Builder as mb

from gen_conformance_cases import T16, add, f32, i32, rng, t

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def torch_pad(x, pads, value=0.0):
    """`pads` = [before0, after0, before1, after1, ...] over the spatial dims."""
    tp = []
    for i in reversed(range(len(pads) // 2)):
        tp += [pads[2 * i], pads[2 * i + 1]]
    return F.pad(x, tp, value=value)


def same_pads(spatial, kernel, strides, dilations, lower=False):
    pads = []
    for n, k, s, d in zip(spatial, kernel, strides, dilations):
        out = -(-n // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        small = total // 2
        pads += [total - small, small] if lower else [small, total - small]
    return pads


def conv_ref(x, w, b, strides, pads, dilations, groups):
    nd = x.ndim - 2
    y = CONV[nd](torch_pad(t(x), pads), t(w), None if b is None else t(b), stride=strides, dilation=dilations,
                 groups=groups)
    return y.numpy()


def conv_cases():
    g = rng("conv")
    specs = [
        # name, x shape, w shape, strides, pad_type, pad, dilations, groups, bias
        ("2d_valid", (1, 2, 6, 5), (3, 2, 3, 3), [1, 1], "valid", None, [1, 1], 1, True),
        ("2d_no_bias", (1, 2, 6, 5), (3, 2, 3, 3), [1, 1], "valid", None, [1, 1], 1, False),
        ("2d_same", (1, 2, 6, 5), (4, 2, 3, 3), [1, 1], "same", None, [1, 1], 1, True),
        ("2d_same_stride2", (1, 2, 7, 5), (4, 2, 3, 3), [2, 2], "same", None, [1, 1], 1, True),
        ("2d_same_lower_stride2", (1, 2, 6, 6), (2, 2, 3, 3), [2, 2], "same_lower", None, [1, 1], 1, False),
        ("2d_custom_pad", (2, 2, 5, 5), (3, 2, 3, 2), [1, 1], "custom", [1, 0, 2, 1], [1, 1], 1, True),
        ("2d_strides", (1, 3, 7, 8), (2, 3, 3, 3), [2, 3], "valid", None, [1, 1], 1, True),
        ("2d_dilations", (1, 2, 8, 8), (2, 2, 3, 3), [1, 1], "valid", None, [2, 3], 1, True),
        ("2d_groups2", (1, 4, 5, 5), (6, 2, 3, 3), [1, 1], "valid", None, [1, 1], 2, True),
        ("2d_depthwise", (1, 3, 5, 5), (6, 1, 3, 3), [1, 1], "custom", [1, 1, 1, 1], [1, 1], 3, True),
        ("2d_1x1", (2, 4, 3, 3), (5, 4, 1, 1), [1, 1], "valid", None, [1, 1], 1, True),
        ("1d", (2, 3, 9), (4, 3, 3), [2], "custom", [1, 2], [1], 1, True),
        ("1d_dilated_same", (1, 2, 9), (2, 2, 3), [1], "same", None, [2], 1, False),
        ("3d", (1, 2, 4, 4, 4), (2, 2, 2, 3, 2), [1, 1, 1], "valid", None, [1, 1, 1], 1, True),
    ]
    for name, sx, sw, strides, pad_type, pad, dil, groups, has_b in specs:
        x, w = f32(g, *sx), f32(g, *sw, lo=-1, hi=1)
        b = f32(g, sw[0]) if has_b else None
        k = list(sw[2:])
        if pad_type == "custom":
            pads = pad
        elif pad_type == "valid":
            pads = [0] * (2 * len(k))
        else:
            pads = same_pads(sx[2:], k, strides, dil, lower=pad_type == "same_lower")
        kw = dict(weight=w, strides=strides, pad_type=pad_type, dilations=dil, groups=groups)
        if pad is not None:
            kw["pad"] = pad
        if b is not None:
            kw["bias"] = b
        add("conv", name, {"x": x}, lambda x, kw=kw: mb.conv(x=x, **kw),
            lambda x, w=w, b=b, s=strides, p=pads, d=dil, gr=groups: conv_ref(x, w, b, s, p, d, gr), "math")
    x, w = f32(g, 1, 2, 5, 5), f32(g, 3, 2, 3, 3, lo=-1, hi=1)
    add("conv", "runtime_weight", {"x": x, "w": w}, lambda x, w: mb.conv(x=x, weight=w, pad_type="valid"),
        lambda x, w: conv_ref(x, w, None, [1, 1], [0] * 4, [1, 1], 1), "math")
    add("conv", "fp16", {"x": x.astype(np.float16)},
        lambda x: mb.conv(x=x, weight=w.astype(np.float16), pad_type="same"),
        lambda x: conv_ref(x, w.astype(np.float16), None, [1, 1], [1, 1, 1, 1], [1, 1], 1), "fp16")
    tspecs = [
        # name, x, w [C_in, C_out/groups, *K], strides, pad, dilations, groups, bias
        ("2d_valid", (1, 2, 3, 3), (2, 3, 3, 3), [1, 1], [0, 0, 0, 0], [1, 1], 1, True),
        ("2d_stride2", (1, 2, 3, 4), (2, 3, 3, 3), [2, 2], [0, 0, 0, 0], [1, 1], 1, False),
        ("2d_custom_pad", (1, 2, 4, 4), (2, 2, 3, 3), [2, 2], [1, 1, 1, 0], [1, 1], 1, True),
        ("2d_dilations", (1, 2, 3, 3), (2, 2, 2, 2), [1, 1], [0, 0, 0, 0], [2, 2], 1, True),
        ("2d_groups2", (1, 4, 3, 3), (4, 1, 3, 3), [1, 1], [0, 0, 0, 0], [1, 1], 2, True),
        ("1d", (2, 3, 5), (3, 2, 3), [2], [1, 1], [1], 1, True),
    ]
    for name, sx, sw, strides, pad, dil, groups, has_b in tspecs:
        x, w = f32(g, *sx), f32(g, *sw, lo=-1, hi=1)
        cout = sw[1] * groups
        b = f32(g, cout) if has_b else None
        kw = dict(weight=w, strides=strides, pad_type="custom" if any(pad) else "valid", dilations=dil,
                  groups=groups)
        if any(pad):
            kw["pad"] = pad
        if b is not None:
            kw["bias"] = b

        def ref(x, w=w, b=b, s=strides, p=pad, d=dil, gr=groups):
            y = CONV_T[x.ndim - 2](t(x), t(w), None if b is None else t(b), stride=s, dilation=d, groups=gr)
            y = y.numpy()
            for i in range(x.ndim - 2):
                n = y.shape[2 + i]
                y = np.take(y, range(p[2 * i], n - p[2 * i + 1]), axis=2 + i)
            return y

        add("conv_transpose", name, {"x": x}, lambda x, kw=kw: mb.conv_transpose(x=x, **kw), ref, "math")


def pool_ref(kind, x, k, s, pads, exclude=False):
    nd = x.ndim - 2
    xt = t(x)
    if kind == "max":
        return MAX[nd](torch_pad(xt, pads, -math.inf), k, s).numpy()
    if kind == "l2":
        return np.sqrt(AVG[nd](torch_pad(xt * xt, pads), k, s).numpy() * np.prod(k))
    avg = AVG[nd](torch_pad(xt, pads), k, s).numpy()
    if not exclude:
        return avg
    ones = torch_pad(torch.ones_like(xt), pads)
    return avg / AVG[nd](ones, k, s).numpy()


def pool_cases():
    g = rng("pool")
    specs = [
        # name, x, kernel, strides, pad_type, pad
        ("2d_valid", (1, 2, 5, 6), [2, 2], [2, 2], "valid", None),
        ("2d_overlap", (2, 2, 5, 5), [3, 3], [1, 1], "valid", None),
        ("2d_custom_pad", (1, 2, 5, 5), [3, 3], [2, 2], "custom", [1, 1, 1, 1]),
        ("2d_same", (1, 2, 5, 6), [3, 3], [2, 2], "same", None),
        ("2d_same_lower", (1, 2, 6, 6), [2, 2], [2, 2], "same_lower", None),
        ("2d_rect", (1, 1, 6, 7), [2, 3], [1, 2], "valid", None),
        ("1d", (1, 3, 9), [3], [2], "custom", [1, 1]),
        ("3d", (1, 2, 4, 4, 4), [2, 2, 2], [2, 2, 2], "valid", None),
    ]
    for op, kind in (("avg_pool", "avg"), ("max_pool", "max"), ("l2_pool", "l2")):
        for name, sx, k, s, pad_type, pad in specs:
            if kind == "l2" and name == "3d":
                continue
            x = f32(g, *sx)
            if pad_type == "custom":
                pads = pad
            elif pad_type == "valid":
                pads = [0] * (2 * len(k))
            else:
                pads = same_pads(sx[2:], k, s, [1] * len(k), lower=pad_type == "same_lower")
            kw = dict(kernel_sizes=k, strides=s, pad_type=pad_type)
            if pad is not None:
                kw["pad"] = pad
            if kind == "avg":
                kw["exclude_padding_from_average"] = False
            add(op, name, {"x": x}, lambda x, op=op, kw=kw: getattr(mb, op)(x=x, **kw),
                lambda x, kind=kind, k=k, s=s, p=pads: pool_ref(kind, x, k, s, p), "math")
    x = f32(g, 1, 2, 5, 5)
    add("avg_pool", "exclude_padding", {"x": x},
        lambda x: mb.avg_pool(x=x, kernel_sizes=[3, 3], strides=[2, 2], pad_type="custom", pad=[1, 1, 1, 1],
                              exclude_padding_from_average=True),
        lambda x: pool_ref("avg", x, [3, 3], [2, 2], [1, 1, 1, 1], True), "math")
    add("avg_pool", "same_exclude_padding", {"x": x},
        lambda x: mb.avg_pool(x=x, kernel_sizes=[3, 3], strides=[1, 1], pad_type="same",
                              exclude_padding_from_average=True),
        lambda x: pool_ref("avg", x, [3, 3], [1, 1], [1, 1, 1, 1], True), "math")
    xc = f32(g, 1, 2, 6, 6)
    add("max_pool", "ceil_mode", {"x": xc},
        lambda x: mb.max_pool(x=x, kernel_sizes=[3, 3], strides=[2, 2], pad_type="valid", ceil_mode=True),
        lambda x: F.max_pool2d(t(x), 3, 2, ceil_mode=True).numpy(), "exact")
    add("max_pool", "fp16", {"x": x.astype(np.float16)},
        lambda x: mb.max_pool(x=x, kernel_sizes=[2, 2], strides=[1, 1], pad_type="valid"),
        lambda x: pool_ref("max", x, [2, 2], [1, 1], [0] * 4), "fp16")
    add("avg_pool", "fp16", {"x": x.astype(np.float16)},
        lambda x: mb.avg_pool(x=x, kernel_sizes=[2, 2], strides=[1, 1], pad_type="valid"),
        lambda x: pool_ref("avg", x, [2, 2], [1, 1], [0] * 4), "fp16")


def norm_cases():
    g = rng("norm")
    for shape in ((2, 3, 4), (2, 3, 2, 3), (1, 3, 2, 2, 2)):
        x = f32(g, *shape)
        mean, var = f32(g, 3), f32(g, 3, lo=0.5, hi=2)
        gamma, beta = f32(g, 3), f32(g, 3)
        sh = (1, 3) + (1,) * (len(shape) - 2)

        def ref(x, mean=mean, var=var, gamma=gamma, beta=beta, sh=sh, eps=1e-5):
            y = (x - mean.reshape(sh)) / np.sqrt(var.reshape(sh).astype(np.float64) + eps)
            return y * gamma.reshape(sh) + beta.reshape(sh)

        add("batch_norm", f"rank{len(shape)}", {"x": x},
            lambda x, m=mean, v=var, ga=gamma, be=beta: mb.batch_norm(x=x, mean=m, variance=v, gamma=ga, beta=be),
            ref, "math")
    x = f32(g, 2, 3, 4)
    add("batch_norm", "no_affine_eps", {"x": x}, lambda x: mb.batch_norm(x=x, mean=mean, variance=var, epsilon=0.1),
        lambda x: (x - mean.reshape(1, 3, 1)) / np.sqrt(var.reshape(1, 3, 1).astype(np.float64) + 0.1),
        "math")
    for shape in ((2, 3, 5), (2, 3, 2, 3)):
        x = f32(g, *shape)
        gamma, beta = f32(g, 3), f32(g, 3)
        sh = (1, 3) + (1,) * (len(shape) - 2)
        axes = tuple(range(2, len(shape)))

        def ref(x, gamma=gamma, beta=beta, sh=sh, axes=axes):
            m, v = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
            return (x - m) / np.sqrt(v + 1e-5) * gamma.reshape(sh) + beta.reshape(sh)

        add("instance_norm", f"rank{len(shape)}", {"x": x},
            lambda x, ga=gamma, be=beta: mb.instance_norm(x=x, gamma=ga, beta=be), ref, "math")
    x = f32(g, 2, 3, 4)
    add("instance_norm", "no_affine", {"x": x}, lambda x: mb.instance_norm(x=x, epsilon=0.01),
        lambda x: (x - x.mean(axis=2, keepdims=True)) / np.sqrt(x.var(axis=2, keepdims=True) + 0.01), "math")

    def ln(x, axes, gamma=None, beta=None, eps=1e-5):
        axes = tuple(range(x.ndim)) if axes is None else tuple(axes)
        y = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
        return y * (1 if gamma is None else gamma) + (0 if beta is None else beta)

    x = f32(g, 2, 3, 4)
    gamma, beta = f32(g, 4), f32(g, 4)
    add("layer_norm", "last_axis", {"x": x}, lambda x: mb.layer_norm(x=x, axes=[-1], gamma=gamma, beta=beta),
        lambda x: ln(x, [-1], gamma, beta), "math")
    add("layer_norm", "no_affine", {"x": x}, lambda x: mb.layer_norm(x=x, axes=[2], epsilon=0.01),
        lambda x: ln(x, [2], eps=0.01), "math")
    g2, b2 = f32(g, 3, 4), f32(g, 3, 4)
    add("layer_norm", "two_axes", {"x": x}, lambda x: mb.layer_norm(x=x, axes=[-2, -1], gamma=g2, beta=b2),
        lambda x: ln(x, [-2, -1], g2, b2), "math")
    add("layer_norm", "all_axes", {"x": x}, lambda x: mb.layer_norm(x=x, axes=[0, 1, 2]), lambda x: ln(x, None),
        "math")
    add("layer_norm", "fp16", {"x": x.astype(np.float16)},
        lambda x: mb.layer_norm(x=x, axes=[-1], gamma=gamma.astype(np.float16), beta=beta.astype(np.float16)),
        lambda x: ln(x, [-1], gamma.astype(np.float16), beta.astype(np.float16)), "fp16")
    for shape in ((2, 3, 4), (2, 2, 3, 2)):
        x = f32(g, *shape)
        add("l2_norm", f"rank{len(shape)}", {"x": x}, lambda x: mb.l2_norm(x=x),
            lambda x: x / np.sqrt((x**2).sum(axis=(-3, -2, -1), keepdims=True) + 1e-6), "math")
    for name, shape, size in (("rank4_size3", (1, 5, 2, 3), 3), ("rank4_size5", (2, 6, 2, 2), 5),
                              ("rank3_size3", (1, 4, 3), 3)):
        x = f32(g, *shape)
        add("local_response_norm", name, {"x": x},
            lambda x, size=size: mb.local_response_norm(x=x, size=size, alpha=0.01, beta=0.75, k=2.0),
            lambda x, size=size: F.local_response_norm(t(x), size, alpha=0.01, beta=0.75, k=2.0).numpy(), "math")


REDUCE = {
    "reduce_l1_norm": lambda x, a, k: np.abs(x).sum(axis=a, keepdims=k),
    "reduce_l2_norm": lambda x, a, k: np.sqrt((x**2).sum(axis=a, keepdims=k)),
    "reduce_log_sum": lambda x, a, k: np.log(x.sum(axis=a, keepdims=k)),
    "reduce_log_sum_exp": lambda x, a, k: np.log(np.exp(x).sum(axis=a, keepdims=k)),
    "reduce_max": lambda x, a, k: x.max(axis=a, keepdims=k),
    "reduce_mean": lambda x, a, k: x.mean(axis=a, keepdims=k),
    "reduce_min": lambda x, a, k: x.min(axis=a, keepdims=k),
    "reduce_prod": lambda x, a, k: x.prod(axis=a, keepdims=k),
    "reduce_sum": lambda x, a, k: x.sum(axis=a, keepdims=k),
    "reduce_sum_square": lambda x, a, k: (x**2).sum(axis=a, keepdims=k),
}


def reduce_cases():
    for op, fn in REDUCE.items():
        g = rng(op)
        x = f32(g, 2, 3, 4, lo=0.2 if op == "reduce_log_sum" else -2, hi=2)
        if op == "reduce_prod":
            x = f32(g, 2, 3, 4, lo=0.5, hi=1.5) * np.sign(f32(g, 2, 3, 4))
        for name, axes, keep in (("axis1", [1], False), ("neg_axis_keep_dims", [-1], True),
                                 ("two_axes", [0, 2], False), ("two_axes_keep_dims", [0, -1], True),
                                 ("all_axes", None, False), ("all_axes_keep_dims", None, True)):
            kw = {"keep_dims": keep}
            if axes is not None:
                kw["axes"] = axes
            a = None if axes is None else tuple(axes)
            add(op, name, {"x": x}, lambda x, op=op, kw=kw: getattr(mb, op)(x=x, **kw),
                lambda x, fn=fn, a=a, k=keep: fn(x, a, k), "math")
        if op in ("reduce_sum", "reduce_mean", "reduce_max"):
            add(op, "fp16", {"x": x.astype(np.float16)}, lambda x, op=op: getattr(mb, op)(x=x, axes=[-1]),
                lambda x, fn=fn: fn(x, (-1,), False), "fp16")
        if op in ("reduce_sum", "reduce_max", "reduce_min", "reduce_prod"):
            xi = i32(g, 2, 3, 4, lo=-3, hi=4)
            add(op, "int32", {"x": xi}, lambda x, op=op: getattr(mb, op)(x=x, axes=[1]),
                lambda x, fn=fn: fn(x, (1,), False), "exact")
    for op, fn in (("reduce_argmax", np.argmax), ("reduce_argmin", np.argmin)):
        g = rng(op)
        x = g.permutation(24).reshape(2, 3, 4).astype(np.float32)
        for name, axis, keep in (("default", None, False), ("axis0", 0, False), ("neg_axis_keep_dims", -2, True)):
            kw = {"keep_dims": keep}
            if axis is not None:
                kw["axis"] = axis
            a = -1 if axis is None else axis
            add(op, name, {"x": x}, lambda x, op=op, kw=kw: getattr(mb, op)(x=x, **kw),
                lambda x, fn=fn, a=a, k=keep: np.expand_dims(fn(x, axis=a), a) if k else fn(x, axis=a), "exact")


def grid(mode, n_in, n_out):
    i = np.arange(n_out, dtype=np.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        g = i * (n_in - 1) / (n_out - 1) if n_out > 1 else np.array([(n_in - 1) / 2.0])
    elif mode == "DEFAULT":
        g = i * (n_in - n_in / n_out) / (n_out - 1) if n_out > 1 else np.zeros(1)
    elif mode == "OFFSET_CORNERS":
        delta = max(1, n_in - 1) / n_out
        g = 0.5 * delta + i * delta
    else:  # UNALIGN_CORNERS
        s = n_in / n_out
        g = i * s + 0.5 * s - 0.5
    return np.clip(g, 0, n_in - 1)


def lerp_axis(x, axis, pts):
    i0 = np.floor(pts).astype(int)
    i1 = np.minimum(i0 + 1, x.shape[axis] - 1)
    w = pts - i0
    sh = [1] * x.ndim
    sh[axis] = -1
    return np.take(x, i0, axis=axis) * (1 - w.reshape(sh)) + np.take(x, i1, axis=axis) * w.reshape(sh)


def bilinear(x, h, w, mode):
    y = lerp_axis(x, -2, grid(mode, x.shape[-2], h))
    return lerp_axis(y, -1, grid(mode, x.shape[-1], w))


def nearest(x, h, w):
    hi = np.floor(np.arange(h) * x.shape[-2] / h).astype(int)
    wi = np.floor(np.arange(w) * x.shape[-1] / w).astype(int)
    return x[..., hi, :][..., wi]


def image_cases():
    g = rng("image")
    x = f32(g, 1, 2, 3, 4)
    # Sanity: the documented grids agree with torch where torch has the same convention.
    assert np.allclose(bilinear(x, 6, 8, "STRICT_ALIGN_CORNERS"),
                       F.interpolate(t(x), size=(6, 8), mode="bilinear", align_corners=True).numpy())
    assert np.allclose(bilinear(x, 6, 7, "UNALIGN_CORNERS"),
                       F.interpolate(t(x), size=(6, 7), mode="bilinear", align_corners=False).numpy())
    assert np.allclose(nearest(x, 5, 7), F.interpolate(t(x), size=(5, 7), mode="nearest").numpy())
    for name, sh, sw in (("2x", 2, 2), ("2x3", 2, 3), ("fractional", 1.5, 2.5)):
        add("upsample_nearest_neighbor", name, {"x": x},
            lambda x, sh=sh, sw=sw: mb.upsample_nearest_neighbor(x=x, scale_factor_height=sh, scale_factor_width=sw),
            lambda x, sh=sh, sw=sw: F.interpolate(t(x), scale_factor=(sh, sw), mode="nearest").numpy(), "exact")
    x3 = f32(g, 2, 3, 3)
    add("upsample_nearest_neighbor", "rank3", {"x": x3},
        lambda x: mb.upsample_nearest_neighbor(x=x, scale_factor_height=2, scale_factor_width=2),
        lambda x: np.repeat(np.repeat(x, 2, axis=-2), 2, axis=-1), "exact")
    for name, sh, sw, ac in (("align_corners", 2, 2, True), ("half_pixel", 2, 2, False),
                             ("align_corners_2x3", 2.0, 3.0, True), ("half_pixel_2x3", 2.0, 3.0, False)):
        mode = "STRICT_ALIGN_CORNERS" if ac else "UNALIGN_CORNERS"
        add("upsample_bilinear", name, {"x": x},
            lambda x, sh=sh, sw=sw, ac=ac: mb.upsample_bilinear(x=x, scale_factor_height=sh, scale_factor_width=sw,
                                                                align_corners=ac),
            lambda x, sh=sh, sw=sw, mode=mode: bilinear(x, int(x.shape[-2] * sh), int(x.shape[-1] * sw), mode),
            "math")
    add("upsample_bilinear", "no_half_pixel_centers", {"x": x},
        lambda x: mb.upsample_bilinear(x=x, scale_factor_height=2, scale_factor_width=2, align_corners=False,
                                       half_pixel_centers=False),
        lambda x: bilinear(x, 6, 8, "DEFAULT"), "math", target=T16)
    for mode in ("DEFAULT", "STRICT_ALIGN_CORNERS", "ALIGN_CORNERS", "OFFSET_CORNERS", "UNALIGN_CORNERS"):
        for h, w in ((5, 7), (2, 3)):
            add("resize_bilinear", f"{mode.lower()}_{h}x{w}", {"x": x},
                lambda x, mode=mode, h=h, w=w: mb.resize_bilinear(x=x, target_size_height=h, target_size_width=w,
                                                                  sampling_mode=mode),
                lambda x, mode=mode, h=h, w=w: bilinear(x, h, w, mode), "math")
    add("resize_bilinear", "align_corners_to_1", {"x": x},
        lambda x: mb.resize_bilinear(x=x, target_size_height=1, target_size_width=1, sampling_mode="ALIGN_CORNERS"),
        lambda x: bilinear(x, 1, 1, "ALIGN_CORNERS"), "math")
    add("resize_bilinear", "rank3", {"x": x3},
        lambda x: mb.resize_bilinear(x=x, target_size_height=4, target_size_width=5),
        lambda x: bilinear(x, 4, 5, "DEFAULT"), "math")
    for h, w in ((6, 8), (5, 7), (2, 2)):
        add("resize_nearest_neighbor", f"{h}x{w}", {"x": x},
            lambda x, h=h, w=w: mb.resize_nearest_neighbor(x=x, target_size_height=h, target_size_width=w),
            lambda x, h=h, w=w: nearest(x, h, w), "exact")
    add("resize", "linear_default", {"x": x},
        lambda x: mb.resize(x=x, shape=np.array([5, 7], np.int32), resized_dims=np.uint32(2)),
        lambda x: bilinear(x, 5, 7, "DEFAULT"), "math")
    add("resize", "nearest", {"x": x},
        lambda x: mb.resize(x=x, shape=np.array([6, 8], np.int32), resized_dims=np.uint32(2),
                            interpolation_mode="NEAREST_NEIGHBOR"),
        lambda x: nearest(x, 6, 8), "exact")
    add("crop", "basic", {"x": x}, lambda x: mb.crop(x=x, crop_height=[1, 0], crop_width=[1, 2]),
        lambda x: x[..., 1:, 1:2], "exact")


def nn_cases():
    conv_cases()
    pool_cases()
    norm_cases()
    reduce_cases()
    image_cases()
