//! Numeric helpers shared by op families.

use candle_core::{DType, Tensor};

use crate::error::Result;

/// `t` as a float tensor: unchanged when already float, else converted to
/// `out` when that is a float dtype, else to f32.
pub(crate) fn to_float(t: &Tensor, out: DType) -> Result<Tensor> {
    if t.dtype().is_float() {
        Ok(t.clone())
    } else if out.is_float() {
        Ok(t.to_dtype(out)?)
    } else {
        Ok(t.to_dtype(DType::F32)?)
    }
}

/// A scalar `v` in `like`'s dtype and device, broadcast to `like`'s shape.
pub(crate) fn full_like(v: f64, like: &Tensor) -> Result<Tensor> {
    Ok(Tensor::new(v, like.device())?
        .to_dtype(like.dtype())?
        .broadcast_as(like.shape())?)
}

/// `mask ? v : t` with a scalar `v` (mask: u8 of `t`'s shape).
pub(crate) fn where_scalar(mask: &Tensor, v: f64, t: &Tensor) -> Result<Tensor> {
    Ok(mask.where_cond(&full_like(v, t)?, t)?)
}

/// A u8 mask of the NaN elements of a float tensor.
pub(crate) fn isnan(t: &Tensor) -> Result<Tensor> {
    Ok(t.ne(t)?)
}

/// Upcasts half-precision floats to f32 (for accumulations); other dtypes as is.
pub(crate) fn widen_half(t: &Tensor) -> Result<Tensor> {
    match t.dtype() {
        DType::F16 | DType::BF16 => Ok(t.to_dtype(DType::F32)?),
        _ => Ok(t.clone()),
    }
}

/// Numpy-style round half to even (candle's `round` rounds half away from zero).
pub(crate) fn round_half_even(x: &Tensor) -> Result<Tensor> {
    if !x.dtype().is_float() {
        return Ok(x.clone());
    }
    let r = x.round()?;
    let tie = r.sub(x)?.abs()?.eq(0.5)?;
    let half = r.affine(0.5, 0.0)?;
    let odd = half.floor()?.ne(&half)?;
    let fix = tie.mul(&odd)?;
    Ok(fix.where_cond(&r.sub(&x.sign()?)?, &r)?)
}
