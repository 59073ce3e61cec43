//! Tests of constant-tensor element decoding (`mil::elements`) and of
//! constexpr decompression (`mil::constexpr`).
//!
//! Expected values come from elsewhere: fp8 tables from torch 2.7.0, the
//! worked examples in coremltools' op docstrings (`ops/defs/iOS16/constexpr_ops.py`,
//! `ops/defs/iOS18/compression.py`), hand computation of the documented
//! formulas, and, for the fixtures under `tests/fixtures/compression/`, the
//! dense weights that coremltools' own decompression (`decompress_weights`'
//! graph pass) wrote next to each compressed .mlpackage.

use std::collections::BTreeMap;
use std::path::Path;

use candle_coreml::mil::constexpr::{decompress, decompress_all};
use candle_coreml::mil::elements::{fp8_e4m3fn_to_f32, fp8_e5m2_to_f32, unpack_bits};
use candle_coreml::mil::{
    Argument, Binding, ByteView, DataType, NamedValueType, Operation, TensorData, TensorType,
    TensorValue, Value, ValueType,
};
use half::f16;

// ---------------------------------------------------------------- helpers

fn tensor(dtype: DataType, shape: &[usize], data: TensorData) -> TensorValue {
    TensorValue::new(dtype, shape.to_vec(), data)
}

fn bytes(dtype: DataType, shape: &[usize], b: &[u8]) -> TensorValue {
    tensor(
        dtype,
        shape,
        TensorData::Bytes(ByteView::from_vec(b.to_vec())),
    )
}

fn ints(dtype: DataType, shape: &[usize], v: &[i64]) -> TensorValue {
    tensor(dtype, shape, TensorData::I64(v.to_vec()))
}

fn floats(dtype: DataType, shape: &[usize], v: &[f32]) -> TensorValue {
    tensor(dtype, shape, TensorData::F32(v.to_vec()))
}

fn fp16_bytes(shape: &[usize], v: &[f32]) -> TensorValue {
    let b: Vec<u8> = v
        .iter()
        .flat_map(|x| f16::from_f32(*x).to_le_bytes())
        .collect();
    bytes(DataType::Fp16, shape, &b)
}

/// An op of the iOS16 form: every parameter an attribute.
fn attr_op(op_type: &str, params: Vec<(&str, TensorValue)>) -> Operation {
    Operation {
        op_type: op_type.into(),
        inputs: BTreeMap::new(),
        outputs: vec![],
        blocks: vec![],
        attributes: params
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::Tensor(v)))
            .collect(),
        location: None,
    }
}

/// An op of the iOS18 form: every parameter an input bound to a literal.
fn input_op(op_type: &str, params: Vec<(&str, TensorValue)>) -> Operation {
    Operation {
        op_type: op_type.into(),
        inputs: params
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Argument::single(Binding::Value(Value::Tensor(v))),
                )
            })
            .collect(),
        outputs: vec![],
        blocks: vec![],
        attributes: BTreeMap::new(),
        location: None,
    }
}

fn no_lookup(_: &str) -> Option<&'static Value> {
    None
}

fn run(op: &Operation) -> TensorValue {
    decompress(op, &no_lookup).unwrap_or_else(|e| panic!("{}: {e}", op.op_type))
}

fn run_err(op: &Operation) -> String {
    match decompress_all(op, &no_lookup) {
        Ok(v) => panic!("{}: expected an error, got {v:?}", op.op_type),
        Err(e) => e,
    }
}

fn f32s(t: &TensorValue) -> Vec<f32> {
    t.to_f32_vec().unwrap()
}

