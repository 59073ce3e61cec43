//! `shape_ops`: MIL ops that reshape, reorder, slice, join or pad tensors
//! without computing new values (the `tensor_transformation` docs of
//! iOS15–iOS18, plus `concat`, `split`, `stack`, `tile`, `pad`, `shape` and
//! `flatten2d` from `tensor_operation`).
//!
//! Shapes are resolved at run time from the actual input dims (they may be
//! flexible); constant parameters are parsed and checked once at load.

mod rearrange;
mod slice;
#[cfg(test)]
mod tests;

use candle_core::{DType, Tensor};

use super::registry::Registry;
use super::util::{cast, checked_dims, finish, norm_axes, norm_axis, out_dtype};
use crate::error::{Error, Result};
use crate::portable::kernel::{kernel, In, IntsArg, Kernel, OpBuilder};

/// Registers this family's ops.
pub(crate) fn register(reg: &mut Registry) {
    reg.insert("reshape", build_reshape);
    reg.insert("reshape_like", build_reshape_like);
    reg.insert("expand_dims", build_expand_dims);
    reg.insert("squeeze", build_squeeze);
    reg.insert("transpose", build_transpose);
    reg.insert("flatten2d", build_flatten2d);
    reg.insert("shape", build_shape);
    reg.insert("concat", build_concat);
    reg.insert("split", build_split);
    reg.insert("stack", build_stack);
    reg.insert("tile", build_tile);
    reg.insert("reverse", build_reverse);
    slice::register(reg);
    rearrange::register(reg);
}

/// Runs `check` at load when the rank of `x` is declared, so that bad
/// parameters are reported before the first prediction.
fn check_at_load<T>(
    b: &OpBuilder<'_>,
    shape: Option<Vec<usize>>,
    check: impl Fn(&[usize]) -> Result<T>,
) -> Result<()> {
    if let Some(dims) = shape {
        check(&dims).map_err(|e| b.err(e.to_string()))?;
    }
    Ok(())
}

/// The output shape of `reshape`: `-1` is inferred, and each `0` copies the
/// dimension of `from` it lines up with counting from the right (iOS17
/// semantics; where `shape` has the rank of `x`, as iOS15 requires, this is the
/// same dimension), or 1 where there is none.
pub(crate) fn resolve_reshape(from: &[usize], spec: &[i64]) -> Result<Vec<usize>> {
    let (k, r) = (spec.len(), from.len());
    let mut out = Vec::with_capacity(k);
    let mut infer = None;
    for (i, &s) in spec.iter().enumerate() {
        match s {
            -1 => {
                if infer.replace(i).is_some() {
                    return Err(Error::msg(format!(
                        "reshape shape {spec:?} has more than one -1"
                    )));
                }
                out.push(1);
            }
            0 => out.push(
                (r + i)
                    .checked_sub(k)
                    .and_then(|j| from.get(j))
                    .copied()
                    .unwrap_or(1),
            ),
            s => out.push(
                usize::try_from(s)
                    .map_err(|_| Error::msg(format!("invalid reshape shape {spec:?}")))?,
            ),
        }
    }
    let total: usize = from.iter().product();
    let known = out
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::msg(format!("reshape shape {spec:?} overflows")))?;
    match infer {
        Some(i) if known != 0 && total.is_multiple_of(known) => out[i] = total / known,
        None if known == total => {}
        _ => {
            return Err(Error::msg(format!(
                "cannot reshape a tensor of shape {from:?} to {spec:?}"
            )))
        }
    }
    Ok(out)
}

fn build_reshape(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let shape = b.ints_or_input("shape")?;
    if let IntsArg::Const(spec) = &shape {
        check_at_load(b, b.input_shape("x"), |d| resolve_reshape(d, spec))?;
    }
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        let dims = resolve_reshape(t.dims(), &a.ints(&shape)?)?;
        Ok(vec![t.reshape(dims)?])
    }))
}

/// Python-style `seq[begin:end]` bounds (negative indices count from the end,
/// out-of-range ones are clamped), `end` `None` meaning "to the end".
fn py_range(n: usize, begin: i64, end: Option<i64>) -> std::ops::Range<usize> {
    let n = n as i64;
    let clamp = |v: i64| (if v < 0 { v + n } else { v }).clamp(0, n) as usize;
    let (b, e) = (clamp(begin), end.map_or(n as usize, clamp));
    b..e.max(b)
}

