//! Decoding the elements of a constant tensor into typed vectors.
//!
//! A [`TensorValue`] keeps its elements the way the file stored them
//! ([`TensorData`]): protobuf repeated fields, literals of MIL text, or
//! little-endian bytes in the tensor's own dtype (sub-byte types packed
//! LSB-first in one bit stream, FORMATS.md §3). The methods here read any of
//! those into the vector a caller wants, checking the element count against
//! the shape first, so nothing is allocated from a size the data does not back.
//!
//! Conversions between kinds follow numpy's `astype` where that is well
//! defined: floats to integers truncate toward zero, anything to bool is
//! "not zero", booleans are 0 and 1. Where numpy would wrap or give an
//! unspecified value (a float out of an integer's range, NaN to an integer,
//! a negative value to an unsigned index) the conversion fails instead.
//!
//! Errors are plain `String`s that say what is wrong with the value; callers
//! wrap them into [`crate::Error`] with the file, function and op they know.

use std::borrow::Cow;

use half::{bf16, f16};

use super::types::DataType;
use super::value::{TensorData, TensorValue};

/// One element as read from storage, before conversion to the target type.
#[derive(Clone, Copy)]
enum Scalar {
    Float(f64),
    Int(i64),
    UInt(u64),
    Bool(bool),
}

/// A type that elements can be converted to.
trait Element: Sized {
    /// Name for messages.
    const NAME: &'static str;
    /// Converts one element.
    fn from_scalar(s: Scalar) -> Result<Self, String>;
}

impl Element for f64 {
    const NAME: &'static str = "fp64";
    fn from_scalar(s: Scalar) -> Result<Self, String> {
        Ok(match s {
            Scalar::Float(v) => v,
            Scalar::Int(v) => v as f64,
            Scalar::UInt(v) => v as f64,
            Scalar::Bool(b) => f64::from(u8::from(b)),
        })
    }
}

impl Element for f32 {
    const NAME: &'static str = "fp32";
    fn from_scalar(s: Scalar) -> Result<Self, String> {
        Ok(match s {
            Scalar::Float(v) => v as f32,
            Scalar::Int(v) => v as f32,
            Scalar::UInt(v) => v as f32,
            Scalar::Bool(b) => f32::from(u8::from(b)),
        })
    }
}

impl Element for f16 {
    const NAME: &'static str = "fp16";
    fn from_scalar(s: Scalar) -> Result<Self, String> {
        Ok(match s {
            Scalar::Float(v) => f16::from_f64(v),
            other => f16::from_f32(f32::from_scalar(other)?),
        })
    }
}

impl Element for bf16 {
    const NAME: &'static str = "bf16";
    fn from_scalar(s: Scalar) -> Result<Self, String> {
        Ok(match s {
            Scalar::Float(v) => bf16::from_f64(v),
            other => bf16::from_f32(f32::from_scalar(other)?),
        })
    }
}

impl Element for i64 {
    const NAME: &'static str = "int64";
    fn from_scalar(s: Scalar) -> Result<Self, String> {
        match s {
            Scalar::Float(v) => {
                let t = v.trunc();
                // -2^63 is exact in f64; the valid range is [-2^63, 2^63).
                let min = i64::MIN as f64;
                if t.is_finite() && t >= min && t < -min {
                    Ok(t as i64)
                } else {
                    Err(format!("value {v} does not fit int64"))
                }
            }
            Scalar::Int(v) => Ok(v),
            Scalar::UInt(v) => {
                i64::try_from(v).map_err(|_| format!("value {v} does not fit int64"))
            }
            Scalar::Bool(b) => Ok(i64::from(b)),
        }
    }
}

impl Element for i32 {
    const NAME: &'static str = "int32";
    fn from_scalar(s: Scalar) -> Result<Self, String> {
        let v = i64::from_scalar(s)?;
        i32::try_from(v).map_err(|_| format!("value {v} does not fit int32"))
    }
}

impl Element for u32 {
    const NAME: &'static str = "uint32";
    fn from_scalar(s: Scalar) -> Result<Self, String> {
        let v = match s {
            Scalar::UInt(v) => i128::from(v),
            other => i128::from(i64::from_scalar(other)?),
        };
        u32::try_from(v).map_err(|_| format!("value {v} does not fit uint32"))
    }
}

impl Element for bool {
    const NAME: &'static str = "bool";
    fn from_scalar(s: Scalar) -> Result<Self, String> {
        Ok(match s {
            Scalar::Float(v) => v != 0.0,
            Scalar::Int(v) => v != 0,
            Scalar::UInt(v) => v != 0,
            Scalar::Bool(b) => b,
        })
    }
}

