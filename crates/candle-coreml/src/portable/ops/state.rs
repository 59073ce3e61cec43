//! State ops: `read_state`, `write_state`, `coreml_update_state`, and
//! `slice_update` (the KV-cache write).

use candle_core::{DType, Tensor};

use super::Registry;
use crate::error::{Error, Result};
use crate::portable::fuse::SLICE_UPDATE_STATE;
use crate::portable::kernel::{kernel, IntsArg, Kernel, OpBuilder};

/// Registers this family's ops.
pub(crate) fn register(reg: &mut Registry) {
    reg.insert("read_state", build_read_state).stateful();
    reg.insert("write_state", build_write_state).stateful();
    reg.insert("coreml_update_state", build_update_state)
        .stateful();
    reg.insert("slice_update", build_slice_update);
    reg.insert(SLICE_UPDATE_STATE, build_slice_update_state)
        .stateful();
}

fn build_read_state(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let s = b.input("input")?;
    Ok(kernel(move |a| {
        let name = a.state_name(s)?.to_string();
        Ok(vec![a.states().get(&name)?.clone()])
    }))
}

fn build_write_state(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let s = b.input("input")?;
    let data = b.input("data")?;
    Ok(kernel(move |a| {
        let name = a.state_name(s)?.to_string();
        let t = a.tensor(data)?.clone();
        a.states().set(&name, t)?;
        Ok(vec![])
    }))
}

fn build_update_state(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let s = b.input("state")?;
    let value = b.input("value")?;
    Ok(kernel(move |a| {
        let name = a.state_name(s)?.to_string();
        let t = a.tensor(value)?.clone();
        a.states().set(&name, t.clone())?;
        Ok(vec![t])
    }))
}

/// Masks of `slice_update` / `slice_by_index`, parsed once.
#[derive(Debug, Clone, Default)]
struct Masks {
    begin: Vec<bool>,
    end: Vec<bool>,
    squeeze: Vec<bool>,
}

fn bool_list(b: &OpBuilder<'_>, name: &str) -> Result<Vec<bool>> {
    if !b.has(name) {
        return Ok(vec![]);
    }
    Ok(b.ints(name)?.into_iter().map(|v| v != 0).collect())
}

/// The window parameters of a `slice_update`, parsed once.
struct WindowArgs {
    begin: IntsArg,
    end: IntsArg,
    stride: Option<IntsArg>,
    masks: Masks,
}

impl WindowArgs {
    fn parse(b: &mut OpBuilder<'_>) -> Result<Self> {
        Ok(Self {
            begin: b.ints_or_input("begin")?,
            end: b.ints_or_input("end")?,
            stride: b.opt_ints_or_input("stride")?,
            masks: Masks {
                begin: bool_list(b, "begin_mask")?,
                end: bool_list(b, "end_mask")?,
                squeeze: bool_list(b, "squeeze_mask")?,
            },
        })
    }

    fn windows(
        &self,
        a: &crate::portable::kernel::Args<'_>,
        dims: &[usize],
    ) -> Result<Vec<Window>> {
        let stride = match &self.stride {
            Some(s) => a.ints(s)?,
            None => vec![1; dims.len()],
        };
        resolve_windows(
            dims,
            &a.ints(&self.begin)?,
            &a.ints(&self.end)?,
            &stride,
            &self.masks,
        )
    }
}

/// The fused KV-cache write (see `portable::fuse`): the window is written
/// into the state buffer in place when it is contiguous, with no copy of the
/// rest of the cache.
fn build_slice_update_state(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let state = b.input("x")?;
    let update = b.input("update")?;
    let w = WindowArgs::parse(b)?;
    Ok(kernel(move |a| {
        let name = a.state_name(state)?.to_string();
        let buf = a.states().get(&name)?.clone();
        let windows = w.windows(a, buf.dims())?;
        let up = a.tensor(update)?.to_dtype(buf.dtype())?;
        let up = squeezed_back(&up, &w.masks.squeeze)?;
        let counts: Vec<usize> = windows.iter().map(|w| w.count).collect();
        let up = if up.dims() == counts.as_slice() {
            up
        } else {
            up.broadcast_as(counts.as_slice())?
        };
        if buf.is_contiguous() && windows.iter().all(|w| w.step == 1) {
            set_window(&buf, &up.contiguous()?, &windows)?;
        } else {
            let out = write_window(&buf, &up, &windows, &[])?;
            a.states().set(&name, out)?;
        }
        Ok(vec![])
    }))
}

