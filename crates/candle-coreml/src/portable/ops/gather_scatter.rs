//! Gather and scatter families: `gather` (with `batch_dims`),
//! `gather_along_axis`, `gather_nd`, `scatter`, `scatter_along_axis`,
//! `scatter_nd`. Negative indices count from the end of their axis.

use candle_core::{DType, Tensor};

use super::registry::Registry;
use super::util::norm_axis;
use crate::error::{Error, Result};
use crate::mil::{ByteView, DataType, TensorData, TensorValue, Value};
use crate::portable::fuse_gather::{GATHER_ROWS, TABLE_ATTR};
use crate::portable::kernel::{kernel, Kernel, OpBuilder};
use crate::portable::values::materialize;

/// Registers this family's ops.
pub(crate) fn register(reg: &mut Registry) {
    reg.insert("gather", build_gather);
    reg.insert(GATHER_ROWS, build_gather_rows);
    reg.insert("gather_along_axis", build_gather_along_axis);
    reg.insert("gather_nd", build_gather_nd);
    reg.insert("scatter", build_scatter);
    reg.insert("scatter_along_axis", build_scatter_along_axis);
    reg.insert("scatter_nd", build_scatter_nd);
}

/// Indices as i64 with negatives wrapped by `size`, checked to be in range.
fn wrap_indices(idx: &Tensor, size: usize) -> Result<Tensor> {
    let idx = idx.to_dtype(DType::I64)?;
    let n = size as i64;
    let flat: Vec<i64> = idx.flatten_all()?.to_vec1()?;
    let mut out = Vec::with_capacity(flat.len());
    for v in flat {
        let w = if v < 0 { v + n } else { v };
        if w < 0 || w >= n {
            return Err(Error::msg(format!(
                "index {v} out of range for an axis of size {size}"
            )));
        }
        out.push(w);
    }
    Ok(Tensor::from_vec(out, idx.dims(), idx.device())?)
}

/// `numpy.take(x, idx, axis)`.
fn take(x: &Tensor, idx: &Tensor, axis: usize) -> Result<Tensor> {
    let idx = wrap_indices(idx, x.dim(axis)?)?;
    let picked = x.index_select(&idx.flatten_all()?, axis)?;
    let mut shape = x.dims()[..axis].to_vec();
    shape.extend_from_slice(idx.dims());
    shape.extend_from_slice(&x.dims()[axis + 1..]);
    Ok(picked.reshape(shape)?)
}

/// Runs `f` on each of the leading `batch` axes of `x` and `idx` and stacks the results.
fn per_batch(
    x: &Tensor,
    idx: &Tensor,
    batch: usize,
    f: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    if batch == 0 {
        return f(x, idx);
    }
    if x.rank() < batch || idx.rank() < batch || x.dims()[..batch] != idx.dims()[..batch] {
        return Err(Error::msg(format!(
            "batch_dims {batch}: leading dims of x {:?} and indices {:?} differ",
            x.dims(),
            idx.dims()
        )));
    }
    let lead = x.dims()[..batch].to_vec();
    let b: usize = lead.iter().product();
    let xs = x.reshape([vec![b], x.dims()[batch..].to_vec()].concat())?;
    let is = idx.reshape([vec![b], idx.dims()[batch..].to_vec()].concat())?;
    let parts = (0..b)
        .map(|i| f(&xs.get(i)?, &is.get(i)?))
        .collect::<Result<Vec<_>>>()?;
    let out = Tensor::stack(&parts, 0)?;
    Ok(out.reshape([lead, out.dims()[1..].to_vec()].concat())?)
}

fn build_gather(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let idx = b.input("indices")?;
    let axis = b.int_or("axis", 0)?;
    let batch = b.int_or("batch_dims", 0)?;
    if batch < 0 {
        return Err(b.err(format!("batch_dims must not be negative, got {batch}")));
    }
    let batch = batch as usize;
    Ok(kernel(move |a| {
        let xt = a.tensor(x)?;
        let it = a.tensor(idx)?;
        let ax = norm_axis(axis, xt.rank())?;
        if ax < batch {
            return Err(Error::msg(format!(
                "axis {axis} lies inside batch_dims {batch}"
            )));
        }
        Ok(vec![per_batch(xt, it, batch, |xb, ib| {
            take(xb, ib, ax - batch)
        })?])
    }))
}

