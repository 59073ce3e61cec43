"""Conformance cases of the quantization and resampling ops (see gen_conformance.py):
quantize, dequantize, resize (iOS17), resample, affine, crop_resize.

References: numpy formulas of the MIL docs, torch.nn.functional.grid_sample /
affine_grid where torch has the same convention, and the expected values that
coremltools' own op tests assert for Core ML (cases named `coreml_test_*`).
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F

from coremltools.converters.mil import Builder as mb

from gen_conformance_cases import T15, T16, T17, add, f32, rng, t
from gen_conformance_nn import bilinear, grid, lerp_axis


# ---------------------------------------------------------------- quantization
def quant_cases():
    g = rng("quant2")
    x = f32(g, 3, 4, lo=-2, hi=2)
    sc = np.array([0.01, 0.02, 0.05, 0.1], np.float32)
    zp = np.array([-3, 0, 5, 100], np.int8)
    add("quantize", "roundtrip_neg_axis_zero_point", {"x": x},
        lambda x: mb.dequantize(input=mb.quantize(input=x, scale=sc, zero_point=zp, axis=-1, output_dtype="int8"),
                                scale=sc, zero_point=zp, axis=-1),
        lambda x: (np.clip(np.round(x / sc) + zp, -128, 127) - zp) * sc, (1e-5, 1e-5))
    # Exact halves round to even (numpy's round).
    h = np.array([[0.125, 0.375, 0.625, -0.125, -0.375, 0.875]], np.float32)
    add("quantize", "halves_to_even", {"x": h},
        lambda x: mb.dequantize(input=mb.quantize(input=x, scale=np.float32(0.25), zero_point=np.uint8(10),
                                                  output_dtype="uint8"), scale=np.float32(0.25),
                                zero_point=np.uint8(10)),
        lambda x: (np.clip(np.round(x / 0.25) + 10, 0, 255) - 10) * 0.25, "exact")
    q = g.integers(0, 256, (2, 3, 2)).astype(np.uint8)
    s3, z3 = np.array([0.1, 0.5, 0.02], np.float32), np.array([128, 0, 255], np.uint8)
    add("dequantize", "uint8_axis1", {"x": f32(g, 2, 3, 2)},
        lambda x: mb.add(x=x, y=mb.dequantize(input=q, scale=s3, zero_point=z3, axis=1)),
        lambda x: x + (q.astype(np.float64) - z3[None, :, None]) * s3[None, :, None], (1e-5, 1e-5))
    q8 = g.integers(-128, 128, (4,)).astype(np.int8)
    add("dequantize", "no_zero_point", {"x": f32(g, 4)},
        lambda x: mb.mul(x=x, y=mb.dequantize(input=q8, scale=np.float32(0.5))),
        lambda x: x * q8 * 0.5, (1e-5, 1e-5))


# ---------------------------------------------------------------- resize
def resize_cases():
    g = rng("resize2")
    x = f32(g, 1, 2, 3, 4)
    for mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS", "OFFSET_CORNERS", "UNALIGN_CORNERS"):
        add("resize", f"linear_{mode.lower()}", {"x": x},
            lambda x, mode=mode: mb.resize(x=x, shape=np.array([5, 7], np.int32), resized_dims=np.uint32(2),
                                           sampling_mode=mode),
            lambda x, mode=mode: bilinear(x, 5, 7, mode), "math")
    add("resize", "one_dim", {"x": x},
        lambda x: mb.resize(x=x, shape=np.array([9], np.int32), resized_dims=np.uint32(1)),
        lambda x: lerp_axis(x, -1, grid("DEFAULT", 4, 9)), "math")
    add("resize", "three_dims_keep_zero", {"x": x},
        lambda x: mb.resize(x=x, shape=np.array([1, 4, 0, 6], np.int32), resized_dims=np.uint32(3),
                            sampling_mode="STRICT_ALIGN_CORNERS"),
        lambda x: lerp_axis(lerp_axis(x, 1, grid("STRICT_ALIGN_CORNERS", 2, 4)), 3,
                            grid("STRICT_ALIGN_CORNERS", 4, 6)), "math")
    add("resize", "nearest_downsample", {"x": f32(g, 1, 1, 6, 7)},
        lambda x: mb.resize(x=x, shape=np.array([4, 3], np.int32), resized_dims=np.uint32(2),
                            interpolation_mode="NEAREST_NEIGHBOR"),
        lambda x: x[..., np.floor(np.arange(4) * 6 / 4).astype(int), :][..., np.floor(np.arange(3) * 7 / 3).astype(int)],
        "exact")
    add("resize", "fp16", {"x": x.astype(np.float16)},
        lambda x: mb.resize(x=x, shape=np.array([6, 8], np.int32), resized_dims=np.uint32(2)),
        lambda x: bilinear(x, 6, 8, "DEFAULT"), "fp16")


# ---------------------------------------------------------------- resample / affine
def torch_sample(x, grid_norm, mode, padding, align, pad_value=0.0):
    """grid_sample; a constant pad p is sample(x - p) + p (the weights sum to 1)."""
    y = F.grid_sample(t(x - pad_value), t(grid_norm), mode=mode, padding_mode=padding, align_corners=align)
    return y.numpy() + pad_value


def resample_cases():
    # coremltools' own Core ML test (iOS15 TestResample), its expected values.
    x0 = np.array([11.0, 22.0, 33.0, 44.0], np.float32).reshape(1, 1, 2, 2)
    c0 = np.array([-1.0, -2.0, -3.7, -1.0, 0.0, 0.0, 3.5, 1.2], np.float32).reshape(1, 2, 2, 2)
    apple = [
        ("bilinear", "constant", 6.17, "normalized_minus_one_to_one", True, [8.585, 6.17, 27.5, 6.17]),
        ("nearest", "border", -1.0, "unnormalized", False, [11.0, 11.0, 11.0, 44.0]),
        ("bilinear", "reflection", -1.0, "normalized_zero_to_one", True, [22.0, 36.3, 11.0, 34.1]),
        ("nearest", "symmetric", -1.0, "normalized_zero_to_one", False, [22.0, 33.0, 11.0, 33.0]),
    ]
    for i, (sm, pm, pv, cm, ac, exp) in enumerate(apple):
        add("resample", f"coreml_test_{i}", {"x": x0, "c": c0},
            lambda x, c, sm=sm, pm=pm, pv=pv, cm=cm, ac=ac: mb.resample(
                x=x, coordinates=c, sampling_mode=sm, padding_mode=pm, padding_value=np.float32(pv),
                coordinates_mode=cm, align_corners=ac),
            lambda x, c, exp=exp: np.array(exp).reshape(1, 1, 2, 2), (1e-5, 1e-4), target=T15)
    g = rng("resample")
    x = f32(g, 2, 3, 4, 5)
    c = f32(g, 2, 3, 4, 2, lo=-1.3, hi=1.3)
    # (name, sampling, padding, pad value, align, torch padding)
    combos = [
        ("bilinear_zeros_align", "bilinear", "constant", 0.0, True, "zeros"),
        ("bilinear_zeros", "bilinear", "constant", 0.0, False, "zeros"),
        ("bilinear_pad_value", "bilinear", "constant", 1.5, False, "zeros"),
        ("bilinear_border", "bilinear", "border", 0.0, True, "border"),
        ("bilinear_reflection", "bilinear", "reflection", 0.0, True, "reflection"),
        ("bilinear_symmetric", "bilinear", "symmetric", 0.0, False, "reflection"),
        ("nearest_zeros", "nearest", "constant", 0.0, False, "zeros"),
        ("nearest_border_align", "nearest", "border", 0.0, True, "border"),
    ]
    for name, sm, pm, pv, ac, tp in combos:
        add("resample", name, {"x": x, "c": c},
            lambda x, c, sm=sm, pm=pm, pv=pv, ac=ac: mb.resample(
                x=x, coordinates=c, sampling_mode=sm, padding_mode=pm, padding_value=np.float32(pv),
                coordinates_mode="normalized_minus_one_to_one", align_corners=ac),
            lambda x, c, sm=sm, tp=tp, pv=pv, ac=ac: torch_sample(x, c, sm, tp, ac, pv), "math", target=T16)
    n = np.array([5.0, 4.0])  # (W, H)
    cu = f32(g, 2, 3, 4, 2, lo=-1.0, hi=5.0)
    add("resample", "unnormalized", {"x": x, "c": cu},
        lambda x, c: mb.resample(x=x, coordinates=c, sampling_mode="bilinear", padding_mode="constant",
                                 padding_value=np.float32(0.0), coordinates_mode="unnormalized",
                                 align_corners=False),
        lambda x, c: torch_sample(x, (2 * c + 1) / n - 1, "bilinear", "zeros", False), "math", target=T16)
    cz = f32(g, 2, 3, 4, 2, lo=-0.2, hi=1.2)
    add("resample", "zero_to_one", {"x": x, "c": cz},
        lambda x, c: mb.resample(x=x, coordinates=c, sampling_mode="bilinear", padding_mode="border",
                                 padding_value=np.float32(0.0), coordinates_mode="normalized_zero_to_one",
                                 align_corners=False),
        lambda x, c: torch_sample(x, 2 * c - 1, "bilinear", "border", False), "math", target=T16)


def affine_ref(x, m, h, w, align):
    theta = np.broadcast_to(m.reshape(-1, 2, 3), (x.shape[0], 2, 3))
    grid_ = F.affine_grid(t(theta), (x.shape[0], x.shape[1], h, w), align_corners=align).numpy()
    return torch_sample(x, grid_, "bilinear", "zeros", align)


def affine_cases():
    # coremltools' own Core ML test (iOS15 TestAffine), its expected values.
    x0 = np.array([11.0, 22.0, 33.0, 44.0], np.float32).reshape(1, 1, 2, 2)
    m0 = np.array([-1.0, -2.0, -3.7, -1.0, 3.5, 1.2], np.float32).reshape(1, 6)
    for h, w, exp in ((3, 3, [10.752501, 2.5025, 0.0, 1.9799997, 0.0, 0.0, 0.0, 0.0, 0.0]),
                      (2, 5, [10.752501, 5.94, 2.5025, 0.44000006, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])):
        add("affine", f"coreml_test_{h}x{w}", {"x": x0, "m": m0},
            lambda x, m, h=h, w=w: mb.affine(x=x, transform_matrix=m, output_height=h, output_width=w,
                                             sampling_mode="bilinear", padding_mode="constant",
                                             padding_value=np.float32(0.0),
                                             coordinates_mode="normalized_minus_one_to_one", align_corners=True),
            lambda x, m, h=h, w=w, exp=exp: np.array(exp).reshape(1, 1, h, w), (1e-5, 1e-4), target=T15)
    g = rng("affine")
    x = f32(g, 2, 3, 4, 5)
    for name, m, ac in (("per_batch_align", f32(g, 2, 6, lo=-1.2, hi=1.2), True),
                        ("per_batch", f32(g, 2, 6, lo=-1.2, hi=1.2), False),
                        ("shared_matrix", f32(g, 1, 6, lo=-1.2, hi=1.2), True)):
        add("affine", name, {"x": x, "m": m},
            lambda x, m, ac=ac: mb.affine(x=x, transform_matrix=m, output_height=3, output_width=6,
                                          sampling_mode="bilinear", padding_mode="constant",
                                          padding_value=np.float32(0.0),
                                          coordinates_mode="normalized_minus_one_to_one", align_corners=ac),
            lambda x, m, ac=ac: affine_ref(x, m, 3, 6, ac), "math")


# ---------------------------------------------------------------- crop_resize
def box_points(mode, s, e, n):
    """Sample points across one box side, from the SamplingMode docs of NeuralNetwork.proto
    with X - 1 = |e - s| (the box as the interval), walked from s towards e."""
    a, sign = abs(e - s), (1.0 if e >= s else -1.0)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if n == 1:
            off = np.array([a / 2.0 if mode == "ALIGN_CORNERS" else 0.0])
        else:
            off = np.linspace(0.0, a, n)
    elif mode == "DEFAULT":
        off = np.minimum(a, np.linspace(0.0, (a + 1) - (a + 1) / n, n))
    elif mode == "OFFSET_CORNERS":
        sp = max(1.0, a) / n
        off = np.minimum(a, np.linspace(0.5 * sp, 0.5 * sp + (n - 1) * sp, n))
    else:
        raise ValueError(mode)
    return s + sign * off


def crop_ref(x, crops, th, tw, mode, pad=0.0):
    """[S, C, th, tw]: bilinear at the box points; a point off the image reads `pad`
    (tf.image.crop_and_resize's extrapolation_value)."""
    H, W = x.shape[-2:]
    out = []
    for b, (h0, w0, h1, w1) in crops:
        ys, xs = box_points(mode, h0, h1, th), box_points(mode, w0, w1, tw)
        img = x[b]
        o = np.full((img.shape[0], th, tw), pad, dtype=np.float64)
        for i, yy in enumerate(ys):
            for j, xx in enumerate(xs):
                if 0 <= yy <= H - 1 and 0 <= xx <= W - 1:
                    y0, x0 = int(np.floor(yy)), int(np.floor(xx))
                    y1, x1 = min(y0 + 1, H - 1), min(x0 + 1, W - 1)
                    fy, fx = yy - y0, xx - x0
                    top = img[:, y0, x0] * (1 - fx) + img[:, y0, x1] * fx
                    bot = img[:, y1, x0] * (1 - fx) + img[:, y1, x1] * fx
                    o[:, i, j] = top * (1 - fy) + bot * fy
        out.append(o)
    return np.stack(out)


def roi_align_ref(x, boxes, ph, pw):
    """torchvision roi_align(aligned=False, sampling_ratio=1) for boxes inside the image."""
    out = []
    for b, (x1, y1, x2, y2) in boxes:
        rh, rw = max(y2 - y1, 1.0), max(x2 - x1, 1.0)
        ys = y1 + (np.arange(ph) + 0.5) * rh / ph
        xs = x1 + (np.arange(pw) + 0.5) * rw / pw
        out.append(lerp_axis(lerp_axis(x[b], 1, ys), 2, xs))
    return np.stack(out)


def crop_resize_cases():
    # coremltools' own Core ML test (iOS14/15 TestCropResize), its expected values.
    x0 = np.arange(1, 17, dtype=np.float32).reshape(1, 1, 4, 4)
    roi = np.array([1, 1, 2, 2], np.float32).reshape(1, 1, 4, 1, 1)
    roi_n = np.array([0, 0.0, 0.0, 1.0 / 3, 1.0 / 3], np.float32).reshape(1, 1, 5, 1, 1)
    roi_inv = np.array([2, 2, 1, 1], np.float32).reshape(1, 1, 4, 1, 1)
    apple = [
        ("2x2", roi, 2, False, [6, 7, 10, 11]),
        ("4x4", roi, 4, False, [6, 6.333333, 6.66666, 7, 7.333333, 7.666666, 8, 8.333333,
                                8.666666, 9, 9.3333333, 9.666666, 10, 10.333333, 10.666666, 11]),
        ("1x1", roi, 1, False, [8.5]),
        ("normalized", roi_n, 2, True, [1, 2, 5, 6]),
        ("inverted", roi_inv, 2, False, [11, 10, 7, 6]),
    ]
    for name, r, n, norm, exp in apple:
        add("crop_resize", f"coreml_test_{name}", {"x": x0},
            lambda x, r=r, n=n, norm=norm: mb.crop_resize(
                x=x, roi=r, target_height=n, target_width=n, normalized_coordinates=norm,
                box_coordinate_mode="CORNERS_HEIGHT_FIRST", sampling_mode="ALIGN_CORNERS"),
            lambda x, n=n, exp=exp: np.array(exp).reshape(1, 1, 1, n, n), (1e-5, 1e-4), target=T15)
    add("crop_resize", "coreml_test_unalign_inverted_normalized", {"x": x0},
        lambda x: mb.crop_resize(x=x, roi=roi_inv, target_height=2, target_width=2, normalized_coordinates=True,
                                 box_coordinate_mode="CORNERS_HEIGHT_FIRST", sampling_mode="UNALIGN_CORNERS"),
        lambda x: np.array([3.5, 5.5, 11.5, 13.5]).reshape(1, 1, 1, 2, 2), (1e-5, 1e-4), target=T15)

    g = rng("crop_resize")
    x = f32(g, 2, 3, 6, 7)
    boxes = np.array([[0.5, 1.0, 4.0, 5.5], [1.0, 0.0, 5.0, 6.0]], np.float32)
    r4 = boxes.reshape(2, 1, 4, 1, 1)
    add("crop_resize", "every_image_strict", {"x": x},
        lambda x: mb.crop_resize(x=x, roi=r4, target_height=3, target_width=4, sampling_mode="STRICT_ALIGN_CORNERS"),
        lambda x: crop_ref(x, [(b, bx) for bx in boxes for b in range(2)], 3, 4,
                           "STRICT_ALIGN_CORNERS").reshape(2, 2, 3, 3, 4), "math", target=T15)
    r5 = np.array([[1, 0.1, 0.2, 0.9, 0.7], [0, 0.0, 0.5, 1.0, 1.0]], np.float32).reshape(2, 1, 5, 1, 1)
    add("crop_resize", "batch_index_normalized", {"x": x},
        lambda x: mb.crop_resize(x=x, roi=r5, target_height=4, target_width=3, normalized_coordinates=True,
                                 sampling_mode="ALIGN_CORNERS"),
        lambda x: crop_ref(x, [(1, (0.1 * 5, 0.2 * 6, 0.9 * 5, 0.7 * 6)), (0, (0.0, 0.5 * 6, 5.0, 6.0))], 4, 3,
                           "ALIGN_CORNERS").reshape(2, 1, 3, 4, 3), "math", target=T15)
    r1 = np.array([[0, 1.0, 2.0, 3.0, 4.0]], np.float32).reshape(1, 1, 5, 1, 1)
    for mode, conv in (("CORNERS_WIDTH_FIRST", (2.0, 1.0, 4.0, 3.0)),
                       ("CENTER_SIZE_HEIGHT_FIRST", (1.0 - 1.5, 2.0 - 2.0, 1.0 + 1.5, 2.0 + 2.0)),
                       ("CENTER_SIZE_WIDTH_FIRST", (2.0 - 2.0, 1.0 - 1.5, 2.0 + 2.0, 1.0 + 1.5))):
        add("crop_resize", mode.lower(), {"x": x},
            lambda x, mode=mode: mb.crop_resize(x=x, roi=r1, target_height=3, target_width=3,
                                                box_coordinate_mode=mode, sampling_mode="ALIGN_CORNERS"),
            lambda x, conv=conv: crop_ref(x, [(0, conv)], 3, 3, "ALIGN_CORNERS").reshape(1, 1, 3, 3, 3),
            "math", target=T15)
    # OFFSET_CORNERS is RoI Align (torchvision, aligned=False, one sample per bin); boxes
    # [x1, y1, x2, y2] in input units with spatial_scale.
    ra = np.array([[0, 2.0, 1.0, 9.0, 8.0], [1, 4.0, 0.0, 12.0, 10.0]], np.float32)
    add("crop_resize", "roi_align_offset_corners", {"x": x},
        lambda x: mb.crop_resize(x=x, roi=ra.reshape(2, 1, 5, 1, 1), target_height=2, target_width=3,
                                 spatial_scale=np.float32(0.5), box_coordinate_mode="CORNERS_WIDTH_FIRST",
                                 sampling_mode="OFFSET_CORNERS"),
        lambda x: roi_align_ref(x, [(int(r[0]), tuple(r[1:] * 0.5)) for r in ra], 2, 3).reshape(2, 1, 3, 2, 3),
        "math", target=T15)
    # A box over the whole image is resize_bilinear with the same sampling mode.
    full = np.array([0, 0.0, 0.0, 5.0, 6.0], np.float32).reshape(1, 1, 5, 1, 1)
    for mode in ("DEFAULT", "UNALIGN_CORNERS", "OFFSET_CORNERS"):
        add("crop_resize", f"full_box_{mode.lower()}", {"x": x},
            lambda x, mode=mode: mb.crop_resize(x=x, roi=full, target_height=4, target_width=5, sampling_mode=mode),
            lambda x, mode=mode: bilinear(x[:1], 4, 5, mode).reshape(1, 1, 3, 4, 5), "math", target=T15)
    # iOS16 pad_value, a box reaching outside the image.
    out_box = np.array([[0, -1.0, 2.0, 3.0, 8.5]], np.float32).reshape(1, 1, 5, 1, 1)
    add("crop_resize", "pad_value", {"x": x},
        lambda x: mb.crop_resize(x=x, roi=out_box, target_height=3, target_width=4, sampling_mode="ALIGN_CORNERS",
                                 pad_value=np.float32(-2.5)),
        lambda x: crop_ref(x, [(0, (-1.0, 2.0, 3.0, 8.5))], 3, 4, "ALIGN_CORNERS", -2.5).reshape(1, 1, 3, 3, 4),
        "math", target=T16)
    # iOS17 boxes [N, 4] and box_indices.
    b17 = np.array([[0.0, 0.0, 0.5, 0.5], [0.2, 0.4, 1.0, 0.9], [0.1, 0.1, 0.3, 1.2]], np.float32)
    idx = np.array([1, 0, 1], np.int32)
    add("crop_resize", "ios17_box_indices", {"x": x},
        lambda x: mb.crop_resize(x=x, boxes=b17, box_indices=idx, target_height=2, target_width=3,
                                 normalized_coordinates=True, sampling_mode="ALIGN_CORNERS", pad_value=np.float32(1.0)),
        lambda x: crop_ref(x, [(int(i), tuple(bx * [5, 6, 5, 6])) for i, bx in zip(idx, b17)], 2, 3,
                           "ALIGN_CORNERS", 1.0), "math", target=T17)
    b2 = np.array([[1.0, 1.0, 4.0, 5.0], [0.0, 2.0, 5.0, 6.0]], np.float32)
    add("crop_resize", "ios17_default_indices", {"x": x},
        lambda x: mb.crop_resize(x=x, boxes=b2, target_height=3, target_width=3, sampling_mode="STRICT_ALIGN_CORNERS"),
        lambda x: crop_ref(x, [(i, tuple(bx)) for i, bx in enumerate(b2)], 3, 3, "STRICT_ALIGN_CORNERS"),
        "math", target=T17)


def sampling_cases():
    quant_cases()
    resize_cases()
    resample_cases()
    affine_cases()
    crop_resize_cases()