fn build_reshape_like(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let refs = b.variadic("ref_tensors")?;
    let scalars = |name: &str| -> Result<Vec<i64>> {
        let values = b
            .constants(name)
            .ok_or_else(|| b.err(format!("{name:?} must be constants")))?;
        values
            .iter()
            .map(|v| v.scalar_i64().map_err(|e| b.err(format!("{name:?}: {e}"))))
            .collect()
    };
    let (begins, ends) = (scalars("begins")?, scalars("ends")?);
    let masks = b
        .constants("end_masks")
        .ok_or_else(|| b.err("\"end_masks\" must be constants"))?;
    let masks = masks
        .iter()
        .map(|v| match v.to_bool_vec().as_deref() {
            Ok([m]) => Ok(*m),
            _ => Err(b.err("\"end_masks\" must be boolean scalars")),
        })
        .collect::<Result<Vec<bool>>>()?;
    if begins.len() != refs.len() || ends.len() != refs.len() || masks.len() != refs.len() {
        return Err(b.err("ref_tensors, begins, ends and end_masks must have the same length"));
    }
    Ok(kernel(move |a| {
        let mut dims = Vec::new();
        for (i, &r) in refs.iter().enumerate() {
            let rd = a.tensor(r)?.dims();
            let end = if masks[i] { None } else { Some(ends[i]) };
            dims.extend_from_slice(&rd[py_range(rd.len(), begins[i], end)]);
        }
        let t = a.tensor(x)?;
        if dims.iter().product::<usize>() != t.elem_count() {
            return Err(Error::msg(format!(
                "cannot reshape a tensor of shape {:?} to {dims:?}",
                t.dims()
            )));
        }
        Ok(vec![t.reshape(dims)?])
    }))
}

/// Output shape of `expand_dims`: a 1 inserted at each of `axes`, which index
/// the output (`-rank(out) <= axis < rank(out)`).
fn expand_dims_shape(dims: &[usize], axes: &[i64]) -> Result<Vec<usize>> {
    let out_rank = dims.len() + axes.len();
    let pos = norm_axes(axes, out_rank)?;
    if pos.len() != axes.len() {
        return Err(Error::msg(format!(
            "expand_dims axes {axes:?} repeat an axis"
        )));
    }
    let mut src = dims.iter();
    Ok((0..out_rank)
        .map(|i| {
            if pos.contains(&i) {
                1
            } else {
                src.next().copied().unwrap_or(1)
            }
        })
        .collect())
}

fn build_expand_dims(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let axes = b.ints("axes")?;
    check_at_load(b, b.input_rank("x").map(|r| vec![1; r]), |d| {
        expand_dims_shape(d, &axes)
    })?;
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        Ok(vec![t.reshape(expand_dims_shape(t.dims(), &axes)?)?])
    }))
}

/// Output shape of `squeeze`: size-1 dims removed (only those in `axes` when
/// given; other listed dims are kept, as in PyTorch).
fn squeeze_shape(dims: &[usize], axes: Option<&[i64]>) -> Result<Vec<usize>> {
    let axes = axes.map(|ax| norm_axes(ax, dims.len())).transpose()?;
    Ok(dims
        .iter()
        .enumerate()
        .filter(|&(i, &d)| d != 1 || axes.as_ref().is_some_and(|ax| !ax.contains(&i)))
        .map(|(_, &d)| d)
        .collect())
}

fn build_squeeze(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let axes = b.opt_ints("axes")?;
    check_at_load(b, b.input_shape("x"), |d| squeeze_shape(d, axes.as_deref()))?;
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        Ok(vec![t.reshape(squeeze_shape(t.dims(), axes.as_deref())?)?])
    }))
}

/// `perm` resolved against `rank`; it must be a permutation.
fn resolve_perm(perm: &[i64], rank: usize) -> Result<Vec<usize>> {
    let p = perm
        .iter()
        .map(|&a| norm_axis(a, rank))
        .collect::<Result<Vec<_>>>()?;
    let mut sorted = p.clone();
    sorted.sort_unstable();
    if p.len() != rank || sorted.iter().enumerate().any(|(i, &a)| i != a) {
        return Err(Error::msg(format!(
            "perm {perm:?} is not a permutation of {rank} axes"
        )));
    }
    Ok(p)
}

fn build_transpose(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let perm = b.ints("perm")?;
    check_at_load(b, b.input_rank("x").map(|r| vec![1; r]), |d| {
        resolve_perm(&perm, d.len())
    })?;
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        if t.rank() == 0 {
            return Ok(vec![t.clone()]);
        }
        Ok(vec![t.permute(resolve_perm(&perm, t.rank())?)?])
    }))
}

fn build_flatten2d(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let axis = b.int_or("axis", 1)?;
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        let r = t.rank() as i64;
        let ax = if axis < 0 { axis + r } else { axis };
        if !(0..=r).contains(&ax) {
            return Err(Error::msg(format!(
                "flatten2d axis {axis} out of range for rank {r}"
            )));
        }
        let (pre, post) = t.dims().split_at(ax as usize);
        Ok(vec![t.reshape((
            pre.iter().product::<usize>(),
            post.iter().product::<usize>(),
        ))?])
    }))
}