/// f32 bit patterns of all 256 fp8 e4m3fn bytes, from torch 2.7.0 (`float8_e4m3fn` to float32); NaN as 0x7fc00000.
#[rustfmt::skip]
const FP8_E4M3FN_BITS: [u32; 256] = [
    0x00000000, 0x3b000000, 0x3b800000, 0x3bc00000, 0x3c000000, 0x3c200000, 0x3c400000, 0x3c600000, 0x3c800000, 0x3c900000, 0x3ca00000, 0x3cb00000, 0x3cc00000, 0x3cd00000, 0x3ce00000, 0x3cf00000,
    0x3d000000, 0x3d100000, 0x3d200000, 0x3d300000, 0x3d400000, 0x3d500000, 0x3d600000, 0x3d700000, 0x3d800000, 0x3d900000, 0x3da00000, 0x3db00000, 0x3dc00000, 0x3dd00000, 0x3de00000, 0x3df00000,
    0x3e000000, 0x3e100000, 0x3e200000, 0x3e300000, 0x3e400000, 0x3e500000, 0x3e600000, 0x3e700000, 0x3e800000, 0x3e900000, 0x3ea00000, 0x3eb00000, 0x3ec00000, 0x3ed00000, 0x3ee00000, 0x3ef00000,
    0x3f000000, 0x3f100000, 0x3f200000, 0x3f300000, 0x3f400000, 0x3f500000, 0x3f600000, 0x3f700000, 0x3f800000, 0x3f900000, 0x3fa00000, 0x3fb00000, 0x3fc00000, 0x3fd00000, 0x3fe00000, 0x3ff00000,
    0x40000000, 0x40100000, 0x40200000, 0x40300000, 0x40400000, 0x40500000, 0x40600000, 0x40700000, 0x40800000, 0x40900000, 0x40a00000, 0x40b00000, 0x40c00000, 0x40d00000, 0x40e00000, 0x40f00000,
    0x41000000, 0x41100000, 0x41200000, 0x41300000, 0x41400000, 0x41500000, 0x41600000, 0x41700000, 0x41800000, 0x41900000, 0x41a00000, 0x41b00000, 0x41c00000, 0x41d00000, 0x41e00000, 0x41f00000,
    0x42000000, 0x42100000, 0x42200000, 0x42300000, 0x42400000, 0x42500000, 0x42600000, 0x42700000, 0x42800000, 0x42900000, 0x42a00000, 0x42b00000, 0x42c00000, 0x42d00000, 0x42e00000, 0x42f00000,
    0x43000000, 0x43100000, 0x43200000, 0x43300000, 0x43400000, 0x43500000, 0x43600000, 0x43700000, 0x43800000, 0x43900000, 0x43a00000, 0x43b00000, 0x43c00000, 0x43d00000, 0x43e00000, 0x7fc00000,
    0x80000000, 0xbb000000, 0xbb800000, 0xbbc00000, 0xbc000000, 0xbc200000, 0xbc400000, 0xbc600000, 0xbc800000, 0xbc900000, 0xbca00000, 0xbcb00000, 0xbcc00000, 0xbcd00000, 0xbce00000, 0xbcf00000,
    0xbd000000, 0xbd100000, 0xbd200000, 0xbd300000, 0xbd400000, 0xbd500000, 0xbd600000, 0xbd700000, 0xbd800000, 0xbd900000, 0xbda00000, 0xbdb00000, 0xbdc00000, 0xbdd00000, 0xbde00000, 0xbdf00000,
    0xbe000000, 0xbe100000, 0xbe200000, 0xbe300000, 0xbe400000, 0xbe500000, 0xbe600000, 0xbe700000, 0xbe800000, 0xbe900000, 0xbea00000, 0xbeb00000, 0xbec00000, 0xbed00000, 0xbee00000, 0xbef00000,
    0xbf000000, 0xbf100000, 0xbf200000, 0xbf300000, 0xbf400000, 0xbf500000, 0xbf600000, 0xbf700000, 0xbf800000, 0xbf900000, 0xbfa00000, 0xbfb00000, 0xbfc00000, 0xbfd00000, 0xbfe00000, 0xbff00000,
    0xc0000000, 0xc0100000, 0xc0200000, 0xc0300000, 0xc0400000, 0xc0500000, 0xc0600000, 0xc0700000, 0xc0800000, 0xc0900000, 0xc0a00000, 0xc0b00000, 0xc0c00000, 0xc0d00000, 0xc0e00000, 0xc0f00000,
    0xc1000000, 0xc1100000, 0xc1200000, 0xc1300000, 0xc1400000, 0xc1500000, 0xc1600000, 0xc1700000, 0xc1800000, 0xc1900000, 0xc1a00000, 0xc1b00000, 0xc1c00000, 0xc1d00000, 0xc1e00000, 0xc1f00000,
    0xc2000000, 0xc2100000, 0xc2200000, 0xc2300000, 0xc2400000, 0xc2500000, 0xc2600000, 0xc2700000, 0xc2800000, 0xc2900000, 0xc2a00000, 0xc2b00000, 0xc2c00000, 0xc2d00000, 0xc2e00000, 0xc2f00000,
    0xc3000000, 0xc3100000, 0xc3200000, 0xc3300000, 0xc3400000, 0xc3500000, 0xc3600000, 0xc3700000, 0xc3800000, 0xc3900000, 0xc3a00000, 0xc3b00000, 0xc3c00000, 0xc3d00000, 0xc3e00000, 0x7fc00000,
];

