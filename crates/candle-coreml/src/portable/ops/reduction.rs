//! `reduction` ops (MIL iOS15–iOS18): `reduce_*` over `axes` (all when
//! absent), and `reduce_argmax` / `reduce_argmin` over one `axis`.
//!
//! Semantics follow numpy (the ops' reference): NaN propagates through
//! `reduce_max`/`reduce_min`, `reduce_argmax`/`reduce_argmin` return the first
//! NaN (else the first extreme), integer means truncate toward zero. Half
//! floats accumulate in f32; integer results that need a float intermediate
//! (mean, norms, products) are computed in f64.

use candle_core::{DType, Tensor};

use super::registry::Registry;
use super::util::numeric::{isnan, where_scalar, widen_half};
use super::util::{norm_axes, norm_axis};
use crate::error::Result;
use crate::portable::kernel::{kernel, Kernel, OpBuilder};

/// A reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Red {
    ArgMax,
    ArgMin,
    L1Norm,
    L2Norm,
    LogSum,
    LogSumExp,
    Max,
    Min,
    Mean,
    Prod,
    Sum,
    SumSquare,
}

const REDUCTIONS: &[(&str, Red)] = &[
    ("reduce_argmax", Red::ArgMax),
    ("reduce_argmin", Red::ArgMin),
    ("reduce_l1_norm", Red::L1Norm),
    ("reduce_l2_norm", Red::L2Norm),
    ("reduce_log_sum", Red::LogSum),
    ("reduce_log_sum_exp", Red::LogSumExp),
    ("reduce_max", Red::Max),
    ("reduce_min", Red::Min),
    ("reduce_mean", Red::Mean),
    ("reduce_prod", Red::Prod),
    ("reduce_sum", Red::Sum),
    ("reduce_sum_square", Red::SumSquare),
];

/// Registers this family's ops.
pub(crate) fn register(reg: &mut Registry) {
    for (name, _) in REDUCTIONS {
        reg.insert(name, build_reduce);
    }
}

fn build_reduce(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let name = b.op().op_type.as_str();
    let op = REDUCTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| *r)
        .ok_or_else(|| b.err("op is not in this family's table"))?;
    let x = b.input("x")?;
    let keep = b.bool_or("keep_dims", false)?;
    let out = b.output_dtype(0)?;
    let rank = b.input_rank("x");
    if matches!(op, Red::ArgMax | Red::ArgMin) {
        let axis = b.int_or("axis", -1)?;
        if let Some(r) = rank {
            norm_axis(axis, r.max(1)).map_err(|e| b.err(e.to_string()))?;
        }
        if b.has("output_dtype") {
            let d = b.string("output_dtype")?;
            if !matches!(d.to_ascii_lowercase().as_str(), "int32" | "uint16") {
                return Err(b.err(format!("output_dtype must be int32 or uint16, got {d:?}")));
            }
        }
        return Ok(kernel(move |a| {
            let r = arg_reduce(op == Red::ArgMax, a.tensor(x)?, axis, keep)?;
            Ok(vec![r.to_dtype(out)?])
        }));
    }
    let axes = b.opt_ints("axes")?;
    if let (Some(r), Some(ax)) = (rank, &axes) {
        norm_axes(ax, r.max(1)).map_err(|e| b.err(e.to_string()))?;
    }
    Ok(kernel(move |a| {
        let x = a.tensor(x)?;
        let dims = match &axes {
            _ if x.rank() == 0 => Vec::new(),
            None => (0..x.rank()).collect(),
            Some(ax) => norm_axes(ax, x.rank())?,
        };
        let kept = reduce_keepdim(op, x, &dims)?;
        let shape: Vec<usize> = x
            .dims()
            .iter()
            .enumerate()
            .filter_map(|(i, &n)| match (dims.contains(&i), keep) {
                (false, _) => Some(n),
                (true, true) => Some(1),
                (true, false) => None,
            })
            .collect();
        Ok(vec![kept.reshape(shape)?.to_dtype(out)?])
    }))
}