/// Decodes one fp8 E4M3FN byte (1 sign, 4 exponent bits with bias 7, 3
/// mantissa bits) exactly. The format has no infinities; `S.1111.111` is NaN
/// and every other pattern is finite (largest 448).
pub fn fp8_e4m3fn_to_f32(b: u8) -> f32 {
    let negative = b & 0x80 != 0;
    let exp = u32::from((b >> 3) & 0x0F);
    let man = u32::from(b & 0x07);
    let magnitude = if exp == 0x0F && man == 0x07 {
        f32::NAN
    } else if exp == 0 {
        // Subnormal: man/8 * 2^-6 = man * 2^-9, exact in f32.
        man as f32 * (1.0 / 512.0)
    } else {
        // Normal: rebias the exponent from 7 to 127 and widen the mantissa.
        f32::from_bits(((exp + 120) << 23) | (man << 20))
    };
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

/// Decodes one fp8 E5M2 byte (1 sign, 5 exponent bits with bias 15, 2
/// mantissa bits) exactly. It follows IEEE rules: exponent all ones is
/// infinity (mantissa 0) or NaN. E5M2 is the high byte of an IEEE fp16.
pub fn fp8_e5m2_to_f32(b: u8) -> f32 {
    f16::from_bits(u16::from(b) << 8).to_f32()
}

/// Number of bytes that `count` elements of `bits` bits occupy when packed;
/// `None` on overflow.
pub fn packed_len(count: usize, bits: u32) -> Option<usize> {
    let total = count.checked_mul(bits as usize)?;
    Some(total.div_ceil(8))
}

/// Unpacks `count` unsigned values of `bits` bits (1 to 8) from a bit stream
/// packed LSB-first, calling `f` on each. `bytes` must hold exactly
/// [`packed_len`] bytes; the unused tail bits are ignored.
pub fn for_each_packed(
    bytes: &[u8],
    bits: u32,
    count: usize,
    mut f: impl FnMut(u8) -> Result<(), String>,
) -> Result<(), String> {
    if !(1..=8).contains(&bits) {
        return Err(format!("cannot unpack {bits}-bit values"));
    }
    let need = packed_len(count, bits).ok_or("element count overflows")?;
    if bytes.len() != need {
        return Err(format!(
            "{count} values of {bits} bits need {need} bytes, found {}",
            bytes.len()
        ));
    }
    let mask = (1u32 << bits) - 1;
    let mut acc = 0u32;
    let mut held = 0u32;
    let mut next = bytes.iter();
    for _ in 0..count {
        if held < bits {
            // `need` bytes cover every element, so a byte is always left here.
            let b = next.next().copied().unwrap_or(0);
            acc |= u32::from(b) << held;
            held += 8;
        }
        f((acc & mask) as u8)?;
        acc >>= bits;
        held -= bits;
    }
    Ok(())
}

/// Unpacks `count` unsigned `bits`-bit values (see [`for_each_packed`]).
pub fn unpack_bits(bytes: &[u8], bits: u32, count: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    // The length check in for_each_packed runs before any push, so the
    // reservation is backed by `bytes`.
    if packed_len(count, bits) == Some(bytes.len()) {
        out.reserve_exact(count);
    }
    for_each_packed(bytes, bits, count, |v| {
        out.push(v);
        Ok(())
    })?;
    Ok(out)
}

/// Packs unsigned `bits`-bit values (1 to 8) LSB-first into bytes, the
/// layout [`unpack_bits`] reads. Only the low `bits` bits of each value are kept.
pub fn pack_bits(values: &[u8], bits: u32) -> Vec<u8> {
    let bits = bits.clamp(1, 8);
    let mask = (1u32 << bits) - 1;
    let mut out = Vec::with_capacity(packed_len(values.len(), bits).unwrap_or(0));
    let mut acc = 0u32;
    let mut held = 0u32;
    for &v in values {
        acc |= (u32::from(v) & mask) << held;
        held += bits;
        while held >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            held -= 8;
        }
    }
    if held > 0 {
        out.push(acc as u8);
    }
    out
}

