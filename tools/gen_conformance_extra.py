"""Extra conformance cases: `conv_quantized` and the iOS18 constexpr ops that
decode palettized / sparse weights (see gen_conformance.py).

Expected values come from numpy, written from the op docstrings of
coremltools' MIL op definitions (iOS15 conv.py, iOS18 compression.py).
"""

from __future__ import annotations

import numpy as np
import torch

from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from gen_conformance_cases import T18, add, f32, rng


def _conv_ref(x, w, bias, strides=1, padding=0, dilation=1, groups=1):
    """Reference conv with torch in float64 (1-D or 2-D from the rank)."""
    xt = torch.from_numpy(np.asarray(x, np.float64))
    wt = torch.from_numpy(np.asarray(w, np.float64))
    bt = None if bias is None else torch.from_numpy(np.asarray(bias, np.float64))
    fn = torch.nn.functional.conv1d if xt.dim() == 3 else torch.nn.functional.conv2d
    return fn(xt, wt, bt, stride=strides, padding=padding, dilation=dilation, groups=groups).numpy()


def _dequant(wq, scale, qbias):
    """`W_float = W_quantized * scale + bias`, scale/bias scalar or per output channel."""
    shape = (-1,) + (1,) * (wq.ndim - 1)
    s = np.asarray(scale, np.float64)
    b = np.asarray(qbias, np.float64)
    s = s.reshape(shape) if s.size > 1 else s.reshape(())
    b = b.reshape(shape) if b.size > 1 else b.reshape(())
    return wq.astype(np.float64) * s + b


def conv_quantized_cases() -> None:
    op = "conv_quantized"
    # 2-D, per-channel scale and bias.
    g = rng("conv_quantized/per_channel")
    x = f32(g, 1, 3, 6, 5)
    wq = g.integers(0, 256, (4, 3, 3, 3)).astype(np.uint8)
    scale = g.uniform(0.005, 0.02, (4,)).astype(np.float32)
    qb = g.uniform(-1.5, -0.5, (4,)).astype(np.float32)
    w = _dequant(wq, scale, qb)
    add(op, "per_channel_2d", {"x": x},
        lambda x: mb.conv_quantized(x=x, weight=wq, quantization_type="linear", quant_scale=scale,
                                    quant_bias=qb),
        lambda x: _conv_ref(x, w, None), tol="math")
    # 2-D, one scale/bias for the tensor, strides and custom padding.
    g = rng("conv_quantized/per_tensor")
    x = f32(g, 2, 2, 7, 6)
    wq2 = g.integers(0, 256, (3, 2, 2, 3)).astype(np.uint8)
    s2 = np.array([0.01], np.float32)
    b2 = np.array([-1.2], np.float32)
    w2 = _dequant(wq2, s2, b2)
    add(op, "per_tensor_strided_pad", {"x": x},
        lambda x: mb.conv_quantized(x=x, weight=wq2, quantization_type="linear", quant_scale=s2,
                                    quant_bias=b2, strides=[2, 1], pad_type="custom",
                                    pad=[1, 1, 0, 2]),
        lambda x: _conv_ref(np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 2))), w2, None, strides=(2, 1)),
        tol="math")
    # 1-D, grouped, with a (uint8) conv bias added after the conv.
    g = rng("conv_quantized/grouped_bias")
    x = f32(g, 1, 4, 9)
    wq3 = g.integers(0, 256, (6, 2, 3)).astype(np.uint8)
    s3 = g.uniform(0.005, 0.02, (6,)).astype(np.float32)
    b3 = g.uniform(-1.5, -0.5, (6,)).astype(np.float32)
    cb = g.integers(0, 4, (6,)).astype(np.uint8)
    w3 = _dequant(wq3, s3, b3)
    add(op, "grouped_1d_bias", {"x": x},
        lambda x: mb.conv_quantized(x=x, weight=wq3, bias=cb, quantization_type="linear",
                                    quant_scale=s3, quant_bias=b3, groups=2, pad_type="same"),
        lambda x: _conv_ref(x, w3, cb, padding=1, groups=2), tol="math")


