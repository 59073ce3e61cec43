//! Dtype rules shared by both backends: the candle dtype a model's inputs
//! and outputs are exchanged in, and which conversions of a caller's tensor
//! are accepted.

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};
use crate::mil::DataType;

/// The candle dtype a model input or output of MIL dtype `d` is exchanged in
/// with the caller (the model's own dtype, as close as candle has it).
pub(crate) fn io_dtype(d: DataType) -> Option<DType> {
    Some(match d {
        DataType::Fp16 => DType::F16,
        DataType::Bf16 => DType::BF16,
        DataType::Fp32 | DataType::Fp8E4M3Fn | DataType::Fp8E5M2 => DType::F32,
        DataType::Fp64 => DType::F64,
        DataType::Int32 => DType::I32,
        DataType::Int16 | DataType::Int8 => DType::I16,
        DataType::Int64 | DataType::UInt64 | DataType::Int4 => DType::I64,
        DataType::UInt32 | DataType::UInt16 => DType::U32,
        DataType::Bool
        | DataType::UInt8
        | DataType::UInt1
        | DataType::UInt2
        | DataType::UInt3
        | DataType::UInt4
        | DataType::UInt6 => DType::U8,
        DataType::String => return None,
    })
}

/// Converts `t` (the value of input or state `input`) to `want` where that
/// is lossless or usual: any float to any float; i64 to i32 or i16 and i32
/// to i16 when every value fits; integer widening (anything to i64, to i32
/// from narrower types). Anything else is [`Error::DtypeMismatch`].
pub(crate) fn convert_dtype(input: &str, t: &Tensor, want: DType) -> Result<Tensor> {
    let got = t.dtype();
    if got == want {
        return Ok(t.clone());
    }
    let name = |d: DType| format!("{d:?}").to_lowercase();
    let ok = match (got, want) {
        (a, b) if a.is_float() && b.is_float() => true,
        (DType::I64, DType::I32) | (DType::I64, DType::I16) | (DType::I32, DType::I16) => {
            check_range(input, t, want)?;
            true
        }
        (a, b) if a.is_int() && b.is_int() => {
            b == DType::I64 || (b == DType::I32 && a != DType::U32)
        }
        _ => false,
    };
    if !ok {
        return Err(Error::DtypeMismatch {
            input: input.to_string(),
            expected: name(want),
            got: name(got),
        });
    }
    Ok(t.to_dtype(want)?)
}

/// Checks that every value of the integer tensor `t` fits `want` (i32 or i16).
fn check_range(input: &str, t: &Tensor, want: DType) -> Result<()> {
    let v = t.flatten_all()?.to_dtype(DType::I64)?;
    if v.elem_count() == 0 {
        return Ok(());
    }
    let (lo, hi) = if want == DType::I32 {
        (i64::from(i32::MIN), i64::from(i32::MAX))
    } else {
        (i64::from(i16::MIN), i64::from(i16::MAX))
    };
    let min = v.min(0)?.to_scalar::<i64>()?;
    let max = v.max(0)?.to_scalar::<i64>()?;
    if min < lo || max > hi {
        return Err(Error::DtypeMismatch {
            input: input.to_string(),
            expected: format!("{want:?}").to_lowercase(),
            got: format!(
                "{} with values {min}..={max} that do not fit",
                format!("{:?}", t.dtype()).to_lowercase()
            ),
        });
    }
    Ok(())
}
