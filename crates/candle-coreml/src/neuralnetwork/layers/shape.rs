//! Shape layers: `flatten`, `reshape`, `permute`, `concat`, `split`,
//! `slice`, `sequenceRepeat` (rank-5 era), and `transpose`, `squeeze`,
//! `expandDims`, `flattenTo2D`, the `reshape*` layers, `concatND`,
//! `splitND`, `slice*`, `tile`, `stack`, `getShape`, `slidingWindows`,
//! `reverse`, `reverseSeq`.

use coreml_proto::proto as pb;

use super::cx::Cx;
use crate::error::Result;
use crate::mil::DataType;
use crate::neuralnetwork::emit::{bools, int, ints, Arg, Val};

/// The rank of `x`, required by this layer.
fn rank_of(cx: &Cx<'_>, x: &Val) -> Result<usize> {
    x.rank
        .ok_or_else(|| cx.unsupported("an input whose rank is not known when the model is loaded"))
}

/// `x` transposed by `perm`.
fn transpose(cx: &mut Cx<'_>, x: &Val, perm: &[i64], hint: &str) -> Val {
    cx.em.f32_op(
        "transpose",
        hint,
        vec![("x", Arg::V(x.clone())), ("perm", Arg::C(ints(perm)))],
        Some(perm.len()),
    )
}

/// The permutation of a rank-`r` tensor that moves its last three axes
/// `(C, H, W)` to `(H, W, C)` (or back, when `back`).
fn chw_perm(r: usize, back: bool) -> Vec<i64> {
    let r = r as i64;
    let mut p: Vec<i64> = (0..r - 3).collect();
    if back {
        p.extend([r - 1, r - 3, r - 2]);
    } else {
        p.extend([r - 2, r - 1, r - 3]);
    }
    p
}

/// `x` reshaped to its leading dimensions (all but the last `keep_from_end`)
/// followed by `tail`.
fn reshape_lead(
    cx: &mut Cx<'_>,
    x: &Val,
    drop_last: i64,
    tail: &[i64],
    rank: Option<usize>,
    hint: &str,
) -> Val {
    let shape = cx.em.shape(x, hint);
    let lead = cx.em.slice1(&shape, 0, Some(-drop_last), hint);
    let target = cx
        .em
        .concat_ints(vec![Arg::V(lead), Arg::C(ints(tail))], hint);
    cx.em.reshape_to(x, &target, rank, hint)
}

/// `flatten`: `[..., C, H, W]` -> `[..., C*H*W, 1, 1]`, channel-first or -last order.
pub(crate) fn flatten(cx: &mut Cx<'_>, p: &pb::FlattenLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let mut x = cx.input(0)?;
    let out = cx.out_name(0)?;
    if p.mode == 1 {
        let r = rank_of(cx, &x)?;
        x = transpose(cx, &x, &chw_perm(r, false), &out);
    }
    let y = reshape_lead(cx, &x, 3, &[-1, 1, 1], x.rank, &out);
    cx.set(0, y)
}

/// `reshape` (legacy): to `[C, H, W]` keeping the leading dimensions, or to
/// `[Seq, C, H, W]`; channel-first or channel-last order.
pub(crate) fn reshape(cx: &mut Cx<'_>, p: &pb::ReshapeLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let mut x = cx.input(0)?;
    let out = cx.out_name(0)?;
    let t = &p.target_shape;
    let last = p.mode == 1;
    if last {
        let r = rank_of(cx, &x)?;
        x = transpose(cx, &x, &chw_perm(r, false), &out);
    }
    // Channel-last data is laid out [.., H, W, C].
    let chw: Vec<i64> = match t.len() {
        3 | 4 => t[t.len() - 3..].to_vec(),
        n => return Err(cx.err(format!("targetShape has {n} values, expected 3 or 4"))),
    };
    let tail: Vec<i64> = if last {
        vec![chw[1], chw[2], chw[0]]
    } else {
        chw
    };
    let y = if t.len() == 3 {
        reshape_lead(cx, &x, 3, &tail, x.rank, &out)
    } else {
        let mut full = vec![t[0], -1];
        full.extend(&tail);
        cx.em.reshape(&x, &full, &out)
    };
    let y = if last {
        let r = rank_of(cx, &y)?;
        transpose(cx, &y, &chw_perm(r, true), &out)
    } else {
        y
    };
    cx.set(0, y)
}

