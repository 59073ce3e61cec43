//! Decompression of the `constexpr_*` ops that hold compressed weights.
//!
//! Core ML stores palettized, quantized and sparse weights as constexpr ops
//! whose parameters are constants. [`decompress`] turns one such op into the
//! dense constant it stands for, following coremltools' definitions of the
//! ops (`ops/defs/iOS16/constexpr_ops.py`, `ops/defs/iOS18/compression.py`):
//!
//! | op | decoded as |
//! |---|---|
//! | `constexpr_affine_dequantize` (iOS16) | `(quantized_data - zero_point) * scale`, per tensor or along `axis` |
//! | `constexpr_blockwise_shift_scale` (iOS18) | `(data - offset) * scale`, one scale per block of `data.shape[i] / scale.shape[i]` |
//! | `constexpr_cast` | `source_val` converted to `output_dtype` |
//! | `constexpr_lut_to_dense` | `lut[group][index]` (iOS16: packed `indices` + `shape`; iOS18: grouped, vector LUTs) |
//! | `constexpr_sparse_to_dense` | `nonzero_data` at the set bits of `mask` in row-major order, zero elsewhere |
//! | `constexpr_lut_to_sparse` (iOS18) | two outputs: the mask and the looked-up nonzero values |
//! | `constexpr_sparse_blockwise_shift_scale` (iOS18) | two outputs: the mask and the dequantized nonzero values |
//!
//! Parameters are found in both places models put them: as op attributes
//! (iOS16 ops, and compiled `model.mil` text) or as inputs bound to a literal
//! or to the name of another constant, resolved through a `lookup` closure
//! (iOS18 ops in a protobuf program, where each parameter is a `const` op).
//! The iOS16 and iOS18 forms of `constexpr_lut_to_dense` and
//! `constexpr_sparse_to_dense` share a name; the iOS16 form is recognised by
//! its `shape` parameter.
//!
//! **Output representation.** Every decoded tensor has the op's output dtype
//! and holds [`TensorData::Bytes`]: little-endian bytes in that dtype (fp16
//! weights stay two bytes an element; sub-byte outputs are packed LSB-first).
//! Read it with the [`TensorValue`] accessors of [`super::elements`]
//! (`to_f32_vec`, `to_le_bytes`...). Arithmetic follows numpy as coremltools
//! does it: affine dequantization in fp32 rounded once to the output dtype;
//! blockwise dequantization in the scale's dtype (fp16 rounding after each
//! step when the scale is fp16).
//!
//! Errors are `String`s naming the parameter and what is wrong; callers wrap
//! them with the function and op (e.g. into [`crate::Error::InvalidOp`]).
//! Inconsistent parameters never panic.

mod lut;
mod params;
mod shift_scale;
mod sparse;

use std::collections::BTreeMap;

use super::program::{Block, Operation};
use super::types::{DataType, ValueType};
use super::value::{TensorData, TensorValue, Value};
use params::{dense, in_param, Params};

/// The op types this module decompresses.
pub const CONSTEXPR_OPS: [&str; 7] = [
    "constexpr_affine_dequantize",
    "constexpr_blockwise_shift_scale",
    "constexpr_cast",
    "constexpr_lut_to_dense",
    "constexpr_lut_to_sparse",
    "constexpr_sparse_blockwise_shift_scale",
    "constexpr_sparse_to_dense",
];

/// True when [`decompress_all`] knows `op_type`.
pub fn is_constexpr(op_type: &str) -> bool {
    CONSTEXPR_OPS.contains(&op_type)
}

/// The constants of a block by name: each `const` op's output name mapped to
/// its `val` attribute. A ready-made table for the `lookup` of [`decompress`].
pub fn block_constants(block: &Block) -> BTreeMap<&str, &Value> {
    block
        .operations
        .iter()
        .filter(|op| op.op_type == "const")
        .filter_map(|op| Some((op.outputs.first()?.name.as_str(), op.attribute("val")?)))
        .collect()
}

