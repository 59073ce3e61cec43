//! Unit tests of the reduction family. Expected values are computed by hand
//! from the numpy definitions the MIL ops document, not from this code.

use candle_core::{DType, Device, Tensor};

use crate::mil::DataType;
use crate::portable::testutil::{assert_close, boolean, int, ints1, run_op, Arg};

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
}

fn x23() -> Tensor {
    t(&[1., 2., 3., 4., 5., 6.], &[2, 3])
}

/// Runs `op` on runtime `x` with optional `axes` and `keep_dims`.
fn red(op: &str, x: Tensor, axes: Option<&[i64]>, keep: Option<bool>, out: DataType) -> Tensor {
    let mut args = vec![("x", Arg::T(x))];
    if let Some(a) = axes {
        args.push(("axes", Arg::C(ints1(a))));
    }
    if let Some(k) = keep {
        args.push(("keep_dims", Arg::C(boolean(k))));
    }
    run_op(op, args, &[out]).unwrap().remove(0)
}

fn f(op: &str, x: Tensor, axes: Option<&[i64]>, keep: Option<bool>) -> Tensor {
    red(op, x, axes, keep, DataType::Fp32)
}

fn i64s(t: &Tensor) -> Vec<i64> {
    assert_eq!(t.dtype(), DType::I64);
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn sum_mean_prod_over_axes() {
    assert_close(&f("reduce_sum", x23(), None, None), &[21.], &[], 0.0);
    assert_close(
        &f("reduce_sum", x23(), Some(&[-1]), Some(true)),
        &[6., 15.],
        &[2, 1],
        0.0,
    );
    assert_close(
        &f("reduce_mean", x23(), Some(&[0]), None),
        &[2.5, 3.5, 4.5],
        &[3],
        1e-6,
    );
    assert_close(
        &f("reduce_prod", x23(), Some(&[1]), None),
        &[6., 120.],
        &[2],
        0.0,
    );
    assert_close(
        &f("reduce_prod", x23(), None, Some(true)),
        &[720.],
        &[1, 1],
        0.0,
    );
    assert_close(
        &f("reduce_max", x23(), Some(&[0, 1]), Some(true)),
        &[6.],
        &[1, 1],
        0.0,
    );
    assert_close(
        &f("reduce_min", x23(), Some(&[1, -2]), None),
        &[1.],
        &[],
        0.0,
    );
}

#[test]
fn norms_and_logs() {
    let x = t(&[-1., 2., -3., 4.], &[2, 2]);
    assert_close(&f("reduce_l1_norm", x, None, None), &[10.], &[], 0.0);
    let x = t(&[3., 4., 6., -8.], &[2, 2]);
    assert_close(
        &f("reduce_l2_norm", x.clone(), Some(&[1]), None),
        &[5., 10.],
        &[2],
        1e-6,
    );
    assert_close(
        &f("reduce_sum_square", x, Some(&[0]), None),
        &[45., 80.],
        &[2],
        0.0,
    );
    let x = t(&[1., 2., 3.], &[3]);
    assert_close(
        &f("reduce_log_sum", x.clone(), None, None),
        &[1.791_759_5],
        &[],
        1e-6,
    );
    assert_close(
        &f("reduce_log_sum_exp", x, None, None),
        &[3.407_606],
        &[],
        1e-6,
    );
}

#[test]
fn log_sum_exp_is_stable() {
    let got = f("reduce_log_sum_exp", t(&[1000., 1000.], &[2]), None, None);
    assert_close(&got, &[1_000.693], &[], 1e-3);
    let got = f("reduce_log_sum_exp", t(&[-1000., -1000.], &[2]), None, None);
    assert_close(&got, &[-999.307], &[], 1e-3);
    let ninf = f32::NEG_INFINITY;
    let got = f(
        "reduce_log_sum_exp",
        t(&[ninf, ninf, 0., 1.], &[2, 2]),
        Some(&[1]),
        None,
    );
    assert_close(&got, &[ninf, 1.313_261_7], &[2], 1e-6);
}

#[test]
fn max_min_propagate_nan() {
    let x = t(&[1., f32::NAN, 3., 2.], &[2, 2]);
    assert_close(
        &f("reduce_max", x.clone(), Some(&[1]), None),
        &[f32::NAN, 3.],
        &[2],
        0.0,
    );
    assert_close(
        &f("reduce_min", x, Some(&[1]), None),
        &[f32::NAN, 2.],
        &[2],
        0.0,
    );
}

fn arg(op: &str, x: Tensor, axis: Option<i64>, keep: bool) -> Tensor {
    let mut args = vec![("x", Arg::T(x)), ("keep_dims", Arg::C(boolean(keep)))];
    if let Some(a) = axis {
        args.push(("axis", Arg::C(int(a))));
    }
    run_op(op, args, &[DataType::Int32]).unwrap().remove(0)
}

#[test]
fn argmax_argmin() {
    let x = || t(&[1., 3., 3., 2., f32::NAN, 0.], &[2, 3]);
    let got = arg("reduce_argmax", x(), None, false);
    assert_eq!(got.dims(), &[2]);
    assert_eq!(i64s(&got), [1, 1]);
    let got = arg("reduce_argmin", x(), Some(-1), true);
    assert_eq!(got.dims(), &[2, 1]);
    assert_eq!(i64s(&got), [0, 1]);
    let got = arg("reduce_argmax", x(), Some(0), false);
    assert_eq!(i64s(&got), [1, 1, 0]);
    let bad = run_op(
        "reduce_argmax",
        vec![("x", Arg::T(x())), ("axis", Arg::C(int(2)))],
        &[DataType::Int32],
    );
    assert!(bad.is_err());
}

#[test]
fn integer_reductions() {
    let x = Tensor::from_vec(vec![1i64, 2, -3, -2], (2, 2), &Device::Cpu).unwrap();
    // numpy mean then astype(int32): 1.5 -> 1, -2.5 -> -2.
    assert_eq!(
        i64s(&red(
            "reduce_mean",
            x.clone(),
            Some(&[1]),
            None,
            DataType::Int32
        )),
        [1, -2]
    );
    assert_eq!(
        i64s(&red(
            "reduce_sum",
            x.clone(),
            Some(&[0]),
            None,
            DataType::Int32
        )),
        [-2, 0]
    );
    assert_eq!(
        i64s(&red("reduce_max", x, None, None, DataType::Int32)),
        [2]
    );
    let x = Tensor::from_vec(vec![2i64, -3, 4, 5, 1], 5, &Device::Cpu).unwrap();
    assert_eq!(
        i64s(&red("reduce_prod", x.clone(), None, None, DataType::Int32)),
        [-120]
    );
    assert_eq!(
        i64s(&red("reduce_sum_square", x, None, None, DataType::Int32)),
        [55]
    );
}

#[test]
fn rank0_and_bad_axes() {
    let got = f("reduce_sum", t(&[2.5], &[]), None, None);
    assert_close(&got, &[2.5], &[], 0.0);
    let got = arg("reduce_argmax", t(&[2.5], &[]), None, false);
    assert_eq!(i64s(&got), [0]);
    let bad = run_op(
        "reduce_sum",
        vec![("x", Arg::T(x23())), ("axes", Arg::C(ints1(&[2])))],
        &[DataType::Fp32],
    );
    assert!(bad.is_err());
}
