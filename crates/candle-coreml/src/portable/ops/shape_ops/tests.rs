//! Tests of the shape ops. Expected values come from numpy / PyTorch (noted
//! per test) or from the examples in the Core ML docs and coremltools tests.

use candle_core::{DType, Device, Tensor};

use crate::mil::{DataType, TensorData, TensorValue};
use crate::portable::testutil::{assert_close, boolean, float, int, ints1, run_op, string, Arg};

const F: DataType = DataType::Fp32;
const I: DataType = DataType::Int32;

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
}

fn iota(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    t(&(0..n).map(|i| i as f32).collect::<Vec<_>>(), shape)
}

fn bools(v: &[bool]) -> TensorValue {
    TensorValue::new(DataType::Bool, vec![v.len()], TensorData::Bool(v.to_vec()))
}

fn one(op: &str, args: Vec<(&str, Arg)>) -> Tensor {
    run_op(op, args, &[F]).unwrap().remove(0)
}

fn ivec(t: &Tensor) -> Vec<i64> {
    t.to_dtype(DType::I64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn reshape_infers_minus_one_and_keeps_zero() {
    let out = one(
        "reshape",
        vec![
            ("x", Arg::T(iota(&[2, 3, 4]))),
            ("shape", Arg::C(ints1(&[0, -1, 0]))),
        ],
    );
    assert_eq!(out.dims(), &[2, 3, 4]);
    // iOS17 semantics: [0, -1] on [2, 3, 4] keeps the 3 it lines up with from the right.
    let out = one(
        "reshape",
        vec![
            ("x", Arg::T(iota(&[2, 3, 4]))),
            ("shape", Arg::C(ints1(&[0, -1]))),
        ],
    );
    assert_eq!(out.dims(), &[3, 8]);
    // iOS17: zeros align from the right; [2, 50] -> [1, 0, -1, 0] is [1, 1, 2, 50].
    let out = one(
        "reshape",
        vec![
            ("x", Arg::T(iota(&[2, 50]))),
            ("shape", Arg::C(ints1(&[1, 0, -1, 0]))),
        ],
    );
    assert_eq!(out.dims(), &[1, 1, 2, 50]);
    assert!(run_op(
        "reshape",
        vec![
            ("x", Arg::T(iota(&[2, 3]))),
            ("shape", Arg::C(ints1(&[4, -1])))
        ],
        &[F]
    )
    .is_err());
    assert!(run_op(
        "reshape",
        vec![
            ("x", Arg::T(iota(&[2, 3]))),
            ("shape", Arg::C(ints1(&[-1, -1])))
        ],
        &[F]
    )
    .is_err());
}

#[test]
fn reshape_with_runtime_shape_and_scalar() {
    let shape = Tensor::new(&[3i64, 2], &Device::Cpu).unwrap();
    let out = one(
        "reshape",
        vec![("x", Arg::T(iota(&[6]))), ("shape", Arg::T(shape))],
    );
    assert_close(&out, &[0., 1., 2., 3., 4., 5.], &[3, 2], 0.0);
    let out = one(
        "reshape",
        vec![("x", Arg::T(iota(&[1, 1]))), ("shape", Arg::C(ints1(&[])))],
    );
    assert_eq!(out.dims(), &[] as &[usize]);
}

#[test]
fn reshape_folds_constants() {
    let x = crate::portable::testutil::floats(&[1., 2., 3., 4.], &[4]);
    let out = one(
        "reshape",
        vec![("x", Arg::C(x)), ("shape", Arg::C(ints1(&[2, 2])))],
    );
    assert_close(&out, &[1., 2., 3., 4.], &[2, 2], 0.0);
}

#[test]
fn reshape_like_doc_example() {
    // ref shapes [2,3,4] and [1,5,6]; begins [0,1], ends [2,0], end_masks [F,T] -> (2, 3, 5, 6).
    let refs = vec![iota(&[2, 3, 4]), iota(&[1, 5, 6])];
    let out = one(
        "reshape_like",
        vec![
            ("x", Arg::T(iota(&[180]))),
            ("ref_tensors", Arg::Many(refs)),
            ("begins", Arg::Cs(vec![int(0), int(1)])),
            ("ends", Arg::Cs(vec![int(2), int(0)])),
            ("end_masks", Arg::Cs(vec![boolean(false), boolean(true)])),
        ],
    );
    assert_eq!(out.dims(), &[2, 3, 5, 6]);
}

#[test]
fn expand_dims_and_squeeze_negative_axes() {
    let out = one(
        "expand_dims",
        vec![
            ("x", Arg::T(iota(&[2, 3]))),
            ("axes", Arg::C(ints1(&[0, -1]))),
        ],
    );
    assert_eq!(out.dims(), &[1, 2, 3, 1]);
    let out = one(
        "expand_dims",
        vec![("x", Arg::T(t(&[5.], &[]))), ("axes", Arg::C(ints1(&[0])))],
    );
    assert_close(&out, &[5.], &[1], 0.0);
    let out = one("squeeze", vec![("x", Arg::T(iota(&[1, 2, 1, 3, 1])))]);
    assert_eq!(out.dims(), &[2, 3]);
    // Listed axes that are not 1 are kept (PyTorch behaviour).
    let out = one(
        "squeeze",
        vec![
            ("x", Arg::T(iota(&[1, 2, 1]))),
            ("axes", Arg::C(ints1(&[-1, 1]))),
        ],
    );
    assert_eq!(out.dims(), &[1, 2]);
    let out = one("squeeze", vec![("x", Arg::T(iota(&[1, 1])))]);
    assert_eq!(out.dims(), &[] as &[usize]);
}

#[test]
fn transpose_and_flatten2d() {
    let out = one(
        "transpose",
        vec![
            ("x", Arg::T(iota(&[2, 3]))),
            ("perm", Arg::C(ints1(&[-1, 0]))),
        ],
    );
    assert_close(&out, &[0., 3., 1., 4., 2., 5.], &[3, 2], 0.0);
    assert!(run_op(
        "transpose",
        vec![
            ("x", Arg::T(iota(&[2, 3]))),
            ("perm", Arg::C(ints1(&[0, 0])))
        ],
        &[F]
    )
    .is_err());
    // Examples of the flatten2d docstring.
    for (shape, axis, want) in [
        (vec![3], -1, [1, 3]),
        (vec![3], 1, [3, 1]),
        (vec![4, 3], -1, [4, 3]),
        (vec![2, 3, 2], -1, [6, 2]),
        (vec![5, 5, 2], 1, [5, 10]),
    ] {
        let out = one(
            "flatten2d",
            vec![("x", Arg::T(iota(&shape))), ("axis", Arg::C(int(axis)))],
        );
        assert_eq!(out.dims(), &want);
    }
}

#[test]
fn shape_is_i64() {
    let out = run_op("shape", vec![("x", Arg::T(iota(&[2, 0, 5])))], &[I])
        .unwrap()
        .remove(0);
    assert_eq!(out.dtype(), DType::I64);
    assert_eq!(ivec(&out), vec![2, 0, 5]);
    let out = run_op("shape", vec![("x", Arg::T(t(&[1.], &[])))], &[I])
        .unwrap()
        .remove(0);
    assert_eq!(out.dims(), &[0]);
}

#[test]
fn slice_by_index_basic() {
    // x[1:2, 1:3, 1:3] of arange(24).reshape(2, 3, 4) (numpy).
    let out = one(
        "slice_by_index",
        vec![
            ("x", Arg::T(iota(&[2, 3, 4]))),
            ("begin", Arg::C(ints1(&[1, 1, 1]))),
            ("end", Arg::C(ints1(&[2, 3, 3]))),
        ],
    );
    assert_close(&out, &[17., 18., 21., 22.], &[1, 2, 2], 0.0);
}

#[test]
fn slice_by_index_masks_and_negative_strides() {
    // x[0, 2::-1, -1:0:-2] (numpy): squeeze dim 0, end_mask dim 1.
    let out = one(
        "slice_by_index",
        vec![
            ("x", Arg::T(iota(&[2, 3, 4]))),
            ("begin", Arg::C(ints1(&[0, 2, -1]))),
            ("end", Arg::C(ints1(&[9, 0, 0]))),
            ("stride", Arg::C(ints1(&[1, -1, -2]))),
            ("end_mask", Arg::C(bools(&[false, true, false]))),
            ("squeeze_mask", Arg::C(bools(&[true, false, false]))),
        ],
    );
    assert_close(&out, &[11., 9., 7., 5., 3., 1.], &[3, 2], 0.0);
    // x[:, -2:, ::3] with begin_mask / end_mask (numpy); runtime begin.
    let begin = Tensor::new(&[5i64, -2, 7], &Device::Cpu).unwrap();
    let out = one(
        "slice_by_index",
        vec![
            ("x", Arg::T(iota(&[2, 3, 4]))),
            ("begin", Arg::T(begin)),
            ("end", Arg::C(ints1(&[0, 0, 0]))),
            ("stride", Arg::C(ints1(&[1, 1, 3]))),
            ("begin_mask", Arg::C(bools(&[true, false, true]))),
            ("end_mask", Arg::C(bools(&[true, true, true]))),
        ],
    );
    assert_close(
        &out,
        &[4., 7., 8., 11., 16., 19., 20., 23.],
        &[2, 2, 2],
        0.0,
    );
}

#[test]
fn slice_by_index_to_scalar_and_empty() {
    let out = one(
        "slice_by_index",
        vec![
            ("x", Arg::T(iota(&[2, 3]))),
            ("begin", Arg::C(ints1(&[-1, 1]))),
            ("end", Arg::C(ints1(&[0, 0]))),
            ("squeeze_mask", Arg::C(bools(&[true, true]))),
        ],
    );
    assert_close(&out, &[4.], &[], 0.0);
    let out = one(
        "slice_by_index",
        vec![
            ("x", Arg::T(iota(&[2, 3]))),
            ("begin", Arg::C(ints1(&[1, 2]))),
            ("end", Arg::C(ints1(&[1, 3]))),
        ],
    );
    assert_eq!(out.dims(), &[0, 1]);
}

#[test]
fn slice_by_size_minus_one() {
    let out = one(
        "slice_by_size",
        vec![
            ("x", Arg::T(iota(&[2, 3, 4]))),
            ("begin", Arg::C(ints1(&[1, -2, 1]))),
            ("size", Arg::C(ints1(&[-1, 1, 2]))),
        ],
    );
    assert_close(&out, &[17., 18.], &[1, 1, 2], 0.0);
    let bad = vec![
        ("x", Arg::T(iota(&[2, 3]))),
        ("begin", Arg::C(ints1(&[1, 0]))),
        ("size", Arg::C(ints1(&[2, 1]))),
    ];
    assert!(run_op("slice_by_size", bad, &[F]).is_err());
}

#[test]
fn concat_split_stack() {
    let (a, b) = (
        t(&[1., 2., 3., 4., 5., 6.], &[3, 2]),
        t(&[7., 8., 9., 10., 11., 12.], &[3, 2]),
    );
    let vals = || Arg::Many(vec![a.clone(), b.clone()]);
    let out = one(
        "concat",
        vec![("values", vals()), ("axis", Arg::C(int(-2)))],
    );
    assert_close(
        &out,
        &[1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.],
        &[6, 2],
        0.0,
    );
    // The interleave example of the concat docstring.
    let out = one(
        "concat",
        vec![
            ("values", vals()),
            ("axis", Arg::C(int(0))),
            ("interleave", Arg::C(boolean(true))),
        ],
    );
    assert_close(
        &out,
        &[1., 2., 7., 8., 3., 4., 9., 10., 5., 6., 11., 12.],
        &[6, 2],
        0.0,
    );
    let out = one(
        "concat",
        vec![
            ("values", Arg::Many(vec![t(&[1.], &[]), t(&[2.], &[])])),
            ("axis", Arg::C(int(0))),
        ],
    );
    assert_close(&out, &[1., 2.], &[2], 0.0);
    let out = one("stack", vec![("values", vals()), ("axis", Arg::C(int(-1)))]);
    assert_close(
        &out,
        &[1., 7., 2., 8., 3., 9., 4., 10., 5., 11., 6., 12.],
        &[3, 2, 2],
        0.0,
    );
    let outs = run_op(
        "split",
        vec![
            ("x", Arg::T(iota(&[2, 5]))),
            ("axis", Arg::C(int(-1))),
            ("split_sizes", Arg::C(ints1(&[1, 4]))),
        ],
        &[F, F],
    )
    .unwrap();
    assert_close(&outs[0], &[0., 5.], &[2, 1], 0.0);
    assert_close(&outs[1], &[1., 2., 3., 4., 6., 7., 8., 9.], &[2, 4], 0.0);
    let outs = run_op(
        "split",
        vec![
            ("x", Arg::T(iota(&[4]))),
            ("axis", Arg::C(int(0))),
            ("num_splits", Arg::C(int(2))),
        ],
        &[F, F],
    )
    .unwrap();
    assert_close(&outs[1], &[2., 3.], &[2], 0.0);
    let bad = vec![
        ("x", Arg::T(iota(&[5]))),
        ("axis", Arg::C(int(0))),
        ("num_splits", Arg::C(int(2))),
    ];
    assert!(run_op("split", bad, &[F, F]).is_err());
}

#[test]
fn tile_and_reverse() {
    // np.tile([[1, 2], [3, 4]], (2, 3)).
    let out = one(
        "tile",
        vec![
            ("x", Arg::T(t(&[1., 2., 3., 4.], &[2, 2]))),
            ("reps", Arg::C(ints1(&[2, 3]))),
        ],
    );
    let want = [
        1., 2., 1., 2., 1., 2., 3., 4., 3., 4., 3., 4., 1., 2., 1., 2., 1., 2., 3., 4., 3., 4., 3.,
        4.,
    ];
    assert_close(&out, &want, &[4, 6], 0.0);
    let out = one(
        "reverse",
        vec![("x", Arg::T(iota(&[2, 3]))), ("axes", Arg::C(ints1(&[-1])))],
    );
    assert_close(&out, &[2., 1., 0., 5., 4., 3.], &[2, 3], 0.0);
    let out = one("reverse", vec![("x", Arg::T(iota(&[2, 2])))]);
    assert_close(&out, &[3., 2., 1., 0.], &[2, 2], 0.0);
}

#[test]
fn reverse_sequence_coremltools_example() {
    let x = t(
        &[
            1., 2., 3., 4., 5., 0., 0., 0., 1., 2., 0., 0., 0., 0., 0., 0., 1., 2., 3., 4., 0., 0.,
            0., 0., 1., 2., 3., 4., 5., 6., 7., 8.,
        ],
        &[4, 8],
    );
    let lengths = Tensor::new(&[7i64, 2, 3, 5], &Device::Cpu).unwrap();
    let out = one(
        "reverse_sequence",
        vec![
            ("x", Arg::T(x)),
            ("lengths", Arg::T(lengths)),
            ("seq_axis", Arg::C(int(1))),
            ("batch_axis", Arg::C(int(0))),
        ],
    );
    let want = [
        0., 0., 5., 4., 3., 2., 1., 0., 2., 1., 0., 0., 0., 0., 0., 0., 3., 2., 1., 4., 0., 0., 0.,
        0., 5., 4., 3., 2., 1., 6., 7., 8.,
    ];
    assert_close(&out, &want, &[4, 8], 0.0);
}

#[test]
fn pad_modes() {
    let x = || Arg::T(t(&[1., 2., 3., 4., 5., 6.], &[2, 3]));
    // np.pad(x, [(1, 1), (2, 2)], mode="reflect").
    let out = one(
        "pad",
        vec![
            ("x", x()),
            ("pad", Arg::C(ints1(&[1, 1, 2, 2]))),
            ("mode", Arg::C(string("reflect"))),
        ],
    );
    let want = [
        6., 5., 4., 5., 6., 5., 4., 3., 2., 1., 2., 3., 2., 1., 6., 5., 4., 5., 6., 5., 4., 3., 2.,
        1., 2., 3., 2., 1.,
    ];
    assert_close(&out, &want, &[4, 7], 0.0);
    // np.pad(x, [(0, 0), (1, 3)], mode="edge"), only the last dim given.
    let out = one(
        "pad",
        vec![
            ("x", x()),
            ("pad", Arg::C(ints1(&[1, 3]))),
            ("mode", Arg::C(string("replicate"))),
        ],
    );
    assert_close(
        &out,
        &[1., 1., 2., 3., 3., 3., 3., 4., 4., 5., 6., 6., 6., 6.],
        &[2, 7],
        0.0,
    );
    let out = one(
        "pad",
        vec![
            ("x", x()),
            ("pad", Arg::C(ints1(&[1, 0]))),
            ("constant_val", Arg::C(float(-1.0))),
        ],
    );
    assert_close(&out, &[-1., 1., 2., 3., -1., 4., 5., 6.], &[2, 4], 0.0);
    let bad = vec![
        ("x", x()),
        ("pad", Arg::C(ints1(&[0, 3]))),
        ("mode", Arg::C(string("reflect"))),
    ];
    assert!(run_op("pad", bad, &[F]).is_err());
}

#[test]
fn depth_space_examples() {
    // NeuralNetwork.proto ReorganizeData examples: C=8, H=1, W=2, block 2.
    let x = t(
        &(1..=16).map(|v| v as f32).collect::<Vec<_>>(),
        &[1, 8, 1, 2],
    );
    let out = one(
        "depth_to_space",
        vec![("x", Arg::T(x.clone())), ("block_size", Arg::C(int(2)))],
    );
    assert_close(
        &out,
        &[
            1., 5., 2., 6., 9., 13., 10., 14., 3., 7., 4., 8., 11., 15., 12., 16.,
        ],
        &[1, 2, 2, 4],
        0.0,
    );
    let back = one(
        "space_to_depth",
        vec![("x", Arg::T(out)), ("block_size", Arg::C(int(2)))],
    );
    assert_close(
        &back,
        &(1..=16).map(|v| v as f32).collect::<Vec<_>>(),
        &[1, 8, 1, 2],
        0.0,
    );
    let out = one(
        "pixel_shuffle",
        vec![("x", Arg::T(x)), ("upscale_factor", Arg::C(int(2)))],
    );
    assert_close(
        &out,
        &[
            1., 3., 2., 4., 5., 7., 6., 8., 9., 11., 10., 12., 13., 15., 14., 16.,
        ],
        &[1, 2, 2, 4],
        0.0,
    );
    // torch.nn.functional.pixel_unshuffle(arange(32).reshape(1, 2, 4, 4), 2).
    let out = one(
        "pixel_unshuffle",
        vec![
            ("x", Arg::T(iota(&[1, 2, 4, 4]))),
            ("downscale_factor", Arg::C(int(2))),
        ],
    );
    let want = [
        0., 2., 8., 10., 1., 3., 9., 11., 4., 6., 12., 14., 5., 7., 13., 15., 16., 18., 24., 26.,
        17., 19., 25., 27., 20., 22., 28., 30., 21., 23., 29., 31.,
    ];
    assert_close(&out, &want, &[1, 8, 2, 2], 0.0);
}

#[test]
fn space_batch_coremltools_example() {
    let x = t(
        &(1..=16).map(|v| v as f32).collect::<Vec<_>>(),
        &[2, 1, 2, 4],
    );
    let out = one(
        "space_to_batch",
        vec![
            ("x", Arg::T(x)),
            ("block_shape", Arg::C(ints1(&[2, 2]))),
            ("paddings", Arg::C(ints1(&[0, 0, 2, 0]))),
        ],
    );
    let want = [
        0., 1., 3., 0., 9., 11., 0., 2., 4., 0., 10., 12., 0., 5., 7., 0., 13., 15., 0., 6., 8.,
        0., 14., 16.,
    ];
    assert_close(&out, &want, &[8, 1, 1, 3], 0.0);
    let back = one(
        "batch_to_space",
        vec![
            ("x", Arg::T(out)),
            ("block_shape", Arg::C(ints1(&[2, 2]))),
            ("crops", Arg::C(ints1(&[0, 0, 2, 0]))),
        ],
    );
    assert_close(
        &back,
        &(1..=16).map(|v| v as f32).collect::<Vec<_>>(),
        &[2, 1, 2, 4],
        0.0,
    );
}

#[test]
fn sliding_windows_examples() {
    // coremltools test: (1, 4, 1, 1), axis 1, size 2.
    let x = t(&[9., 5., 1., 3.], &[1, 4, 1, 1]);
    let out = one(
        "sliding_windows",
        vec![
            ("x", Arg::T(x)),
            ("axis", Arg::C(int(1))),
            ("size", Arg::C(int(2))),
        ],
    );
    assert_close(&out, &[9., 5., 5., 1., 1., 3.], &[1, 3, 2, 1, 1], 0.0);
    // sliding_window_view(arange(7), 3)[::2] (numpy).
    let out = one(
        "sliding_windows",
        vec![
            ("x", Arg::T(iota(&[7]))),
            ("axis", Arg::C(int(-1))),
            ("size", Arg::C(int(3))),
            ("stride", Arg::C(int(2))),
        ],
    );
    assert_close(&out, &[0., 1., 2., 2., 3., 4., 4., 5., 6.], &[3, 3], 0.0);
}