/// `permute` of the `[Seq, C, H, W]` axes of a `[Seq, B, C, H, W]` blob.
pub(crate) fn permute(cx: &mut Cx<'_>, p: &pb::PermuteLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let axis: Vec<u64> = if p.axis.is_empty() {
        vec![0, 1, 2, 3]
    } else {
        p.axis.clone()
    };
    let mut sorted = axis.clone();
    sorted.sort_unstable();
    if sorted != [0, 1, 2, 3] {
        return Err(cx.err(format!(
            "axis {axis:?} is not a permutation of [0, 1, 2, 3]"
        )));
    }
    if x.rank.is_some_and(|r| r != 5) {
        return Err(cx.err(format!("needs a rank-5 input, got rank {:?}", x.rank)));
    }
    const TO5: [i64; 4] = [0, 2, 3, 4];
    let perm = [
        TO5[axis[0] as usize],
        1,
        TO5[axis[1] as usize],
        TO5[axis[2] as usize],
        TO5[axis[3] as usize],
    ];
    let out = cx.out_name(0)?;
    let y = transpose(cx, &x, &perm, &out);
    cx.set(0, y)
}

/// `concat` (axis -3, or -5 for sequences) and `concatND`.
pub(crate) fn concat(cx: &mut Cx<'_>, axis: i64, interleave: bool) -> Result<()> {
    cx.expect_inputs(1..=usize::MAX)?;
    let ins = cx.inputs()?;
    let rank = ins.iter().find_map(|v| v.rank);
    let args = vec![
        ("values", Arg::Vs(ins)),
        ("axis", Arg::C(int(axis))),
        (
            "interleave",
            Arg::C(crate::neuralnetwork::emit::boolean(interleave)),
        ),
    ];
    cx.out_op(0, "concat", args, rank)
}

/// Emits `split` with `args`, one output per layer output.
fn split_into(cx: &mut Cx<'_>, x: &Val, args: Vec<(&str, Arg)>) -> Result<()> {
    let n = cx.layer.output.len();
    let hint = cx.out_name(0)?;
    let mut full = vec![("x", Arg::V(x.clone()))];
    full.extend(args);
    let outs = cx
        .em
        .op("split", &hint, full, &vec![(DataType::Fp32, x.rank); n]);
    for (i, v) in outs.into_iter().enumerate() {
        cx.set(i, v)?;
    }
    Ok(())
}

/// `split` (legacy): equal parts along axis -3.
pub(crate) fn split(cx: &mut Cx<'_>, p: &pb::SplitLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let n = cx.layer.output.len();
    if p.n_outputs != 0 && p.n_outputs as usize != n {
        return Err(cx.err(format!("nOutputs {} but {n} outputs", p.n_outputs)));
    }
    split_into(
        cx,
        &x,
        vec![
            ("num_splits", Arg::C(int(n as i64))),
            ("axis", Arg::C(int(-3))),
        ],
    )
}

/// `splitND`: equal parts or given sizes along an axis.
pub(crate) fn split_nd(cx: &mut Cx<'_>, p: &pb::SplitNdLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let n = cx.layer.output.len();
    let sizes = if p.split_sizes.is_empty() {
        Arg::C(int(n as i64))
    } else {
        if p.split_sizes.len() != n {
            return Err(cx.err(format!(
                "{} splitSizes for {n} outputs",
                p.split_sizes.len()
            )));
        }
        Arg::C(ints(
            &p.split_sizes.iter().map(|&s| s as i64).collect::<Vec<_>>(),
        ))
    };
    let name = if p.split_sizes.is_empty() {
        "num_splits"
    } else {
        "split_sizes"
    };
    split_into(cx, &x, vec![(name, sizes), ("axis", Arg::C(int(p.axis)))])
}