/// Encodes floats as little-endian bytes of a float dtype (`fp16`, `bf16`,
/// `fp32`, `fp64`), rounding to nearest-even.
pub fn encode_floats(dtype: DataType, values: &[f32]) -> Result<Vec<u8>, String> {
    let width = match dtype {
        DataType::Fp16 | DataType::Bf16 => 2,
        DataType::Fp32 => 4,
        DataType::Fp64 => 8,
        other => return Err(format!("cannot encode floats as {other}")),
    };
    let mut out = Vec::with_capacity(values.len().saturating_mul(width));
    for &v in values {
        match dtype {
            DataType::Fp16 => out.extend_from_slice(&f16::from_f32(v).to_le_bytes()),
            DataType::Bf16 => out.extend_from_slice(&bf16::from_f32(v).to_le_bytes()),
            DataType::Fp32 => out.extend_from_slice(&v.to_le_bytes()),
            _ => out.extend_from_slice(&f64::from(v).to_le_bytes()),
        }
    }
    Ok(out)
}

/// Calls `f` on each `W`-byte little-endian element of `bytes`, which must
/// hold exactly `count` of them.
fn each_le<const W: usize>(
    bytes: &[u8],
    count: usize,
    mut f: impl FnMut([u8; W]) -> Result<(), String>,
) -> Result<(), String> {
    let need = count.checked_mul(W).ok_or("element count overflows")?;
    if bytes.len() != need {
        return Err(format!(
            "{count} elements of {W} bytes need {need} bytes, found {}",
            bytes.len()
        ));
    }
    for chunk in bytes.chunks_exact(W) {
        let mut a = [0u8; W];
        a.copy_from_slice(chunk);
        f(a)?;
    }
    Ok(())
}

/// Calls `f` on each element of little-endian `bytes` of `dtype`.
fn visit_bytes(
    dtype: DataType,
    bytes: &[u8],
    count: usize,
    mut f: impl FnMut(Scalar) -> Result<(), String>,
) -> Result<(), String> {
    use Scalar::{Bool, Float, Int, UInt};
    match dtype {
        DataType::Fp16 => each_le(bytes, count, |b| f(Float(f16::from_le_bytes(b).to_f64()))),
        DataType::Bf16 => each_le(bytes, count, |b| f(Float(bf16::from_le_bytes(b).to_f64()))),
        DataType::Fp32 => each_le(bytes, count, |b| f(Float(f32::from_le_bytes(b).into()))),
        DataType::Fp64 => each_le(bytes, count, |b| f(Float(f64::from_le_bytes(b)))),
        DataType::Fp8E4M3Fn => each_le(bytes, count, |[b]| f(Float(fp8_e4m3fn_to_f32(b).into()))),
        DataType::Fp8E5M2 => each_le(bytes, count, |[b]| f(Float(fp8_e5m2_to_f32(b).into()))),
        DataType::Bool => each_le(bytes, count, |[b]| f(Bool(b != 0))),
        DataType::Int8 => each_le(bytes, count, |[b]| f(Int((b as i8).into()))),
        DataType::Int16 => each_le(bytes, count, |b| f(Int(i16::from_le_bytes(b).into()))),
        DataType::Int32 => each_le(bytes, count, |b| f(Int(i32::from_le_bytes(b).into()))),
        DataType::Int64 => each_le(bytes, count, |b| f(Int(i64::from_le_bytes(b)))),
        DataType::UInt8 => each_le(bytes, count, |[b]| f(UInt(b.into()))),
        DataType::UInt16 => each_le(bytes, count, |b| f(UInt(u16::from_le_bytes(b).into()))),
        DataType::UInt32 => each_le(bytes, count, |b| f(UInt(u32::from_le_bytes(b).into()))),
        DataType::UInt64 => each_le(bytes, count, |b| f(UInt(u64::from_le_bytes(b)))),
        DataType::Int4 => for_each_packed(bytes, 4, count, |v| {
            // Sign-extend the 4-bit two's complement value.
            f(Int(i64::from(((v << 4) as i8) >> 4)))
        }),
        DataType::UInt1 | DataType::UInt2 | DataType::UInt3 | DataType::UInt4 | DataType::UInt6 => {
            let bits = dtype.bit_width().unwrap_or(8);
            for_each_packed(bytes, bits, count, |v| f(UInt(v.into())))
        }
        DataType::String => Err("string tensors have no byte encoding".into()),
    }
}

/// Calls `f` on each element of a stored vector that must hold `count` of them.
fn each_stored<T: Copy>(
    values: &[T],
    count: usize,
    conv: impl Fn(T) -> Scalar,
    mut f: impl FnMut(Scalar) -> Result<(), String>,
) -> Result<(), String> {
    if values.len() != count {
        return Err(format!(
            "shape holds {count} elements but {} are stored",
            values.len()
        ));
    }
    values.iter().try_for_each(|&v| f(conv(v)))
}