/// `update` with the squeezed axes of the window put back as size-1 axes.
fn squeezed_back(update: &Tensor, squeeze: &[bool]) -> Result<Tensor> {
    let mut up = update.clone();
    for (i, sq) in squeeze.iter().enumerate() {
        if *sq && i <= up.rank() {
            up = up.unsqueeze(i)?;
        }
    }
    Ok(up)
}

/// Copies `src` into the window of the contiguous `dst`, in place.
fn set_window(dst: &Tensor, src: &Tensor, windows: &[Window]) -> Result<()> {
    let Some((first, rest)) = windows.split_first() else {
        return Err(Error::msg("cannot update a window of a scalar in place"));
    };
    let rest_full = rest
        .iter()
        .zip(&dst.dims()[1..])
        .all(|(w, &n)| w.start == 0 && w.count == n);
    if rest_full {
        if first.count > 0 {
            dst.slice_set(src, 0, first.start)?;
        }
        return Ok(());
    }
    for i in 0..first.count {
        set_window(&dst.get(first.start + i)?, &src.get(i)?, rest)?;
    }
    Ok(())
}

fn build_slice_update(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let update = b.input("update")?;
    let w = WindowArgs::parse(b)?;
    let out_dtype = b.output_dtype(0)?;
    Ok(kernel(move |a| {
        let xt = a.tensor(x)?;
        let windows = w.windows(a, xt.dims())?;
        let up = a.tensor(update)?.to_dtype(xt.dtype())?;
        let out = write_window(xt, &up, &windows, &w.masks.squeeze)?;
        Ok(vec![out.to_dtype(out_dtype)?])
    }))
}

/// One dimension's window: first index, step, count.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: usize,
    step: i64,
    count: usize,
}

/// Resolves begin/end/stride with masks and negative indices to windows
/// (numpy slicing semantics, as `slice_by_index` documents).
fn resolve_windows(
    dims: &[usize],
    begin: &[i64],
    end: &[i64],
    stride: &[i64],
    masks: &Masks,
) -> Result<Vec<Window>> {
    let rank = dims.len();
    if begin.len() != rank || end.len() != rank || stride.len() != rank {
        return Err(Error::msg(format!(
            "begin/end/stride must have one entry per dim of the rank-{rank} input; got {}, {}, {}",
            begin.len(),
            end.len(),
            stride.len()
        )));
    }
    let flag = |m: &[bool], i: usize| m.get(i).copied().unwrap_or(false);
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let n = dims[i] as i64;
        let s = stride[i];
        if s == 0 {
            return Err(Error::msg(format!("stride 0 on axis {i}")));
        }
        let clamp = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
        let norm = |v: i64| if v < 0 { v + n } else { v };
        if flag(&masks.squeeze, i) {
            let b = norm(begin[i]);
            if b < 0 || b >= n {
                return Err(Error::msg(format!(
                    "index {} out of range for axis {i} of size {n}",
                    begin[i]
                )));
            }
            out.push(Window {
                start: b as usize,
                step: 1,
                count: 1,
            });
            continue;
        }
        let (lo, hi) = if s > 0 { (0, n) } else { (-1, n - 1) };
        let b = if flag(&masks.begin, i) {
            if s > 0 {
                0
            } else {
                n - 1
            }
        } else {
            clamp(norm(begin[i]), lo, hi)
        };
        let e = if flag(&masks.end, i) {
            if s > 0 {
                n
            } else {
                -1
            }
        } else {
            clamp(norm(end[i]), lo, hi)
        };
        let count = if s > 0 {
            if e > b {
                (e - b + s - 1) / s
            } else {
                0
            }
        } else if b > e {
            (b - e + (-s) - 1) / (-s)
        } else {
            0
        };
        out.push(Window {
            start: b.max(0) as usize,
            step: s,
            count: count as usize,
        });
    }
    Ok(out)
}

