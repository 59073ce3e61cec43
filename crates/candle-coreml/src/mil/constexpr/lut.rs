//! Palettized weights: `constexpr_lut_to_dense` (iOS16 and iOS18 forms) and
//! `constexpr_lut_to_sparse`.

use super::params::{
    byte_width, check_blocks, dense, element_count, in_param, normalize_axis, strides, walk_blocks,
    Params,
};
use super::sparse::{gather, mask_bits};
use crate::mil::elements::unpack_bits;
use crate::mil::value::{TensorData, TensorValue};

/// `constexpr_lut_to_dense`. iOS16 (has `shape`): `indices` is a uint8
/// vector of packed `log2(lut.len())`-bit indices into the vector `lut`.
/// iOS18: `indices` is a uintN tensor; `lut` has shape
/// `[g_0, ..., g_{K-1}, 2^N, VECTOR_SIZE]`, one table per block of
/// `indices.shape[i] / g_i` along each axis; each index selects a vector of
/// `VECTOR_SIZE` values laid out along `vector_axis` of the output.
pub(super) fn lut_to_dense(p: &Params) -> Result<TensorValue, String> {
    let lut = p.req("lut")?;
    let indices = p.req("indices")?;
    if let Some(shape_t) = p.opt("shape")? {
        let shape = shape_t.to_usize_vec().map_err(in_param("shape"))?;
        return lut_to_dense_ios16(indices, lut, shape);
    }
    let idx = index_values(indices, "indices")?;
    let out = expand(&idx, &indices.shape, lut, p.int("vector_axis")?)?;
    Ok(dense(lut.dtype, out.shape, out.bytes))
}

/// The iOS16 form: one table for the whole tensor, packed indices.
fn lut_to_dense_ios16(
    indices: &TensorValue,
    lut: &TensorValue,
    shape: Vec<usize>,
) -> Result<TensorValue, String> {
    let palettes = match lut.shape.as_slice() {
        [n] if n.is_power_of_two() && (2..=256).contains(n) => *n,
        s => {
            return Err(format!(
                "parameter `lut` must be a vector of 2, 4, ..., 256 entries, found shape {s:?}"
            ))
        }
    };
    if indices.dtype.bit_width() != Some(8) {
        return Err(format!(
            "parameter `indices` must be packed uint8 bits, found {}",
            indices.dtype
        ));
    }
    let n = element_count(&shape)?;
    let packed = indices.to_le_bytes().map_err(in_param("indices"))?;
    let idx = unpack_bits(&packed, palettes.trailing_zeros(), n).map_err(in_param("indices"))?;
    // The same as an iOS18 table of shape [1, ..., 1, palettes, 1].
    let mut lut_shape = vec![1; shape.len()];
    lut_shape.extend([palettes, 1]);
    let table = TensorValue {
        shape: lut_shape,
        ..lut.clone()
    };
    let out = expand(&idx, &shape, &table, None)?;
    Ok(dense(lut.dtype, out.shape, out.bytes))
}

/// `constexpr_lut_to_sparse` (iOS18): the LUT decoding of a sparse index
/// tensor. Outputs the mask (repeated `VECTOR_SIZE` times along
/// `vector_axis`) and the looked-up values at its set positions.
pub(super) fn lut_to_sparse(p: &Params) -> Result<Vec<TensorValue>, String> {
    let mask_t = p.req("indices_mask")?;
    let nonzero = p.req("indices_nonzero_data")?;
    let lut = p.req("lut")?;
    if nonzero.shape.len() != 1 {
        return Err(format!(
            "parameter `indices_nonzero_data` must have rank 1, found shape {:?}",
            nonzero.shape
        ));
    }
    let mask = mask_bits(mask_t, "indices_mask")?;
    let nz = index_values(nonzero, "indices_nonzero_data")?;
    let set = mask.iter().filter(|&&m| m).count();
    if set != nz.len() {
        return Err(format!(
            "parameter `indices_mask` has {set} set bits, but `indices_nonzero_data` holds {} values",
            nz.len()
        ));
    }
    // Unset positions index entry 0; they are dropped again below.
    let mut src = nz.iter();
    let idx: Vec<u8> = mask
        .iter()
        .map(|&m| {
            if m {
                src.next().copied().unwrap_or(0)
            } else {
                0
            }
        })
        .collect();
    let out = expand(&idx, &mask_t.shape, lut, p.int("vector_axis")?)?;
    let width = byte_width(lut.dtype, "lut")?;
    let (out_mask_t, out_mask) = match out.vector_axis {
        Some(axis) if out.vector > 1 => {
            let m = repeat_along(&mask, &mask_t.shape, axis, out.vector)?;
            let t = TensorValue::new(mask_t.dtype, out.shape.clone(), TensorData::Bool(m.clone()));
            let bytes = t
                .to_le_bytes()
                .map_err(in_param("indices_mask"))?
                .into_owned();
            (dense(mask_t.dtype, out.shape.clone(), bytes), m)
        }
        _ => (mask_t.clone(), mask),
    };
    let values = gather(&out.bytes, width, &out_mask)?;
    let count = values.len() / width;
    Ok(vec![out_mask_t, dense(lut.dtype, vec![count], values)])
}