/// `x[begin:end:stride]` along one (negative) axis, Python bounds, `end`
/// `None` meaning to the end.
fn slice_axis(
    cx: &mut Cx<'_>,
    x: &Val,
    axis: i64,
    begin: i64,
    end: Option<i64>,
    stride: i64,
) -> Result<Val> {
    let out = cx.out_name(0)?;
    let one = |cx: &mut Cx<'_>, v: Val, r: usize| -> Val {
        let a = (r as i64 + axis) as usize;
        let mut b = vec![0; r];
        let mut e = vec![0; r];
        let mut s = vec![1; r];
        let mut bm = vec![true; r];
        let mut em = vec![true; r];
        b[a] = begin;
        bm[a] = false;
        if let Some(end) = end {
            e[a] = end;
            em[a] = false;
        }
        s[a] = stride;
        cx.em.f32_op(
            "slice_by_index",
            &out,
            vec![
                ("x", Arg::V(v)),
                ("begin", Arg::C(ints(&b))),
                ("end", Arg::C(ints(&e))),
                ("stride", Arg::C(ints(&s))),
                ("begin_mask", Arg::C(bools(&bm))),
                ("end_mask", Arg::C(bools(&em))),
            ],
            Some(r),
        )
    };
    match x.rank {
        Some(r) if (r as i64) >= -axis => Ok(one(cx, x.clone(), r)),
        Some(r) => Err(cx.err(format!("slices axis {axis} of a rank-{r} blob"))),
        None => {
            let k = (-axis) as usize;
            cx.batched(x, k, |cx, v| Ok(one(cx, v, k + 1)))
        }
    }
}

/// `slice` (legacy): along C, H or W.
pub(crate) fn slice(cx: &mut Cx<'_>, p: &pb::SliceLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let axis = match p.axis {
        0 => -3,
        1 => -2,
        2 => -1,
        a => return Err(cx.err(format!("unknown slice axis {a}"))),
    };
    let stride = p.stride.max(1) as i64;
    let y = slice_axis(cx, &x, axis, p.start_index, Some(p.end_index), stride)?;
    cx.set(0, y)
}

/// `sliceStatic`: begin/end/stride/masks per axis.
pub(crate) fn slice_static(cx: &mut Cx<'_>, p: &pb::SliceStaticLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let r = p.begin_ids.len();
    if [
        p.end_ids.len(),
        p.strides.len(),
        p.begin_masks.len(),
        p.end_masks.len(),
    ]
    .iter()
    .any(|&n| n != r)
        || (!p.squeeze_masks.is_empty() && p.squeeze_masks.len() != r)
    {
        return Err(cx.err("beginIds, endIds, strides and the masks must have one value per axis"));
    }
    let squeeze = if p.squeeze_masks.is_empty() {
        vec![false; r]
    } else {
        p.squeeze_masks.clone()
    };
    let args = vec![
        ("x", Arg::V(x)),
        ("begin", Arg::C(ints(&p.begin_ids))),
        ("end", Arg::C(ints(&p.end_ids))),
        ("stride", Arg::C(ints(&p.strides))),
        ("begin_mask", Arg::C(bools(&p.begin_masks))),
        ("end_mask", Arg::C(bools(&p.end_masks))),
        ("squeeze_mask", Arg::C(bools(&squeeze))),
    ];
    let rank = r - squeeze.iter().filter(|&&s| s).count();
    cx.out_op(0, "slice_by_index", args, Some(rank.max(1)))
}