/// f32 bit patterns of all 256 fp8 e5m2 bytes, from torch 2.7.0 (`float8_e5m2` to float32); NaN as 0x7fc00000.
#[rustfmt::skip]
const FP8_E5M2_BITS: [u32; 256] = [
    0x00000000, 0x37800000, 0x38000000, 0x38400000, 0x38800000, 0x38a00000, 0x38c00000, 0x38e00000, 0x39000000, 0x39200000, 0x39400000, 0x39600000, 0x39800000, 0x39a00000, 0x39c00000, 0x39e00000,
    0x3a000000, 0x3a200000, 0x3a400000, 0x3a600000, 0x3a800000, 0x3aa00000, 0x3ac00000, 0x3ae00000, 0x3b000000, 0x3b200000, 0x3b400000, 0x3b600000, 0x3b800000, 0x3ba00000, 0x3bc00000, 0x3be00000,
    0x3c000000, 0x3c200000, 0x3c400000, 0x3c600000, 0x3c800000, 0x3ca00000, 0x3cc00000, 0x3ce00000, 0x3d000000, 0x3d200000, 0x3d400000, 0x3d600000, 0x3d800000, 0x3da00000, 0x3dc00000, 0x3de00000,
    0x3e000000, 0x3e200000, 0x3e400000, 0x3e600000, 0x3e800000, 0x3ea00000, 0x3ec00000, 0x3ee00000, 0x3f000000, 0x3f200000, 0x3f400000, 0x3f600000, 0x3f800000, 0x3fa00000, 0x3fc00000, 0x3fe00000,
    0x40000000, 0x40200000, 0x40400000, 0x40600000, 0x40800000, 0x40a00000, 0x40c00000, 0x40e00000, 0x41000000, 0x41200000, 0x41400000, 0x41600000, 0x41800000, 0x41a00000, 0x41c00000, 0x41e00000,
    0x42000000, 0x42200000, 0x42400000, 0x42600000, 0x42800000, 0x42a00000, 0x42c00000, 0x42e00000, 0x43000000, 0x43200000, 0x43400000, 0x43600000, 0x43800000, 0x43a00000, 0x43c00000, 0x43e00000,
    0x44000000, 0x44200000, 0x44400000, 0x44600000, 0x44800000, 0x44a00000, 0x44c00000, 0x44e00000, 0x45000000, 0x45200000, 0x45400000, 0x45600000, 0x45800000, 0x45a00000, 0x45c00000, 0x45e00000,
    0x46000000, 0x46200000, 0x46400000, 0x46600000, 0x46800000, 0x46a00000, 0x46c00000, 0x46e00000, 0x47000000, 0x47200000, 0x47400000, 0x47600000, 0x7f800000, 0x7fc00000, 0x7fc00000, 0x7fc00000,
    0x80000000, 0xb7800000, 0xb8000000, 0xb8400000, 0xb8800000, 0xb8a00000, 0xb8c00000, 0xb8e00000, 0xb9000000, 0xb9200000, 0xb9400000, 0xb9600000, 0xb9800000, 0xb9a00000, 0xb9c00000, 0xb9e00000,
    0xba000000, 0xba200000, 0xba400000, 0xba600000, 0xba800000, 0xbaa00000, 0xbac00000, 0xbae00000, 0xbb000000, 0xbb200000, 0xbb400000, 0xbb600000, 0xbb800000, 0xbba00000, 0xbbc00000, 0xbbe00000,
    0xbc000000, 0xbc200000, 0xbc400000, 0xbc600000, 0xbc800000, 0xbca00000, 0xbcc00000, 0xbce00000, 0xbd000000, 0xbd200000, 0xbd400000, 0xbd600000, 0xbd800000, 0xbda00000, 0xbdc00000, 0xbde00000,
    0xbe000000, 0xbe200000, 0xbe400000, 0xbe600000, 0xbe800000, 0xbea00000, 0xbec00000, 0xbee00000, 0xbf000000, 0xbf200000, 0xbf400000, 0xbf600000, 0xbf800000, 0xbfa00000, 0xbfc00000, 0xbfe00000,
    0xc0000000, 0xc0200000, 0xc0400000, 0xc0600000, 0xc0800000, 0xc0a00000, 0xc0c00000, 0xc0e00000, 0xc1000000, 0xc1200000, 0xc1400000, 0xc1600000, 0xc1800000, 0xc1a00000, 0xc1c00000, 0xc1e00000,
    0xc2000000, 0xc2200000, 0xc2400000, 0xc2600000, 0xc2800000, 0xc2a00000, 0xc2c00000, 0xc2e00000, 0xc3000000, 0xc3200000, 0xc3400000, 0xc3600000, 0xc3800000, 0xc3a00000, 0xc3c00000, 0xc3e00000,
    0xc4000000, 0xc4200000, 0xc4400000, 0xc4600000, 0xc4800000, 0xc4a00000, 0xc4c00000, 0xc4e00000, 0xc5000000, 0xc5200000, 0xc5400000, 0xc5600000, 0xc5800000, 0xc5a00000, 0xc5c00000, 0xc5e00000,
    0xc6000000, 0xc6200000, 0xc6400000, 0xc6600000, 0xc6800000, 0xc6a00000, 0xc6c00000, 0xc6e00000, 0xc7000000, 0xc7200000, 0xc7400000, 0xc7600000, 0xff800000, 0x7fc00000, 0x7fc00000, 0x7fc00000,
];

// ---------------------------------------------------------------- elements

#[test]
fn fp8_decoding_matches_torch() {
    for b in 0..=255u8 {
        for (name, got, want) in [
            ("e4m3fn", fp8_e4m3fn_to_f32(b), FP8_E4M3FN_BITS[b as usize]),
            ("e5m2", fp8_e5m2_to_f32(b), FP8_E5M2_BITS[b as usize]),
        ] {
            if want == 0x7fc0_0000 {
                assert!(
                    got.is_nan(),
                    "{name} byte {b:#04x}: got {got}, torch gives NaN"
                );
            } else {
                assert_eq!(got.to_bits(), want, "{name} byte {b:#04x}: got {got}");
            }
        }
    }
    // Through a tensor as well.
    let t = bytes(DataType::Fp8E4M3Fn, &[3], &[0x7e, 0xfe, 0x7f]);
    let v = f32s(&t);
    assert_eq!(&v[..2], &[448.0, -448.0]);
    assert!(v[2].is_nan());
    let t = bytes(DataType::Fp8E5M2, &[2], &[0x7b, 0x7c]);
    assert_eq!(f32s(&t), vec![57344.0, f32::INFINITY]);
}