/// `_gather_rows` (made at load by [`crate::portable::fuse_gather`]): rows
/// `indices` of the constant `table` attribute. On the CPU rows are
/// converted from the table's stored bytes (memory-mapped for weight files)
/// when gathered; elsewhere the table is materialised at load.
fn build_gather_rows(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let table = b
        .op()
        .attribute(TABLE_ATTR)
        .and_then(Value::as_tensor)
        .ok_or_else(|| b.err("row gather without its table"))?;
    let dt = b.output_dtype(0)?;
    let stored = if b.device().is_cpu() {
        StoredRows::new(table).map_err(|e| b.err(format!("gathered table: {e}")))?
    } else {
        None
    };
    let idx = b.input("indices")?;
    let Some(rows) = stored else {
        let x = materialize(table, b.device(), b.precision)?
            .ok_or_else(|| b.err("the gathered table has no tensor form"))?;
        return Ok(kernel(move |a| Ok(vec![take(&x, a.tensor(idx)?, 0)?])));
    };
    Ok(kernel(move |a| {
        let it = a.tensor(idx)?;
        let wrapped: Vec<i64> = wrap_indices(it, rows.rows)?.flatten_all()?.to_vec1()?;
        let mut shape = it.dims().to_vec();
        shape.extend_from_slice(&rows.row_shape);
        let out = rows.gather(&wrapped);
        Ok(vec![
            Tensor::from_vec(out, shape, it.device())?.to_dtype(dt)?
        ])
    }))
}

/// An fp16/fp32 table held as little-endian bytes, read a row at a time.
struct StoredRows {
    bytes: ByteView,
    fp16: bool,
    rows: usize,
    row_shape: Vec<usize>,
    row_len: usize,
}

impl StoredRows {
    /// `None` for tables not held as fp16/fp32 bytes; an error when the
    /// bytes do not match the shape.
    fn new(table: &TensorValue) -> std::result::Result<Option<Self>, String> {
        let (TensorData::Bytes(bytes), Some((&rows, row_shape))) =
            (&table.data, table.shape.split_first())
        else {
            return Ok(None);
        };
        let width = match table.dtype {
            DataType::Fp16 => 2,
            DataType::Fp32 => 4,
            _ => return Ok(None),
        };
        let row_len = row_shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or("shape overflows")?;
        let need = row_len
            .checked_mul(width)
            .and_then(|b| b.checked_mul(rows))
            .ok_or("shape overflows")?;
        if bytes.len() != need {
            return Err(format!(
                "{} bytes for shape {:?} of {}",
                bytes.len(),
                table.shape,
                table.dtype
            ));
        }
        Ok(Some(Self {
            bytes: bytes.clone(),
            fp16: width == 2,
            rows,
            row_shape: row_shape.to_vec(),
            row_len,
        }))
    }

    /// Rows `rows` (in range) as f32.
    fn gather(&self, rows: &[i64]) -> Vec<f32> {
        let bytes = self.bytes.as_slice();
        let row_bytes = self.row_len * if self.fp16 { 2 } else { 4 };
        let mut out = Vec::with_capacity(rows.len() * self.row_len);
        for &r in rows {
            let src = &bytes[r as usize * row_bytes..(r as usize + 1) * row_bytes];
            if self.fp16 {
                out.extend(
                    src.chunks_exact(2)
                        .map(|h| half::f16::from_le_bytes([h[0], h[1]]).to_f32()),
                );
            } else {
                out.extend(
                    src.chunks_exact(4)
                        .map(|f| f32::from_le_bytes([f[0], f[1], f[2], f[3]])),
                );
            }
        }
        out
    }
}

fn build_gather_along_axis(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let idx = b.input("indices")?;
    let axis = b.int_or("axis", 0)?;
    Ok(kernel(move |a| {
        let xt = a.tensor(x)?;
        let ax = norm_axis(axis, xt.rank())?;
        let it = wrap_indices(a.tensor(idx)?, xt.dim(ax)?)?;
        Ok(vec![xt.contiguous()?.gather(&it.contiguous()?, ax)?])
    }))
}

/// Flat row numbers of `x`'s leading `depth` axes addressed by `idx[..., depth]`.
fn flat_rows(dims: &[usize], idx: &Tensor) -> Result<(Tensor, usize)> {
    let depth = *idx
        .dims()
        .last()
        .ok_or_else(|| Error::msg("indices must have rank >= 1"))?;
    if depth > dims.len() {
        return Err(Error::msg(format!(
            "indices address {depth} axes of a rank-{} tensor",
            dims.len()
        )));
    }
    let rows: usize = idx.elem_count() / depth.max(1);
    let v: Vec<i64> = idx.to_dtype(DType::I64)?.flatten_all()?.to_vec1()?;
    let mut flat = Vec::with_capacity(rows);
    for r in 0..rows {
        let mut f = 0i64;
        for k in 0..depth {
            let n = dims[k] as i64;
            let i = v[r * depth + k];
            let i = if i < 0 { i + n } else { i };
            if i < 0 || i >= n {
                return Err(Error::msg(format!(
                    "index {} out of range for axis {k} of size {n}",
                    v[r * depth + k]
                )));
            }
            f = f * n + i;
        }
        flat.push(f);
    }
    let lead: usize = dims[..depth].iter().product();
    Ok((Tensor::from_vec(flat, rows, idx.device())?, lead))
}

