//! `conv_quantized` (iOS15): a `conv` whose constant uint8 weight is stored
//! linearly quantized, `W_float = W_quantized * quant_scale + quant_bias`.
//!
//! The weight is dequantized once at load and the op then runs as `conv`.
//! `quant_scale` and `quant_bias` hold one value for the whole weight, one
//! per output channel, or a tensor broadcastable to the weight's shape.

use candle_core::{DType, Tensor};

use super::conv::conv_kernel;
use super::registry::Registry;
use crate::error::Result;
use crate::portable::kernel::{Kernel, OpBuilder, Operand};

/// Registers `conv_quantized`.
pub(crate) fn register(reg: &mut Registry) {
    reg.insert("conv_quantized", build_conv_quantized);
}

/// Builds `conv_quantized`: dequantizes the weight, then delegates to `conv`.
fn build_conv_quantized(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let dt = b.output_dtype(0)?;
    let kind = b.string("quantization_type")?.to_ascii_lowercase();
    if kind != "linear" {
        return Err(b.err(format!(
            "quantization_type {kind:?} is not supported (only \"linear\")"
        )));
    }
    let nbits = b.int_or("nbits", 8)?;
    if !(1..=8).contains(&nbits) {
        return Err(b.err(format!("nbits {nbits} must be in 1..=8")));
    }
    let get = |name: &str| {
        b.const_tensor(name)
            .ok_or_else(|| b.err(format!("input {name:?} must be a constant")))
    };
    let (wq, scale, bias) = (get("weight")?, get("quant_scale")?, get("quant_bias")?);
    let w = dequantize(&wq, &scale, &bias)
        .and_then(|w| Ok(w.to_dtype(dt)?))
        .map_err(|e| b.err(format!("cannot dequantize the weight: {}", e.report())))?;
    conv_kernel(b, Operand::Ready(w))
}

/// `wq * scale + bias` in f64, with scale/bias reshaped to broadcast.
fn dequantize(wq: &Tensor, scale: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let w = wq.to_dtype(DType::F64)?;
    let s = per_channel(scale, w.dims())?;
    let z = per_channel(bias, w.dims())?;
    Ok(w.broadcast_mul(&s)?.broadcast_add(&z)?)
}

/// A quantization parameter shaped to broadcast over a weight of `dims`:
/// one value, one per output channel (`dims[0]`), or as given.
fn per_channel(p: &Tensor, dims: &[usize]) -> Result<Tensor> {
    let p = p.to_dtype(DType::F64)?;
    let n = p.elem_count();
    if n == 1 {
        return Ok(p.reshape(())?);
    }
    if p.rank() <= 1 && dims.first() == Some(&n) {
        let mut shape = vec![1; dims.len()];
        shape[0] = n;
        return Ok(p.reshape(shape)?);
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use crate::mil::{DataType, TensorData, TensorValue};
    use crate::portable::testutil::{assert_close, floats, run_op, string, Arg};
    use candle_core::{Device, Tensor};

    fn args(kind: &str) -> Vec<(&'static str, Arg)> {
        // x [1, 1, 3], weight uint8 [2, 1, 2], per-channel scale and bias.
        let x = Tensor::new(&[[[1.0f32, 2.0, 3.0]]], &Device::Cpu).unwrap();
        let w = TensorValue::new(
            DataType::UInt8,
            vec![2, 1, 2],
            TensorData::I64(vec![0, 10, 4, 2]),
        );
        vec![
            ("x", Arg::T(x)),
            ("weight", Arg::C(w)),
            ("quantization_type", Arg::C(string(kind))),
            ("quant_scale", Arg::C(floats(&[0.5, 0.25], &[2]))),
            ("quant_bias", Arg::C(floats(&[-1.0, 1.0], &[2]))),
        ]
    }

    #[test]
    fn dequantizes_per_channel() {
        // w0 = [0, 10] * 0.5 - 1 = [-1, 4]; w1 = [4, 2] * 0.25 + 1 = [2, 1.5].
        // Valid conv of [1, 2, 3]: w0 -> [7, 10]; w1 -> [5, 8.5] (by hand).
        let y = run_op("conv_quantized", args("linear"), &[DataType::Fp32]).unwrap();
        assert_close(&y[0], &[7.0, 10.0, 5.0, 8.5], &[1, 2, 2], 1e-6);
    }

    #[test]
    fn rejects_lut_quantization() {
        let e = run_op("conv_quantized", args("lut"), &[DataType::Fp32]).unwrap_err();
        assert!(e.to_string().contains("quantization_type"), "{e}");
    }
}
