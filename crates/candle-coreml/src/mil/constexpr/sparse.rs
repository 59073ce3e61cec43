//! Sparse weights: `constexpr_sparse_to_dense`, and the mask helpers the
//! joint sparse ops share.

use super::params::{dense, element_count, in_param, Params};
use crate::mil::elements::{pack_bits, unpack_bits};
use crate::mil::value::TensorValue;

/// `constexpr_sparse_to_dense`: `nonzero_data` placed at the set positions
/// of `mask` in row-major order, zero elsewhere. iOS16: `mask` is a uint8
/// vector of packed bits (LSB first) and `shape` gives the output shape;
/// iOS18: `mask` is a uint1 (or bool) tensor of the output shape.
pub(super) fn sparse_to_dense(p: &Params) -> Result<TensorValue, String> {
    let nonzero = p.req("nonzero_data")?;
    let mask_t = p.req("mask")?;
    let (mask, shape) = match p.opt("shape")? {
        Some(shape_t) => {
            let shape = shape_t.to_usize_vec().map_err(in_param("shape"))?;
            let n = element_count(&shape)?;
            if mask_t.dtype.bit_width() != Some(8) {
                return Err(format!(
                    "parameter `mask` must be packed uint8 bits, found {}",
                    mask_t.dtype
                ));
            }
            let bytes = mask_t.to_le_bytes().map_err(in_param("mask"))?;
            let bits = unpack_bits(&bytes, 1, n).map_err(in_param("mask"))?;
            (bits.into_iter().map(|b| b != 0).collect(), shape)
        }
        None => (mask_bits(mask_t, "mask")?, mask_t.shape.clone()),
    };
    let bytes = scatter(nonzero, &mask)?;
    Ok(dense(nonzero.dtype, shape, bytes))
}

/// The elements of a mask tensor (uint1, bool or any integer) as booleans.
pub(super) fn mask_bits(t: &TensorValue, what: &str) -> Result<Vec<bool>, String> {
    t.to_bool_vec().map_err(in_param(what))
}

/// Fails unless `mask` has exactly `count` set positions.
fn check_set_bits(mask: &[bool], count: usize) -> Result<(), String> {
    let set = mask.iter().filter(|&&m| m).count();
    if set != count {
        return Err(format!(
            "parameter `mask` has {set} set bits, but `nonzero_data` holds {count} values"
        ));
    }
    Ok(())
}

/// The dense bytes (in the dtype of `nonzero`, sub-byte types packed) of
/// `nonzero` scattered over the set positions of `mask`.
pub(super) fn scatter(nonzero: &TensorValue, mask: &[bool]) -> Result<Vec<u8>, String> {
    if nonzero.shape.len() != 1 {
        return Err(format!(
            "parameter `nonzero_data` must have rank 1, found shape {:?}",
            nonzero.shape
        ));
    }
    let count = element_count(&nonzero.shape)?;
    check_set_bits(mask, count)?;
    let bytes = nonzero.to_le_bytes().map_err(in_param("nonzero_data"))?;
    let bits = nonzero.dtype.bit_width().ok_or_else(|| {
        format!(
            "parameter `nonzero_data`: unsupported dtype {}",
            nonzero.dtype
        )
    })?;
    if bits < 8 {
        let raw = unpack_bits(&bytes, bits, count).map_err(in_param("nonzero_data"))?;
        let mut src = raw.into_iter();
        let out: Vec<u8> = mask
            .iter()
            .map(|&m| if m { src.next().unwrap_or(0) } else { 0 })
            .collect();
        return Ok(pack_bits(&out, bits));
    }
    let width = bits as usize / 8;
    let len = mask
        .len()
        .checked_mul(width)
        .ok_or("dense size overflows")?;
    let mut out = vec![0u8; len];
    let mut src = bytes.chunks_exact(width);
    for (dst, &m) in out.chunks_exact_mut(width).zip(mask) {
        if m {
            if let Some(c) = src.next() {
                dst.copy_from_slice(c);
            }
        }
    }
    Ok(out)
}

/// `values` scattered over the set positions of `mask`, zero elsewhere.
pub(super) fn scatter_f32(values: &[f32], mask: &[bool]) -> Result<Vec<f32>, String> {
    check_set_bits(mask, values.len())?;
    let mut src = values.iter();
    Ok(mask
        .iter()
        .map(|&m| {
            if m {
                src.next().copied().unwrap_or(0.0)
            } else {
                0.0
            }
        })
        .collect())
}

/// The `width`-byte elements of `bytes` at the set positions of `mask`.
pub(super) fn gather(bytes: &[u8], width: usize, mask: &[bool]) -> Result<Vec<u8>, String> {
    if width == 0 || bytes.len() != mask.len().saturating_mul(width) {
        return Err("internal: dense data does not match its mask".into());
    }
    let mut out = Vec::new();
    for (c, &m) in bytes.chunks_exact(width).zip(mask) {
        if m {
            out.extend_from_slice(c);
        }
    }
    Ok(out)
}
