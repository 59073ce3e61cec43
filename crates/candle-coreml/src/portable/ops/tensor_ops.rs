//! `tensor_ops`: MIL ops that create tensors or compute indices
//! (`fill`, `fill_like`, `range_1d`, `band_part`, `select`, `topk`,
//! `argsort`, `cumsum`, `one_hot`, `non_zero`, `non_maximum_suppression`), from the `tensor_operation`
//! and `control_flow` docs of iOS15–iOS18.

#[cfg(test)]
mod tests;

use candle_core::{DType, Device, Tensor};

use super::registry::Registry;
use super::util::{cast, checked_dims, norm_axis, scalar};
use crate::error::{Error, Result};
use crate::portable::kernel::{kernel, Kernel, OpBuilder};

/// Registers this family's ops.
pub(crate) fn register(reg: &mut Registry) {
    reg.insert("fill", build_fill);
    reg.insert("fill_like", build_fill_like);
    reg.insert("range_1d", build_range_1d);
    reg.insert("band_part", build_band_part);
    reg.insert("select", build_select);
    reg.insert("topk", build_topk);
    reg.insert("argsort", build_argsort);
    reg.insert("cumsum", build_cumsum);
    reg.insert("one_hot", build_one_hot);
    reg.insert("non_zero", build_non_zero);
    reg.insert("non_maximum_suppression", build_nms);
}

/// The dtype output `i` is computed in, or `fallback` when it is not declared.
fn out_dtype(b: &OpBuilder<'_>, i: usize, fallback: DType) -> DType {
    b.output_dtype(i).unwrap_or(fallback)
}

/// A tensor of `dims` filled with `v` in `dtype`.
fn filled(v: f64, dims: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    Ok(scalar(v, dtype, device)?.broadcast_as(dims)?.contiguous()?)
}

fn build_fill(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let shape = b.ints_or_input("shape")?;
    let value = b.float_or("value", 0.0)?;
    let dt = out_dtype(b, 0, DType::F32);
    let device = b.device().clone();
    Ok(kernel(move |a| {
        let dims = checked_dims(&a.ints(&shape)?)?;
        Ok(vec![filled(value, &dims, dt, &device)?])
    }))
}

fn build_fill_like(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let r = b.input("ref_tensor")?;
    let value = b.float_or("value", 0.0)?;
    let dt = out_dtype(b, 0, DType::F32);
    Ok(kernel(move |a| {
        let t = a.tensor(r)?;
        Ok(vec![filled(value, t.dims(), dt, t.device())?])
    }))
}

/// A scalar input read as f64.
fn scalar_of(t: &Tensor) -> Result<f64> {
    match t
        .flatten_all()?
        .to_dtype(DType::F64)?
        .to_vec1::<f64>()?
        .as_slice()
    {
        [v] => Ok(*v),
        v => Err(Error::msg(format!(
            "expected a scalar, got {} values",
            v.len()
        ))),
    }
}

fn build_range_1d(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let (start, end, step) = (b.input("start")?, b.input("end")?, b.input("step")?);
    let dt = out_dtype(b, 0, DType::F32);
    Ok(kernel(move |a| {
        let s = a.tensor(start)?;
        let (v0, v1, dv) = (
            scalar_of(s)?,
            scalar_of(a.tensor(end)?)?,
            scalar_of(a.tensor(step)?)?,
        );
        if dv == 0.0 || !dv.is_finite() || !v0.is_finite() || !v1.is_finite() {
            return Err(Error::msg(format!(
                "range_1d({v0}, {v1}, {dv}) is not a finite range"
            )));
        }
        let count = ((v1 - v0) / dv).ceil().max(0.0);
        let n = checked_dims(&[count.min(i64::MAX as f64) as i64])?[0];
        let dev = s.device();
        // start + i * step, as numpy's arange computes it (exact in i64 for ints).
        let wd = if dt == DType::I64 {
            DType::I64
        } else {
            DType::F64
        };
        let i = Tensor::arange(0i64, n as i64, dev)?.to_dtype(wd)?;
        let t = i
            .broadcast_mul(&scalar(dv, wd, dev)?)?
            .broadcast_add(&scalar(v0, wd, dev)?)?;
        Ok(vec![cast(t, dt)?])
    }))
}