/// `x` with the window replaced by `update` (squeezed dims re-inserted).
fn write_window(
    x: &Tensor,
    update: &Tensor,
    windows: &[Window],
    squeeze: &[bool],
) -> Result<Tensor> {
    let mut up = update.clone();
    for (i, sq) in squeeze.iter().enumerate() {
        if *sq && i <= up.rank() {
            up = up.unsqueeze(i)?;
        }
    }
    let want: Vec<usize> = windows.iter().map(|w| w.count).collect();
    if up.dims() != want.as_slice() {
        up = up.broadcast_as(want.as_slice()).map_err(|_| {
            Error::msg(format!(
                "update of shape {:?} does not fit the window {want:?}",
                update.dims()
            ))
        })?;
    }
    if windows.iter().all(|w| w.step == 1) {
        let ranges: Vec<std::ops::Range<usize>> =
            windows.iter().map(|w| w.start..w.start + w.count).collect();
        return Ok(x.slice_assign(&ranges, &up.contiguous()?)?);
    }
    // Strided windows: scatter along each strided axis in turn.
    let mut out = x.clone();
    strided_assign(&mut out, &up, windows)?;
    Ok(out)
}

fn strided_assign(out: &mut Tensor, up: &Tensor, windows: &[Window]) -> Result<()> {
    // Flat index arithmetic on the host: rare in real models.
    let dims = out.dims().to_vec();
    let dtype = out.dtype();
    let device = out.device().clone();
    let mut data: Vec<f64> = out.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
    let src: Vec<f64> = up.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
    let counts: Vec<usize> = windows.iter().map(|w| w.count).collect();
    let mut idx = vec![0usize; dims.len()];
    for v in src {
        let mut flat = 0usize;
        for (d, w) in windows.iter().enumerate() {
            let pos = w.start as i64 + w.step * idx[d] as i64;
            flat = flat * dims[d] + pos as usize;
        }
        if let Some(slot) = data.get_mut(flat) {
            *slot = v;
        }
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < counts[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    *out = Tensor::from_vec(data, dims, &device)?.to_dtype(dtype)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mil::DataType;
    use crate::portable::testutil::{assert_close, ints1, run_op, Arg};
    use candle_core::Device;

    #[test]
    fn slice_update_writes_window() {
        let x = Tensor::zeros((2, 4), DType::F32, &Device::Cpu).unwrap();
        let u = Tensor::new(&[[1f32, 2.0]], &Device::Cpu).unwrap();
        let out = run_op(
            "slice_update",
            vec![
                ("x", Arg::T(x)),
                ("update", Arg::T(u)),
                ("begin", Arg::C(ints1(&[1, 1]))),
                ("end", Arg::C(ints1(&[2, 3]))),
            ],
            &[DataType::Fp32],
        )
        .unwrap();
        assert_close(&out[0], &[0., 0., 0., 0., 0., 1., 2., 0.], &[2, 4], 0.0);
    }

    #[test]
    fn slice_update_strided_negative() {
        let x = Tensor::zeros(6, DType::F32, &Device::Cpu).unwrap();
        let u = Tensor::new(&[7f32, 8.0, 9.0], &Device::Cpu).unwrap();
        let out = run_op(
            "slice_update",
            vec![
                ("x", Arg::T(x)),
                ("update", Arg::T(u)),
                ("begin", Arg::C(ints1(&[-1]))),
                ("end", Arg::C(ints1(&[0]))),
                ("stride", Arg::C(ints1(&[-2]))),
            ],
            &[DataType::Fp32],
        )
        .unwrap();
        // numpy: x[-1:0:-2] = [7, 8, 9] touches indices 5, 3, 1.
        assert_close(&out[0], &[0., 9., 0., 8., 0., 7.], &[6], 0.0);
    }
}
