//! The candle dtypes the portable backend computes MIL values in.

use candle_core::DType;

use crate::mil::DataType;
use crate::options::ComputePrecision;

/// The candle dtype a MIL dtype computes in: floats in f32 (or the program's
/// own half type under [`ComputePrecision::Program`]), every integer type in
/// i64 (candle's best-supported integer type on every device), bool in u8.
pub(crate) fn compute_dtype(d: DataType, precision: ComputePrecision) -> Option<DType> {
    Some(match d {
        DataType::Fp64 => DType::F64,
        DataType::Fp16 | DataType::Bf16 | DataType::Fp8E4M3Fn | DataType::Fp8E5M2 => {
            match (precision, d) {
                (ComputePrecision::Program, DataType::Fp16) => DType::F16,
                (ComputePrecision::Program, DataType::Bf16) => DType::BF16,
                _ => DType::F32,
            }
        }
        DataType::Fp32 => DType::F32,
        DataType::Bool => DType::U8,
        DataType::String => return None,
        _ => DType::I64,
    })
}