#[test]
fn packed_bits_follow_coremltools_layout() {
    // iOS16 constexpr_lut_to_dense docstring: n_bits = 2, shape (5,),
    // byte 0 = 01 10 11 00 (i3 i2 i1 i0), byte 1 = xx xx xx 11 (i4).
    assert_eq!(
        unpack_bits(&[0b0110_1100, 0b0000_0011], 2, 5).unwrap(),
        vec![0, 3, 2, 1, 3]
    );
    // Values split across bytes (packed with numpy.packbits(bitorder="little")).
    let t = bytes(DataType::UInt3, &[4], &[213, 3]);
    assert_eq!(t.to_u32_vec().unwrap(), vec![5, 2, 7, 1]);
    let t = bytes(DataType::UInt6, &[2, 2], &[63, 80, 169]);
    assert_eq!(t.to_i64_vec().unwrap(), vec![63, 0, 21, 42]);
    // int4 sign-extends: nibbles 1, 0xE, 3, 0x8.
    let t = bytes(DataType::Int4, &[4], &[0xE1, 0x83]);
    assert_eq!(t.to_i32_vec().unwrap(), vec![1, -2, 3, -8]);
    let t = bytes(DataType::UInt1, &[10], &[0b1000_0101, 0b10]);
    assert_eq!(
        t.to_bool_vec().unwrap(),
        vec![true, false, true, false, false, false, false, true, false, true]
    );
    // A wrong byte count is an error, never a panic.
    assert!(bytes(DataType::UInt4, &[5], &[0, 0]).to_u32_vec().is_err());
    assert!(bytes(DataType::UInt4, &[5], &[0, 0, 0, 0])
        .to_u32_vec()
        .is_err());
}

#[test]
fn whole_byte_dtypes_decode_little_endian() {
    let t = bytes(DataType::Fp16, &[2], &[0x00, 0x3c, 0x00, 0xc0]);
    assert_eq!(f32s(&t), vec![1.0, -2.0]);
    assert_eq!(t.to_f16_vec().unwrap(), vec![f16::ONE, f16::from_f32(-2.0)]);
    let t = bytes(DataType::Bf16, &[1], &[0xc0, 0x3f]);
    assert_eq!(f32s(&t), vec![1.5]);
    let t = bytes(DataType::Int16, &[2], &[0xff, 0xff, 0x00, 0x80]);
    assert_eq!(t.to_i64_vec().unwrap(), vec![-1, -32768]);
    let t = bytes(DataType::UInt16, &[1], &[0xff, 0xff]);
    assert_eq!(t.to_i64_vec().unwrap(), vec![65535]);
    let t = bytes(DataType::UInt64, &[1], &[0xff; 8]);
    assert_eq!(t.to_f64_vec().unwrap(), vec![u64::MAX as f64]);
    assert!(t.to_i64_vec().is_err(), "u64::MAX does not fit int64");
    let t = bytes(DataType::Bool, &[3], &[0, 1, 2]);
    assert_eq!(t.to_bool_vec().unwrap(), vec![false, true, true]);
    assert_eq!(t.to_f32_vec().unwrap(), vec![0.0, 1.0, 1.0]);
    let t = bytes(DataType::Fp64, &[1], &(-0.25f64).to_le_bytes());
    assert_eq!(t.to_f64_vec().unwrap(), vec![-0.25]);
    // Three bytes cannot hold two fp16 values.
    assert!(bytes(DataType::Fp16, &[2], &[0, 0, 0])
        .to_f32_vec()
        .is_err());
    assert!(bytes(DataType::String, &[1], &[0]).to_f32_vec().is_err());
}

#[test]
fn conversions_follow_numpy_casts() {
    let t = floats(DataType::Fp32, &[4], &[1.9, -1.9, 0.0, 2.5]);
    assert_eq!(t.to_i64_vec().unwrap(), vec![1, -1, 0, 2]);
    assert_eq!(t.to_bool_vec().unwrap(), vec![true, true, false, true]);
    assert_eq!(t.to_f16_vec().unwrap()[3], f16::from_f32(2.5));
    assert!(floats(DataType::Fp32, &[1], &[f32::NAN])
        .to_i64_vec()
        .is_err());
    assert!(floats(DataType::Fp32, &[1], &[1e20]).to_i64_vec().is_err());
    assert!(ints(DataType::Int64, &[1], &[1 << 40])
        .to_i32_vec()
        .is_err());
    assert!(ints(DataType::Int64, &[1], &[-1]).to_u32_vec().is_err());
    assert!(ints(DataType::Int64, &[1], &[-1]).to_usize_vec().is_err());
    let s = tensor(DataType::String, &[1], TensorData::Str(vec!["a".into()]));
    assert!(s.to_f32_vec().is_err());
    // Stored length must match the shape.
    assert!(floats(DataType::Fp32, &[3], &[1.0, 2.0])
        .to_f32_vec()
        .is_err());
    // An overflowing shape is an error, not a huge allocation.
    assert!(floats(DataType::Fp32, &[usize::MAX, 2], &[1.0])
        .to_f32_vec()
        .is_err());
}

#[test]
fn scalars_and_byte_encoding() {
    assert_eq!(
        ints(DataType::Int32, &[1, 1], &[-3]).scalar_i64().unwrap(),
        -3
    );
    assert_eq!(
        floats(DataType::Fp32, &[], &[0.5]).scalar_f64().unwrap(),
        0.5
    );
    assert!(ints(DataType::Int32, &[2], &[1, 2]).scalar_i64().is_err());
    // Literal storage encodes to the dtype's own bytes.
    let t = ints(DataType::UInt4, &[3], &[1, 15, 7]);
    assert_eq!(t.to_le_bytes().unwrap().as_ref(), &[0xF1, 0x07]);
    let t = ints(DataType::Int4, &[2], &[-1, -8]);
    assert_eq!(t.to_le_bytes().unwrap().as_ref(), &[0x8F]);
    assert!(ints(DataType::UInt2, &[1], &[4]).to_le_bytes().is_err());
    let t = floats(DataType::Fp16, &[1], &[1.0]);
    assert_eq!(t.to_le_bytes().unwrap().as_ref(), &[0x00, 0x3c]);
    let t = ints(DataType::Int16, &[1], &[-2]);
    assert_eq!(t.to_le_bytes().unwrap().as_ref(), &[0xfe, 0xff]);
}