def _lut_dense(ind, lut, vector_axis=None):
    """constexpr_lut_to_dense (iOS18): per-group LUTs over the first K axes of
    `lut`, each entry a vector of VECTOR_SIZE filled along `vector_axis`."""
    ind = np.asarray(ind).astype(np.int64)
    k = ind.ndim
    v = lut.shape[-1]
    if v == 1:
        out = np.empty(ind.shape, np.float64)
        blocks = [ind.shape[i] // lut.shape[i] for i in range(k)]
        for idx in np.ndindex(ind.shape):
            g = tuple(idx[i] // blocks[i] for i in range(k))
            out[idx] = lut[g + (ind[idx], 0)]
        return out
    assert all(d == 1 for d in lut.shape[:k]), "vector cases use one LUT"
    vec = lut.reshape(lut.shape[k], v)[ind]  # ind.shape + (V,)
    vec = np.moveaxis(vec, -1, vector_axis + 1)
    shape = list(ind.shape)
    shape[vector_axis] *= v
    return vec.reshape(shape).astype(np.float64)


def _sparse_dense(nonzero, mask):
    """constexpr_sparse_to_dense: nonzero values in row-major mask order."""
    out = np.zeros(mask.shape, np.float64)
    out[np.asarray(mask) != 0] = np.asarray(nonzero, np.float64)
    return out


def _blockwise(data, scale, offset):
    """constexpr_blockwise_shift_scale: `(data - offset) * scale`, both
    repeated over blocks of size data_dim / scale_dim along each axis."""
    def expand(p):
        p = np.asarray(p, np.float64)
        for ax in range(data.ndim):
            p = np.repeat(p, data.shape[ax] // p.shape[ax], axis=ax)
        return p
    off = 0.0 if offset is None else expand(offset)
    return (np.asarray(data, np.float64) - off) * expand(scale)


def constexpr_cases() -> None:
    u1, u2, u4 = types.np_uint1_dtype, types.np_uint2_dtype, types.np_uint4_dtype

    # constexpr_lut_to_dense
    op = "constexpr_lut_to_dense"
    g = rng(op + "/grouped")
    ind = g.integers(0, 16, (4, 6)).astype(u4)
    lut = f32(g, 2, 1, 16, 1)
    dense = _lut_dense(ind, lut)
    add(op, "uint4_two_groups", {"x": f32(g, 4, 6)},
        lambda x: mb.add(x=x, y=mb.constexpr_lut_to_dense(indices=ind, lut=lut)),
        lambda x: x + dense, target=T18)
    g = rng(op + "/per_tensor")
    ind2 = g.integers(0, 4, (3, 5)).astype(u2)
    lut2 = f32(g, 1, 1, 4, 1)
    dense2 = _lut_dense(ind2, lut2)
    add(op, "uint2_per_tensor", {"x": f32(g, 3, 5)},
        lambda x: mb.add(x=x, y=mb.constexpr_lut_to_dense(indices=ind2, lut=lut2)),
        lambda x: x + dense2, target=T18)
    g = rng(op + "/vector")
    ind3 = g.integers(0, 2, (2, 2, 2)).astype(u1)
    lut3 = f32(g, 1, 1, 1, 2, 3)
    dense3 = _lut_dense(ind3, lut3, vector_axis=1)
    add(op, "uint1_vector_axis1", {"x": f32(g, 2, 6, 2)},
        lambda x: mb.add(x=x, y=mb.constexpr_lut_to_dense(indices=ind3, lut=lut3, vector_axis=1)),
        lambda x: x + dense3, target=T18)

    # constexpr_sparse_to_dense
    op = "constexpr_sparse_to_dense"
    g = rng(op + "/fp32")
    mask = (g.uniform(size=(3, 5)) < 0.5).astype(u1)
    nz = f32(g, int(np.count_nonzero(mask)))
    dense4 = _sparse_dense(nz, mask)
    add(op, "fp32_3x5", {"x": f32(g, 3, 5)},
        lambda x: mb.add(x=x, y=mb.constexpr_sparse_to_dense(nonzero_data=nz, mask=mask)),
        lambda x: x + dense4, target=T18)
    g = rng(op + "/rank3")
    mask5 = (g.uniform(size=(2, 3, 4)) < 0.3).astype(u1)
    nz5 = f32(g, int(np.count_nonzero(mask5)))
    dense5 = _sparse_dense(nz5, mask5)
    add(op, "fp32_rank3", {"x": f32(g, 2, 3, 4)},
        lambda x: mb.add(x=x, y=mb.constexpr_sparse_to_dense(nonzero_data=nz5, mask=mask5)),
        lambda x: x + dense5, target=T18)

    # constexpr_lut_to_sparse, densified by constexpr_sparse_to_dense
    op = "constexpr_lut_to_sparse"
    g = rng(op + "/scalar")
    m6 = (g.uniform(size=(4, 6)) < 0.5).astype(u1)
    i6 = g.integers(0, 4, (int(np.count_nonzero(m6)),)).astype(u2)
    lut6 = f32(g, 1, 1, 4, 1)
    dense6 = _sparse_dense(lut6.reshape(4)[i6.astype(np.int64)], m6)

    def lut_sparse6(x):
        m, d = mb.constexpr_lut_to_sparse(indices_mask=m6, indices_nonzero_data=i6, lut=lut6)
        return mb.add(x=x, y=mb.constexpr_sparse_to_dense(nonzero_data=d, mask=m))

    add(op, "uint2_scalar", {"x": f32(g, 4, 6)}, lut_sparse6, lambda x: x + dense6, target=T18)
    g = rng(op + "/vector")
    m7 = (g.uniform(size=(4, 6)) < 0.5).astype(u1)
    i7 = g.integers(0, 2, (int(np.count_nonzero(m7)),)).astype(u1)
    lut7 = f32(g, 1, 1, 2, 2)
    # Index at (r, c) fills rows 2r, 2r+1 of column c with lut vector i.
    dense7 = np.zeros((8, 6))
    vals = lut7.reshape(2, 2)[i7.astype(np.int64)]
    for (r, c), vec in zip(np.argwhere(np.asarray(m7) != 0), vals):
        dense7[2 * r: 2 * r + 2, c] = vec

    def lut_sparse7(x):
        m, d = mb.constexpr_lut_to_sparse(
            indices_mask=m7, indices_nonzero_data=i7, lut=lut7, vector_axis=0
        )
        return mb.add(x=x, y=mb.constexpr_sparse_to_dense(nonzero_data=d, mask=m))

    add(op, "uint1_vector_axis0", {"x": f32(g, 8, 6)}, lut_sparse7, lambda x: x + dense7,
        target=T18)

    # constexpr_sparse_blockwise_shift_scale, densified by constexpr_sparse_to_dense
    op = "constexpr_sparse_blockwise_shift_scale"
    g = rng(op + "/int8")
    m8 = (g.uniform(size=(4, 4)) < 0.6).astype(u1)
    d8 = g.integers(-100, 100, (int(np.count_nonzero(m8)),)).astype(np.int8)
    s8 = g.uniform(0.01, 0.1, (1, 4)).astype(np.float32)
    o8 = g.integers(-5, 5, (1, 4)).astype(np.int8)
    dense8 = _blockwise(_sparse_dense(d8, m8), s8, o8) * (np.asarray(m8) != 0)

    def sparse_bss8(x):
        m, d = mb.constexpr_sparse_blockwise_shift_scale(
            data_mask=m8, nonzero_data=d8, scale=s8, offset=o8
        )
        return mb.add(x=x, y=mb.constexpr_sparse_to_dense(nonzero_data=d, mask=m))

    add(op, "int8_per_column", {"x": f32(g, 4, 4)}, sparse_bss8, lambda x: x + dense8, target=T18)
    g = rng(op + "/uint4_blocks")
    m9 = (g.uniform(size=(4, 6)) < 0.6).astype(u1)
    d9 = g.integers(0, 16, (int(np.count_nonzero(m9)),)).astype(u4)
    s9 = g.uniform(0.05, 0.2, (2, 3)).astype(np.float32)
    dense9 = _blockwise(_sparse_dense(d9.astype(np.int64), m9), s9, None) * (np.asarray(m9) != 0)

    def sparse_bss9(x):
        m, d = mb.constexpr_sparse_blockwise_shift_scale(data_mask=m9, nonzero_data=d9, scale=s9)
        return mb.add(x=x, y=mb.constexpr_sparse_to_dense(nonzero_data=d, mask=m))

    add(op, "uint4_blocks_no_offset", {"x": f32(g, 4, 6)}, sparse_bss9, lambda x: x + dense9,
        target=T18)


def extra_cases() -> None:
    """Registers this module's cases."""
    conv_quantized_cases()
    constexpr_cases()
