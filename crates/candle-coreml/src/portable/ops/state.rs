//! State ops: `read_state`, `write_state`, `coreml_update_state`, and
//! `slice_update` (the KV-cache write).

use candle_core::{DType, Tensor};

use super::registry::Registry;
use super::util::slicing::{sliced_dims, window_dims, SliceArgs, Span};
use crate::error::{Error, Result};
use crate::portable::fuse::SLICE_UPDATE_STATE;
use crate::portable::kernel::{kernel, Kernel, OpBuilder};

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

/// The fused KV-cache write (see `portable::fuse`): the window is written
/// into the state buffer in place when it is contiguous, with no copy of the
/// rest of the cache.
fn build_slice_update_state(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let state = b.input("x")?;
    let update = b.input("update")?;
    let slice = SliceArgs::parse(b)?;
    Ok(kernel(move |a| {
        let name = a.state_name(state)?.to_string();
        let buf = a.states().get(&name)?.clone();
        let spans = slice.resolve(a, buf.dims())?;
        let up = fit_update(&a.tensor(update)?.to_dtype(buf.dtype())?, &spans)?;
        if buf.is_contiguous() && spans.iter().all(|s| s.step == 1) {
            set_window(&buf, &up.contiguous()?, &spans)?;
        } else {
            let out = write_window(&buf, &up, &spans)?;
            a.states().set(&name, out)?;
        }
        Ok(vec![])
    }))
}

fn build_slice_update(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let update = b.input("update")?;
    let slice = SliceArgs::parse(b)?;
    let out_dtype = b.output_dtype(0)?;
    Ok(kernel(move |a| {
        let xt = a.tensor(x)?;
        let spans = slice.resolve(a, xt.dims())?;
        let up = fit_update(&a.tensor(update)?.to_dtype(xt.dtype())?, &spans)?;
        let out = write_window(xt, &up, &spans)?;
        Ok(vec![out.to_dtype(out_dtype)?])
    }))
}

/// `update` shaped as the window of `spans` (squeezed axes as size 1):
/// as given, with squeezed axes put back, or broadcast.
fn fit_update(update: &Tensor, spans: &[Span]) -> Result<Tensor> {
    let want = window_dims(spans);
    if update.dims() == want.as_slice() {
        return Ok(update.clone());
    }
    if update.dims() == sliced_dims(spans).as_slice() {
        return Ok(update.reshape(want)?);
    }
    update.broadcast_as(want.as_slice()).map_err(|_| {
        Error::msg(format!(
            "update of shape {:?} does not fit the window {want:?}",
            update.dims()
        ))
    })
}

/// Copies `src` into the window of the contiguous `dst`, in place.
fn set_window(dst: &Tensor, src: &Tensor, spans: &[Span]) -> Result<()> {
    let Some((first, rest)) = spans.split_first() else {
        return Err(Error::msg("cannot update a window of a scalar in place"));
    };
    let rest_full = rest
        .iter()
        .zip(&dst.dims()[1..])
        .all(|(s, &n)| s.first() == 0 && s.len == n);
    if rest_full {
        if first.len > 0 {
            dst.slice_set(src, 0, first.first())?;
        }
        return Ok(());
    }
    for i in 0..first.len {
        set_window(&dst.get(first.first() + i)?, &src.get(i)?, rest)?;
    }
    Ok(())
}

/// `x` with the window of `spans` replaced by `update` (of the window's shape).
fn write_window(x: &Tensor, update: &Tensor, spans: &[Span]) -> Result<Tensor> {
    if spans.iter().all(|s| s.step == 1) {
        let ranges: Vec<std::ops::Range<usize>> =
            spans.iter().map(|s| s.first()..s.first() + s.len).collect();
        return Ok(x.slice_assign(&ranges, &update.contiguous()?)?);
    }
    strided_assign(x, update, spans)
}

/// A strided window written element by element on the host: rare in real models.
fn strided_assign(x: &Tensor, up: &Tensor, spans: &[Span]) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let mut data: Vec<f64> = x.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
    let src: Vec<f64> = up.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
    let counts = window_dims(spans);
    let mut idx = vec![0usize; dims.len()];
    for v in src {
        let mut flat = 0usize;
        for (d, s) in spans.iter().enumerate() {
            let pos = s.start + s.step * idx[d] as i64;
            flat = flat * dims[d] + usize::try_from(pos).unwrap_or(0);
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
    Ok(Tensor::from_vec(data, dims, x.device())?.to_dtype(x.dtype())?)
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
