//! Slicing ops: `slice_by_index`, `slice_by_size`, `sliding_windows` and
//! `reverse_sequence` (`slice_update` lives with the state ops).

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};
use crate::portable::kernel::{kernel, Kernel, OpBuilder};
use crate::portable::ops::registry::Registry;
use crate::portable::ops::util::slicing::{sliced_dims, SliceArgs, Span};
use crate::portable::ops::util::{finish, norm_axis, out_dtype};

/// Registers the slicing ops.
pub(super) fn register(reg: &mut Registry) {
    reg.insert("slice_by_index", build_slice_by_index);
    reg.insert("slice_by_size", build_slice_by_size);
    reg.insert("sliding_windows", build_sliding_windows);
    reg.insert("reverse_sequence", build_reverse_sequence);
}

/// Takes `span` of dimension `d` of `t` (the dimension is kept).
fn take(t: &Tensor, d: usize, s: &Span) -> Result<Tensor> {
    if s.len == 0 {
        return Ok(t.narrow(d, 0, 0)?);
    }
    if s.step == 1 {
        return Ok(t.narrow(d, s.first(), s.len)?);
    }
    let idx: Vec<i64> = (0..s.len as i64).map(|i| s.start + i * s.step).collect();
    let idx = Tensor::from_vec(idx, s.len, t.device())?;
    Ok(t.contiguous()?.index_select(&idx, d)?)
}

fn build_slice_by_index(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let slice = SliceArgs::parse(b)?;
    Ok(kernel(move |a| {
        let mut t = a.tensor(x)?.clone();
        let spans = slice.resolve(a, t.dims())?;
        for (d, s) in spans.iter().enumerate() {
            if !s.is_full(t.dims()[d]) {
                t = take(&t, d, s)?;
            }
        }
        Ok(vec![t.reshape(sliced_dims(&spans))?])
    }))
}

fn build_slice_by_size(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let begin = b.ints_or_input("begin")?;
    let size = b.ints_or_input("size")?;
    Ok(kernel(move |a| {
        let mut t = a.tensor(x)?.clone();
        let (begin, size) = (a.ints(&begin)?, a.ints(&size)?);
        let dims = t.dims().to_vec();
        if begin.len() != dims.len() || size.len() != dims.len() {
            return Err(Error::msg(format!(
                "slice begin {begin:?} / size {size:?} do not match shape {dims:?}"
            )));
        }
        for (d, &n) in dims.iter().enumerate() {
            let n = n as i64;
            let b0 = if begin[d] < 0 { begin[d] + n } else { begin[d] };
            let len = if size[d] == -1 { n - b0 } else { size[d] };
            if b0 < 0 || len < 0 || b0 + len > n {
                return Err(Error::msg(format!(
                    "slice begin {} size {} out of range for dimension {d} of size {n}",
                    begin[d], size[d]
                )));
            }
            if len != n {
                t = t.narrow(d, b0 as usize, len as usize)?;
            }
        }
        Ok(vec![t])
    }))
}

fn build_sliding_windows(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let axis = b.int("axis")?;
    let size = b.int("size")?;
    let stride = b.int_or("stride", 1)?;
    if size < 1 || stride < 1 {
        return Err(b.err(format!("size {size} and stride {stride} must be positive")));
    }
    let (size, stride) = (size as usize, stride as usize);
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        let ax = norm_axis(axis, t.rank())?;
        let n = t.dim(ax)?;
        if size > n {
            return Err(Error::msg(format!(
                "window of {size} over a dimension of size {n}"
            )));
        }
        let count = (n - size) / stride + 1;
        // Window `w` starts at `w * stride`; gather all windows with one index.
        let idx: Vec<i64> = (0..count)
            .flat_map(|w| (0..size).map(move |k| (w * stride + k) as i64))
            .collect();
        let idx = Tensor::from_vec(idx, count * size, t.device())?;
        let mut dims = t.dims().to_vec();
        dims[ax] = count;
        dims.insert(ax + 1, size);
        Ok(vec![t
            .contiguous()?
            .index_select(&idx, ax)?
            .reshape(dims)?])
    }))
}

fn build_reverse_sequence(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let lengths = b.input("lengths")?;
    let seq_axis = b.int_or("seq_axis", 0)?;
    let batch_axis = b.int_or("batch_axis", 0)?;
    let dt = out_dtype(b, 0);
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        let dims = t.dims();
        let (sa, ba) = (
            norm_axis(seq_axis, t.rank())?,
            norm_axis(batch_axis, t.rank())?,
        );
        if sa == ba {
            return Err(Error::msg("reverse_sequence: seq_axis equals batch_axis"));
        }
        let (ns, nb) = (dims[sa], dims[ba]);
        let dev = t.device();
        let mut shape = vec![1; dims.len()];
        shape[ba] = nb;
        let len = a.tensor(lengths)?.to_dtype(DType::I64)?;
        if len.elem_count() != nb {
            return Err(Error::msg(format!(
                "{} lengths for a batch of {nb}",
                len.elem_count()
            )));
        }
        let len = len.reshape(shape.clone())?.clamp(0i64, ns as i64)?;
        let mut pshape = vec![1; dims.len()];
        pshape[sa] = ns;
        let pos = Tensor::arange(0i64, ns as i64, dev)?.reshape(pshape)?;
        shape[sa] = ns;
        // Inside the first `len` steps position p reads len-1-p, elsewhere p.
        let rev = len
            .broadcast_sub(&pos)?
            .broadcast_sub(&Tensor::new(1i64, dev)?)?
            .broadcast_as(shape.as_slice())?;
        let inside = pos.broadcast_lt(&len)?.broadcast_as(shape.as_slice())?;
        let idx = inside.where_cond(&rev, &pos.broadcast_as(shape.as_slice())?)?;
        let idx = idx.broadcast_as(dims)?.contiguous()?;
        Ok(vec![finish(t.contiguous()?.gather(&idx, sa)?, dt)?])
    }))
}
