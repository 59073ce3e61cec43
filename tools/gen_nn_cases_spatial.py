"""NeuralNetwork cases: convolution, pooling, padding, resizing, cropping, normalization,
reductions, dense layers and the rank-5 shape layers (see gen_conformance_neuralnetwork.py)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gen_nn_common import (dequantize_linear, f32, linear_quantize, nn, rng, set_fp16, set_linear_quantized,
                           set_lut_quantized, t)


def last_layer(b):
    return b.spec.neuralNetwork.layers[-1]


def set_floats(wp, arr):
    del wp.floatValue[:]
    wp.floatValue.extend(np.asarray(arr, np.float32).reshape(-1).tolist())


def same_pads(n, k, s, d=1, top_left_heavy=False):
    out = -(-n // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
    small = total // 2
    return (total - small, small) if top_left_heavy else (small, total - small)


def pad_hw(x, top, bottom, left, right, value=0.0):
    return F.pad(t(x), (left, right, top, bottom), value=value).numpy()


# ---------------------------------------------------------------- convolution
def conv_ref(x, w, b, stride=(1, 1), dil=(1, 1), groups=1, pads=(0, 0, 0, 0)):
    xp = pad_hw(x[None], *pads)
    y = F.conv2d(t(xp), t(w), None if b is None else t(b), stride=stride, dilation=dil, groups=groups)
    return y.numpy()[0]


def add_conv(b, w, bias, stride=(1, 1), dil=(1, 1), groups=1, mode="valid", pads=(0, 0, 0, 0),
             asym="BOTTOM_RIGHT_HEAVY", deconv=False, out_shape=None, inputs=("x",)):
    oc = w.shape[1] * groups if deconv else w.shape[0]
    kc = w.shape[0] if deconv else w.shape[1]
    kh, kw = w.shape[2], w.shape[3]
    keras = np.zeros((kh, kw, kc, oc // groups if deconv else oc), np.float32)  # replaced below
    b.add_convolution("conv", kernel_channels=kc, output_channels=oc, height=kh, width=kw,
                      stride_height=stride[0], stride_width=stride[1], border_mode=mode, groups=groups,
                      W=None if len(inputs) > 1 else keras, b=bias, has_bias=bias is not None,
                      is_deconv=deconv, output_shape=out_shape, input_name=list(inputs), output_name="y",
                      dilation_factors=list(dil), padding_top=pads[0], padding_bottom=pads[1],
                      padding_left=pads[2], padding_right=pads[3], same_padding_asymmetry_mode=asym)
    if len(inputs) == 1:
        set_floats(last_layer(b).convolution.weights, w)


def conv_cases():
    g = rng("convolution")
    x = f32(g, 4, 7, 6)
    w = f32(g, 5, 4, 3, 3, lo=-1, hi=1)
    bias = f32(g, 5)
    nn("convolution", "valid", {"x": x}, lambda b: add_conv(b, w, bias), lambda x: conv_ref(x, w, bias),
       tol="math")
    nn("convolution", "valid_padding_amounts", {"x": x}, lambda b: add_conv(b, w, None, pads=(1, 2, 0, 1)),
       lambda x: conv_ref(x, w, None, pads=(1, 2, 0, 1)), tol="math")
    nn("convolution", "stride_dilation", {"x": f32(g, 4, 9, 9)},
       lambda b: add_conv(b, w, bias, stride=(2, 1), dil=(2, 2)),
       lambda x: conv_ref(x, w, bias, stride=(2, 1), dil=(2, 2)), tol="math")
    for asym, tl in [("BOTTOM_RIGHT_HEAVY", False), ("TOP_LEFT_HEAVY", True)]:
        w4 = f32(g, 3, 4, 4, 4, lo=-1, hi=1)
        ph, pw = same_pads(7, 4, 2, top_left_heavy=tl), same_pads(6, 4, 2, top_left_heavy=tl)
        nn("convolution", f"same_{asym.lower()}", {"x": x},
           lambda b, w4=w4, asym=asym: add_conv(b, w4, None, stride=(2, 2), mode="same", asym=asym),
           lambda x, w4=w4, ph=ph, pw=pw: conv_ref(x, w4, None, stride=(2, 2), pads=(*ph, *pw)), tol="math")
    wg = f32(g, 6, 2, 3, 3, lo=-1, hi=1)
    nn("convolution", "groups", {"x": x}, lambda b: add_conv(b, wg, None, groups=2, mode="same"),
       lambda x: conv_ref(x, wg, None, groups=2, pads=(1, 1, 1, 1)), tol="math")
    wd = f32(g, 4, 1, 3, 3, lo=-1, hi=1)
    nn("convolution", "depthwise", {"x": x}, lambda b: add_conv(b, wd, bias[:4], groups=4),
       lambda x: conv_ref(x, wd, bias[:4], groups=4), tol="math")
    nn("convolution", "runtime_weights", {"x": x, "w": w}, lambda b: add_conv(b, w, None, inputs=("x", "w")),
       lambda x, w: conv_ref(x, w, None), tol="math", nd=True, out_shapes={"y": None})
    nn("convolution", "nd_rank4", {"x": f32(g, 2, 4, 5, 5)}, lambda b: add_conv(b, w, bias),
       lambda x: np.stack([conv_ref(xi, w, bias) for xi in x]), tol="math", nd=True)
    # Deconvolution: weights [C_in, C_out / groups, kH, kW].
    wt = f32(g, 4, 3, 3, 3, lo=-1, hi=1)

    def deconv_ref(x, w, bias, stride, groups=1, crop=(0, 0, 0, 0)):
        y = F.conv_transpose2d(t(x[None]), t(w), None if bias is None else t(bias), stride=stride,
                               groups=groups).numpy()[0]
        h, wd_ = y.shape[1], y.shape[2]
        return y[:, crop[0]:h - crop[1], crop[2]:wd_ - crop[3]]

    xs = f32(g, 4, 3, 4)
    nn("convolution", "deconv_valid", {"x": xs}, lambda b: add_conv(b, wt, bias[:3], stride=(2, 2), deconv=True),
       lambda x: deconv_ref(x, wt, bias[:3], (2, 2)), tol="math")
    nn("convolution", "deconv_valid_crop", {"x": xs},
       lambda b: add_conv(b, wt, None, stride=(2, 1), deconv=True, pads=(1, 0, 1, 1)),
       lambda x: deconv_ref(x, wt, None, (2, 1), crop=(1, 0, 1, 1)), tol="math")
    wt4 = f32(g, 4, 2, 4, 4, lo=-1, hi=1)
    nn("convolution", "deconv_same", {"x": xs},
       lambda b: add_conv(b, wt4, None, stride=(2, 2), deconv=True, mode="same"),
       lambda x: deconv_ref(x, wt4, None, (2, 2), crop=(1, 1, 1, 1)), tol="math")
    nn("convolution", "deconv_output_shape", {"x": xs},
       lambda b: add_conv(b, wt4, None, stride=(2, 2), deconv=True, out_shape=(6, 8)),
       lambda x: deconv_ref(x, wt4, None, (2, 2), crop=(1, 1, 1, 1)), tol="math")
    wtg = f32(g, 4, 1, 3, 3, lo=-1, hi=1)
    nn("convolution", "deconv_groups", {"x": xs},
       lambda b: add_conv(b, wtg, None, stride=(1, 1), deconv=True, groups=2),
       lambda x: deconv_ref(x, wtg, None, (1, 1), groups=2), tol="math")
    # Quantized and half-precision weights, decoded at load.
    q, scale, qb = linear_quantize(w, 8)
    wq = dequantize_linear(q, scale, qb)

    def quant8(b):
        add_conv(b, w, bias)
        set_linear_quantized(last_layer(b).convolution.weights, q, scale, qb, 8)

    nn("convolution", "weights_linear_8bit", {"x": x}, quant8, lambda x: conv_ref(x, wq, bias), tol="math")
    lut = np.linspace(-1, 1, 16).astype(np.float32)
    idx = g.integers(0, 16, w.shape)

    def lut4(b):
        add_conv(b, w, None)
        set_lut_quantized(last_layer(b).convolution.weights, idx, lut, 4)

    nn("convolution", "weights_lut_4bit", {"x": x}, lut4, lambda x: conv_ref(x, lut[idx], None), tol="math")

    def half(b):
        add_conv(b, w, bias)
        set_fp16(last_layer(b).convolution.weights, w)
        set_fp16(last_layer(b).convolution.bias, bias)

    nn("convolution", "weights_fp16", {"x": x}, half,
       lambda x: conv_ref(x, w.astype(np.float16), bias.astype(np.float16)), tol="math")
    # 3-D convolution: [B, C, D, H, W].
    x3 = f32(g, 1, 2, 4, 5, 5)
    w3 = f32(g, 3, 2, 2, 3, 3, lo=-1, hi=1)
    b3 = f32(g, 3)

    def conv3d(b, mode="valid", pads=(0,) * 6, stride=1):
        b.add_convolution3d("c3", 2, 3, 2, 3, 3, w3, b3, True, stride_depth=stride, stride_height=stride,
                            stride_width=stride, padding_mode=mode, padding_front=pads[0], padding_back=pads[1],
                            padding_top=pads[2], padding_bottom=pads[3], padding_left=pads[4],
                            padding_right=pads[5], input_name="x", output_name="y")
        set_floats(last_layer(b).convolution3d.weights, w3)

    def conv3d_ref(x, pads=(0,) * 6, stride=1):
        xp = F.pad(t(x), (pads[4], pads[5], pads[2], pads[3], pads[0], pads[1]))
        return F.conv3d(xp, t(w3), t(b3), stride=stride).numpy()

    nn("convolution3d", "valid", {"x": x3}, lambda b: conv3d(b), conv3d_ref, nd=True, tol="math")
    nn("convolution3d", "custom_pads", {"x": x3}, lambda b: conv3d(b, "custom", (1, 0, 1, 1, 0, 2)),
       lambda x: conv3d_ref(x, (1, 0, 1, 1, 0, 2)), nd=True, tol="math")
    nn("convolution3d", "same_stride2", {"x": x3}, lambda b: conv3d(b, "same", stride=2),
       lambda x: conv3d_ref(x, (*same_pads(4, 2, 2), *same_pads(5, 3, 2), *same_pads(5, 3, 2)), stride=2),
       nd=True, tol="math")


# ---------------------------------------------------------------- pooling
def pool_ref(x, kind, k, s, pads=(0, 0, 0, 0), exclude=True, ceil=False):
    """x [C, H, W]; explicit pads (top, bottom, left, right)."""
    c, h, w = x.shape
    top, bottom, left, right = pads
    hp, wp = h + top + bottom, w + left + right

    def out(n, n_in, before, k_, s_):
        if not ceil:
            return (n - k_) // s_ + 1
        o = -(-(n - k_) // s_) + 1
        if (o - 1) * s_ >= n_in + before and before > 0:
            o -= 1
        return o

    oh, ow = out(hp, h, top, k[0], s[0]), out(wp, w, left, k[1], s[1])
    y = np.zeros((c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * s[0] - top, j * s[1] - left
            r1, c1 = r0 + k[0], c0 + k[1]
            rr0, cc0, rr1, cc1 = max(r0, 0), max(c0, 0), min(r1, h), min(c1, w)
            win = x[:, rr0:rr1, cc0:cc1].reshape(c, -1)
            if kind == "MAX":
                y[:, i, j] = win.max(axis=1)
            elif kind == "L2":
                y[:, i, j] = np.sqrt((win ** 2).sum(axis=1))
            else:
                if exclude:
                    n = win.shape[1]
                else:
                    n = (min(r1, h + bottom) - max(r0, -top)) * (min(c1, w + right) - max(c0, -left))
                y[:, i, j] = win.sum(axis=1) / n
    return y


def pool_cases():
    g = rng("pooling")
    x = f32(g, 3, 7, 8)

    def pool(kind, k, s, mode="VALID", pads=(0, 0, 0, 0), exclude=True, is_global=False, asym="BOTTOM_RIGHT_HEAVY"):
        return lambda b: b.add_pooling("p", k[0], k[1], s[0], s[1], kind, mode, "x", "y", exclude_pad_area=exclude,
                                       is_global=is_global, padding_top=pads[0], padding_bottom=pads[1],
                                       padding_left=pads[2], padding_right=pads[3],
                                       same_padding_asymmetry_mode=asym)

    for kind in ["MAX", "AVERAGE", "L2"]:
        nn("pooling", f"{kind.lower()}_valid", {"x": x}, pool(kind, (2, 3), (2, 2)),
           lambda x, kind=kind: pool_ref(x, kind, (2, 3), (2, 2)), tol="math")
        nn("pooling", f"{kind.lower()}_global", {"x": x}, pool(kind, (1, 1), (1, 1), is_global=True),
           lambda x, kind=kind: pool_ref(x, kind, (7, 8), (1, 1)), tol="math")
    for kind in ["MAX", "AVERAGE"]:
        ph, pw = same_pads(7, 3, 2), same_pads(8, 3, 2)
        nn("pooling", f"{kind.lower()}_same", {"x": x}, pool(kind, (3, 3), (2, 2), "SAME"),
           lambda x, kind=kind: pool_ref(x, kind, (3, 3), (2, 2), (*ph, *pw)), tol="math")
        ph, pw = same_pads(7, 2, 2, top_left_heavy=True), same_pads(8, 3, 3, top_left_heavy=True)
        nn("pooling", f"{kind.lower()}_same_top_left_heavy", {"x": x},
           pool(kind, (2, 3), (2, 3), "SAME", asym="TOP_LEFT_HEAVY"),
           lambda x, kind=kind, ph=ph, pw=pw: pool_ref(x, kind, (2, 3), (2, 3), (*ph, *pw)), tol="math")
        nn("pooling", f"{kind.lower()}_include_last_pixel", {"x": x},
           pool(kind, (3, 3), (2, 2), "INCLUDE_LAST_PIXEL", pads=(1, 1, 1, 1)),
           lambda x, kind=kind: pool_ref(x, kind, (3, 3), (2, 2), (1, 1, 1, 1), ceil=True), tol="math")
    nn("pooling", "average_valid_pads_include", {"x": x}, pool("AVERAGE", (3, 3), (2, 2), pads=(1, 1, 2, 2),
                                                                exclude=False),
       lambda x: pool_ref(x, "AVERAGE", (3, 3), (2, 2), (1, 1, 2, 2), exclude=False), tol="math")
    nn("pooling", "average_valid_pads_exclude", {"x": x}, pool("AVERAGE", (3, 3), (2, 2), pads=(1, 1, 2, 2)),
       lambda x: pool_ref(x, "AVERAGE", (3, 3), (2, 2), (1, 1, 2, 2)), tol="math")
    # 3-D pooling and global 3-D pooling.
    x3 = f32(g, 1, 2, 4, 5, 6)

    def p3(kind, mode="valid", pads=(0,) * 6, exclude=False):
        return lambda b: b.add_pooling3d("p", "x", "y", kind, 2, 2, 3, 2, 1, 2, padding_mode=mode,
                                         custom_padding_front=pads[0], custom_padding_back=pads[1],
                                         custom_padding_top=pads[2], custom_padding_bottom=pads[3],
                                         custom_padding_left=pads[4], custom_padding_right=pads[5],
                                         average_pooling_count_excludes_padding=exclude)

    def p3_ref(x, kind, pads=(0,) * 6, exclude=False):
        tp = (pads[4], pads[5], pads[2], pads[3], pads[0], pads[1])
        if kind == "MAX":
            return F.max_pool3d(F.pad(t(x), tp, value=-np.inf), (2, 2, 3), (2, 1, 2)).numpy()
        s = F.avg_pool3d(F.pad(t(x), tp), (2, 2, 3), (2, 1, 2), divisor_override=1)
        if not exclude:
            return (s / 12.0).numpy()
        n = F.avg_pool3d(F.pad(torch.ones_like(t(x)), tp), (2, 2, 3), (2, 1, 2), divisor_override=1)
        return (s / n).numpy()

    for kind in ["MAX", "AVERAGE"]:
        nn("pooling3d", f"{kind.lower()}_valid", {"x": x3}, p3(kind), lambda x, kind=kind: p3_ref(x, kind),
           nd=True, tol="math")
    pads = (1, 0, 1, 1, 0, 1)
    nn("pooling3d", "average_custom_exclude", {"x": x3}, p3("AVERAGE", "custom", pads, True),
       lambda x: p3_ref(x, "AVERAGE", pads, True), nd=True, tol="math")
    nn("pooling3d", "max_same", {"x": x3}, p3("MAX", "same"),
       lambda x: p3_ref(x, "MAX", (*same_pads(4, 2, 2), *same_pads(5, 2, 1), *same_pads(6, 3, 2))),
       nd=True, tol="math")
    for kind, fn in [("MAX", np.max), ("AVERAGE", np.mean)]:
        nn("globalPooling3d", kind.lower(), {"x": x3},
           lambda b, kind=kind: b.add_global_pooling3d("p", "x", "y", kind),
           lambda x, fn=fn: fn(x, axis=(2, 3, 4), keepdims=True), nd=True, tol="math")


# ---------------------------------------------------------------- padding, resizing, cropping
def padding_cases():
    g = rng("padding")
    x = f32(g, 2, 4, 5)
    for kind, mode in [("constant", "constant"), ("reflection", "reflect"), ("replication", "replicate")]:
        kw = {"value": 1.5} if kind == "constant" else {}
        nn("padding", kind, {"x": x},
           lambda b, kind=kind, kw=kw: b.add_padding("p", left=2, right=1, top=1, bottom=3, input_name="x",
                                                       output_name="y", padding_type=kind, **kw),
           lambda x, mode=mode, kw=kw: F.pad(t(x[None]), (2, 1, 1, 3), mode=mode, **kw).numpy()[0])
    xn = f32(g, 2, 3, 4)
    nn("constantPad", "amounts", {"x": xn},
       lambda b: b.add_constant_pad("p", ["x"], "y", value=-2.0, pad_amounts=[0, 1, 2, 0, 1, 3]),
       lambda x: np.pad(x, [(0, 1), (2, 0), (1, 3)], constant_values=-2.0), nd=True)
    nn("constantPad", "to_output_size", {"x": xn},
       lambda b: b.add_constant_pad("p", ["x"], "y", pad_to_given_output_size_mode=True,
                                    pad_amounts=[0, 0, 5, 0, 0, 6]),
       lambda x: np.pad(x, [(0, 0), (2, 0), (0, 2)]), nd=True)


def bilinear_grid(n_in, n_out, mode):
    """Grid points of NeuralNetwork.proto's SamplingMode / LinearUpsampleMode."""
    i = np.arange(n_out, dtype=np.float64)
    if mode == "STRICT_ALIGN_ENDPOINTS_MODE":
        return np.linspace(0, n_in - 1, n_out) if n_out > 1 else np.zeros(1)
    if mode == "ALIGN_ENDPOINTS_MODE":
        return np.linspace(0, n_in - 1, n_out) if n_out > 1 else np.full(1, (n_in - 1) / 2)
    if mode == "UPSAMPLE_MODE":
        return np.minimum(n_in - 1, np.linspace(0, n_in - n_in / n_out, n_out))
    if mode == "ROI_ALIGN_MODE":
        sp = max(1, n_in - 1) / n_out
        return np.minimum(n_in - 1, 0.5 * sp + i * sp)
    if mode == "DEFAULT":
        sp = (n_in - n_in / n_out) / (n_out - 1)
        return np.clip(i * sp, 0, n_in - 1)
    if mode == "ALIGN_CORNERS_TRUE":
        return np.clip(i * (n_in - 1) / (n_out - 1), 0, n_in - 1)
    if mode == "ALIGN_CORNERS_FALSE":
        sp = n_in / n_out
        return np.clip(i * sp + 0.5 * sp - 0.5, 0, n_in - 1)
    raise ValueError(mode)