impl TensorValue {
    /// Number of elements, failing when the shape's product overflows.
    fn checked_count(&self) -> Result<usize, String> {
        self.shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| format!("shape {:?} has too many elements", self.shape))
    }

    /// Calls `f` on every element in storage order, after checking that the
    /// storage holds exactly as many elements as the shape.
    fn visit(&self, f: impl FnMut(Scalar) -> Result<(), String>) -> Result<(), String> {
        let n = self.checked_count()?;
        let what = |e: String| format!("{} tensor {:?}: {e}", self.dtype, self.shape);
        match &self.data {
            TensorData::F32(v) => each_stored(v, n, |x| Scalar::Float(x.into()), f),
            TensorData::F64(v) => each_stored(v, n, Scalar::Float, f),
            TensorData::I32(v) => each_stored(v, n, |x| Scalar::Int(x.into()), f),
            TensorData::I64(v) => each_stored(v, n, Scalar::Int, f),
            TensorData::Bool(v) => each_stored(v, n, Scalar::Bool, f),
            TensorData::Str(_) => Err("string data cannot be read as numbers".into()),
            TensorData::Bytes(b) => visit_bytes(self.dtype, b.as_slice(), n, f),
            TensorData::Unmapped => {
                Err("weight-file data not mapped yet (ModelFile::map_weights maps it)".into())
            }
        }
        .map_err(what)
    }

    /// Converts every element to `T`, in row-major order.
    fn to_vec<T: Element>(&self) -> Result<Vec<T>, String> {
        let mut out = Vec::new();
        // Reserve only what the storage backs: the shape alone is untrusted.
        if let Ok(n) = self.checked_count() {
            if n <= self.stored_len() {
                out.reserve_exact(n);
            }
        }
        self.visit(|s| {
            out.push(T::from_scalar(s).map_err(|e| format!("to {}: {e}", T::NAME))?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The largest element count the storage could hold (for reservations).
    fn stored_len(&self) -> usize {
        match &self.data {
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::Bool(v) => v.len(),
            TensorData::Str(v) => v.len(),
            TensorData::Bytes(b) => b.len().saturating_mul(8),
            TensorData::Unmapped => 0,
        }
    }

    /// The elements as `f32` (fp64 and large integers round to nearest).
    pub fn to_f32_vec(&self) -> Result<Vec<f32>, String> {
        self.to_vec()
    }

    /// The elements as `f64`.
    pub fn to_f64_vec(&self) -> Result<Vec<f64>, String> {
        self.to_vec()
    }

    /// The elements as IEEE half floats (rounded to nearest-even).
    pub fn to_f16_vec(&self) -> Result<Vec<f16>, String> {
        if let (DataType::Fp16, TensorData::Bytes(b)) = (self.dtype, &self.data) {
            // Keep the exact bit patterns (NaN payloads included).
            let mut out = Vec::new();
            each_le(b.as_slice(), self.checked_count()?, |x| {
                out.push(f16::from_le_bytes(x));
                Ok(())
            })?;
            return Ok(out);
        }
        self.to_vec()
    }

    /// The elements as bfloat16 (rounded to nearest-even).
    pub fn to_bf16_vec(&self) -> Result<Vec<bf16>, String> {
        self.to_vec()
    }

    /// The elements as `i64`; floats truncate toward zero, and NaN, infinities
    /// and values out of range are errors.
    pub fn to_i64_vec(&self) -> Result<Vec<i64>, String> {
        self.to_vec()
    }

    /// The elements as `i32`, with the checks of [`Self::to_i64_vec`] and an
    /// error for values outside the `i32` range.
    pub fn to_i32_vec(&self) -> Result<Vec<i32>, String> {
        self.to_vec()
    }

    /// The elements as `u32` (indices, shapes, sub-byte palette indices); an
    /// error for negative values or values above `u32::MAX`.
    pub fn to_u32_vec(&self) -> Result<Vec<u32>, String> {
        self.to_vec()
    }

    /// The elements as booleans: true where not zero (numpy's `astype(bool)`).
    pub fn to_bool_vec(&self) -> Result<Vec<bool>, String> {
        self.to_vec()
    }

    /// The elements as dimension sizes or indices (`usize`), rejecting negatives.
    pub fn to_usize_vec(&self) -> Result<Vec<usize>, String> {
        self.to_vec::<i64>()?
            .into_iter()
            .map(|v| usize::try_from(v).map_err(|_| format!("{v} is not a valid size")))
            .collect()
    }

    /// The one element of a single-element tensor (any rank), as `f64`.
    pub fn scalar_f64(&self) -> Result<f64, String> {
        self.single()?;
        Ok(self.to_vec::<f64>()?.first().copied().unwrap_or_default())
    }

    /// The one element of a single-element tensor (any rank), as `i64`.
    pub fn scalar_i64(&self) -> Result<i64, String> {
        self.single()?;
        Ok(self.to_vec::<i64>()?.first().copied().unwrap_or_default())
    }

    /// Fails unless the tensor holds exactly one element.
    fn single(&self) -> Result<(), String> {
        match self.checked_count()? {
            1 => Ok(()),
            n => Err(format!(
                "expected a single value, found {} tensor {:?} ({n} elements)",
                self.dtype, self.shape
            )),
        }
    }

    /// The elements as little-endian bytes in the tensor's own dtype
    /// (sub-byte types packed LSB-first, `bool` one byte each): borrowed when
    /// already stored that way, encoded otherwise. Integer values out of the
    /// dtype's range are errors; fp8 and strings cannot be encoded from other
    /// storage.
    pub fn to_le_bytes(&self) -> Result<Cow<'_, [u8]>, String> {
        let n = self.checked_count()?;
        if let TensorData::Bytes(b) = &self.data {
            let need = self
                .dtype
                .bit_width()
                .and_then(|bits| packed_len(n, bits))
                .ok_or_else(|| format!("{} tensors have no byte encoding", self.dtype))?;
            if b.len() != need {
                return Err(format!(
                    "{} tensor {:?} needs {need} bytes, found {}",
                    self.dtype,
                    self.shape,
                    b.len()
                ));
            }
            return Ok(Cow::Borrowed(b.as_slice()));
        }
        let floats = |v: Vec<f32>| encode_floats(self.dtype, &v);
        let bytes = match self.dtype {
            DataType::Fp16 => Ok(self
                .to_f16_vec()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect()),
            DataType::Bf16 => Ok(self
                .to_bf16_vec()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect()),
            DataType::Fp32 => floats(self.to_f32_vec()?),
            DataType::Fp64 => Ok(self
                .to_f64_vec()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect()),
            DataType::Bool => Ok(self.to_bool_vec()?.into_iter().map(u8::from).collect()),
            DataType::Fp8E4M3Fn | DataType::Fp8E5M2 | DataType::String => Err(format!(
                "cannot encode {} values held as {}",
                self.dtype,
                storage_name(&self.data)
            )),
            int => encode_ints(int, &self.to_i64_vec()?),
        };
        bytes.map(Cow::Owned)
    }
}

/// Encodes integers as little-endian bytes of an integer dtype, packing
/// sub-byte types; values out of the dtype's range are errors.
fn encode_ints(dtype: DataType, values: &[i64]) -> Result<Vec<u8>, String> {
    let (lo, hi): (i128, i128) = match dtype {
        DataType::Int4 => (-8, 7),
        DataType::Int8 => (i8::MIN.into(), i8::MAX.into()),
        DataType::Int16 => (i16::MIN.into(), i16::MAX.into()),
        DataType::Int32 => (i32::MIN.into(), i32::MAX.into()),
        DataType::Int64 => (i64::MIN.into(), i64::MAX.into()),
        DataType::UInt64 => (0, u64::MAX.into()),
        other => {
            let bits = other
                .bit_width()
                .filter(|_| other.is_int())
                .ok_or_else(|| format!("cannot encode integers as {other}"))?;
            (0, (1i128 << bits) - 1)
        }
    };
    if let Some(v) = values
        .iter()
        .find(|&&v| i128::from(v) < lo || i128::from(v) > hi)
    {
        return Err(format!("value {v} does not fit {dtype}"));
    }
    let width = dtype.bit_width().unwrap_or(8);
    if width < 8 {
        // Two's complement truncation; pack_bits keeps the low `width` bits.
        let raw: Vec<u8> = values.iter().map(|&v| v as u8).collect();
        return Ok(pack_bits(&raw, width));
    }
    let bytes = (width / 8) as usize;
    let mut out = Vec::with_capacity(values.len().saturating_mul(bytes));
    for &v in values {
        out.extend_from_slice(&v.to_le_bytes()[..bytes]);
    }
    Ok(out)
}

/// The storage kind, for messages.
fn storage_name(data: &TensorData) -> &'static str {
    match data {
        TensorData::F32(_) => "fp32 values",
        TensorData::F64(_) => "fp64 values",
        TensorData::I32(_) => "int32 values",
        TensorData::I64(_) => "int64 values",
        TensorData::Bool(_) => "booleans",
        TensorData::Str(_) => "strings",
        TensorData::Bytes(_) => "bytes",
        TensorData::Unmapped => "unmapped weight-file data",
    }
}

#[cfg(test)]
#[path = "elements_tests.rs"]
mod tests;