/// `sliceDynamic`: begin (and end, strides) as inputs.
pub(crate) fn slice_dynamic(cx: &mut Cx<'_>, p: &pb::SliceDynamicLayerParams) -> Result<()> {
    cx.expect_inputs(2..=4)?;
    let x = cx.input(0)?;
    let r = p.begin_masks.len();
    if r == 0 {
        return Err(cx.err("beginMasks must have one value per axis"));
    }
    let ints_in = |cx: &mut Cx<'_>, i: usize, fixed: &[i64]| -> Result<Arg> {
        if cx.n_inputs() > i {
            let v = cx.input(i)?;
            Ok(Arg::V(cx.int_of(&v)))
        } else if fixed.len() == r {
            Ok(Arg::C(ints(fixed)))
        } else {
            Err(cx.err("endIds and strides must have one value per axis"))
        }
    };
    let begin = ints_in(cx, 1, &[])?;
    let end = ints_in(cx, 2, &p.end_ids)?;
    let stride = ints_in(cx, 3, &p.strides)?;
    let squeeze = if p.squeeze_masks.is_empty() {
        vec![false; r]
    } else {
        p.squeeze_masks.clone()
    };
    if p.end_masks.len() != r || squeeze.len() != r {
        return Err(cx.err("the masks must have one value per axis"));
    }
    let rank = r - squeeze.iter().filter(|&&s| s).count();
    let args = vec![
        ("x", Arg::V(x)),
        ("begin", begin),
        ("end", end),
        ("stride", stride),
        ("begin_mask", Arg::C(bools(&p.begin_masks))),
        ("end_mask", Arg::C(bools(&p.end_masks))),
        ("squeeze_mask", Arg::C(bools(&squeeze))),
    ];
    cx.out_op(0, "slice_by_index", args, Some(rank.max(1)))
}

/// `sliceBySize`: `size` elements from a runtime begin along one axis.
pub(crate) fn slice_by_size(cx: &mut Cx<'_>, p: &pb::SliceBySizeLayerParams) -> Result<()> {
    cx.expect_inputs(2..=2)?;
    let x = cx.input(0)?;
    let r = rank_of(cx, &x)? as i64;
    let a = if p.axis < 0 { p.axis + r } else { p.axis };
    if !(0..r).contains(&a) {
        return Err(cx.err(format!("axis {} out of range for rank {r}", p.axis)));
    }
    let b = cx.input(1)?;
    let hint = cx.name().to_string();
    let b = cx.int_of(&b);
    let b = cx.em.reshape(&b, &[1], &hint);
    let b = cx.em.cast(&b, DataType::Int32, &hint);
    let before = vec![0; a as usize];
    let after = vec![0; (r - a - 1) as usize];
    let begin = cx.em.concat_ints(
        vec![Arg::C(ints(&before)), Arg::V(b), Arg::C(ints(&after))],
        &hint,
    );
    let mut size = vec![-1; r as usize];
    size[a as usize] = p.size;
    let args = vec![
        ("x", Arg::V(x.clone())),
        ("begin", Arg::V(begin)),
        ("size", Arg::C(ints(&size))),
    ];
    cx.out_op(0, "slice_by_size", args, x.rank)
}

/// `sequenceRepeat`: tiles axis -5.
pub(crate) fn sequence_repeat(cx: &mut Cx<'_>, p: &pb::SequenceRepeatLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let r = x.rank.unwrap_or(5);
    if r < 5 {
        return Err(cx.err(format!("needs rank 5 or more, got {r}")));
    }
    let mut reps = vec![1; r];
    reps[r - 5] = p.n_repetitions.max(1) as i64;
    cx.out_op(
        0,
        "tile",
        vec![("x", Arg::V(x.clone())), ("reps", Arg::C(ints(&reps)))],
        x.rank,
    )
}

/// `transpose`.
pub(crate) fn transpose_layer(cx: &mut Cx<'_>, p: &pb::TransposeLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let perm: Vec<i64> = p.axes.iter().map(|&a| a as i64).collect();
    let out = cx.out_name(0)?;
    let y = transpose(cx, &x, &perm, &out);
    cx.set(0, y)
}

/// `squeeze` of given axes or every unit axis (a rank-1 input stays rank 1).
pub(crate) fn squeeze(cx: &mut Cx<'_>, p: &pb::SqueezeLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    if x.rank == Some(1) {
        return cx.out_op(0, "identity", vec![("x", Arg::V(x.clone()))], Some(1));
    }
    let (args, rank) = if p.squeeze_all || p.axes.is_empty() {
        (vec![("x", Arg::V(x.clone()))], None)
    } else {
        let rank = x.rank.map(|r| r.saturating_sub(p.axes.len()).max(1));
        (
            vec![("x", Arg::V(x.clone())), ("axes", Arg::C(ints(&p.axes)))],
            rank,
        )
    };
    cx.out_op(0, "squeeze", args, rank)
}