def interp(x, gy, gx):
    """Bilinear sampling of x [..., H, W] at grid rows gy and columns gx."""
    h, w = x.shape[-2:]
    y0 = np.clip(np.floor(gy).astype(int), 0, h - 1)
    x0 = np.clip(np.floor(gx).astype(int), 0, w - 1)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (gy - y0)[:, None], (gx - x0)[None, :]
    a = x[..., y0[:, None], x0[None, :]]
    b = x[..., y0[:, None], x1[None, :]]
    c = x[..., y1[:, None], x0[None, :]]
    d = x[..., y1[:, None], x1[None, :]]
    return a * (1 - wy) * (1 - wx) + b * (1 - wy) * wx + c * wy * (1 - wx) + d * wy * wx


def resize_cases():
    g = rng("resize")
    x = f32(g, 2, 3, 4)
    nn("upsample", "nearest", {"x": x}, lambda b: b.add_upsample("u", 2, 3, "x", "y"),
       lambda x: x.repeat(2, axis=1).repeat(3, axis=2))
    for mode in ["DEFAULT", "ALIGN_CORNERS_TRUE", "ALIGN_CORNERS_FALSE"]:
        nn("upsample", f"bilinear_{mode.lower()}", {"x": x},
           lambda b, mode=mode: b.add_upsample("u", 2, 2, "x", "y", mode="BILINEAR", linear_upsample_mode=mode),
           lambda x, mode=mode: interp(x, bilinear_grid(3, 6, mode), bilinear_grid(4, 8, mode)), tol="math")
    nn("upsample", "fractional_align_corners_false", {"x": x},
       lambda b: b.add_upsample("u", 1.5, 2.5, "x", "y", mode="BILINEAR", linear_upsample_mode="ALIGN_CORNERS_FALSE"),
       lambda x: interp(x, bilinear_grid(3, 4, "ALIGN_CORNERS_FALSE"), bilinear_grid(4, 10, "ALIGN_CORNERS_FALSE")),
       tol="math")
    for mode in ["STRICT_ALIGN_ENDPOINTS_MODE", "ALIGN_ENDPOINTS_MODE", "UPSAMPLE_MODE", "ROI_ALIGN_MODE"]:
        nn("resizeBilinear", mode.lower(), {"x": x},
           lambda b, mode=mode: b.add_resize_bilinear("r", "x", "y", 5, 7, mode=mode),
           lambda x, mode=mode: interp(x, bilinear_grid(3, 5, mode), bilinear_grid(4, 7, mode)), tol="math")
    # crop_resize: x [1, B, C, H, W] (rank 5), boxes [N, 1, 4, 1, 1].
    xi = f32(g, 1, 1, 2, 6, 7)
    boxes = np.array([[1.0, 0.5, 4.0, 5.5], [0.0, 0.0, 5.0, 6.0]], np.float32).reshape(2, 1, 4, 1, 1)

    def crop_resize_ref(x, boxes):
        out = []
        for bx in boxes.reshape(-1, 4):
            h0, w0, h1, w1 = bx
            gy = h0 + bilinear_grid(2, 3, "ALIGN_ENDPOINTS_MODE") * (h1 - h0)
            gx = w0 + bilinear_grid(2, 4, "ALIGN_ENDPOINTS_MODE") * (w1 - w0)
            out.append(interp(x[0], gy, gx))
        return np.stack(out)

    nn("cropResize", "corners_height_first", {"x": xi, "boxes": boxes},
       lambda b: b.add_crop_resize("c", ["x", "boxes"], "y", 3, 4, mode="ALIGN_ENDPOINTS_MODE"), crop_resize_ref,
       nd=True, tol="math")
    nn("crop", "amounts", {"x": f32(g, 2, 6, 7)}, lambda b: b.add_crop("c", 1, 2, 2, 0, [], ["x"], "y"),
       lambda x: x[:, 2:6, 1:5])
    nn("crop", "offset_like", {"x": f32(g, 2, 6, 7), "r": f32(g, 2, 3, 4)},
       lambda b: b.add_crop("c", 0, 0, 0, 0, [2, 1], ["x", "r"], "y"), lambda x, r: x[:, 2:5, 1:5])
    xr = np.arange(8 * 2 * 4, dtype=np.float32).reshape(8, 2, 4)

    def s2d(x, bs):
        c, h, w = x.shape
        return x.reshape(c, h // bs, bs, w // bs, bs).transpose(2, 4, 0, 1, 3).reshape(c * bs * bs, h // bs,
                                                                                       w // bs)

    def d2s(x, bs):
        c, h, w = x.shape
        return x.reshape(bs, bs, c // bs // bs, h, w).transpose(2, 3, 0, 4, 1).reshape(c // bs // bs, h * bs,
                                                                                       w * bs)

    nn("reorganizeData", "space_to_depth", {"x": xr.reshape(2, 4, 8)},
       lambda b: b.add_reorganize_data("r", "x", "y", "SPACE_TO_DEPTH", 2), lambda x: s2d(x, 2))
    nn("reorganizeData", "depth_to_space", {"x": xr},
       lambda b: b.add_reorganize_data("r", "x", "y", "DEPTH_TO_SPACE", 2), lambda x: d2s(x, 2))
    nn("reorganizeData", "pixel_shuffle", {"x": xr},
       lambda b: b.add_reorganize_data("r", "x", "y", "PIXEL_SHUFFLE", 2),
       lambda x: F.pixel_shuffle(t(x[None]), 2).numpy()[0])

    # Normalized boxes with a batch index column: [N, 1, 5, 1, 1], batch 2.
    xb = f32(g, 1, 2, 2, 6, 7)
    boxes5 = np.array([[1, 0.1, 0.2, 0.7, 0.9], [0, 0.0, 0.0, 1.0, 0.5]], np.float32).reshape(2, 1, 5, 1, 1)

    def crop_resize5_ref(x, boxes):
        out = []
        for bx in boxes.reshape(-1, 5):
            b, h0, w0, h1, w1 = bx
            h0, h1, w0, w1 = h0 * 5, h1 * 5, w0 * 6, w1 * 6
            gy = h0 + bilinear_grid(2, 3, "ALIGN_ENDPOINTS_MODE") * (h1 - h0)
            gx = w0 + bilinear_grid(2, 4, "ALIGN_ENDPOINTS_MODE") * (w1 - w0)
            out.append(interp(x[0, int(b)][None], gy, gx))
        return np.stack(out)

    nn("cropResize", "normalized_batch_index", {"x": xb, "boxes": boxes5},
       lambda b: b.add_crop_resize("c", ["x", "boxes"], "y", 3, 4, mode="ALIGN_ENDPOINTS_MODE",
                                   normalized_roi=True), crop_resize5_ref, nd=True, tol="math")

# ---------------------------------------------------------------- normalization and reductions
def norm_cases():
    g = rng("normalization")
    x = f32(g, 3, 4, 5)
    gamma, beta = f32(g, 3, lo=0.5, hi=2), f32(g, 3)
    mean, var = f32(g, 3), f32(g, 3, lo=0.5, hi=2)
    ch = lambda v: v.reshape(3, 1, 1)  # noqa: E731
    nn("batchnorm", "inference", {"x": x},
       lambda b: b.add_batchnorm("bn", 3, gamma, beta, mean, var, "x", "y", epsilon=1e-3),
       lambda x: ch(gamma) * (x - ch(mean)) / np.sqrt(ch(var) + 1e-3) + ch(beta), tol="math")
    nn("batchnorm", "instance_normalization", {"x": x},
       lambda b: b.add_batchnorm("bn", 3, gamma, beta, None, None, "x", "y", compute_mean_var=True,
                                 instance_normalization=True, epsilon=1e-5),
       lambda x: ch(gamma) * (x - x.mean(axis=(1, 2), keepdims=True)) / np.sqrt(
           x.var(axis=(1, 2), keepdims=True) + 1e-5) + ch(beta), tol="math")
    xb = f32(g, 2, 3, 4, 5)
    nn("batchnorm", "compute_mean_var_batch", {"x": xb},
       lambda b: (b.add_batchnorm("bn", 3, gamma, beta, None, None, "x", "y", compute_mean_var=True,
                                  instance_normalization=True),
                  setattr(last_layer(b).batchnorm, "instanceNormalization", False)),
       lambda x: gamma.reshape(1, 3, 1, 1) * (x - x.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(
           x.var(axis=(0, 2, 3), keepdims=True) + 1e-5) + beta.reshape(1, 3, 1, 1), nd=True, tol="math")
    for across in [True, False]:
        axes = (0, 1, 2) if across else (1, 2)
        nn("mvn", f"across_channels_{str(across).lower()}", {"x": x},
           lambda b, across=across: b.add_mvn("m", "x", "y", across_channels=across, normalize_variance=True,
                                              epsilon=1e-6),
           lambda x, axes=axes: (x - x.mean(axis=axes, keepdims=True)) / (
               np.sqrt(x.var(axis=axes, keepdims=True)) + 1e-6), tol="math")
    nn("mvn", "mean_only", {"x": x}, lambda b: b.add_mvn("m", "x", "y", normalize_variance=False),
       lambda x: x - x.mean(keepdims=True), tol="math")
    nn("l2normalize", "basic", {"x": x}, lambda b: b.add_l2_normalize("l", "x", "y", epsilon=1e-6),
       lambda x: x / np.sqrt((x ** 2).sum() + 1e-6), tol="math")
    xl = f32(g, 6, 3, 4)

    def lrn_ref(x, alpha, beta, size, k):
        sq = np.pad(x ** 2, [((size - 1) // 2, size // 2), (0, 0), (0, 0)])
        s = np.stack([sq[i:i + size].sum(axis=0) for i in range(x.shape[0])])
        return x / (k + alpha / size * s) ** beta

    nn("lrn", "basic", {"x": xl}, lambda b: b.add_lrn("l", "x", "y", alpha=0.3, beta=0.75, local_size=3, k=2.0),
       lambda x: lrn_ref(x, 0.3, 0.75, 3, 2.0), tol="math")
    nn("softmax", "channel", {"x": x}, lambda b: b.add_softmax("s", "x", "y"),
       lambda x: np.exp(x) / np.exp(x).sum(axis=0, keepdims=True), tol="math")
    nn("softmax", "rank1", {"x": f32(g, 10)}, lambda b: b.add_softmax("s", "x", "y"),
       lambda x: np.exp(x) / np.exp(x).sum(), tol="math")
    for axis in [0, -1]:
        nn("softmaxND", f"axis_{axis}".replace("-", "m"), {"x": f32(g, 3, 4)},
           lambda b, axis=axis: b.add_softmax_nd("s", "x", "y", axis=axis),
           lambda x, axis=axis: np.exp(x) / np.exp(x).sum(axis=axis, keepdims=True), nd=True, tol="math")
    xn = f32(g, 2, 3, 4)
    gm, bt = f32(g, 3, 4, lo=0.5, hi=2), f32(g, 3, 4)
    nn("layerNormalization", "last_two", {"x": xn},
       lambda b: b.add_layer_normalization("ln", "x", "y", [3, 4], gm, bt, eps=1e-5),
       lambda x: gm * (x - x.mean(axis=(1, 2), keepdims=True)) / np.sqrt(
           x.var(axis=(1, 2), keepdims=True) + 1e-5) + bt, nd=True, tol="math")


def reduce_cases():
    g = rng("reduce")
    x = f32(g, 3, 4, 5, lo=0.2, hi=2.0)
    axes = {"CHW": (0, 1, 2), "HW": (1, 2), "C": (0,), "H": (1,), "W": (2,)}
    fns = {
        "SUM": lambda x, a: x.sum(axis=a, keepdims=True),
        "AVG": lambda x, a: x.mean(axis=a, keepdims=True),
        "PROD": lambda x, a: x.prod(axis=a, keepdims=True),
        "LOGSUM": lambda x, a: np.log(x + 1e-6).sum(axis=a, keepdims=True),
        "SUMSQUARE": lambda x, a: (x ** 2).sum(axis=a, keepdims=True),
        "L1": lambda x, a: np.abs(x).sum(axis=a, keepdims=True),
        "L2": lambda x, a: np.sqrt((x ** 2).sum(axis=a, keepdims=True)),
        "MAX": lambda x, a: x.max(axis=a, keepdims=True),
        "MIN": lambda x, a: x.min(axis=a, keepdims=True),
        "ARGMAX": lambda x, a: np.expand_dims(np.argmax(x, axis=a[0]), a[0]).astype(np.float64),
    }
    for mode, fn in fns.items():
        for ax in (["C", "H", "W"] if mode == "ARGMAX" else ["CHW", "HW"]):
            nn("reduce", f"{mode.lower()}_{ax.lower()}", {"x": x},
               lambda b, mode=mode, ax=ax: b.add_reduce("r", "x", "y", ax, mode),
               lambda x, fn=fn, ax=ax: fn(x, axes[ax]), tol="math")
    xn = f32(g, 2, 3, 4, lo=0.2, hi=2.0)
    nd = {
        "reduceSum": ("reduce_sum", np.sum), "reduceProd": ("reduce_prod", np.prod),
        "reduceMean": ("reduce_mean", np.mean), "reduceMax": ("reduce_max", np.max),
        "reduceMin": ("reduce_min", np.min),
        "reduceL2": ("reduce_l2", lambda x, axis, keepdims: np.sqrt((x ** 2).sum(axis=axis, keepdims=keepdims))),
        "reduceL1": ("reduce_l1", lambda x, axis, keepdims: np.abs(x).sum(axis=axis, keepdims=keepdims)),
        "reduceSumSquare": ("reduce_sumsquare", lambda x, axis, keepdims: (x ** 2).sum(axis=axis, keepdims=keepdims)),
        "reduceLogSum": ("reduce_logsum", lambda x, axis, keepdims: np.log(x.sum(axis=axis, keepdims=keepdims))),
        "reduceLogSumExp": ("reduce_logsumexp",
                            lambda x, axis, keepdims: np.log(np.exp(x).sum(axis=axis, keepdims=keepdims))),
    }
    for layer, (method, fn) in nd.items():
        nn(layer, "axes_keepdims", {"x": xn},
           lambda b, method=method: getattr(b, f"add_{method}")("r", "x", "y", axes=[0, -1], keepdims=True),
           lambda x, fn=fn: fn(x, axis=(0, 2), keepdims=True), nd=True, tol="math")
        nn(layer, "axis_squeezed", {"x": xn},
           lambda b, method=method: getattr(b, f"add_{method}")("r", "x", "y", axes=[1], keepdims=False),
           lambda x, fn=fn: fn(x, axis=1, keepdims=False), nd=True, tol="math")
        nn(layer, "reduce_all", {"x": xn},
           lambda b, method=method: getattr(b, f"add_{method}")("r", "x", "y", reduce_all=True, keepdims=False),
           lambda x, fn=fn: np.atleast_1d(fn(x, axis=None, keepdims=False)), nd=True, tol="math")


# ---------------------------------------------------------------- dense layers
def dense_cases():
    g = rng("dense")
    w, bias = f32(g, 6, 10, lo=-1, hi=1), f32(g, 6)
    nn("innerProduct", "rank1", {"x": f32(g, 10)},
       lambda b: b.add_inner_product("ip", w, bias, 10, 6, True, "x", "y"), lambda x: w @ x + bias, tol="math")
    x3 = f32(g, 10, 1, 1)
    nn("innerProduct", "rank3_no_bias", {"x": x3},
       lambda b: b.add_inner_product("ip", w, None, 10, 6, False, "x", "y"),
       lambda x: (w @ x.reshape(10)).reshape(6, 1, 1), tol="math")
    wc = f32(g, 6, 2 * 3 * 4, lo=-1, hi=1)
    nn("innerProduct", "flattens_chw", {"x": f32(g, 2, 3, 4)},
       lambda b: b.add_inner_product("ip", wc, bias, 24, 6, True, "x", "y"),
       lambda x: (wc @ x.reshape(-1) + bias).reshape(6, 1, 1), tol="math")
    nn("innerProduct", "nd_rank2", {"x": f32(g, 3, 10)},
       lambda b: b.add_inner_product("ip", w, bias, 10, 6, True, "x", "y"), lambda x: x @ w.T + bias, nd=True,
       tol="math")
    nn("innerProduct", "nd_rank3", {"x": f32(g, 2, 3, 10)},
       lambda b: b.add_inner_product("ip", w, bias, 10, 6, True, "x", "y"), lambda x: x @ w.T + bias, nd=True,
       tol="math")
    for bits in [8, 4, 2]:
        q, scale, qb = linear_quantize(w, bits)
        wq = dequantize_linear(q, scale, qb)

        def quant(b, q=q, scale=scale, qb=qb, bits=bits):
            b.add_inner_product("ip", w, bias, 10, 6, True, "x", "y")
            set_linear_quantized(last_layer(b).innerProduct.weights, q, scale, qb, bits)

        nn("innerProduct", f"linear_{bits}bit", {"x": f32(g, 10)}, quant, lambda x, wq=wq: wq @ x + bias,
           tol="math")
    lut = np.sort(f32(g, 8, lo=-1, hi=1))
    idx = g.integers(0, 8, w.shape)

    def lut3(b):
        b.add_inner_product("ip", w, None, 10, 6, False, "x", "y")
        set_lut_quantized(last_layer(b).innerProduct.weights, idx, lut, 3)

    nn("innerProduct", "lut_3bit", {"x": f32(g, 10)}, lut3, lambda x: lut[idx] @ x, tol="math")

    def half(b):
        b.add_inner_product("ip", w, bias, 10, 6, True, "x", "y")
        set_fp16(last_layer(b).innerProduct.weights, w)

    nn("innerProduct", "fp16", {"x": f32(g, 10)}, half, lambda x: w.astype(np.float16) @ x + bias, tol="math")
    # int8DynamicQuantize: int8 weights with one scale. Core ML also rounds the input to
    # int8 at run time; the portable backend (and this reference) keep it float.
    q8 = np.clip(np.round(w / (np.abs(w).max() / 127)), -127, 127).astype(np.int8)
    s8 = np.float32(np.abs(w).max() / 127)

    def dyn8(b):
        b.add_inner_product("ip", w, None, 10, 6, False, "x", "y")
        layer = last_layer(b)
        layer.innerProduct.int8DynamicQuantize = True
        wp = layer.innerProduct.weights
        del wp.floatValue[:]
        wp.int8RawValue = q8.tobytes()
        wp.quantization.numberOfBits = 8
        wp.quantization.linearQuantization.scale.append(float(s8))

    nn("innerProduct", "int8_dynamic_quantize", {"x": f32(g, 10)}, dyn8,
       lambda x: (q8.astype(np.float64) * float(s8)) @ x, tol="math")
    # Embedding: weights [outputChannels, inputDim]; input [x1, 1, 1, 1] (rank 4).
    we, be = f32(g, 4, 7), f32(g, 4)
    ids = np.array([3, 0, 6, 3], np.float32).reshape(4, 1, 1, 1)
    nn("embedding", "rank4", {"x": ids}, lambda b: b.add_embedding("e", we, be, 7, 4, True, "x", "y"),
       lambda x: (we.T[x.reshape(-1).astype(int)] + be).reshape(4, 4, 1, 1), nd=True)
    wn = f32(g, 5, 9)
    idn = np.array([[1, 8, 0], [4, 4, 2]], np.float32).reshape(2, 3, 1)
    nn("embeddingND", "rank3", {"x": idn},
       lambda b: b.add_embedding_nd("e", "x", "y", 9, 5, wn),
       lambda x: wn.T[x[..., 0].astype(int)], nd=True)
    q, scale, qb = linear_quantize(wn, 8)
    wnq = dequantize_linear(q, scale, qb)

    def emb_q(b):
        b.add_embedding_nd("e", "x", "y", 9, 5, wn)
        set_linear_quantized(last_layer(b).embeddingND.weights, q, scale, qb, 8)

    nn("embeddingND", "linear_8bit", {"x": idn}, emb_q, lambda x: wnq.T[x[..., 0].astype(int)], nd=True,
       tol="math")
    # batchedMatmul: two inputs, or one input with weights [X1, X2] (+ bias).
    a, bm = f32(g, 2, 3, 4), f32(g, 2, 5, 4)
    nn("batchedMatmul", "two_inputs_transpose_b", {"a": a, "b": bm},
       lambda b: b.add_batched_mat_mul("m", ["a", "b"], "y", transpose_b=True),
       lambda a, b: a @ np.swapaxes(b, -1, -2), nd=True, tol="math")
    nn("batchedMatmul", "broadcast_transpose_a", {"a": f32(g, 4, 3), "b": f32(g, 2, 4, 5)},
       lambda b: b.add_batched_mat_mul("m", ["a", "b"], "y", transpose_a=True),
       lambda a, b: a.T @ b, nd=True, tol="math")
    wm, bb = f32(g, 4, 6), f32(g, 6)
    nn("batchedMatmul", "weights_bias", {"a": a},
       lambda b: b.add_batched_mat_mul("m", ["a"], "y", weight_matrix_rows=4, weight_matrix_columns=6, W=wm,
                                       bias=bb), lambda a: a @ wm + bb, nd=True, tol="math")

    wl = f32(g, 4, 6)
    lut_m = np.sort(f32(g, 4, lo=-1, hi=1))
    idx_m = g.integers(0, 4, (6, 4))  # stored [X2, X1] (column-major [X1, X2])

    def bmm_lut(b):
        b.add_batched_mat_mul("m", ["a"], "y", weight_matrix_rows=4, weight_matrix_columns=6, W=wl)
        set_lut_quantized(last_layer(b).batchedMatmul.weights, idx_m, lut_m, 2)

    nn("batchedMatmul", "weights_lut_2bit", {"a": a}, bmm_lut, lambda a: a @ lut_m[idx_m].T, nd=True,
       tol="math")

# ---------------------------------------------------------------- rank-5 shape layers
def shape5_cases():
    g = rng("shape5")
    x = f32(g, 2, 3, 4)
    nn("flatten", "channel_first", {"x": x}, lambda b: b.add_flatten("f", 0, "x", "y"),
       lambda x: x.reshape(24, 1, 1))
    nn("flatten", "channel_last", {"x": x}, lambda b: b.add_flatten("f", 1, "x", "y"),
       lambda x: x.transpose(1, 2, 0).reshape(24, 1, 1))
    nn("reshape", "channel_first", {"x": x}, lambda b: b.add_reshape("r", "x", "y", (4, 3, 2), 0),
       lambda x: x.reshape(4, 3, 2))
    nn("reshape", "channel_last", {"x": x}, lambda b: b.add_reshape("r", "x", "y", (4, 3, 2), 1),
       lambda x: x.transpose(1, 2, 0).reshape(3, 2, 4).transpose(2, 0, 1))
    nn("reshape", "with_sequence", {"x": x}, lambda b: b.add_reshape("r", "x", "y", (2, 6, 1, 2), 0),
       lambda x: x.reshape(2, 1, 6, 1, 2), out_shapes={"y": None})
    # permute over [Seq, C, H, W] of a rank-5 [Seq, B, C, H, W] blob.
    nn("permute", "chw_to_whc", {"x": x}, lambda b: b.add_permute("p", (0, 3, 2, 1), "x", "y"),
       lambda x: x.transpose(2, 1, 0))
    nn("permute", "seq_and_w", {"x": x}, lambda b: b.add_permute("p", (3, 1, 2, 0), "x", "y"),
       lambda x: x[None, None].transpose(4, 1, 2, 3, 0), out_shapes={"y": None})
    a, b_ = f32(g, 2, 3, 4), f32(g, 3, 3, 4)
    nn("concat", "channels", {"a": a, "b": b_}, lambda b: b.add_elementwise("c", ["a", "b"], "y", "CONCAT"),
       lambda a, b: np.concatenate([a, b], axis=0))
    nn("concat", "sequence", {"a": a, "b": a * 2}, lambda b: b.add_elementwise("c", ["a", "b"], "y",
                                                                              "SEQUENCE_CONCAT"),
       lambda a, b: np.stack([a, b])[:, None], out_shapes={"y": None})
    xs = f32(g, 6, 2, 3)
    nn("split", "three", {"x": xs}, lambda b: b.add_split("s", "x", ["y0", "y1", "y2"]),
       lambda x: {f"y{i}": x[2 * i:2 * i + 2] for i in range(3)})
    for axis, sl in [("channel", np.s_[1:5:2]), ("height", np.s_[:, 0:-1]), ("width", np.s_[:, :, 1:3])]:
        nn("slice", axis, {"x": f32(g, 6, 3, 4)},
           lambda b, axis=axis: b.add_slice("s", "x", "y", axis, *{"channel": (1, 5, 2), "height": (0, -1, 1),
                                                                    "width": (1, 3, 1)}[axis]),
           lambda x, sl=sl: x[sl])
    nn("sequenceRepeat", "three", {"x": f32(g, 2, 1, 3)}, lambda b: b.add_sequence_repeat("s", 3, "x", "y"),
       lambda x: np.stack([x, x, x])[:, None], out_shapes={"y": None})
    c = f32(g, 2, 3, 4)
    nn("loadConstant", "chw", {"x": f32(g, 2, 3, 4)},
       lambda b: (b.add_load_constant("k", "k", c, [2, 3, 4]), b.add_elementwise("a", ["x", "k"], "y", "ADD")),
       lambda x: x + c)


def cases():
    conv_cases()
    pool_cases()
    padding_cases()
    resize_cases()
    norm_cases()
    reduce_cases()
    dense_cases()
    shape5_cases()
