//! Unit tests of the elementwise family. Expected values are computed by hand
//! from the MIL op definitions (numpy semantics), not from this code.

use std::f32::consts::{FRAC_PI_3, FRAC_PI_4, FRAC_PI_6};

use candle_core::{DType, Device, Tensor};

use crate::mil::DataType;
use crate::portable::testutil::{assert_close, float, int, run_op, string, Arg};

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
}

fn ti(v: &[i64]) -> Tensor {
    Tensor::from_vec(v.to_vec(), v.len(), &Device::Cpu).unwrap()
}

fn tb(v: &[u8]) -> Tensor {
    Tensor::from_vec(v.to_vec(), v.len(), &Device::Cpu).unwrap()
}

fn bin(op: &str, x: Tensor, y: Tensor, out: DataType) -> Tensor {
    run_op(op, vec![("x", Arg::T(x)), ("y", Arg::T(y))], &[out])
        .unwrap()
        .remove(0)
}

fn un(op: &str, x: Tensor, out: DataType) -> Tensor {
    run_op(op, vec![("x", Arg::T(x))], &[out])
        .unwrap()
        .remove(0)
}

fn i64s(t: &Tensor) -> Vec<i64> {
    assert_eq!(t.dtype(), DType::I64);
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn u8s(t: &Tensor) -> Vec<u8> {
    assert_eq!(t.dtype(), DType::U8);
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn add_broadcasts_like_numpy() {
    let x: Vec<f32> = (0..6).map(|v| v as f32).collect();
    let y = [10f32, 20., 30., 40.];
    let got = bin("add", t(&x, &[2, 1, 3]), t(&y, &[4, 1]), DataType::Fp32);
    let mut want = Vec::new();
    for i in 0..2 {
        for yj in y {
            for k in 0..3 {
                want.push(x[i * 3 + k] + yj);
            }
        }
    }
    assert_close(&got, &want, &[2, 4, 3], 0.0);
}

#[test]
fn arithmetic_with_rank0_and_constants() {
    let got = bin("sub", t(&[5.], &[]), t(&[3.], &[]), DataType::Fp32);
    assert_close(&got, &[2.], &[], 0.0);
    let r = run_op(
        "mul",
        vec![("x", Arg::T(t(&[1., -2.], &[2]))), ("y", Arg::C(float(3.)))],
        &[DataType::Fp32],
    );
    assert_close(&r.unwrap()[0], &[3., -6.], &[2], 0.0);
    // All-constant inputs are folded at load through the same kernel.
    let r = run_op(
        "real_div",
        vec![("x", Arg::C(float(1.))), ("y", Arg::C(float(4.)))],
        &[DataType::Fp32],
    );
    assert_close(&r.unwrap()[0], &[0.25], &[], 0.0);
    // Integer real_div divides exactly, into a float output.
    let got = bin("real_div", ti(&[7, -7]), ti(&[2, 2]), DataType::Fp32);
    assert_close(&got, &[3.5, -3.5], &[2], 0.0);
}

#[test]
fn int_floor_div_and_mod_match_numpy_for_negatives() {
    let x = ti(&[7, -7, 7, -7, 0, 5]);
    let y = ti(&[2, 2, -2, -2, 3, 0]);
    let q = bin("floor_div", x.clone(), y.clone(), DataType::Int32);
    assert_eq!(i64s(&q), [3, -4, -4, 3, 0, 0]);
    let m = bin("mod", x, y, DataType::Int32);
    assert_eq!(i64s(&m), [1, 1, -1, -1, 0, 0]);
}

#[test]
fn float_floor_div_and_mod() {
    let x = t(&[7.5, -7.5, 1.0], &[3]);
    let y = t(&[2., 2., 0.], &[3]);
    let q = bin("floor_div", x.clone(), y.clone(), DataType::Fp32);
    assert_close(&q, &[3., -4., f32::INFINITY], &[3], 0.0);
    let m = bin("mod", x, y, DataType::Fp32);
    assert_close(&m, &[1.5, 0.5, f32::NAN], &[3], 0.0);
}

#[test]
fn pow_follows_numpy_rules() {
    let x = t(&[-2., -2., 0., 0., 4., -8., 1.], &[7]);
    let y = t(&[3., 0.5, 0., -1., 0.5, 2., f32::NAN], &[7]);
    let got = bin("pow", x, y, DataType::Fp32);
    assert_close(
        &got,
        &[-8., f32::NAN, 1., f32::INFINITY, 2., 64., 1.],
        &[7],
        1e-5,
    );
    let r = run_op(
        "pow",
        vec![
            ("x", Arg::T(t(&[-3., 1.5], &[2]))),
            ("y", Arg::C(float(2.))),
        ],
        &[DataType::Fp32],
    );
    assert_close(&r.unwrap()[0], &[9., 2.25], &[2], 1e-6);
    let r = run_op(
        "pow",
        vec![
            ("x", Arg::T(t(&[-8., 4.], &[2]))),
            ("y", Arg::C(float(-0.5))),
        ],
        &[DataType::Fp32],
    );
    assert_close(&r.unwrap()[0], &[f32::NAN, 0.5], &[2], 1e-6);
    let got = bin("pow", ti(&[2, 3, -2]), ti(&[3, 2, 3]), DataType::Int32);
    assert_eq!(i64s(&got), [8, 9, -8]);
}

#[test]
fn maximum_minimum_propagate_nan() {
    let x = t(&[1., f32::NAN, 3.], &[3]);
    let y = t(&[f32::NAN, 2., 1.], &[3]);
    let got = bin("maximum", x.clone(), y.clone(), DataType::Fp32);
    assert_close(&got, &[f32::NAN, f32::NAN, 3.], &[3], 0.0);
    let got = bin("minimum", x, y, DataType::Fp32);
    assert_close(&got, &[f32::NAN, f32::NAN, 1.], &[3], 0.0);
    let got = bin("maximum", ti(&[-1, 5]), ti(&[2, 2]), DataType::Int32);
    assert_eq!(i64s(&got), [2, 5]);
}

#[test]
fn comparisons_give_bool() {
    let cases: [(&str, [u8; 4]); 6] = [
        ("less", [1, 0, 0, 0]),
        ("less_equal", [1, 1, 0, 0]),
        ("greater", [0, 0, 1, 0]),
        ("greater_equal", [0, 1, 1, 0]),
        ("equal", [0, 1, 0, 0]),
        ("not_equal", [1, 0, 1, 1]),
    ];
    for (op, want) in cases {
        let x = Arg::T(t(&[1., 2., 3., f32::NAN], &[4]));
        let got = run_op(
            op,
            vec![("x", x), ("y", Arg::C(float(2.)))],
            &[DataType::Bool],
        )
        .unwrap();
        assert_eq!(u8s(&got[0]), want, "{op}");
    }
    let got = bin("less", ti(&[1, 5]), ti(&[3, 3]), DataType::Bool);
    assert_eq!(u8s(&got), [1, 0]);
}

#[test]
fn logical_ops() {
    let x = tb(&[1, 1, 0, 0]);
    let y = tb(&[1, 0, 1, 0]);
    assert_eq!(
        u8s(&bin("logical_and", x.clone(), y.clone(), DataType::Bool)),
        [1, 0, 0, 0]
    );
    assert_eq!(
        u8s(&bin("logical_or", x.clone(), y.clone(), DataType::Bool)),
        [1, 1, 1, 0]
    );
    assert_eq!(
        u8s(&bin("logical_xor", x.clone(), y, DataType::Bool)),
        [0, 1, 1, 0]
    );
    assert_eq!(u8s(&un("logical_not", x, DataType::Bool)), [0, 0, 1, 1]);
}

#[test]
fn round_is_half_to_even() {
    let x = t(
        &[0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, -2.6, f32::NAN],
        &[9],
    );
    let got = un("round", x, DataType::Fp32);
    assert_close(
        &got,
        &[0., 2., 2., -0., -2., -2., 2., -3., f32::NAN],
        &[9],
        0.0,
    );
}

#[test]
fn trigonometric_and_hyperbolic() {
    let cases: [(&str, f32, f32); 12] = [
        ("acos", 0.5, FRAC_PI_3),
        ("asin", 0.5, FRAC_PI_6),
        ("atan", 1.0, FRAC_PI_4),
        ("atanh", 0.5, 0.549_306_1),
        ("acosh", 2.0, 1.316_958),
        ("asinh", 1.0, 0.881_373_6),
        ("sinh", 1.0, 1.175_201_2),
        ("cosh", 1.0, 1.543_080_6),
        ("tan", 1.0, 1.557_407_7),
        ("erf", 0.5, 0.520_499_9),
        ("exp2", -1.0, 0.5),
        ("sqrt", 2.25, 1.5),
    ];
    for (op, x, want) in cases {
        let got = un(op, t(&[x], &[1]), DataType::Fp32);
        assert_close(&got, &[want], &[1], 1e-6);
    }
    let got = un("exp2", ti(&[3, 0]), DataType::Int32);
    assert_eq!(i64s(&got), [8, 1]);
}

#[test]
fn epsilon_ops_use_documented_defaults() {
    // inverse: 1 / (x + 1e-4); log: log(x + 1e-45); rsqrt: 1 / sqrt(x + 1e-12).
    assert_close(
        &un("inverse", t(&[2.], &[1]), DataType::Fp32),
        &[0.499_975],
        &[1],
        1e-7,
    );
    let got = un("log", t(&[0., std::f32::consts::E], &[2]), DataType::Fp32);
    assert_close(&got, &[-103.278_93, 1.0], &[2], 1e-4);
    assert_close(
        &un("rsqrt", t(&[4., 0.], &[2]), DataType::Fp32),
        &[0.5, 1e6],
        &[2],
        1e-2,
    );
    let r = run_op(
        "inverse",
        vec![
            ("x", Arg::T(t(&[2.], &[1]))),
            ("epsilon", Arg::C(float(0.))),
        ],
        &[DataType::Fp32],
    );
    assert_close(&r.unwrap()[0], &[0.5], &[1], 0.0);
}

#[test]
fn sign_abs_square_on_ints_and_floats() {
    let got = un("sign", t(&[-2., 0., 3., f32::NAN], &[4]), DataType::Fp32);
    assert_close(&got, &[-1., 0., 1., f32::NAN], &[4], 0.0);
    assert_eq!(
        i64s(&un("sign", ti(&[-5, 0, 7]), DataType::Int32)),
        [-1, 0, 1]
    );
    assert_eq!(i64s(&un("abs", ti(&[-3, 4]), DataType::Int32)), [3, 4]);
    assert_eq!(i64s(&un("square", ti(&[-3]), DataType::Int32)), [9]);
    assert_close(
        &un("ceil", t(&[-1.5, 1.2], &[2]), DataType::Fp32),
        &[-1., 2.],
        &[2],
        0.0,
    );
    assert_close(
        &un("floor", t(&[-1.5, 1.2], &[2]), DataType::Fp32),
        &[-2., 1.],
        &[2],
        0.0,
    );
}

#[test]
fn clip_and_threshold() {
    let x = || Arg::T(t(&[-2., 0.5, 3., f32::NAN], &[4]));
    let args = vec![
        ("x", x()),
        ("alpha", Arg::C(float(0.))),
        ("beta", Arg::C(float(1.))),
    ];
    let got = run_op("clip", args, &[DataType::Fp32]).unwrap();
    assert_close(&got[0], &[0., 0.5, 1., f32::NAN], &[4], 0.0);
    let got = run_op(
        "threshold",
        vec![("x", x()), ("alpha", Arg::C(float(1.)))],
        &[DataType::Fp32],
    )
    .unwrap();
    assert_close(&got[0], &[1., 1., 3., f32::NAN], &[4], 0.0);
}

fn cast_to(x: Tensor, dtype: &str, out: DataType) -> Tensor {
    run_op(
        "cast",
        vec![("x", Arg::T(x)), ("dtype", Arg::C(string(dtype)))],
        &[out],
    )
    .unwrap()
    .remove(0)
}

#[test]
fn cast_follows_numpy_astype() {
    let x = t(&[-1.7, 1.7, 2.5, 0.0], &[4]);
    assert_eq!(
        i64s(&cast_to(x.clone(), "int32", DataType::Int32)),
        [-1, 1, 2, 0]
    );
    assert_eq!(u8s(&cast_to(x, "bool", DataType::Bool)), [1, 1, 1, 0]);
    assert_eq!(
        i64s(&cast_to(ti(&[300, -1]), "uint8", DataType::UInt8)),
        [44, 255]
    );
    assert_eq!(
        i64s(&cast_to(ti(&[200, 5]), "int8", DataType::Int8)),
        [-56, 5]
    );
    let half = cast_to(t(&[0.1], &[1]), "fp16", DataType::Fp16);
    assert_close(&half, &[0.099_975_586], &[1], 0.0);
    assert_close(
        &cast_to(tb(&[1, 0]), "fp32", DataType::Fp32),
        &[1., 0.],
        &[2],
        0.0,
    );
    let r = run_op(
        "cast",
        vec![("x", Arg::C(int(3))), ("dtype", Arg::C(string("fp32")))],
        &[DataType::Fp32],
    );
    assert_close(&r.unwrap()[0], &[3.], &[], 0.0);
    let bad = run_op(
        "cast",
        vec![
            ("x", Arg::T(ti(&[1]))),
            ("dtype", Arg::C(string("complex"))),
        ],
        &[DataType::Fp32],
    );
    assert!(bad.is_err());
}

#[test]
fn identity_passes_through() {
    let got = un("identity", t(&[1., 2.], &[2]), DataType::Fp32);
    assert_close(&got, &[1., 2.], &[2], 0.0);
}

#[test]
fn incompatible_broadcast_is_an_error() {
    let r = run_op(
        "add",
        vec![
            ("x", Arg::T(t(&[1., 2.], &[2]))),
            ("y", Arg::T(t(&[1., 2., 3.], &[3]))),
        ],
        &[DataType::Fp32],
    );
    assert!(r.is_err());
}

#[test]
fn kernels_work_in_half_precision() {
    // Under ComputePrecision::Program fp16 values stay f16.
    let x = t(&[0.5, 1.5, -2.5, 0.25], &[4])
        .to_dtype(DType::F16)
        .unwrap();
    let r = super::unary(super::Un::Round, &x, 0.0, DType::F16).unwrap();
    assert_eq!(r.dtype(), DType::F16);
    assert_close(&r, &[0., 2., -2., 0.], &[4], 0.0);
    let r = super::unary(super::Un::Atan, &x, 0.0, DType::F16).unwrap();
    assert_close(
        &r.to_dtype(DType::F16).unwrap(),
        &[0.463_6, 0.982_8, -1.190_3, 0.245],
        &[4],
        1e-3,
    );
    for op in [
        super::Un::Erf,
        super::Un::Sign,
        super::Un::Exp2,
        super::Un::Log,
    ] {
        let r = super::unary(op, &x, 1e-45, DType::F16).unwrap();
        assert_eq!(r.dims(), &[4]);
    }
    let y = t(&[2., 2., 3., -1.], &[4]).to_dtype(DType::F16).unwrap();
    let r = super::binary(super::Bin::Pow, &x, &y, DType::F16).unwrap();
    assert_close(
        &r.to_dtype(DType::F16).unwrap(),
        &[0.25, 2.25, -15.625, 4.],
        &[4],
        1e-3,
    );
    let r = super::binary(super::Bin::Mod, &x, &y, DType::F16).unwrap();
    assert_close(&r, &[0.5, 1.5, 0.5, -0.75], &[4], 1e-3);
    let r = super::binary(super::Bin::Maximum, &x, &y, DType::F16).unwrap();
    assert_close(&r, &[2., 2., 3., 0.25], &[4], 0.0);
}