/// `expandDims`.
pub(crate) fn expand_dims(cx: &mut Cx<'_>, p: &pb::ExpandDimsLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let rank = x.rank.map(|r| r + p.axes.len());
    cx.out_op(
        0,
        "expand_dims",
        vec![("x", Arg::V(x)), ("axes", Arg::C(ints(&p.axes)))],
        rank,
    )
}

/// `flattenTo2D`.
pub(crate) fn flatten_to_2d(cx: &mut Cx<'_>, p: &pb::FlattenTo2DLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    cx.out_op(
        0,
        "flatten2d",
        vec![("x", Arg::V(x)), ("axis", Arg::C(int(p.axis)))],
        Some(2),
    )
}

/// `reshapeStatic`.
pub(crate) fn reshape_static(cx: &mut Cx<'_>, target: &[i64]) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let out = cx.out_name(0)?;
    let y = cx.em.reshape(&x, target, &out);
    cx.set(0, y)
}

/// `reshapeLike`: to the shape of the second input.
pub(crate) fn reshape_like(cx: &mut Cx<'_>) -> Result<()> {
    cx.expect_inputs(2..=2)?;
    let (x, r) = (cx.input(0)?, cx.input(1)?);
    let out = cx.out_name(0)?;
    let s = cx.em.shape(&r, &out);
    let y = cx.em.reshape_to(&x, &s, r.rank, &out);
    cx.set(0, y)
}

/// `reshapeDynamic`: to the shape held by the second input.
pub(crate) fn reshape_dynamic(cx: &mut Cx<'_>) -> Result<()> {
    cx.expect_inputs(2..=2)?;
    let (x, s) = (cx.input(0)?, cx.input(1)?);
    let out = cx.out_name(0)?;
    let s = cx.int_of(&s);
    let y = cx.em.reshape_to(&x, &s, None, &out);
    cx.set(0, y)
}

/// `rankPreservingReshape`: 0 keeps a dimension, -1 is inferred.
pub(crate) fn rank_preserving_reshape(
    cx: &mut Cx<'_>,
    p: &pb::RankPreservingReshapeLayerParams,
) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let out = cx.out_name(0)?;
    let t = &p.target_shape;
    if !t.contains(&0) {
        let y = cx.em.reshape(&x, t, &out);
        return cx.set(0, y);
    }
    let keep: Vec<i64> = t.iter().map(|&d| i64::from(d == 0)).collect();
    let shape = cx.em.shape(&x, &out);
    let kept = cx.typed(
        "mul",
        vec![("x", Arg::V(shape)), ("y", Arg::C(ints(&keep)))],
        DataType::Int32,
        Some(1),
    );
    let target = cx.typed(
        "add",
        vec![("x", Arg::V(kept)), ("y", Arg::C(ints(t)))],
        DataType::Int32,
        Some(1),
    );
    let y = cx.em.reshape_to(&x, &target, Some(t.len()), &out);
    cx.set(0, y)
}

/// `tile`: reps as a parameter (left-padded with 1s) or a second input.
pub(crate) fn tile(cx: &mut Cx<'_>, p: &pb::TileLayerParams) -> Result<()> {
    cx.expect_inputs(1..=2)?;
    let x = cx.input(0)?;
    let reps = if cx.n_inputs() == 2 {
        let r = cx.input(1)?;
        Arg::V(cx.int_of(&r))
    } else {
        let mut reps: Vec<i64> = p.reps.iter().map(|&v| v as i64).collect();
        if let Some(r) = x.rank {
            if reps.len() > r {
                return Err(cx.err(format!("{} reps for a rank-{r} input", reps.len())));
            }
            reps.splice(0..0, std::iter::repeat_n(1, r - reps.len()));
        }
        Arg::C(ints(&reps))
    };
    cx.out_op(
        0,
        "tile",
        vec![("x", Arg::V(x.clone())), ("reps", reps)],
        x.rank,
    )
}

/// `stack` along a new axis.
pub(crate) fn stack(cx: &mut Cx<'_>, p: &pb::StackLayerParams) -> Result<()> {
    cx.expect_inputs(1..=usize::MAX)?;
    let ins = cx.inputs()?;
    let rank = ins.iter().find_map(|v| v.rank).map(|r| r + 1);
    cx.out_op(
        0,
        "stack",
        vec![("values", Arg::Vs(ins)), ("axis", Arg::C(int(p.axis)))],
        rank,
    )
}