fn build_band_part(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let lower = b.int_or("lower", -1)?;
    let upper = b.int_or("upper", -1)?;
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        let r = t.rank();
        if r < 2 {
            return Err(Error::msg(format!("band_part needs rank >= 2, got {r}")));
        }
        let (m, n) = (t.dims()[r - 2], t.dims()[r - 1]);
        let keep = |i: usize, j: usize| {
            let d = i as i64 - j as i64;
            (lower < 0 || d <= lower) && (upper < 0 || -d <= upper)
        };
        let mask: Vec<u8> = (0..m)
            .flat_map(|i| (0..n).map(move |j| u8::from(keep(i, j))))
            .collect();
        let mask = Tensor::from_vec(mask, (m, n), t.device())?.broadcast_as(t.dims())?;
        let zeros = t.zeros_like()?;
        Ok(vec![mask.where_cond(t, &zeros)?])
    }))
}

/// The numpy broadcast of several shapes.
fn broadcast_dims(shapes: &[&[usize]]) -> Result<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1; rank];
    for s in shapes {
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[rank - s.len() + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(Error::msg(format!("shapes {shapes:?} do not broadcast")));
            }
        }
    }
    Ok(out)
}

fn build_select(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let cond = b.input("cond")?;
    let (x, y) = (b.input("a")?, b.input("b")?);
    let dt = b.output_dtype(0).ok();
    Ok(kernel(move |a| {
        let (c, tx, ty) = (a.tensor(cond)?, a.tensor(x)?, a.tensor(y)?);
        let dt = dt.unwrap_or(tx.dtype());
        let dims = broadcast_dims(&[c.dims(), tx.dims(), ty.dims()])?;
        let c = if c.dtype() == DType::U8 {
            c.clone()
        } else {
            c.ne(0f64)?
        };
        let tx = cast(tx.clone(), dt)?.broadcast_as(dims.as_slice())?;
        let ty = cast(ty.clone(), dt)?.broadcast_as(dims.as_slice())?;
        Ok(vec![c
            .broadcast_as(dims.as_slice())?
            .where_cond(&tx, &ty)?])
    }))
}

/// Indices (U32) sorting `t` along `axis`, the axis moved last; stable, so
/// equal values keep their order, as numpy's stable argsort does.
fn sort_indices(t: &Tensor, axis: usize, ascending: bool) -> Result<Tensor> {
    let last = t.rank() - 1;
    let moved = if axis == last {
        t.contiguous()?
    } else {
        t.transpose(axis, last)?.contiguous()?
    };
    Ok(moved.arg_sort_last_dim(ascending)?)
}

fn build_topk(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let k = b.int_or("k", 1)?;
    let axis = b.int_or("axis", -1)?;
    let ascending = b.bool_or("ascending", false)?;
    let with_indices = b.bool_or("return_indices", true)?;
    let (n_out, want) = (b.output_count(), if with_indices { 2 } else { 1 });
    if n_out != want {
        return Err(b.err(format!("topk declares {n_out} outputs, expected {want}")));
    }
    if k < -1 {
        return Err(b.err(format!("invalid k {k}")));
    }
    let idx_dt = if with_indices {
        out_dtype(b, 1, DType::I64)
    } else {
        DType::I64
    };
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        let t = if t.rank() == 0 {
            t.reshape(1)?
        } else {
            t.clone()
        };
        let ax = norm_axis(axis, t.rank())?;
        let n = t.dim(ax)?;
        let k = if k == -1 { n } else { k as usize };
        if k > n {
            return Err(Error::msg(format!("topk k={k} exceeds the axis size {n}")));
        }
        let last = t.rank() - 1;
        let moved = if ax == last {
            t.contiguous()?
        } else {
            t.transpose(ax, last)?.contiguous()?
        };
        let idx = moved
            .arg_sort_last_dim(ascending)?
            .narrow(last, 0, k)?
            .contiguous()?;
        let values = moved.gather(&idx, last)?;
        let back = |v: Tensor| -> Result<Tensor> {
            Ok(if ax == last {
                v
            } else {
                v.transpose(ax, last)?
            })
        };
        let mut outs = vec![back(values)?];
        if with_indices {
            outs.push(cast(back(idx)?, idx_dt)?);
        }
        Ok(outs)
    }))
}

fn build_argsort(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let axis = b.int_or("axis", -1)?;
    let ascending = b.bool_or("ascending", false)?;
    let dt = out_dtype(b, 0, DType::I64);
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        if t.rank() == 0 {
            return Ok(vec![Tensor::zeros((), dt, t.device())?]);
        }
        let ax = norm_axis(axis, t.rank())?;
        let last = t.rank() - 1;
        let idx = sort_indices(t, ax, ascending)?;
        let idx = if ax == last {
            idx
        } else {
            idx.transpose(ax, last)?
        };
        Ok(vec![cast(idx, dt)?])
    }))
}

