//! Helpers shared by op families: every family may import from here, and
//! no family imports another.

pub(crate) mod grid;
pub(crate) mod numeric;
pub(crate) mod slicing;
pub(crate) mod window;

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};
use crate::portable::kernel::OpBuilder;

/// Resolves a possibly negative `axis` against `rank` (MIL: `-rank <= axis < rank`).
pub(crate) fn norm_axis(axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(1) {
        return Err(Error::msg(format!(
            "axis {axis} out of range for rank {rank}"
        )));
    }
    Ok(a as usize)
}

/// Resolves a list of axes; sorted, deduplicated.
pub(crate) fn norm_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>> {
    let mut v = axes
        .iter()
        .map(|&a| norm_axis(a, rank))
        .collect::<Result<Vec<_>>>()?;
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

/// Brings two tensors to one dtype for a binary op: floats win over ints.
pub(crate) fn unify(x: &Tensor, y: &Tensor) -> Result<(Tensor, Tensor)> {
    if x.dtype() == y.dtype() {
        return Ok((x.clone(), y.clone()));
    }
    let rank = |d: DType| match d {
        DType::F64 => 4,
        DType::F32 => 3,
        DType::F16 | DType::BF16 => 2,
        DType::I64 | DType::I32 | DType::I16 | DType::U32 => 1,
        _ => 0,
    };
    let d = if rank(x.dtype()) >= rank(y.dtype()) {
        x.dtype()
    } else {
        y.dtype()
    };
    Ok((x.to_dtype(d)?, y.to_dtype(d)?))
}

// shape_ops / tensor_ops helpers.

/// Largest element count a shape computed from program data may have before
/// a kernel refuses to allocate it (2^32 elements).
pub(crate) const MAX_ELEMENTS: usize = if usize::BITS >= 64 {
    (1u64 << 32) as usize
} else {
    usize::MAX / 2
};

/// Sizes from program data (a `fill` shape, `tile` reps applied, padded
/// dims): each must be non-negative and their product at most [`MAX_ELEMENTS`].
pub(crate) fn checked_dims(dims: &[i64]) -> Result<Vec<usize>> {
    let mut total: usize = 1;
    let mut out = Vec::with_capacity(dims.len());
    for &d in dims {
        let u = usize::try_from(d)
            .map_err(|_| Error::msg(format!("negative dimension {d} in shape {dims:?}")))?;
        total = total
            .checked_mul(u)
            .filter(|&t| t <= MAX_ELEMENTS)
            .ok_or_else(|| Error::msg(format!("shape {dims:?} has too many elements")))?;
        out.push(u);
    }
    Ok(out)
}

/// `t` in `dtype` (no copy when it already is).
pub(crate) fn cast(t: Tensor, dtype: DType) -> Result<Tensor> {
    if t.dtype() == dtype {
        Ok(t)
    } else {
        Ok(t.to_dtype(dtype)?)
    }
}

/// A rank-0 tensor holding `v` in `dtype` (bools as 0/1).
pub(crate) fn scalar(v: f64, dtype: DType, device: &candle_core::Device) -> Result<Tensor> {
    Ok(Tensor::new(v, device)?.to_dtype(dtype)?)
}

/// The dtype output `i` is computed in, when the op declares it.
pub(crate) fn out_dtype(b: &OpBuilder<'_>, i: usize) -> Option<DType> {
    b.output_dtype(i).ok()
}

/// `t` cast to `dtype` when one is given.
pub(crate) fn finish(t: Tensor, dtype: Option<DType>) -> Result<Tensor> {
    match dtype {
        Some(d) => cast(t, d),
        None => Ok(t),
    }
}