// ---------------------------------------------------------------- constexpr ops

#[test]
fn affine_dequantize_per_channel_and_per_tensor() {
    let q = ints(DataType::Int8, &[2, 3], &[-1, 0, 3, 5, 127, -128]);
    // Per channel along axis 0: (q - zp[c]) * scale[c].
    let op = attr_op(
        "constexpr_affine_dequantize",
        vec![
            ("quantized_data", q.clone()),
            ("zero_point", ints(DataType::Int8, &[2], &[-1, 2])),
            ("scale", floats(DataType::Fp32, &[2], &[0.5, 0.25])),
            ("axis", ints(DataType::Int32, &[], &[0])),
        ],
    );
    let out = run(&op);
    assert_eq!((out.dtype, out.shape.clone()), (DataType::Fp32, vec![2, 3]));
    assert_eq!(f32s(&out), vec![0.0, 0.5, 2.0, 0.75, 31.25, -32.5]);
    // Along axis -1 (= 1), fp16 scale: output fp16.
    let op = attr_op(
        "constexpr_affine_dequantize",
        vec![
            ("quantized_data", q.clone()),
            ("zero_point", ints(DataType::UInt8, &[], &[0])),
            ("scale", fp16_bytes(&[3], &[1.0, 2.0, 0.5])),
            ("axis", ints(DataType::Int32, &[], &[-1])),
        ],
    );
    let out = run(&op);
    assert_eq!(out.dtype, DataType::Fp16);
    assert_eq!(f32s(&out), vec![-1.0, 0.0, 1.5, 5.0, 254.0, -64.0]);
    // A vector of the wrong length and an axis out of range are errors.
    let bad = |zp: TensorValue, axis: i64| {
        attr_op(
            "constexpr_affine_dequantize",
            vec![
                ("quantized_data", q.clone()),
                ("zero_point", zp),
                ("scale", floats(DataType::Fp32, &[], &[1.0])),
                ("axis", ints(DataType::Int32, &[], &[axis])),
            ],
        )
    };
    assert!(run_err(&bad(ints(DataType::Int8, &[4], &[0; 4]), 0)).contains("zero_point"));
    assert!(run_err(&bad(ints(DataType::Int8, &[], &[0]), 2)).contains("axis"));
}

#[test]
fn blockwise_shift_scale_int4_blocks() {
    // data int4 [2, 4] = [[1, -2, 3, -8], [7, 0, -1, 5]] packed LSB-first,
    // blocks of [1, 2]: scale [[0.5, 2], [0.25, 1]], offset [[1, 0], [-1, 2]].
    let op = input_op(
        "constexpr_blockwise_shift_scale",
        vec![
            (
                "data",
                bytes(DataType::Int4, &[2, 4], &[0xE1, 0x83, 0x07, 0x5F]),
            ),
            ("scale", fp16_bytes(&[2, 2], &[0.5, 2.0, 0.25, 1.0])),
            ("offset", bytes(DataType::Int4, &[2, 2], &[0x01, 0x2F])),
        ],
    );
    let out = run(&op);
    assert_eq!((out.dtype, out.shape.clone()), (DataType::Fp16, vec![2, 4]));
    assert_eq!(
        f32s(&out),
        vec![0.0, -1.5, 6.0, -16.0, 2.0, 0.25, -3.0, 3.0]
    );
    // Without offset, with an fp16 scale that is not a power of two: the
    // product is rounded to fp16 as numpy does for fp16 arrays.
    let op = input_op(
        "constexpr_blockwise_shift_scale",
        vec![
            ("data", ints(DataType::Int8, &[3, 1], &[3, -7, 100])),
            ("scale", fp16_bytes(&[1, 1], &[0.1])),
        ],
    );
    let s = f16::from_f32(0.1).to_f32();
    let want: Vec<f32> = [3.0f32, -7.0, 100.0]
        .iter()
        .map(|q| f16::from_f32(q * s).to_f32())
        .collect();
    assert_eq!(f32s(&run(&op)), want);
    // A scale shape that does not divide the data shape is an error.
    let op = input_op(
        "constexpr_blockwise_shift_scale",
        vec![
            ("data", ints(DataType::Int8, &[3, 2], &[0; 6])),
            ("scale", floats(DataType::Fp32, &[2, 1], &[1.0, 1.0])),
        ],
    );
    assert!(run_err(&op).contains("scale"));
}

#[test]
fn cast_fp16_to_fp32() {
    let op = input_op(
        "constexpr_cast",
        vec![
            ("source_val", fp16_bytes(&[3], &[1.5, -2.0, 65504.0])),
            (
                "output_dtype",
                tensor(DataType::String, &[], TensorData::Str(vec!["fp32".into()])),
            ),
        ],
    );
    let out = run(&op);
    assert_eq!(out.dtype, DataType::Fp32);
    assert_eq!(f32s(&out), vec![1.5, -2.0, 65504.0]);
}

