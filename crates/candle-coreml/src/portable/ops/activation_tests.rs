//! Unit tests of the activation family. Expected values are computed by hand
//! from the formulas of the MIL op definitions, not from this code.

use candle_core::{Device, Tensor};

use crate::mil::DataType;
use crate::portable::testutil::{assert_close, float, floats, int, run_op, string, Arg};

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
}

/// Runs `op` on runtime `x` with constant parameters.
fn act(op: &str, x: Tensor, params: Vec<(&str, Arg)>) -> Tensor {
    let mut args = vec![("x", Arg::T(x))];
    args.extend(params);
    run_op(op, args, &[DataType::Fp32]).unwrap().remove(0)
}

#[test]
fn relu_family() {
    let got = act("relu", t(&[-1., 0., 2., f32::NAN], &[4]), vec![]);
    assert_close(&got, &[0., 0., 2., f32::NAN], &[4], 0.0);
    let got = act("relu6", t(&[-1., 3., 7.], &[3]), vec![]);
    assert_close(&got, &[0., 3., 6.], &[3], 0.0);
    let got = act(
        "leaky_relu",
        t(&[-2., 3.], &[2]),
        vec![("alpha", Arg::C(float(0.1)))],
    );
    assert_close(&got, &[-0.2, 3.], &[2], 1e-7);
    let got = act(
        "elu",
        t(&[-1., 2.], &[2]),
        vec![("alpha", Arg::C(float(1.)))],
    );
    assert_close(&got, &[-0.632_120_56, 2.], &[2], 1e-6);
    let got = act(
        "thresholded_relu",
        t(&[0.5, 1., 2., f32::NEG_INFINITY], &[4]),
        vec![("alpha", Arg::C(float(1.)))],
    );
    assert_close(&got, &[0., 1., 2., 0.], &[4], 0.0);
    let ab = |a: f64, b: f64| vec![("alpha", Arg::C(float(a))), ("beta", Arg::C(float(b)))];
    let got = act("clamped_relu", t(&[-10., 1., 5.], &[3]), ab(0.1, 3.));
    assert_close(&got, &[-1., 1., 3.], &[3], 1e-6);
}

#[test]
fn gelu_modes() {
    let x = || t(&[1., -1.], &[2]);
    let got = act("gelu", x(), vec![]);
    assert_close(&got, &[0.841_344_7, -0.158_655_3], &[2], 1e-6);
    let got = act(
        "gelu",
        x(),
        vec![("mode", Arg::C(string("TANH_APPROXIMATION")))],
    );
    assert_close(&got, &[0.841_192, -0.158_808], &[2], 1e-5);
    let got = act(
        "gelu",
        x(),
        vec![("mode", Arg::C(string("SIGMOID_APPROXIMATION")))],
    );
    // x * sigmoid(1.702 x): 0.845796, -1 * (1 - 0.845796)
    assert_close(&got, &[0.845_795_8, -0.154_204_2], &[2], 1e-6);
    let bad = run_op(
        "gelu",
        vec![("x", Arg::T(x())), ("mode", Arg::C(string("FAST")))],
        &[DataType::Fp32],
    );
    assert!(bad.is_err());
}

#[test]
fn sigmoid_family() {
    let got = act("sigmoid", t(&[0., 2., -1000., 1000.], &[4]), vec![]);
    assert_close(&got, &[0.5, 0.880_797_1, 0., 1.], &[4], 1e-6);
    let ab = |a: f64, b: f64| vec![("alpha", Arg::C(float(a))), ("beta", Arg::C(float(b)))];
    let got = act("sigmoid_hard", t(&[-5., 0., 1., 5.], &[4]), ab(0.2, 0.5));
    assert_close(&got, &[0., 0.5, 0.7, 1.], &[4], 1e-6);
    let got = act("silu", t(&[1.], &[1]), vec![]);
    assert_close(&got, &[0.731_058_6], &[1], 1e-6);
    let got = act("scaled_tanh", t(&[2.], &[1]), ab(2., 0.5));
    assert_close(&got, &[1.523_188_3], &[1], 1e-6);
    let got = act("linear_activation", t(&[1., -1.], &[2]), ab(2., 1.));
    assert_close(&got, &[3., -1.], &[2], 0.0);
}