/// Inclusive prefix sum along `d` in log2(n) shifted adds (no n x n matrix,
/// works for every dtype candle adds).
fn prefix_sum(t: &Tensor, d: usize) -> Result<Tensor> {
    let n = t.dim(d)?;
    let mut acc = t.contiguous()?;
    let mut shift = 1;
    while shift < n {
        let moved = acc.narrow(d, 0, n - shift)?.pad_with_zeros(d, shift, 0)?;
        acc = (acc + moved)?;
        shift *= 2;
    }
    Ok(acc)
}

fn build_cumsum(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let axis = b.int_or("axis", 0)?;
    let exclusive = b.bool_or("exclusive", false)?;
    let reverse = b.bool_or("reverse", false)?;
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        if t.rank() == 0 {
            return Ok(vec![if exclusive {
                t.zeros_like()?
            } else {
                t.clone()
            }]);
        }
        let d = norm_axis(axis, t.rank())?;
        let n = t.dim(d)?;
        if n == 0 {
            return Ok(vec![t.clone()]);
        }
        let flip = |v: &Tensor| -> Result<Tensor> {
            Ok(if reverse && n > 1 {
                v.contiguous()?.flip(&[d])?
            } else {
                v.clone()
            })
        };
        let mut s = prefix_sum(&flip(t)?, d)?;
        if exclusive {
            s = s.narrow(d, 0, n - 1)?.pad_with_zeros(d, 1, 0)?;
        }
        Ok(vec![flip(&s)?])
    }))
}

fn build_one_hot(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let indices = b.input("indices")?;
    let size = b.ints_or_input("one_hot_vector_size")?;
    let axis = b.int_or("axis", -1)?;
    let on = b.float_or("on_value", 1.0)?;
    let off = b.float_or("off_value", 0.0)?;
    let dt = out_dtype(b, 0, DType::F32);
    Ok(kernel(move |a| {
        let idx = a.tensor(indices)?.to_dtype(DType::I64)?;
        let depth = match a.ints(&size)?.as_slice() {
            [v] => checked_dims(&[*v])?[0],
            v => {
                return Err(Error::msg(format!(
                    "one_hot_vector_size must be one integer, got {v:?}"
                )))
            }
        };
        let r = idx.rank();
        let ax = norm_axis(axis, r + 1)?;
        let mut dims = idx.dims().to_vec();
        dims.insert(ax, depth);
        checked_dims(&dims.iter().map(|&d| d as i64).collect::<Vec<_>>())?;
        let mut pshape = vec![1; r + 1];
        pshape[ax] = depth;
        let dev = idx.device();
        let pos = Tensor::arange(0i64, depth as i64, dev)?.reshape(pshape)?;
        let hit = idx.unsqueeze(ax)?.broadcast_eq(&pos)?;
        let on = filled(on, &dims, dt, dev)?;
        let off = filled(off, &dims, dt, dev)?;
        Ok(vec![hit
            .broadcast_as(dims.as_slice())?
            .where_cond(&on, &off)?])
    }))
}

fn build_non_zero(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let dt = out_dtype(b, 0, DType::I64);
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        // A scalar counts as a 1-element vector, as numpy treats it.
        let dims = if t.rank() == 0 {
            vec![1]
        } else {
            t.dims().to_vec()
        };
        let flags = t.ne(0f64)?.flatten_all()?.to_vec1::<u8>()?;
        let r = dims.len();
        let mut out = Vec::new();
        let mut count = 0;
        for (flat, _) in flags.iter().enumerate().filter(|(_, &f)| f != 0) {
            let start = out.len();
            out.resize(start + r, 0i64);
            let mut rem = flat;
            for (slot, &d) in out[start..].iter_mut().zip(&dims).rev() {
                *slot = (rem % d) as i64;
                rem /= d;
            }
            count += 1;
        }
        Ok(vec![cast(
            Tensor::from_vec(out, (count, r), t.device())?,
            dt,
        )?])
    }))
}

/// Parameters of `non_maximum_suppression`, parsed at load.
#[derive(Debug, Clone, Copy)]
struct Nms {
    iou: f32,
    /// Boxes scoring below this are rejected (iOS15 only).
    score: Option<f32>,
    max_boxes: usize,
    per_class: bool,
}

