//! Tests of the tensor ops. Expected values come from numpy (noted per
//! test) or from the op docstrings.

use candle_core::{DType, Device, Tensor};

use crate::mil::DataType;
use crate::portable::testutil::{assert_close, boolean, float, floats, int, ints1, run_op, Arg};

const F: DataType = DataType::Fp32;
const I: DataType = DataType::Int32;

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
}

fn one(op: &str, args: Vec<(&str, Arg)>, out: DataType) -> Tensor {
    run_op(op, args, &[out]).unwrap().remove(0)
}

fn ivec(t: &Tensor) -> Vec<i64> {
    assert_eq!(t.dtype(), DType::I64);
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn fill_and_fill_like() {
    let out = one(
        "fill",
        vec![
            ("shape", Arg::C(ints1(&[2, 3]))),
            ("value", Arg::C(float(1.5))),
        ],
        F,
    );
    assert_close(&out, &[1.5; 6], &[2, 3], 0.0);
    let shape = Tensor::new(&[2i64], &Device::Cpu).unwrap();
    let out = one(
        "fill",
        vec![("shape", Arg::T(shape)), ("value", Arg::C(int(7)))],
        I,
    );
    assert_eq!(ivec(&out), vec![7, 7]);
    let out = one("fill", vec![("shape", Arg::C(ints1(&[2])))], F);
    assert_close(&out, &[0., 0.], &[2], 0.0);
    assert!(run_op("fill", vec![("shape", Arg::C(ints1(&[-2])))], &[F]).is_err());
    let out = one(
        "fill_like",
        vec![
            ("ref_tensor", Arg::T(t(&[1., 2., 3.], &[3, 1]))),
            ("value", Arg::C(float(-2.0))),
        ],
        F,
    );
    assert_close(&out, &[-2., -2., -2.], &[3, 1], 0.0);
}

#[test]
fn range_1d_float_and_int() {
    // np.arange(1.0, 2.0, 0.3, dtype=float32).
    let args = vec![
        ("start", Arg::C(float(1.0))),
        ("end", Arg::C(float(2.0))),
        ("step", Arg::C(float(0.3))),
    ];
    assert_close(&one("range_1d", args, F), &[1.0, 1.3, 1.6, 1.9], &[4], 1e-6);
    // np.arange(10, 1, -3), with a runtime end.
    let end = Tensor::new(1i64, &Device::Cpu).unwrap();
    let out = one(
        "range_1d",
        vec![
            ("start", Arg::C(int(10))),
            ("end", Arg::T(end)),
            ("step", Arg::C(int(-3))),
        ],
        I,
    );
    assert_eq!(ivec(&out), vec![10, 7, 4]);
    let out = one(
        "range_1d",
        vec![
            ("start", Arg::C(int(3))),
            ("end", Arg::C(int(1))),
            ("step", Arg::C(int(1))),
        ],
        I,
    );
    assert_eq!(out.dims(), &[0]);
    let zero_step = vec![
        ("start", Arg::C(int(0))),
        ("end", Arg::C(int(3))),
        ("step", Arg::C(int(0))),
    ];
    assert!(run_op("range_1d", zero_step, &[I]).is_err());
}

#[test]
fn band_part_lower_one_upper_zero() {
    // arange(16).reshape(4, 4) * band(m, n) with lower=1, upper=0 (numpy, docstring formula).
    let x = t(&(0..16).map(|v| v as f32).collect::<Vec<_>>(), &[1, 4, 4]);
    let out = one(
        "band_part",
        vec![
            ("x", Arg::T(x.clone())),
            ("lower", Arg::C(int(1))),
            ("upper", Arg::C(int(0))),
        ],
        F,
    );
    let want = [
        0., 0., 0., 0., 4., 5., 0., 0., 0., 9., 10., 0., 0., 0., 14., 15.,
    ];
    assert_close(&out, &want, &[1, 4, 4], 0.0);
    let out = one("band_part", vec![("x", Arg::T(x))], F);
    assert_close(
        &out,
        &(0..16).map(|v| v as f32).collect::<Vec<_>>(),
        &[1, 4, 4],
        0.0,
    );
}

#[test]
fn select_broadcasts() {
    let cond = Tensor::new(&[[1u8], [0]], &Device::Cpu).unwrap();
    let a = t(&[1., 2., 3.], &[3]);
    let out = one(
        "select",
        vec![
            ("cond", Arg::T(cond)),
            ("a", Arg::T(a)),
            ("b", Arg::C(float(-1.0))),
        ],
        F,
    );
    assert_close(&out, &[1., 2., 3., -1., -1., -1.], &[2, 3], 0.0);
}

#[test]
fn topk_descending_and_ascending() {
    let x = t(&[3., 1., 4., 1., 5., 9., 2., 6., 5., 3.], &[2, 5]);
    // Stable np.argsort(-x, axis=1)[:, :3] and take_along_axis.
    let outs = run_op(
        "topk",
        vec![("x", Arg::T(x.clone())), ("k", Arg::C(int(3)))],
        &[F, I],
    )
    .unwrap();
    assert_close(&outs[0], &[5., 4., 3., 9., 6., 5.], &[2, 3], 0.0);
    assert_eq!(ivec(&outs[1]), vec![4, 2, 0, 0, 2, 3]);
    // Stable np.argsort(x, axis=0)[:1].
    let args = vec![
        ("x", Arg::T(x.clone())),
        ("axis", Arg::C(int(-2))),
        ("ascending", Arg::C(boolean(true))),
    ];
    let outs = run_op("topk", args, &[F, I]).unwrap();
    assert_close(&outs[0], &[3., 1., 4., 1., 3.], &[1, 5], 0.0);
    assert_eq!(ivec(&outs[1]), vec![0, 0, 0, 0, 1]);
    let args = vec![
        ("x", Arg::T(x.clone())),
        ("k", Arg::C(int(-1))),
        ("return_indices", Arg::C(boolean(false))),
    ];
    let outs = run_op("topk", args, &[F]).unwrap();
    assert_close(
        &outs[0],
        &[5., 4., 3., 1., 1., 9., 6., 5., 3., 2.],
        &[2, 5],
        0.0,
    );
    assert!(run_op(
        "topk",
        vec![("x", Arg::T(x)), ("k", Arg::C(int(6)))],
        &[F, I]
    )
    .is_err());
}

#[test]
fn argsort_both_orders() {
    let x = t(&[3., 1., 4., 1., 5., 9., 2., 6., 5., 3.], &[2, 5]);
    // np.argsort(x, axis=-1, kind="stable").
    let out = one(
        "argsort",
        vec![
            ("x", Arg::T(x.clone())),
            ("ascending", Arg::C(boolean(true))),
        ],
        I,
    );
    assert_eq!(ivec(&out), vec![1, 3, 0, 2, 4, 1, 4, 3, 2, 0]);
    // np.argsort(-x, axis=0, kind="stable").
    let out = one(
        "argsort",
        vec![("x", Arg::T(x)), ("axis", Arg::C(int(0)))],
        I,
    );
    assert_eq!(ivec(&out), vec![1, 1, 1, 1, 0, 0, 0, 0, 0, 1]);
}

#[test]
fn cumsum_variants() {
    let x = || Arg::T(t(&[3., 1., 4., 1., 5., 9., 2., 6.], &[2, 4]));
    // np.cumsum(x, 0).
    assert_close(
        &one("cumsum", vec![("x", x())], F),
        &[3., 1., 4., 1., 8., 10., 6., 7.],
        &[2, 4],
        0.0,
    );
    // Exclusive + reverse along axis -1, per the coremltools reference formula.
    let args = vec![
        ("x", x()),
        ("axis", Arg::C(int(-1))),
        ("exclusive", Arg::C(boolean(true))),
        ("reverse", Arg::C(boolean(true))),
    ];
    assert_close(
        &one("cumsum", args, F),
        &[6., 5., 1., 0., 17., 8., 6., 0.],
        &[2, 4],
        0.0,
    );
    // Integers, a length that is not a power of two.
    let xi = Tensor::new(&[1i64, 2, 3, 4, 5, 6, 7], &Device::Cpu).unwrap();
    let out = one("cumsum", vec![("x", Arg::T(xi))], I);
    assert_eq!(ivec(&out), vec![1, 3, 6, 10, 15, 21, 28]);
    assert_close(
        &one("cumsum", vec![("x", Arg::T(t(&[2.], &[])))], F),
        &[2.],
        &[],
        0.0,
    );
}

#[test]
fn one_hot_axis_zero() {
    // TensorFlow one_hot semantics with axis=0: out[idx[a, b], a, b] = on.
    let idx = Tensor::new(&[[0i64, 2], [1, -1]], &Device::Cpu).unwrap();
    let args = vec![
        ("indices", Arg::T(idx.clone())),
        ("one_hot_vector_size", Arg::C(int(3))),
        ("axis", Arg::C(int(0))),
        ("on_value", Arg::C(float(5.0))),
        ("off_value", Arg::C(float(-1.0))),
    ];
    let want: Vec<f32> = [1., 0., 0., 0., 0., 0., 1., 0., 0., 1., 0., 0.]
        .iter()
        .map(|v| if *v == 1. { 5. } else { -1. })
        .collect();
    assert_close(&one("one_hot", args, F), &want, &[3, 2, 2], 0.0);
    let out = one(
        "one_hot",
        vec![
            ("indices", Arg::T(idx)),
            ("one_hot_vector_size", Arg::C(int(3))),
        ],
        I,
    );
    assert_eq!(out.dims(), &[2, 2, 3]);
    assert_eq!(ivec(&out), vec![1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0]);
}

#[test]
fn non_zero_indices() {
    // np.transpose(np.nonzero([[0, 1, 0], [2, 0, 3]])).
    let x = t(&[0., 1., 0., 2., 0., 3.], &[2, 3]);
    let out = one("non_zero", vec![("x", Arg::T(x))], I);
    assert_eq!(out.dims(), &[3, 2]);
    assert_eq!(ivec(&out), vec![0, 1, 1, 0, 1, 2]);
    let out = one("non_zero", vec![("x", Arg::T(t(&[0., 0.], &[2])))], I);
    assert_eq!(out.dims(), &[0, 1]);
}

#[test]
fn ops_fold_on_constants() {
    let x = floats(&[3., 1., 2.], &[3]);
    let outs = run_op(
        "topk",
        vec![("x", Arg::C(x.clone())), ("k", Arg::C(int(2)))],
        &[F, I],
    )
    .unwrap();
    assert_close(&outs[0], &[3., 2.], &[2], 0.0);
    assert_eq!(ivec(&outs[1]), vec![0, 2]);
    assert_close(
        &one("cumsum", vec![("x", Arg::C(x))], F),
        &[3., 4., 6.],
        &[3],
        0.0,
    );
}

fn nms_args(
    boxes: Tensor,
    scores: Tensor,
    iou: f64,
    score: Option<f64>,
    max_boxes: i64,
) -> Vec<(&'static str, Arg)> {
    let mut args = vec![
        ("boxes", Arg::T(boxes)),
        ("scores", Arg::T(scores)),
        ("iou_threshold", Arg::C(float(iou))),
        ("max_boxes", Arg::C(int(max_boxes))),
    ];
    if let Some(s) = score {
        args.push(("score_threshold", Arg::C(float(s))));
    }
    args
}

#[test]
fn non_maximum_suppression_ios15_and_ios17() {
    // Boxes 0 and 1 overlap with IoU 3/5 = 0.6 (by hand); box 2 is apart.
    let boxes = t(
        &[0., 0., 2., 2., 0.5, 0., 2., 2., 5., 5., 1., 1.],
        &[1, 3, 4],
    );
    let scores = t(&[0.9, 0.8, 0.7], &[1, 3, 1]);
    let outs = run_op(
        "non_maximum_suppression",
        nms_args(boxes.clone(), scores.clone(), 0.5, Some(0.75), 3),
        &[F, F, I, I],
    )
    .unwrap();
    assert_close(
        &outs[0],
        &[0., 0., 2., 2., 0., 0., 0., 0., 0., 0., 0., 0.],
        &[1, 3, 4],
        0.0,
    );
    assert_close(&outs[1], &[0.9, 0., 0.], &[1, 3, 1], 0.0);
    assert_eq!(ivec(&outs[2]), vec![0, -1, -1]);
    assert_eq!(ivec(&outs[3]), vec![1]);
    let outs = run_op(
        "non_maximum_suppression",
        nms_args(boxes.clone(), scores.clone(), 0.7, Some(0.0), 2),
        &[F, F, I, I],
    )
    .unwrap();
    assert_eq!(ivec(&outs[2]), vec![0, 1]);
    assert_eq!(ivec(&outs[3]), vec![2]);
    // iOS17 layout: boxes [n, 4, B], scores [n, K, B], three outputs.
    let (bt, st) = (
        boxes.transpose(1, 2).unwrap().contiguous().unwrap(),
        scores.transpose(1, 2).unwrap().contiguous().unwrap(),
    );
    let outs = run_op(
        "non_maximum_suppression",
        nms_args(bt, st, 0.5, None, 2),
        &[F, F, I],
    )
    .unwrap();
    assert_close(&outs[0], &[0., 5., 0., 5., 2., 1., 2., 1.], &[1, 4, 2], 0.0);
    assert_close(&outs[1], &[0.9, 0.7], &[1, 1, 2], 1e-7);
    assert_eq!(ivec(&outs[2]), vec![0, 2]);
}