/// Decompresses a constexpr op of one output into its dense constant.
///
/// `lookup` resolves the names that iOS18-style inputs are bound to (the
/// outputs of `const` ops, or already decompressed constexpr outputs when
/// constexpr ops are chained). Ops with two outputs
/// (`constexpr_lut_to_sparse`, `constexpr_sparse_blockwise_shift_scale`)
/// need [`decompress_all`].
///
/// ```
/// use candle_coreml::mil::{constexpr, DataType, Operation, TensorData, TensorValue, Value};
///
/// // iOS16 form: parameters as attributes, as in a compiled model.mil.
/// let t = |dtype, shape, data| Value::Tensor(TensorValue::new(dtype, shape, data));
/// let op = Operation {
///     op_type: "constexpr_affine_dequantize".into(),
///     inputs: Default::default(),
///     outputs: vec![],
///     blocks: vec![],
///     attributes: [
///         ("quantized_data".to_string(), t(DataType::Int8, vec![3], TensorData::I32(vec![-1, 0, 3]))),
///         ("zero_point".to_string(), t(DataType::Int8, vec![], TensorData::I32(vec![-1]))),
///         ("scale".to_string(), t(DataType::Fp32, vec![], TensorData::F32(vec![0.5]))),
///         ("axis".to_string(), t(DataType::Int32, vec![], TensorData::I32(vec![0]))),
///     ]
///     .into_iter()
///     .collect(),
///     location: None,
/// };
/// let dense = constexpr::decompress(&op, &|_| None).unwrap();
/// assert_eq!(dense.dtype, DataType::Fp32);
/// assert_eq!(dense.to_f32_vec().unwrap(), vec![0.0, 0.5, 2.0]);
/// ```
pub fn decompress<'v>(
    op: &Operation,
    lookup: &dyn Fn(&str) -> Option<&'v Value>,
) -> Result<TensorValue, String> {
    let mut outputs = decompress_all(op, lookup)?;
    match outputs.len() {
        1 => outputs.pop().ok_or_else(|| "no output".to_string()),
        n => Err(format!(
            "{} has {n} outputs (mask and nonzero data); decompress each with decompress_all",
            op.op_type
        )),
    }
}

/// Decompresses a constexpr op into one constant per output, in output
/// order; see [`decompress`]. When the op declares its outputs, their dtypes
/// and (known) shapes must match what the parameters decode to.
pub fn decompress_all<'v>(
    op: &Operation,
    lookup: &dyn Fn(&str) -> Option<&'v Value>,
) -> Result<Vec<TensorValue>, String> {
    // Parameters borrow from the op or from the lookup's values: shorten
    // both to one lifetime.
    decompress_params(op, &|name| lookup(name))
}

/// [`decompress_all`] with the op and the looked-up values sharing a lifetime.
fn decompress_params<'a>(
    op: &'a Operation,
    lookup: &dyn Fn(&str) -> Option<&'a Value>,
) -> Result<Vec<TensorValue>, String> {
    let p = Params { op, lookup };
    let outputs = match op.op_type.as_str() {
        "constexpr_affine_dequantize" => vec![shift_scale::affine_dequantize(&p)?],
        "constexpr_blockwise_shift_scale" => vec![shift_scale::blockwise_shift_scale(&p)?],
        "constexpr_cast" => vec![cast(&p)?],
        "constexpr_lut_to_dense" => vec![lut::lut_to_dense(&p)?],
        "constexpr_sparse_to_dense" => vec![sparse::sparse_to_dense(&p)?],
        "constexpr_lut_to_sparse" => lut::lut_to_sparse(&p)?,
        "constexpr_sparse_blockwise_shift_scale" => shift_scale::sparse_blockwise_shift_scale(&p)?,
        other => return Err(format!("{other} is not a constexpr op")),
    };
    check_outputs(op, &outputs)?;
    Ok(outputs)
}

/// Compares decoded outputs with the types the op declares.
fn check_outputs(op: &Operation, outputs: &[TensorValue]) -> Result<(), String> {
    if op.outputs.is_empty() {
        return Ok(());
    }
    if op.outputs.len() != outputs.len() {
        return Err(format!(
            "declares {} outputs, but {} decodes to {}",
            op.outputs.len(),
            op.op_type,
            outputs.len()
        ));
    }
    for (declared, got) in op.outputs.iter().zip(outputs) {
        let ValueType::Tensor(ty) = &declared.ty else {
            return Err(format!("output {:?} is not a tensor", declared.name));
        };
        let shape_ok = match &ty.shape {
            None => true,
            Some(dims) => {
                dims.len() == got.shape.len()
                    && dims
                        .iter()
                        .zip(&got.shape)
                        .all(|(d, &g)| d.fixed().is_none_or(|d| d == g))
            }
        };
        if ty.dtype != got.dtype || !shape_ok {
            return Err(format!(
                "output {:?} is declared {ty}, but the parameters decode to {} {:?}",
                declared.name, got.dtype, got.shape
            ));
        }
    }
    Ok(())
}

/// `constexpr_cast`: `source_val` converted to `output_dtype` (numpy `astype`).
fn cast(p: &Params) -> Result<TensorValue, String> {
    let source = p.req("source_val")?;
    let name = p
        .req("output_dtype")?
        .as_str()
        .ok_or("parameter `output_dtype` is not a string")?;
    let dtype = DataType::from_mil_name(name)
        .ok_or_else(|| format!("parameter `output_dtype`: unknown dtype {name:?}"))?;
    let values = source.to_f64_vec().map_err(in_param("source_val"))?;
    let typed = TensorValue::new(dtype, source.shape.clone(), TensorData::F64(values));
    let bytes = typed
        .to_le_bytes()
        .map_err(in_param("source_val"))?
        .into_owned();
    Ok(dense(dtype, source.shape.clone(), bytes))
}