#[test]
fn lut_to_dense_ios16_docstring_example() {
    // n_bits = 2, shape (5,): indices 0, 3, 2, 1, 3.
    let op = attr_op(
        "constexpr_lut_to_dense",
        vec![
            (
                "indices",
                bytes(DataType::UInt8, &[2], &[0b0110_1100, 0b11]),
            ),
            ("lut", fp16_bytes(&[4], &[10.0, 20.0, 30.0, 40.0])),
            ("shape", ints(DataType::UInt32, &[1], &[5])),
        ],
    );
    let out = run(&op);
    assert_eq!((out.dtype, out.shape.clone()), (DataType::Fp16, vec![5]));
    assert_eq!(f32s(&out), vec![10.0, 40.0, 30.0, 20.0, 40.0]);
    // M must be ceil(n_bits * 5 / 8) = 2 bytes.
    let op = attr_op(
        "constexpr_lut_to_dense",
        vec![
            ("indices", bytes(DataType::UInt8, &[3], &[0, 0, 0])),
            ("lut", fp16_bytes(&[4], &[10.0, 20.0, 30.0, 40.0])),
            ("shape", ints(DataType::UInt32, &[1], &[5])),
        ],
    );
    assert!(run_err(&op).contains("indices"));
}

#[test]
fn lut_to_dense_ios18_grouped_docstring_case_1() {
    // indices uint2 [6, 2] = [2,3, 3,0, 1,0, 3,0, 2,1, 0,3]; lut fp16 [2, 1, 4, 1].
    let lut = floats(
        DataType::Fp16,
        &[2, 1, 4, 1],
        &[1.0, 5.0, 9.0, 13.0, 2.0, 10.0, 18.0, 26.0],
    );
    let want = vec![
        9.0, 13.0, 13.0, 1.0, 5.0, 1.0, 26.0, 2.0, 18.0, 10.0, 2.0, 26.0,
    ];
    let packed = bytes(DataType::UInt2, &[6, 2], &[62, 49, 198]);
    let literal = ints(
        DataType::UInt2,
        &[6, 2],
        &[2, 3, 3, 0, 1, 0, 3, 0, 2, 1, 0, 3],
    );
    for indices in [packed, literal] {
        let op = input_op(
            "constexpr_lut_to_dense",
            vec![("indices", indices), ("lut", lut.clone())],
        );
        let out = run(&op);
        assert_eq!((out.dtype, out.shape.clone()), (DataType::Fp16, vec![6, 2]));
        assert_eq!(f32s(&out), want);
    }
}

#[test]
fn lut_to_dense_ios18_vector_docstring_case_2() {
    // indices uint1 [2, 2, 2] = [[[0, 0], [1, 0]], [[1, 1], [0, 0]]];
    // lut int8 [1, 1, 1, 2, 3] = [a0, a1, a2, b0, b1, b2].
    let (a0, a1, a2, b0, b1, b2) = (1, 2, 3, -1, -2, -3);
    let indices = bytes(DataType::UInt1, &[2, 2, 2], &[0b0011_0100]);
    let lut = ints(DataType::Int8, &[1, 1, 1, 2, 3], &[a0, a1, a2, b0, b1, b2]);
    let case = |axis: i64| {
        let op = input_op(
            "constexpr_lut_to_dense",
            vec![
                ("indices", indices.clone()),
                ("lut", lut.clone()),
                ("vector_axis", ints(DataType::Int32, &[], &[axis])),
            ],
        );
        let out = run(&op);
        assert_eq!(out.dtype, DataType::Int8);
        (out.shape.clone(), out.to_i64_vec().unwrap())
    };
    let (shape, v) = case(1);
    assert_eq!(shape, vec![2, 6, 2]);
    #[rustfmt::skip]
    assert_eq!(v, vec![
        a0, a0, a1, a1, a2, a2, b0, a0, b1, a1, b2, a2,
        b0, b0, b1, b1, b2, b2, a0, a0, a1, a1, a2, a2,
    ]);
    let (shape, v) = case(2);
    assert_eq!(shape, vec![2, 2, 6]);
    #[rustfmt::skip]
    assert_eq!(v, vec![
        a0, a1, a2, a0, a1, a2, b0, b1, b2, a0, a1, a2,
        b0, b1, b2, b0, b1, b2, a0, a1, a2, a0, a1, a2,
    ]);
    // vector_axis is required when VECTOR_SIZE > 1.
    let op = input_op(
        "constexpr_lut_to_dense",
        vec![("indices", indices), ("lut", lut)],
    );
    assert!(run_err(&op).contains("vector_axis"));
}

#[test]
fn lut_to_dense_rejects_inconsistent_parameters() {
    let idx = ints(DataType::UInt2, &[4], &[0, 1, 2, 3]);
    let cases = [
        // LUT rank must be indices rank + 2.
        (idx.clone(), floats(DataType::Fp32, &[4, 1, 1], &[0.0; 4])),
        // Groups must divide the indices shape.
        (idx.clone(), floats(DataType::Fp32, &[3, 4, 1], &[0.0; 12])),
        // Index 3 is out of range for a 2-entry LUT.
        (idx.clone(), floats(DataType::Fp32, &[1, 2, 1], &[0.0; 2])),
        // LUT storage shorter than its shape.
        (idx, floats(DataType::Fp32, &[1, 4, 1], &[0.0; 3])),
    ];
    for (indices, lut) in cases {
        let op = input_op(
            "constexpr_lut_to_dense",
            vec![("indices", indices), ("lut", lut)],
        );
        run_err(&op);
    }
}