/// `getShape`, as floats.
pub(crate) fn get_shape(cx: &mut Cx<'_>) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let hint = cx.name().to_string();
    let s = cx.em.shape(&x, &hint);
    cx.set_float(0, &s)
}

/// `slidingWindows`.
pub(crate) fn sliding_windows(cx: &mut Cx<'_>, p: &pb::SlidingWindowsLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let args = vec![
        ("x", Arg::V(x.clone())),
        ("axis", Arg::C(int(p.axis))),
        ("size", Arg::C(int(p.window_size as i64))),
        ("stride", Arg::C(int(p.step.max(1) as i64))),
    ];
    cx.out_op(0, "sliding_windows", args, x.rank.map(|r| r + 1))
}

/// `reverse` of the flagged dimensions.
pub(crate) fn reverse(cx: &mut Cx<'_>, p: &pb::ReverseLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let axes: Vec<i64> = p
        .reverse_dim
        .iter()
        .enumerate()
        .filter(|(_, &r)| r)
        .map(|(i, _)| i as i64)
        .collect();
    if axes.is_empty() {
        return cx.out_op(0, "identity", vec![("x", Arg::V(x.clone()))], x.rank);
    }
    cx.out_op(
        0,
        "reverse",
        vec![("x", Arg::V(x.clone())), ("axes", Arg::C(ints(&axes)))],
        x.rank,
    )
}

/// `reverseSeq`: reverses the first `lengths[b]` steps of each batch item.
pub(crate) fn reverse_seq(cx: &mut Cx<'_>, p: &pb::ReverseSeqLayerParams) -> Result<()> {
    cx.expect_inputs(2..=2)?;
    let (x, l) = (cx.input(0)?, cx.input(1)?);
    let l = cx.int_of(&l);
    let args = vec![
        ("x", Arg::V(x.clone())),
        ("lengths", Arg::V(l)),
        ("seq_axis", Arg::C(int(p.sequence_axis))),
        ("batch_axis", Arg::C(int(p.batch_axis))),
    ];
    cx.out_op(0, "reverse_sequence", args, x.rank)
}

/// Translates the layer when it belongs to this family.
pub(super) fn dispatch(
    cx: &mut Cx<'_>,
    layer: &pb::neural_network_layer::Layer,
) -> Option<Result<()>> {
    use pb::neural_network_layer::Layer as L;
    Some(match layer {
        L::Flatten(p) => flatten(cx, p),
        L::Reshape(p) => reshape(cx, p),
        L::Permute(p) => permute(cx, p),
        L::Concat(p) => concat(cx, if p.sequence_concat { -5 } else { -3 }, false),
        L::ConcatNd(p) => concat(cx, p.axis, p.interleave),
        L::Split(p) => split(cx, p),
        L::SplitNd(p) => split_nd(cx, p),
        L::Slice(p) => slice(cx, p),
        L::SliceStatic(p) => slice_static(cx, p),
        L::SliceDynamic(p) => slice_dynamic(cx, p),
        L::SliceBySize(p) => slice_by_size(cx, p),
        L::SequenceRepeat(p) => sequence_repeat(cx, p),
        L::Transpose(p) => transpose_layer(cx, p),
        L::Squeeze(p) => squeeze(cx, p),
        L::ExpandDims(p) => expand_dims(cx, p),
        L::FlattenTo2D(p) => flatten_to_2d(cx, p),
        L::ReshapeStatic(p) => reshape_static(cx, &p.target_shape),
        L::ReshapeLike(_) => reshape_like(cx),
        L::ReshapeDynamic(_) => reshape_dynamic(cx),
        L::RankPreservingReshape(p) => rank_preserving_reshape(cx, p),
        L::Tile(p) => tile(cx, p),
        L::Stack(p) => stack(cx, p),
        L::GetShape(_) => get_shape(cx),
        L::SlidingWindows(p) => sliding_windows(cx, p),
        L::Reverse(p) => reverse(cx, p),
        L::ReverseSeq(p) => reverse_seq(cx, p),
        _ => return None,
    })
}
