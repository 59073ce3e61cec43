//! Tests of element decoding. Expected values come from another
//! implementation (torch 2.7.0 for fp8), coremltools' docstrings (bit
//! packing) and numpy's `packbits(bitorder="little")`.

use half::f16;

use super::*;
use crate::mil::value::ByteView;

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