#[test]
fn sparse_to_dense_both_forms() {
    // iOS16 docstring: shape (5,), mask byte x x x 0 1 1 0 0 -> i2, i3 set.
    let op = attr_op(
        "constexpr_sparse_to_dense",
        vec![
            ("nonzero_data", floats(DataType::Fp32, &[2], &[7.0, 8.0])),
            ("mask", bytes(DataType::UInt8, &[1], &[0b0000_1100])),
            ("shape", ints(DataType::UInt32, &[1], &[5])),
        ],
    );
    assert_eq!(f32s(&run(&op)), vec![0.0, 0.0, 7.0, 8.0, 0.0]);
    // iOS18: uint1 mask of the dense shape; fp16 data stays fp16.
    let op = input_op(
        "constexpr_sparse_to_dense",
        vec![
            ("nonzero_data", fp16_bytes(&[3], &[1.0, -2.0, 3.0])),
            ("mask", bytes(DataType::UInt1, &[2, 3], &[0b0010_0011])),
        ],
    );
    let out = run(&op);
    assert_eq!((out.dtype, out.shape.clone()), (DataType::Fp16, vec![2, 3]));
    assert_eq!(f32s(&out), vec![1.0, -2.0, 0.0, 0.0, 0.0, 3.0]);
    // int4 data stays packed int4.
    let op = input_op(
        "constexpr_sparse_to_dense",
        vec![
            ("nonzero_data", ints(DataType::Int4, &[2], &[-3, 5])),
            ("mask", ints(DataType::UInt1, &[3], &[0, 1, 1])),
        ],
    );
    let out = run(&op);
    assert_eq!(out.dtype, DataType::Int4);
    assert_eq!(out.to_i64_vec().unwrap(), vec![0, -3, 5]);
    // Set bits must match the number of values.
    let op = input_op(
        "constexpr_sparse_to_dense",
        vec![
            ("nonzero_data", floats(DataType::Fp32, &[1], &[1.0])),
            ("mask", ints(DataType::UInt1, &[3], &[0, 1, 1])),
        ],
    );
    assert!(run_err(&op).contains("set bits"));
}

#[test]
fn lut_to_sparse_docstring_examples() {
    #[rustfmt::skip]
    let mask = ints(DataType::UInt1, &[4, 6], &[
        1, 1, 0, 0, 0, 0,
        1, 1, 0, 0, 0, 1,
        0, 1, 1, 0, 1, 0,
        0, 0, 0, 1, 0, 0,
    ]);
    let nz = ints(DataType::UInt1, &[9], &[0, 1, 1, 0, 1, 1, 0, 0, 1]);
    // Scalar palettization.
    let op = input_op(
        "constexpr_lut_to_sparse",
        vec![
            ("indices_mask", mask.clone()),
            ("indices_nonzero_data", nz.clone()),
            ("lut", fp16_bytes(&[1, 1, 2, 1], &[2.0, 3.0])),
        ],
    );
    let outs = decompress_all(&op, &no_lookup).unwrap();
    assert_eq!(outs.len(), 2);
    assert_eq!(outs[0].to_i64_vec().unwrap(), mask.to_i64_vec().unwrap());
    assert_eq!(
        f32s(&outs[1]),
        vec![2.0, 3.0, 3.0, 2.0, 3.0, 3.0, 2.0, 2.0, 3.0]
    );
    assert!(
        decompress(&op, &no_lookup).is_err(),
        "two outputs need decompress_all"
    );
    // Vector palettization along axis 0: the mask rows are doubled.
    let op = input_op(
        "constexpr_lut_to_sparse",
        vec![
            ("indices_mask", mask.clone()),
            ("indices_nonzero_data", nz),
            ("lut", fp16_bytes(&[1, 1, 2, 2], &[2.0, 2.0, 3.0, 3.0])),
            ("vector_axis", ints(DataType::Int32, &[], &[0])),
        ],
    );
    let outs = decompress_all(&op, &no_lookup).unwrap();
    assert_eq!(
        (outs[0].dtype, outs[0].shape.clone()),
        (DataType::UInt1, vec![8, 6])
    );
    let m = mask.to_i64_vec().unwrap();
    let doubled: Vec<i64> = m
        .chunks(6)
        .flat_map(|r| r.iter().chain(r))
        .copied()
        .collect();
    assert_eq!(outs[0].to_i64_vec().unwrap(), doubled);
    #[rustfmt::skip]
    assert_eq!(f32s(&outs[1]), vec![
        2.0, 3.0, 2.0, 3.0, 3.0, 2.0, 3.0, 3.0, 2.0, 3.0,
        3.0, 2.0, 2.0, 3.0, 2.0, 2.0, 3.0, 3.0,
    ]);
}

#[test]
fn sparse_blockwise_shift_scale_docstring_example() {
    #[rustfmt::skip]
    let mask = ints(DataType::UInt1, &[4, 4], &[
        1, 1, 0, 0,
        1, 1, 1, 0,
        0, 0, 1, 1,
        1, 1, 0, 0,
    ]);
    let op = input_op(
        "constexpr_sparse_blockwise_shift_scale",
        vec![
            ("data_mask", mask.clone()),
            (
                "nonzero_data",
                ints(DataType::Int8, &[9], &[10, 11, 3, 4, 5, 6, 7, 8, 9]),
            ),
            (
                "scale",
                floats(DataType::Fp32, &[1, 4], &[0.1, 0.2, 0.3, 0.4]),
            ),
            ("offset", ints(DataType::Int8, &[1, 4], &[1, 2, 3, 4])),
        ],
    );
    let outs = decompress_all(&op, &no_lookup).unwrap();
    assert_eq!(outs[0].to_i64_vec().unwrap(), mask.to_i64_vec().unwrap());
    assert_eq!(
        (outs[1].dtype, outs[1].shape.clone()),
        (DataType::Fp32, vec![9])
    );
    let want = [0.9, 1.8, 0.2, 0.4, 0.6, 0.9, 1.2, 0.7, 1.4];
    for (g, w) in f32s(&outs[1]).iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{g} vs {w}");
    }
}