fn build_shape(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let dt = out_dtype(b, 0).unwrap_or(DType::I64);
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        let dims: Vec<i64> = t.dims().iter().map(|&d| d as i64).collect();
        let n = dims.len();
        Ok(vec![cast(Tensor::from_vec(dims, n, t.device())?, dt)?])
    }))
}

/// The tensors of `ins`, each cast to `dt` when given.
fn tensors_as(
    a: &crate::portable::kernel::Args<'_>,
    ins: &[In],
    dt: Option<DType>,
) -> Result<Vec<Tensor>> {
    a.tensors(ins)?.into_iter().map(|t| finish(t, dt)).collect()
}

fn build_concat(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let values = b.variadic("values")?;
    if values.is_empty() {
        return Err(b.err("concat of no values"));
    }
    let axis = b.int("axis")?;
    let interleave = b.bool_or("interleave", false)?;
    let dt = out_dtype(b, 0);
    Ok(kernel(move |a| {
        let ts = tensors_as(a, &values, dt)?;
        let rank = ts.first().map_or(0, Tensor::rank);
        if rank == 0 {
            // Scalars concatenate into a vector.
            return Ok(vec![Tensor::stack(&ts, 0)?]);
        }
        let ax = norm_axis(axis, rank)?;
        if !interleave {
            return Ok(vec![Tensor::cat(&ts, ax)?]);
        }
        let stacked = Tensor::stack(&ts, ax + 1)?;
        let mut dims = ts[0].dims().to_vec();
        dims[ax] *= ts.len();
        Ok(vec![stacked.reshape(dims)?])
    }))
}

fn build_split(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let axis = b.int("axis")?;
    let n_out = b.output_count();
    let sizes = match b.opt_ints("split_sizes")? {
        Some(s) => Some(checked_dims(&s).map_err(|e| b.err(format!("split_sizes: {e}")))?),
        None => None,
    };
    let num = match (b.opt_ints("num_splits")?, &sizes) {
        (Some(n), _) => n.first().copied().unwrap_or(0),
        (None, Some(s)) => s.len() as i64,
        (None, None) => return Err(b.err("split needs num_splits or split_sizes")),
    };
    if num < 1 || num as usize != n_out || sizes.as_ref().is_some_and(|s| s.len() != n_out) {
        return Err(b.err(format!(
            "split into {num} parts, but the op declares {n_out} outputs"
        )));
    }
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        let ax = norm_axis(axis, t.rank())?;
        let d = t.dim(ax)?;
        let sizes = match &sizes {
            Some(s) => s.clone(),
            None if d.is_multiple_of(n_out) => vec![d / n_out; n_out],
            None => {
                return Err(Error::msg(format!(
                    "cannot split dimension of size {d} into {n_out} equal parts"
                )))
            }
        };
        if sizes.iter().sum::<usize>() != d {
            return Err(Error::msg(format!(
                "split sizes {sizes:?} do not add up to {d}"
            )));
        }
        let mut start = 0;
        let mut outs = Vec::with_capacity(n_out);
        for s in sizes {
            outs.push(t.narrow(ax, start, s)?);
            start += s;
        }
        Ok(outs)
    }))
}

fn build_stack(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let values = b.variadic("values")?;
    if values.is_empty() {
        return Err(b.err("stack of no values"));
    }
    let axis = b.int("axis")?;
    let dt = out_dtype(b, 0);
    Ok(kernel(move |a| {
        let ts = tensors_as(a, &values, dt)?;
        let rank = ts.first().map_or(0, Tensor::rank);
        Ok(vec![Tensor::stack(&ts, norm_axis(axis, rank + 1)?)?])
    }))
}

fn build_tile(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let reps = b.ints_or_input("reps")?;
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        let reps = a.ints(&reps)?;
        if reps.len() != t.rank() {
            return Err(Error::msg(format!(
                "tile reps {reps:?} do not match rank {}",
                t.rank()
            )));
        }
        let out: Vec<i64> = t
            .dims()
            .iter()
            .zip(&reps)
            .map(|(&d, &r)| (d as i64).saturating_mul(r))
            .collect();
        checked_dims(&out)?;
        let reps = checked_dims(&reps)?;
        Ok(vec![t.repeat(reps)?])
    }))
}

fn build_reverse(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let axes = b.opt_ints("axes")?;
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        let axes = match &axes {
            Some(ax) => norm_axes(ax, t.rank())?,
            None => (0..t.rank()).collect(),
        };
        let axes: Vec<usize> = axes
            .into_iter()
            .filter(|&ax| t.dims().get(ax).is_some_and(|&d| d > 1))
            .collect();
        if axes.is_empty() {
            return Ok(vec![t.clone()]);
        }
        Ok(vec![t.contiguous()?.flip(&axes)?])
    }))
}
