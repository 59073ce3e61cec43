//! Affine quantization ops of iOS17: `quantize` and `dequantize`.
//!
//! `quantize`: `clip(round(input / scale) + zero_point)` to the range of the
//! output type (`int8` or `uint8`), rounding halves to even as numpy does.
//! `dequantize`: `scale * (input - zero_point)`. `scale` and `zero_point` are
//! constant scalars, or vectors laid along `axis` of the input.

use candle_core::{DType, Tensor};

use super::registry::Registry;
use super::util::numeric::round_half_even;
use crate::error::{Error, Result};
use crate::portable::kernel::{kernel, Kernel, OpBuilder};

/// Registers this family's ops.
pub(crate) fn register(reg: &mut Registry) {
    reg.insert("quantize", build_quantize);
    reg.insert("dequantize", build_dequantize);
}

/// Scale and zero point as given: one value, or one per entry of `axis`.
#[derive(Debug, Clone)]
struct Affine {
    scale: Vec<f64>,
    zero_point: Vec<f64>,
    axis: Option<i64>,
}

impl Affine {
    /// Reads `scale`, `zero_point` and `axis` and checks that they agree.
    fn parse(b: &OpBuilder<'_>) -> Result<Self> {
        let scale = b.floats("scale")?;
        let zero_point = if b.has("zero_point") {
            b.floats("zero_point")?
        } else {
            vec![0.0; scale.len()]
        };
        if scale.is_empty() {
            return Err(b.err("scale is empty"));
        }
        if zero_point.len() != scale.len() {
            return Err(b.err(format!(
                "zero_point has {} values but scale has {}",
                zero_point.len(),
                scale.len()
            )));
        }
        let scale_rank = b.constant("scale").map_or(0, |c| c.shape.len());
        let axis = b.opt_ints("axis")?.map(|v| v.first().copied());
        let axis = match axis {
            Some(Some(a)) => Some(a),
            Some(None) => return Err(b.err("axis is empty")),
            None if scale_rank == 0 && scale.len() == 1 => None,
            None => return Err(b.err("a vector scale needs an axis")),
        };
        Ok(Affine {
            scale,
            zero_point,
            axis,
        })
    }

    /// `scale` and `zero_point` as tensors broadcastable against `t`.
    fn tensors(&self, t: &Tensor, dtype: DType) -> Result<(Tensor, Tensor)> {
        let mut shape = vec![1usize; t.rank()];
        if let Some(axis) = self.axis {
            let rank = t.rank() as i64;
            let a = if axis < 0 { axis + rank } else { axis };
            if !(0..rank).contains(&a) {
                return Err(Error::msg(format!(
                    "axis {axis} is out of range for rank {rank}"
                )));
            }
            let a = a as usize;
            if t.dim(a)? != self.scale.len() {
                return Err(Error::msg(format!(
                    "axis {axis} of shape {:?} does not match {} scales",
                    t.dims(),
                    self.scale.len()
                )));
            }
            shape[a] = self.scale.len();
        }
        let dev = t.device();
        let s = Tensor::new(self.scale.as_slice(), dev)?
            .to_dtype(dtype)?
            .reshape(shape.as_slice())?;
        let z = Tensor::new(self.zero_point.as_slice(), dev)?
            .to_dtype(dtype)?
            .reshape(shape.as_slice())?;
        Ok((s, z))
    }
}

fn build_quantize(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("input")?;
    let affine = Affine::parse(b)?;
    if affine.scale.iter().any(|&s| s == 0.0 || !s.is_finite()) {
        return Err(b.err("scale must be finite and non-zero"));
    }
    let (lo, hi) = match b.string("output_dtype")?.as_str() {
        "int8" => (-128.0, 127.0),
        "uint8" => (0.0, 255.0),
        other => return Err(b.err(format!("output_dtype must be int8 or uint8, got {other:?}"))),
    };
    let out = b.output_dtype(0)?;
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        // Quantized values are small integers: f32 holds them exactly.
        let work = if t.dtype() == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let t = t.to_dtype(work)?;
        let (s, z) = affine.tensors(&t, work)?;
        let q = round_half_even(&t.broadcast_div(&s)?)?.broadcast_add(&z)?;
        Ok(vec![q.clamp(lo, hi)?.to_dtype(out)?])
    }))
}

fn build_dequantize(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("input")?;
    let affine = Affine::parse(b)?;
    let out = b.output_dtype(0)?;
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        let work = if out == DType::F64 {
            DType::F64
        } else {
            DType::F32
        };
        let t = t.to_dtype(work)?;
        let (s, z) = affine.tensors(&t, work)?;
        let y = t.broadcast_sub(&z)?.broadcast_mul(&s)?;
        Ok(vec![y.to_dtype(out)?])
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mil::DataType;
    use crate::portable::testutil::{assert_close, floats, run_op, string, Arg};
    use candle_core::Device;

    #[test]
    fn rounds_halves_to_even() {
        let x = Tensor::new(
            &[-2.5f32, -1.5, -0.5, 0.5, 1.5, 2.5, 2.4, 2.6],
            &Device::Cpu,
        )
        .unwrap();
        let r = round_half_even(&x).unwrap();
        assert_close(&r, &[-2.0, -2.0, -0.0, 0.0, 2.0, 2.0, 2.0, 3.0], &[8], 0.0);
    }

    #[test]
    fn quantize_clips_to_uint8() {
        // round(x / 0.5) + 10, clipped to [0, 255]: by hand.
        let x = Tensor::new(&[[-10.0f32, 0.25, 1.0, 200.0]], &Device::Cpu).unwrap();
        let zp = crate::mil::TensorValue::new(
            DataType::UInt8,
            vec![],
            crate::mil::TensorData::I64(vec![10]),
        );
        let y = run_op(
            "quantize",
            vec![
                ("input", Arg::T(x)),
                ("scale", Arg::C(floats(&[0.5], &[]))),
                ("zero_point", Arg::C(zp)),
                ("output_dtype", Arg::C(string("uint8"))),
            ],
            &[DataType::UInt8],
        )
        .unwrap();
        assert_close(&y[0], &[0.0, 10.0, 12.0, 255.0], &[1, 4], 0.0);
    }
}