fn gather_nd(x: &Tensor, idx: &Tensor) -> Result<Tensor> {
    let depth = *idx
        .dims()
        .last()
        .ok_or_else(|| Error::msg("indices must have rank >= 1"))?;
    let (rows, lead) = flat_rows(x.dims(), idx)?;
    let rest = x.dims()[depth..].to_vec();
    let xs = x.reshape([vec![lead], rest.clone()].concat())?;
    let picked = xs.index_select(&rows, 0)?;
    let shape = [idx.dims()[..idx.rank() - 1].to_vec(), rest].concat();
    Ok(picked.reshape(shape)?)
}

fn build_gather_nd(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let idx = b.input("indices")?;
    let batch = b.int_or("batch_dims", 0)?;
    if batch < 0 {
        return Err(b.err(format!("batch_dims must not be negative, got {batch}")));
    }
    let batch = batch as usize;
    Ok(kernel(move |a| {
        Ok(vec![per_batch(
            a.tensor(x)?,
            a.tensor(idx)?,
            batch,
            gather_nd,
        )?])
    }))
}

/// How a scatter combines an update with the value already there.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Update,
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

fn mode(b: &OpBuilder<'_>) -> Result<Mode> {
    Ok(match b.string_or("mode", "add")?.as_str() {
        "update" => Mode::Update,
        "add" => Mode::Add,
        "sub" => Mode::Sub,
        "mul" => Mode::Mul,
        "div" => Mode::Div,
        "max" => Mode::Max,
        "min" => Mode::Min,
        other => return Err(b.err(format!("unknown scatter mode {other:?}"))),
    })
}

/// Scatters `updates` into `data` along `dim`, where `idx` (same shape as
/// `updates`, already wrapped) names the target position of each element.
fn scatter_elements(
    data: &Tensor,
    idx: &Tensor,
    updates: &Tensor,
    dim: usize,
    mode: Mode,
) -> Result<Tensor> {
    let updates = updates.to_dtype(data.dtype())?.contiguous()?;
    let idx = idx.contiguous()?;
    let data = data.contiguous()?;
    match mode {
        Mode::Update => Ok(data.scatter(&idx, &updates, dim)?),
        Mode::Add => Ok(data.scatter_add(&idx, &updates, dim)?),
        Mode::Sub => Ok(data.scatter_add(&idx, &updates.neg()?, dim)?),
        _ => scatter_host(&data, &idx, &updates, dim, mode),
    }
}

/// Host fallback for the combining modes candle has no kernel for.
fn scatter_host(
    data: &Tensor,
    idx: &Tensor,
    updates: &Tensor,
    dim: usize,
    mode: Mode,
) -> Result<Tensor> {
    let dims = data.dims().to_vec();
    let udims = updates.dims().to_vec();
    let mut out: Vec<f64> = data.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
    let up: Vec<f64> = updates.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
    let ix: Vec<i64> = idx.flatten_all()?.to_vec1()?;
    let mut pos = vec![0usize; udims.len()];
    for (u, &i) in up.iter().zip(&ix) {
        let mut flat = 0usize;
        for d in 0..dims.len() {
            let p = if d == dim { i as usize } else { pos[d] };
            flat = flat * dims[d] + p;
        }
        if let Some(o) = out.get_mut(flat) {
            *o = match mode {
                Mode::Mul => *o * u,
                Mode::Div => *o / u,
                Mode::Max => o.max(*u),
                Mode::Min => o.min(*u),
                Mode::Update => *u,
                Mode::Add => *o + u,
                Mode::Sub => *o - u,
            };
        }
        for d in (0..pos.len()).rev() {
            pos[d] += 1;
            if pos[d] < udims[d] {
                break;
            }
            pos[d] = 0;
        }
    }
    Ok(Tensor::from_vec(out, dims, data.device())?.to_dtype(data.dtype())?)
}

/// `idx` (1-D, along `axis`) expanded to the shape of `updates`.
fn expand_along(idx: &Tensor, updates: &Tensor, axis: usize) -> Result<Tensor> {
    let mut shape = vec![1usize; updates.rank()];
    shape[axis] = idx.elem_count();
    Ok(idx
        .reshape(shape)?
        .broadcast_as(updates.dims())?
        .contiguous()?)
}