/// Intersection over union of two `(x, y, w, h)` center-size boxes.
fn iou(a: &[f32], b: &[f32]) -> f32 {
    let span = |c: f32, s: f32| (c - s / 2.0, c + s / 2.0);
    let overlap = |(a0, a1): (f32, f32), (b0, b1): (f32, f32)| (a1.min(b1) - a0.max(b0)).max(0.0);
    let inter =
        overlap(span(a[0], a[2]), span(b[0], b[2])) * overlap(span(a[1], a[3]), span(b[1], b[3]));
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

impl Nms {
    /// Selected box indices of one batch: `boxes` is `[B, 4]`, `scores` `[B, K]`.
    fn select(&self, boxes: &[f32], scores: &[f32], k: usize) -> Vec<usize> {
        let n = boxes.len() / 4;
        let best = |i: usize| {
            let row = &scores[i * k..(i + 1) * k];
            row.iter().enumerate().fold(
                (0, f32::NEG_INFINITY),
                |m, (c, &v)| if v > m.1 { (c, v) } else { m },
            )
        };
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&i, &j| {
            best(j)
                .1
                .partial_cmp(&best(i).1)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let mut kept: Vec<usize> = Vec::new();
        for &i in &order {
            if kept.len() >= self.max_boxes || self.score.is_some_and(|s| best(i).1 < s) {
                continue;
            }
            let clash = kept.iter().any(|&j| {
                (!self.per_class || best(i).0 == best(j).0)
                    && iou(&boxes[i * 4..i * 4 + 4], &boxes[j * 4..j * 4 + 4]) > self.iou
            });
            if !clash {
                kept.push(i);
            }
        }
        // When nothing survives, the best box is reported (NeuralNetwork.proto).
        if kept.is_empty() && self.max_boxes > 0 {
            kept.extend(order.first());
        }
        kept
    }
}

/// A `[n, a, b]` tensor as f32 values in `[n, b, a]` order when `swap`.
fn nms_input(t: &Tensor, swap: bool) -> Result<(Vec<f32>, [usize; 3])> {
    let t = if swap { t.transpose(1, 2)? } else { t.clone() };
    let dims = t.dims3()?;
    Ok((
        t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
        [dims.0, dims.1, dims.2],
    ))
}

fn build_nms(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let (boxes, scores) = (b.input("boxes")?, b.input("scores")?);
    // iOS17 drops score_threshold and the count output, and puts boxes last.
    let ios17 = b.output_count() == 3;
    let score = if ios17 {
        None
    } else {
        Some(b.float("score_threshold")? as f32)
    };
    let max_boxes = checked_dims(&[b.int("max_boxes")?]).map_err(|e| b.err(e.to_string()))?[0];
    let p = Nms {
        iou: b.float("iou_threshold")? as f32,
        score,
        max_boxes,
        per_class: b.bool_or("per_class_suppression", false)?,
    };
    let (fdt, sdt, idt) = (
        out_dtype(b, 0, DType::F32),
        out_dtype(b, 1, DType::F32),
        out_dtype(b, 2, DType::I64),
    );
    let cdt = out_dtype(b, 3, DType::I64);
    Ok(kernel(move |a| {
        let dev = a.tensor(boxes)?.device().clone();
        let (bx, [n, nb, four]) = nms_input(a.tensor(boxes)?, ios17)?;
        let (sc, [n2, nb2, k]) = nms_input(a.tensor(scores)?, ios17)?;
        if four != 4 || n2 != n || nb2 != nb {
            return Err(Error::msg(
                "non_maximum_suppression: boxes and scores shapes do not match",
            ));
        }
        let m = p.max_boxes;
        checked_dims(&[n as i64, m as i64, k.max(4) as i64])?;
        let (mut ob, mut os, mut oi, mut oc) = (
            vec![0f32; n * m * 4],
            vec![0f32; n * m * k],
            vec![-1i64; n * m],
            Vec::new(),
        );
        for bi in 0..n {
            let kept = p.select(
                &bx[bi * nb * 4..(bi + 1) * nb * 4],
                &sc[bi * nb * k..(bi + 1) * nb * k],
                k,
            );
            for (slot, &i) in kept.iter().enumerate() {
                let o = bi * m + slot;
                ob[o * 4..o * 4 + 4].copy_from_slice(&bx[(bi * nb + i) * 4..(bi * nb + i) * 4 + 4]);
                os[o * k..o * k + k].copy_from_slice(&sc[(bi * nb + i) * k..(bi * nb + i) * k + k]);
                oi[o] = i as i64;
            }
            oc.push(kept.len() as i64);
        }
        let lay = |v: Vec<f32>, c: usize, dt: DType| -> Result<Tensor> {
            let t = Tensor::from_vec(v, (n, m, c), &dev)?;
            cast(
                if ios17 {
                    t.transpose(1, 2)?.contiguous()?
                } else {
                    t
                },
                dt,
            )
        };
        let mut outs = vec![
            lay(ob, 4, fdt)?,
            lay(os, k, sdt)?,
            cast(Tensor::from_vec(oi, (n, m), &dev)?, idt)?,
        ];
        if !ios17 {
            outs.push(cast(Tensor::from_vec(oc, n, &dev)?, cdt)?);
        }
        Ok(outs)
    }))
}
