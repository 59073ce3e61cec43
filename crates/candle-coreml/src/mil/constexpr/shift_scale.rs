//! Affine and blockwise dequantization: `constexpr_affine_dequantize`,
//! `constexpr_blockwise_shift_scale`, `constexpr_sparse_blockwise_shift_scale`.

use half::f16;

use super::params::{dense, element_count, in_param, normalize_axis, strides, walk_blocks, Params};
use super::sparse::{mask_bits, scatter_f32};
use crate::mil::elements::encode_floats;
use crate::mil::types::DataType;
use crate::mil::value::TensorValue;

/// `constexpr_affine_dequantize` (iOS16): `(quantized_data - zero_point) *
/// scale` computed in fp32, then rounded to the dtype of `scale`. `scale`
/// and `zero_point` are each one value, or one value per index of `axis`.
pub(super) fn affine_dequantize(p: &Params) -> Result<TensorValue, String> {
    let data = p.req("quantized_data")?;
    let zero_point = p.req("zero_point")?;
    let scale = p.req("scale")?;
    let axis = p.int("axis")?.ok_or("missing parameter `axis`")?;
    let shape = &data.shape;
    let axis = normalize_axis(axis, shape.len(), "axis")?;
    let q = data.to_f32_vec().map_err(in_param("quantized_data"))?;
    let zp = per_axis(zero_point, shape, axis, "zero_point")?;
    let s = per_axis(scale, shape, axis, "scale")?;
    let dim = shape[axis];
    let inner = element_count(&shape[axis + 1..])?;
    let mut out = Vec::with_capacity(q.len());
    for (k, &v) in q.iter().enumerate() {
        let c = if inner == 0 || dim == 0 {
            0
        } else {
            (k / inner) % dim
        };
        let (z, m) = (channel(&zp, c), channel(&s, c));
        let (Some(z), Some(m)) = (z, m) else {
            return Err("internal: channel index out of range".into());
        };
        out.push((v - z) * m);
    }
    let bytes = encode_floats(scale.dtype, &out).map_err(in_param("scale"))?;
    Ok(dense(scale.dtype, shape.clone(), bytes))
}

/// The value of an affine parameter for channel `c`: its only value, or its
/// value `c`.
fn channel(values: &[f32], c: usize) -> Option<f32> {
    match values {
        [v] => Some(*v),
        _ => values.get(c).copied(),
    }
}

/// The values of an affine parameter: one value, or one per index of `axis`.
/// Accepted shapes: one element, `[shape[axis]]`, or the data's rank with 1
/// everywhere but `axis`.
fn per_axis(t: &TensorValue, shape: &[usize], axis: usize, what: &str) -> Result<Vec<f32>, String> {
    let values = t.to_f32_vec().map_err(in_param(what))?;
    let dim = shape[axis];
    let fits_axis = (t.shape.len() == 1 && t.shape[0] == dim)
        || (t.shape.len() == shape.len()
            && t.shape
                .iter()
                .enumerate()
                .all(|(i, &d)| d == if i == axis { dim } else { 1 }));
    if values.len() == 1 || fits_axis {
        Ok(values)
    } else {
        Err(format!(
            "parameter `{what}` has shape {:?}; expected a scalar or {dim} values along axis {axis} of {shape:?}",
            t.shape
        ))
    }
}

/// `constexpr_blockwise_shift_scale` (iOS18): `(data - offset) * scale` with
/// one scale (and offset) per block.
pub(super) fn blockwise_shift_scale(p: &Params) -> Result<TensorValue, String> {
    let data = p.req("data")?;
    let scale = p.req("scale")?;
    let offset = p.opt("offset")?;
    let values = data.to_f32_vec().map_err(in_param("data"))?;
    let out = shift_scale(&values, &data.shape, scale, offset)?;
    let bytes = encode_floats(scale.dtype, &out).map_err(in_param("scale"))?;
    Ok(dense(scale.dtype, data.shape.clone(), bytes))
}

/// `constexpr_sparse_blockwise_shift_scale` (iOS18): the blockwise
/// dequantization of a sparse tensor. Outputs the mask unchanged and the
/// dequantized nonzero values, in mask order.
pub(super) fn sparse_blockwise_shift_scale(p: &Params) -> Result<Vec<TensorValue>, String> {
    let mask_t = p.req("data_mask")?;
    let nonzero = p.req("nonzero_data")?;
    let scale = p.req("scale")?;
    let offset = p.opt("offset")?;
    let mask = mask_bits(mask_t, "data_mask")?;
    let values = nonzero.to_f32_vec().map_err(in_param("nonzero_data"))?;
    if nonzero.shape.len() != 1 {
        return Err(format!(
            "parameter `nonzero_data` must have rank 1, found shape {:?}",
            nonzero.shape
        ));
    }
    let dense_values = scatter_f32(&values, &mask)?;
    let out = shift_scale(&dense_values, &mask_t.shape, scale, offset)?;
    let picked: Vec<f32> = out
        .iter()
        .zip(&mask)
        .filter(|(_, &m)| m)
        .map(|(&v, _)| v)
        .collect();
    let bytes = encode_floats(scale.dtype, &picked).map_err(in_param("scale"))?;
    Ok(vec![
        mask_t.clone(),
        dense(scale.dtype, vec![picked.len()], bytes),
    ])
}

/// `(data - offset) * scale`, `scale` and `offset` repeated over blocks of
/// `shape[i] / scale.shape[i]` along each axis. Works in the dtype of
/// `scale` as numpy does: with an fp16 scale, the data is first cast to fp16
/// and every intermediate result is rounded to fp16 (unless the offset is
/// fp32, which numpy promotes to fp32).
fn shift_scale(
    data: &[f32],
    shape: &[usize],
    scale: &TensorValue,
    offset: Option<&TensorValue>,
) -> Result<Vec<f32>, String> {
    let to_scale_dtype: fn(f32) -> f32 = match scale.dtype {
        DataType::Fp16 => |x| f16::from_f32(x).to_f32(),
        DataType::Fp32 => |x| x,
        other => {
            return Err(format!(
                "parameter `scale`: dtype {other} is not fp16 or fp32"
            ))
        }
    };
    if shape.is_empty() {
        return Err("parameter `data` must have rank 1 or more, found a scalar".into());
    }
    let s = scale.to_f32_vec().map_err(in_param("scale"))?;
    let o = match offset {
        Some(t) if t.shape != scale.shape => {
            return Err(format!(
                "parameter `offset` has shape {:?}, but `scale` has {:?}",
                t.shape, scale.shape
            ))
        }
        Some(t) => Some(t.to_f32_vec().map_err(in_param("offset"))?),
        None => None,
    };
    let round_diff: fn(f32) -> f32 = match offset.map(|t| t.dtype) {
        Some(DataType::Fp32) => |x| x,
        _ => to_scale_dtype,
    };
    let mut out = vec![0f32; data.len()];
    let steps = strides(shape);
    super::params::check_blocks(shape, &scale.shape, "scale")?;
    walk_blocks(shape, &scale.shape, &steps, |flat, block, _| {
        let (Some(&x), Some(&m), Some(slot)) = (data.get(flat), s.get(block), out.get_mut(flat))
        else {
            return Err("parameter `data`: fewer values than its shape".into());
        };
        let mut v = to_scale_dtype(x);
        if let Some(o) = &o {
            v = round_diff(v - o.get(block).copied().unwrap_or(0.0));
        }
        *slot = to_scale_dtype(m * v);
        Ok(())
    })?;
    Ok(out)
}