/// The reduction over `dims`, keeping them as size-1 dimensions.
fn reduce_keepdim(op: Red, x: &Tensor, dims: &[usize]) -> Result<Tensor> {
    let int = !x.dtype().is_float();
    let x = match op {
        Red::Mean | Red::L2Norm | Red::LogSum | Red::LogSumExp | Red::Prod | Red::SumSquare
            if int =>
        {
            x.to_dtype(DType::F64)?
        }
        Red::Max | Red::Min => x.clone(),
        _ if x.dtype() == DType::U8 => x.to_dtype(DType::I64)?,
        _ => widen_half(x)?,
    };
    Ok(match op {
        Red::Sum => sum(&x, dims)?,
        Red::L1Norm => sum(&x.abs()?, dims)?,
        Red::SumSquare => sum(&x.sqr()?, dims)?,
        Red::L2Norm => sum(&x.sqr()?, dims)?.sqrt()?,
        Red::Mean => {
            let n: usize = dims
                .iter()
                .map(|&d| x.dim(d))
                .product::<candle_core::Result<usize>>()?;
            (sum(&x, dims)? / n as f64)?
        }
        Red::LogSum => sum(&x, dims)?.log()?,
        Red::LogSumExp => log_sum_exp(&x, dims)?,
        Red::Max => extreme(&x, dims, true)?,
        Red::Min => extreme(&x, dims, false)?,
        Red::Prod => {
            let mut t = x;
            for &d in dims {
                t = prod_dim(&t, d)?;
            }
            t
        }
        Red::ArgMax | Red::ArgMin => {
            return Err(crate::error::Error::msg("arg reductions take one axis"))
        }
    })
}

fn sum(x: &Tensor, dims: &[usize]) -> Result<Tensor> {
    if dims.is_empty() {
        return Ok(x.clone());
    }
    Ok(x.sum_keepdim(dims.to_vec())?)
}

/// Max or min over `dims`; NaN wins (numpy).
fn extreme(x: &Tensor, dims: &[usize], max: bool) -> Result<Tensor> {
    let mut r = x.clone();
    for &d in dims {
        r = if max {
            r.max_keepdim(d)?
        } else {
            r.min_keepdim(d)?
        };
    }
    if x.dtype().is_float() && !dims.is_empty() {
        let mut nan = isnan(x)?;
        for &d in dims {
            nan = nan.max_keepdim(d)?;
        }
        r = where_scalar(&nan, f64::NAN, &r)?;
    }
    Ok(r)
}

/// `log(sum(exp(x)))`, shifted by the maximum for stability (an infinite
/// maximum is not subtracted, so all `-inf` gives `-inf`).
fn log_sum_exp(x: &Tensor, dims: &[usize]) -> Result<Tensor> {
    let m = extreme(x, dims, true)?;
    let inf = m.abs()?.eq(f64::INFINITY)?;
    let m = where_scalar(&inf, 0.0, &m)?;
    let s = sum(&x.broadcast_sub(&m)?.exp()?, dims)?;
    Ok(s.log()?.add(&m)?)
}

/// The product along `d` (kept as size 1), by pairwise halving.
fn prod_dim(t: &Tensor, d: usize) -> Result<Tensor> {
    if t.dim(d)? == 0 {
        let mut shape = t.dims().to_vec();
        shape[d] = 1;
        return Ok(Tensor::ones(shape, t.dtype(), t.device())?);
    }
    let mut t = t.clone();
    while t.dim(d)? > 1 {
        let n = t.dim(d)?;
        let h = n / 2;
        let p = t.narrow(d, 0, h)?.mul(&t.narrow(d, h, h)?)?;
        t = if n % 2 == 1 {
            Tensor::cat(&[&p, &t.narrow(d, 2 * h, 1)?], d)?
        } else {
            p
        };
    }
    Ok(t)
}

/// Index of the maximum (or minimum) along `axis`: the first one on ties,
/// the first NaN when there is one (numpy). A rank-0 input gives 0.
fn arg_reduce(max: bool, x: &Tensor, axis: i64, keep: bool) -> Result<Tensor> {
    if x.rank() == 0 {
        return Ok(Tensor::zeros((), DType::I64, x.device())?);
    }
    let d = norm_axis(axis, x.rank())?;
    let mut idx = if max {
        x.argmax_keepdim(d)?
    } else {
        x.argmin_keepdim(d)?
    };
    if x.dtype().is_float() {
        let nan = isnan(x)?;
        let any = nan.max_keepdim(d)?;
        idx = any.where_cond(&nan.argmax_keepdim(d)?, &idx)?;
    }
    let idx = if keep { idx } else { idx.squeeze(d)? };
    Ok(idx.to_dtype(DType::I64)?)
}

#[cfg(test)]
#[path = "reduction_tests.rs"]
mod tests;