fn build_scatter(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let data = b.input("data")?;
    let idx = b.input("indices")?;
    let updates = b.input("updates")?;
    let axis = b.int_or("axis", 0)?;
    let mode = mode(b)?;
    Ok(kernel(move |a| {
        let d = a.tensor(data)?;
        let u = a.tensor(updates)?;
        let ax = norm_axis(axis, d.rank())?;
        let i = wrap_indices(&a.tensor(idx)?.flatten_all()?, d.dim(ax)?)?;
        if u.rank() != d.rank() || u.dim(ax)? != i.elem_count() {
            return Err(Error::msg(format!(
                "updates of shape {:?} do not match data {:?} with {} indices on axis {ax}",
                u.dims(),
                d.dims(),
                i.elem_count()
            )));
        }
        let full = expand_along(&i, u, ax)?;
        Ok(vec![scatter_elements(d, &full, u, ax, mode)?])
    }))
}

fn build_scatter_along_axis(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let data = b.input("data")?;
    let idx = b.input("indices")?;
    let updates = b.input("updates")?;
    let axis = b.int_or("axis", 0)?;
    let mode = mode(b)?;
    Ok(kernel(move |a| {
        let d = a.tensor(data)?;
        let ax = norm_axis(axis, d.rank())?;
        let i = wrap_indices(a.tensor(idx)?, d.dim(ax)?)?;
        Ok(vec![scatter_elements(d, &i, a.tensor(updates)?, ax, mode)?])
    }))
}

fn build_scatter_nd(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let data = b.input("data")?;
    let idx = b.input("indices")?;
    let updates = b.input("updates")?;
    let mode = mode(b)?;
    Ok(kernel(move |a| {
        let d = a.tensor(data)?;
        let it = a.tensor(idx)?;
        let depth = *it
            .dims()
            .last()
            .ok_or_else(|| Error::msg("indices must have rank >= 1"))?;
        let (rows, lead) = flat_rows(d.dims(), it)?;
        let rest = d.dims()[depth..].to_vec();
        let ds = d.reshape([vec![lead], rest.clone()].concat())?;
        let us = a
            .tensor(updates)?
            .reshape([vec![rows.elem_count()], rest].concat())?;
        let full = expand_along(&rows, &us, 0)?;
        let out = scatter_elements(&ds, &full, &us, 0, mode)?;
        Ok(vec![out.reshape(d.dims())?])
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mil::DataType;
    use crate::portable::testutil::{assert_close, int, run_op, string, Arg};
    use candle_core::Device;

    #[test]
    fn scatter_add_doc_example() {
        let data = Tensor::new(&[[1f32, 2., 3.], [4., 5., 6.]], &Device::Cpu).unwrap();
        let idx = Tensor::new(&[1i64, 0], &Device::Cpu).unwrap();
        let up = Tensor::new(&[[5f32, 6., 7.], [8., 9., 10.]], &Device::Cpu).unwrap();
        let out = run_op(
            "scatter",
            vec![
                ("data", Arg::T(data)),
                ("indices", Arg::T(idx)),
                ("updates", Arg::T(up)),
                ("axis", Arg::C(int(0))),
                ("mode", Arg::C(string("add"))),
            ],
            &[DataType::Fp32],
        )
        .unwrap();
        assert_close(&out[0], &[9., 11., 13., 9., 11., 13.], &[2, 3], 0.0);
    }

    #[test]
    fn gather_negative_index() {
        let x = Tensor::new(&[[1f32, 2.], [3., 4.], [5., 6.]], &Device::Cpu).unwrap();
        let idx = Tensor::new(&[-1i64, 0], &Device::Cpu).unwrap();
        let out = run_op(
            "gather",
            vec![
                ("x", Arg::T(x)),
                ("indices", Arg::T(idx)),
                ("axis", Arg::C(int(0))),
            ],
            &[DataType::Fp32],
        )
        .unwrap();
        assert_close(&out[0], &[5., 6., 1., 2.], &[2, 2], 0.0);
    }

    #[test]
    fn gather_nd_picks_rows() {
        let x = Tensor::new(&[[1f32, 2.], [3., 4.]], &Device::Cpu).unwrap();
        let idx = Tensor::new(&[[1i64, 0], [0, 1]], &Device::Cpu).unwrap();
        let out = run_op(
            "gather_nd",
            vec![("x", Arg::T(x)), ("indices", Arg::T(idx))],
            &[DataType::Fp32],
        )
        .unwrap();
        assert_close(&out[0], &[3., 2.], &[2], 0.0);
    }
}
