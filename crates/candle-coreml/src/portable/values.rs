//! Conversions between MIL constants and candle tensors.

use candle_core::{DType, Device, Tensor};

use super::dtype::compute_dtype;
use crate::error::{Error, Result};
use crate::mil::{DataType, TensorData, TensorValue};
use crate::options::ComputePrecision;

/// A MIL constant as a candle tensor in its compute dtype on `device`;
/// `None` for strings, which have no tensor form.
pub(crate) fn materialize(
    tv: &TensorValue,
    device: &Device,
    precision: ComputePrecision,
) -> Result<Option<Tensor>> {
    let Some(dtype) = compute_dtype(tv.dtype, precision) else {
        return Ok(None);
    };
    let shape = tv.shape.as_slice();
    let conv = |e: String| Error::msg(format!("constant of type {}: {e}", tv.dtype));
    let t = match dtype {
        DType::F32 => Tensor::from_vec(
            tv.to_f32_vec().map_err(|e| conv(e.to_string()))?,
            shape,
            device,
        )?,
        DType::F64 => Tensor::from_vec(
            tv.to_f64_vec().map_err(|e| conv(e.to_string()))?,
            shape,
            device,
        )?,
        DType::F16 => Tensor::from_vec(
            tv.to_f16_vec().map_err(|e| conv(e.to_string()))?,
            shape,
            device,
        )?,
        DType::BF16 => Tensor::from_vec(
            tv.to_bf16_vec().map_err(|e| conv(e.to_string()))?,
            shape,
            device,
        )?,
        DType::I64 => Tensor::from_vec(
            tv.to_i64_vec().map_err(|e| conv(e.to_string()))?,
            shape,
            device,
        )?,
        DType::U8 => {
            let v: Vec<u8> = tv
                .to_bool_vec()
                .map_err(|e| conv(e.to_string()))?
                .into_iter()
                .map(u8::from)
                .collect();
            Tensor::from_vec(v, shape, device)?
        }
        other => return Err(Error::msg(format!("no constant form for {other:?}"))),
    };
    Ok(Some(t))
}

/// A (small) tensor read back into a MIL constant of dtype `dtype`, so that
/// folded results can serve as parameters of later ops.
pub(crate) fn tensor_to_value(t: &Tensor, dtype: DataType) -> Result<TensorValue> {
    let shape = t.dims().to_vec();
    let flat = t.flatten_all()?;
    let data = if dtype.is_float() {
        TensorData::F64(flat.to_dtype(DType::F64)?.to_vec1::<f64>()?)
    } else if dtype == DataType::Bool {
        TensorData::Bool(
            flat.to_dtype(DType::U8)?
                .to_vec1::<u8>()?
                .into_iter()
                .map(|b| b != 0)
                .collect(),
        )
    } else if dtype.is_int() {
        TensorData::I64(flat.to_dtype(DType::I64)?.to_vec1::<i64>()?)
    } else {
        return Err(Error::msg(format!("no tensor form for {dtype}")));
    };
    Ok(TensorValue::new(dtype, shape, data))
}