/// Palette indices as bytes: sub-byte and uint8 storage unpacked directly,
/// anything else converted with a range check.
fn index_values(t: &TensorValue, what: &str) -> Result<Vec<u8>, String> {
    let n = element_count(&t.shape)?;
    let index = t.dtype.is_palette_index();
    if let (true, TensorData::Bytes(b), Some(bits)) = (index, &t.data, t.dtype.bit_width()) {
        return unpack_bits(b.as_slice(), bits, n).map_err(in_param(what));
    }
    t.to_u32_vec()
        .map_err(in_param(what))?
        .into_iter()
        .map(|v| u8::try_from(v).map_err(|_| format!("parameter `{what}`: index {v} above 255")))
        .collect()
}

/// A dense output of a LUT decoding.
struct Expanded {
    /// Little-endian bytes in the LUT's dtype.
    bytes: Vec<u8>,
    /// Output shape.
    shape: Vec<usize>,
    /// The (non-negative) vector axis, when given.
    vector_axis: Option<usize>,
    /// Values per index.
    vector: usize,
}

/// Looks every index of a tensor of shape `ishape` up in `lut` (shape
/// `[groups..., palettes, vector]`), following coremltools' `lut_to_dense`.
fn expand(
    idx: &[u8],
    ishape: &[usize],
    lut: &TensorValue,
    vector_axis: Option<i64>,
) -> Result<Expanded, String> {
    let rank = ishape.len();
    let (groups, palettes, vector) = match lut.shape.as_slice() {
        [g @ .., p, v] if g.len() == rank && rank > 0 && *p > 0 && *v > 0 => (g, *p, *v),
        s => {
            return Err(format!(
                "parameter `lut` has shape {s:?}; expected {} block counts, then palettes and vector size, for indices of shape {ishape:?}",
                rank
            ))
        }
    };
    check_blocks(ishape, groups, "lut")?;
    let vector_axis = match vector_axis {
        Some(a) => Some(normalize_axis(a, rank, "vector_axis")?),
        None if vector > 1 => {
            return Err(format!(
                "parameter `vector_axis` is required for vector size {vector}"
            ))
        }
        None => None,
    };
    if idx.len() != element_count(ishape)? {
        return Err(format!(
            "parameter `indices` holds {} values for shape {ishape:?}",
            idx.len()
        ));
    }
    let width = byte_width(lut.dtype, "lut")?;
    let table = lut.to_le_bytes().map_err(in_param("lut"))?;
    let mut shape = ishape.to_vec();
    if let (Some(a), true) = (vector_axis, vector > 1) {
        shape[a] = shape[a]
            .checked_mul(vector)
            .ok_or("output shape overflows")?;
    }
    let out_strides = strides(&shape);
    let steps: Vec<usize> = (0..rank)
        .map(|d| out_strides[d] * if Some(d) == vector_axis { vector } else { 1 })
        .collect();
    let vstep = vector_axis.map_or(0, |a| out_strides[a]);
    let len = element_count(&shape)?
        .checked_mul(width)
        .ok_or("output size overflows")?;
    let mut bytes = vec![0u8; len];
    let entry = vector * width;
    walk_blocks(ishape, groups, &steps, |flat, group, offset| {
        let i = usize::from(idx.get(flat).copied().unwrap_or(0));
        if i >= palettes {
            return Err(format!(
                "parameter `indices`: index {i} is out of range for {palettes} palettes"
            ));
        }
        let base = (group * palettes + i) * entry;
        for v in 0..vector {
            let src = base + v * width;
            let dst = (offset + v * vstep) * width;
            match (table.get(src..src + width), bytes.get_mut(dst..dst + width)) {
                (Some(s), Some(d)) => d.copy_from_slice(s),
                _ => return Err("parameter `lut`: fewer entries than its shape".into()),
            }
        }
        Ok(())
    })?;
    Ok(Expanded {
        bytes,
        shape,
        vector_axis,
        vector,
    })
}

/// `mask` (shape `shape`) with each element repeated `times` times along `axis`.
fn repeat_along(
    mask: &[bool],
    shape: &[usize],
    axis: usize,
    times: usize,
) -> Result<Vec<bool>, String> {
    let dim = shape.get(axis).copied().unwrap_or(1);
    let inner = element_count(shape.get(axis + 1..).unwrap_or(&[]))?;
    let row = dim.checked_mul(inner).ok_or("mask size overflows")?;
    let mut out = Vec::with_capacity(mask.len().saturating_mul(times));
    if row == 0 {
        return Ok(out);
    }
    for outer in mask.chunks(row) {
        for slice in outer.chunks(inner.max(1)) {
            for _ in 0..times {
                out.extend_from_slice(slice);
            }
        }
    }
    Ok(out)
}