#[test]
fn softplus_and_softsign() {
    let got = act("softplus", t(&[0., 100., -100.], &[3]), vec![]);
    assert_close(&got, &[std::f32::consts::LN_2, 100., 0.], &[3], 1e-6);
    let got = act("softsign", t(&[3., -1.], &[2]), vec![]);
    assert_close(&got, &[0.75, -0.5], &[2], 1e-7);
    // alpha_c * log(1 + exp(beta_c * x)) on channel dimension 1.
    let params = vec![
        ("alpha", Arg::C(floats(&[1., 2.], &[2]))),
        ("beta", Arg::C(floats(&[1., 3.], &[2]))),
    ];
    let got = act("softplus_parametric", t(&[0., 1.], &[1, 2, 1]), params);
    assert_close(
        &got,
        &[std::f32::consts::LN_2, 6.097_174_6],
        &[1, 2, 1],
        1e-5,
    );
}

#[test]
fn softmax_axes() {
    let x = || t(&[1., 2., 3., 0., 0., 0.], &[2, 3]);
    let third = 1.0 / 3.0;
    let got = act("softmax", x(), vec![]);
    assert_close(
        &got,
        &[
            0.090_030_57,
            0.244_728_47,
            0.665_240_96,
            third,
            third,
            third,
        ],
        &[2, 3],
        1e-6,
    );
    // axis 0: columns [1, 0], [2, 0], [3, 0].
    let got = act("softmax", x(), vec![("axis", Arg::C(int(-2)))]);
    let (a, b, c) = (0.731_058_6, 0.880_797_1, 0.952_574_1);
    assert_close(&got, &[a, b, c, 1. - a, 1. - b, 1. - c], &[2, 3], 1e-6);
    // Large values do not overflow.
    let got = act("softmax", t(&[1000., 1000.], &[2]), vec![]);
    assert_close(&got, &[0.5, 0.5], &[2], 1e-6);
    let bad = run_op(
        "softmax",
        vec![("x", Arg::T(x())), ("axis", Arg::C(int(2)))],
        &[DataType::Fp32],
    );
    assert!(bad.is_err());
}

#[test]
fn prelu_per_channel() {
    let x = t(&[-1., 2., -3., 4.], &[1, 2, 1, 2]);
    let got = act(
        "prelu",
        x,
        vec![("alpha", Arg::C(floats(&[0.5, 0.1], &[2])))],
    );
    assert_close(&got, &[-0.5, 2., -0.3, 4.], &[1, 2, 1, 2], 1e-6);
    let x = t(&[-1., 2., -3.], &[1, 3, 1]);
    let bad = run_op(
        "prelu",
        vec![
            ("x", Arg::T(x)),
            ("alpha", Arg::C(floats(&[0.5, 0.1], &[2]))),
        ],
        &[DataType::Fp32],
    );
    assert!(bad.is_err());
}

#[test]
fn missing_required_alpha_is_an_error() {
    let r = run_op(
        "leaky_relu",
        vec![("x", Arg::T(t(&[1.], &[1])))],
        &[DataType::Fp32],
    );
    assert!(r.is_err());
}

#[test]
fn activations_work_in_half_precision() {
    use candle_core::DType;
    let x = t(&[-1., 0., 2.], &[3]).to_dtype(DType::F16).unwrap();
    let gelu = super::apply(super::Act::Gelu(super::GeluMode::Exact), &x).unwrap();
    assert_eq!(gelu.dtype(), DType::F16);
    assert_close(&gelu, &[-0.158_655_3, 0., 1.954_5], &[3], 2e-3);
    let s = super::sigmoid(&x).unwrap();
    assert_close(&s, &[0.268_941_4, 0.5, 0.880_797_1], &[3], 1e-3);
    let e = super::apply(super::Act::Elu(0.5), &x).unwrap();
    assert_close(&e, &[-0.316_060_3, 0., 2.], &[3], 1e-3);
}