#[test]
fn parameters_bound_by_name_and_output_types() {
    let consts: BTreeMap<String, Value> = [
        ("q", ints(DataType::Int8, &[2], &[4, -4])),
        ("s", floats(DataType::Fp32, &[1], &[0.5])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Value::Tensor(v)))
    .collect();
    let mut op = input_op("constexpr_blockwise_shift_scale", vec![]);
    for (param, name) in [("data", "q"), ("scale", "s")] {
        op.inputs
            .insert(param.into(), Argument::single(Binding::Name(name.into())));
    }
    let lookup = |n: &str| consts.get(n);
    assert_eq!(f32s(&decompress(&op, &lookup).unwrap()), vec![2.0, -2.0]);
    // A declared output type is checked.
    op.outputs = vec![NamedValueType {
        name: "w".into(),
        ty: ValueType::Tensor(TensorType::new(DataType::Fp16, &[2])),
    }];
    assert!(decompress(&op, &lookup).unwrap_err().contains("declared"));
    op.outputs[0].ty = ValueType::Tensor(TensorType::new(DataType::Fp32, &[2]));
    assert!(decompress(&op, &lookup).is_ok());
    // An unknown name is an error.
    assert!(decompress(&op, &no_lookup).unwrap_err().contains("\"q\""));
    // So is an unknown op and a missing parameter.
    assert!(run_err(&input_op("constexpr_nope", vec![])).contains("not a constexpr op"));
    assert!(run_err(&input_op("constexpr_cast", vec![])).contains("source_val"));
}

// ---------------------------------------------------------------- fixtures

/// Decodes every constexpr op of each compressed fixture model and compares
/// each output with the value coremltools' decompression wrote to
/// `<case>_dense.npz` (key = output name).
#[test]
fn compressed_fixtures_match_coremltools() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compression");
    if !dir.is_dir() {
        eprintln!(
            "skipping: {} is absent (generate it with tools/gen_format_fixtures.py)",
            dir.display()
        );
        return;
    }
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with("_dense.npz"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no *_dense.npz in {}", dir.display());
    let mut compared = 0;
    for npz in &cases {
        let name = npz
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace("_dense.npz", "");
        compared += check_fixture(&dir, &name, npz);
    }
    eprintln!(
        "compared {compared} constexpr outputs in {} models",
        cases.len()
    );
}

/// Checks one fixture model; returns the number of outputs compared.
fn check_fixture(dir: &Path, name: &str, npz: &Path) -> usize {
    let reference: BTreeMap<String, candle_core::Tensor> = candle_core::Tensor::read_npz(npz)
        .unwrap()
        .into_iter()
        .collect();
    let pkg = dir.join(format!("{name}.mlpackage"));
    let model = candle_coreml::format::open(&pkg).unwrap_or_else(|e| panic!("{name}: {e}"));
    let program = model
        .program()
        .unwrap_or_else(|| panic!("{name}: not an ML program"));
    let mut compared = 0;
    for function in &program.functions {
        // Constants by name, then each decoded constexpr output as it comes.
        let mut env: BTreeMap<String, Value> = BTreeMap::new();
        for op in &function.block.operations {
            if op.op_type == "const" {
                if let (Some(out), Some(v)) = (op.outputs.first(), op.attribute("val")) {
                    env.insert(out.name.clone(), v.clone());
                }
                continue;
            }
            if !op.op_type.starts_with("constexpr_") {
                continue;
            }
            let lookup = |n: &str| env.get(n);
            let outs = decompress_all(op, &lookup)
                .unwrap_or_else(|e| panic!("{name}: {} ({}): {e}", op.label(), op.op_type));
            for (out, decl) in outs.into_iter().zip(&op.outputs) {
                if let Some(want) = reference.get(&decl.name) {
                    compare(name, &decl.name, &out, want);
                    compared += 1;
                }
                env.insert(decl.name.clone(), Value::Tensor(out));
            }
        }
    }
    assert!(compared > 0, "{name}: no constexpr output had a reference");
    compared
}

/// Exact comparison: same shape, same dtype family, same values.
fn compare(case: &str, output: &str, got: &TensorValue, want: &candle_core::Tensor) {
    use candle_core::DType;
    let what = format!("{case}: {output}");
    assert_eq!(got.shape, want.dims(), "{what}: shape");
    let expected_dtype = match want.dtype() {
        DType::F16 => vec![DataType::Fp16],
        DType::F32 => vec![DataType::Fp32],
        DType::U8 => vec![DataType::UInt1, DataType::UInt8, DataType::Bool],
        other => panic!("{what}: unexpected reference dtype {other:?}"),
    };
    assert!(
        expected_dtype.contains(&got.dtype),
        "{what}: dtype {} vs {:?}",
        got.dtype,
        want.dtype()
    );
    let want: Vec<f32> = want
        .to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .unwrap();
    let got = got.to_f32_vec().unwrap_or_else(|e| panic!("{what}: {e}"));
    let bad = got
        .iter()
        .zip(&want)
        .position(|(g, w)| g.to_bits() != w.to_bits());
    if let Some(i) = bad {
        panic!("{what}: element {i}: got {} want {}", got[i], want[i]);
    }
}
