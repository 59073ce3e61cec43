//! Tensor layers of spec 4+: fills, broadcasts, ranges, gather/scatter,
//! arg-reductions, top-k, sorting, `whereNonZero`, `oneHot`, `cumSum`, band
//! and triangular masks, non-maximum suppression, random layers.
//!
//! Integer results (indices, counts, shapes) become float blobs, as every
//! NeuralNetwork blob is; index inputs are cast to integers.

use coreml_proto::proto as pb;

use super::cx::Cx;
use crate::error::Result;
use crate::mil::DataType;
use crate::neuralnetwork::emit::{boolean, float, int, ints, string, Arg, Val};

/// `fillLike`.
pub(crate) fn fill_like(cx: &mut Cx<'_>, value: f32) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    cx.out_op(
        0,
        "fill_like",
        vec![
            ("ref_tensor", Arg::V(x.clone())),
            ("value", Arg::C(float(value))),
        ],
        x.rank,
    )
}

/// `fillStatic`.
pub(crate) fn fill_static(cx: &mut Cx<'_>, p: &pb::FillStaticLayerParams) -> Result<()> {
    cx.expect_inputs(0..=0)?;
    let shape: Vec<i64> = p.target_shape.iter().map(|&d| d as i64).collect();
    let args = vec![
        ("shape", Arg::C(ints(&shape))),
        ("value", Arg::C(float(p.value))),
    ];
    cx.out_op(0, "fill", args, Some(shape.len()))
}

/// `fillDynamic`: the shape is the input's values.
pub(crate) fn fill_dynamic(cx: &mut Cx<'_>, value: f32) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let s = cx.input(0)?;
    let s = cx.int_of(&s);
    cx.out_op(
        0,
        "fill",
        vec![("shape", Arg::V(s)), ("value", Arg::C(float(value)))],
        None,
    )
}

/// `x + zeros(shape)`: `x` broadcast to `shape`.
fn broadcast(cx: &mut Cx<'_>, x: &Val, zeros: Val) -> Result<()> {
    let out = cx.out_name(0)?;
    let y = cx.em.binary("add", x, &zeros, &out);
    cx.set(0, y)
}

/// `broadcastToLike`: to the second input's shape.
pub(crate) fn broadcast_to_like(cx: &mut Cx<'_>) -> Result<()> {
    cx.expect_inputs(2..=2)?;
    let (x, r) = (cx.input(0)?, cx.input(1)?);
    let z = cx.op(
        "fill_like",
        vec![
            ("ref_tensor", Arg::V(r.clone())),
            ("value", Arg::C(float(0.0))),
        ],
        r.rank,
    );
    broadcast(cx, &x, z)
}

/// `broadcastToStatic`.
pub(crate) fn broadcast_to_static(
    cx: &mut Cx<'_>,
    p: &pb::BroadcastToStaticLayerParams,
) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let shape: Vec<i64> = p.target_shape.iter().map(|&d| d as i64).collect();
    let z = cx.op(
        "fill",
        vec![
            ("shape", Arg::C(ints(&shape))),
            ("value", Arg::C(float(0.0))),
        ],
        Some(shape.len()),
    );
    broadcast(cx, &x, z)
}

/// `broadcastToDynamic`: to the shape held by the second input.
pub(crate) fn broadcast_to_dynamic(cx: &mut Cx<'_>) -> Result<()> {
    cx.expect_inputs(2..=2)?;
    let (x, s) = (cx.input(0)?, cx.input(1)?);
    let s = cx.int_of(&s);
    let z = cx.op(
        "fill",
        vec![("shape", Arg::V(s)), ("value", Arg::C(float(0.0)))],
        None,
    );
    broadcast(cx, &x, z)
}

/// `rangeStatic`.
pub(crate) fn range_static(cx: &mut Cx<'_>, p: &pb::RangeStaticLayerParams) -> Result<()> {
    cx.expect_inputs(0..=0)?;
    let args = vec![
        ("end", Arg::C(float(p.end_value))),
        ("start", Arg::C(float(p.start_value))),
        ("step", Arg::C(float(p.step_size_value))),
    ];
    cx.out_op(0, "range_1d", args, Some(1))
}

/// `rangeDynamic`: end (and start, step) as one-element inputs.
pub(crate) fn range_dynamic(cx: &mut Cx<'_>, p: &pb::RangeDynamicLayerParams) -> Result<()> {
    cx.expect_inputs(1..=3)?;
    let hint = cx.name().to_string();
    let scalar = |cx: &mut Cx<'_>, i: usize, default: f32| -> Result<Arg> {
        if cx.n_inputs() > i {
            let v = cx.input(i)?;
            Ok(Arg::V(cx.em.reshape(&v, &[], &hint)))
        } else {
            Ok(Arg::C(float(default)))
        }
    };
    let end = scalar(cx, 0, 0.0)?;
    let start = scalar(cx, 1, p.start_value)?;
    let step = scalar(cx, 2, p.step_size_value)?;
    cx.out_op(
        0,
        "range_1d",
        vec![("end", end), ("start", start), ("step", step)],
        Some(1),
    )
}

/// `gather`, `gatherND`, `gatherAlongAxis`.
pub(crate) fn gather(cx: &mut Cx<'_>, op: &str, axis: Option<i64>) -> Result<()> {
    cx.expect_inputs(2..=2)?;
    let (x, i) = (cx.input(0)?, cx.input(1)?);
    let idx = cx.int_of(&i);
    let rank = match op {
        "gather" => x.rank.zip(i.rank).map(|(a, b)| a - 1 + b),
        "gather_along_axis" => i.rank,
        _ => None,
    };
    let mut args = vec![("x", Arg::V(x)), ("indices", Arg::V(idx))];
    if let Some(a) = axis {
        args.push(("axis", Arg::C(int(a))));
    }
    cx.out_op(0, op, args, rank)
}

/// `scatter`, `scatterND`, `scatterAlongAxis` with their accumulation mode.
pub(crate) fn scatter(cx: &mut Cx<'_>, op: &str, axis: Option<i64>, mode: i32) -> Result<()> {
    cx.expect_inputs(3..=3)?;
    let ins = cx.inputs()?;
    let mode = match mode {
        0 => "update",
        1 => "add",
        2 => "sub",
        3 => "mul",
        4 => "div",
        5 => "max",
        6 => "min",
        m => return Err(cx.err(format!("unknown scatter mode {m}"))),
    };
    let idx = cx.int_of(&ins[1]);
    let mut args = vec![
        ("data", Arg::V(ins[0].clone())),
        ("indices", Arg::V(idx)),
        ("updates", Arg::V(ins[2].clone())),
        ("mode", Arg::C(string(mode))),
    ];
    if let Some(a) = axis {
        args.push(("axis", Arg::C(int(a))));
    }
    cx.out_op(0, op, args, ins[0].rank)
}

/// `argMax`, `argMin` (a rank-1 input keeps its axis).
pub(crate) fn arg(cx: &mut Cx<'_>, op: &str, axis: i64, remove_dim: bool) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let keep = !remove_dim || x.rank == Some(1);
    let rank = x.rank.map(|r| if keep { r } else { r - 1 });
    let i = cx.typed(
        op,
        vec![
            ("x", Arg::V(x)),
            ("axis", Arg::C(int(axis))),
            ("keep_dims", Arg::C(boolean(keep))),
        ],
        DataType::Int32,
        rank,
    );
    cx.set_float(0, &i)
}

/// `topK`: values and (float) indices of the K largest or smallest.
pub(crate) fn top_k(cx: &mut Cx<'_>, p: &pb::TopKLayerParams) -> Result<()> {
    cx.expect_inputs(1..=2)?;
    let x = cx.input(0)?;
    let hint = cx.name().to_string();
    if cx.n_inputs() == 1 {
        let outs = cx.em.op(
            "topk",
            &hint,
            vec![
                ("x", Arg::V(x.clone())),
                ("k", Arg::C(int(p.k as i64))),
                ("axis", Arg::C(int(p.axis))),
                ("ascending", Arg::C(boolean(p.use_bottom_k))),
            ],
            &[(DataType::Fp32, x.rank), (DataType::Int32, x.rank)],
        );
        cx.set(0, outs[0].clone())?;
        return cx.set_float(1, &outs[1]);
    }
    // K at run time: sort, keep the first K indices, gather their values.
    let r = x
        .rank
        .ok_or_else(|| cx.unsupported("K as an input for an input of unknown rank"))?
        as i64;
    let a = if p.axis < 0 { p.axis + r } else { p.axis };
    let order = cx.typed(
        "argsort",
        vec![
            ("x", Arg::V(x.clone())),
            ("axis", Arg::C(int(a))),
            ("ascending", Arg::C(boolean(p.use_bottom_k))),
        ],
        DataType::Int32,
        x.rank,
    );
    let k = cx.input(1)?;
    let k = cx.em.reshape(&k, &[1], &hint);
    let k = cx.int_of(&k);
    let before = vec![-1; a as usize];
    let after = vec![-1; (r - a - 1) as usize];
    let size = cx.em.concat_ints(
        vec![Arg::C(ints(&before)), Arg::V(k), Arg::C(ints(&after))],
        &hint,
    );
    let idx = cx.typed(
        "slice_by_size",
        vec![
            ("x", Arg::V(order)),
            ("begin", Arg::C(ints(&vec![0; r as usize]))),
            ("size", Arg::V(size)),
        ],
        DataType::Int32,
        x.rank,
    );
    let vals = cx.op(
        "gather_along_axis",
        vec![
            ("x", Arg::V(x.clone())),
            ("indices", Arg::V(idx.clone())),
            ("axis", Arg::C(int(a))),
        ],
        x.rank,
    );
    cx.set(0, vals)?;
    cx.set_float(1, &idx)
}

/// `argSort`.
pub(crate) fn arg_sort(cx: &mut Cx<'_>, p: &pb::ArgSortLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let i = cx.typed(
        "argsort",
        vec![
            ("x", Arg::V(x.clone())),
            ("axis", Arg::C(int(p.axis))),
            ("ascending", Arg::C(boolean(!p.descending))),
        ],
        DataType::Int32,
        x.rank,
    );
    cx.set_float(0, &i)
}

/// `whereNonZero`: `[N, rank]` indices of the nonzero elements.
pub(crate) fn where_non_zero(cx: &mut Cx<'_>) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let i = cx.typed("non_zero", vec![("x", Arg::V(x))], DataType::Int32, Some(2));
    cx.set_float(0, &i)
}

/// `oneHot`: the vector size as a parameter or a second input.
pub(crate) fn one_hot(cx: &mut Cx<'_>, p: &pb::OneHotLayerParams) -> Result<()> {
    cx.expect_inputs(1..=2)?;
    let x = cx.input(0)?;
    let idx = cx.int_of(&x);
    let size = if cx.n_inputs() == 2 {
        let s = cx.input(1)?;
        let hint = cx.name().to_string();
        let s = cx.em.reshape(&s, &[], &hint);
        Arg::V(cx.int_of(&s))
    } else {
        Arg::C(int(p.one_hot_vector_size as i64))
    };
    let args = vec![
        ("indices", Arg::V(idx)),
        ("one_hot_vector_size", size),
        ("axis", Arg::C(int(p.axis))),
        ("on_value", Arg::C(float(p.on_value))),
        ("off_value", Arg::C(float(p.off_value))),
    ];
    cx.out_op(0, "one_hot", args, x.rank.map(|r| r + 1))
}

/// `cumSum`.
pub(crate) fn cum_sum(cx: &mut Cx<'_>, p: &pb::CumSumLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let args = vec![
        ("x", Arg::V(x.clone())),
        ("axis", Arg::C(int(p.axis))),
        ("exclusive", Arg::C(boolean(p.exclude_final_sum))),
        ("reverse", Arg::C(boolean(p.reverse))),
    ];
    cx.out_op(0, "cumsum", args, x.rank)
}

/// `band_part` of `x` (a negative bound keeps that side whole).
fn band_part(cx: &mut Cx<'_>, x: &Val, lower: i64, upper: i64, hint: &str) -> Val {
    cx.em.f32_op(
        "band_part",
        hint,
        vec![
            ("x", Arg::V(x.clone())),
            ("lower", Arg::C(int(lower))),
            ("upper", Arg::C(int(upper))),
        ],
        x.rank,
    )
}

/// `matrixBandPart`.
pub(crate) fn band(cx: &mut Cx<'_>, lower: Option<i64>, upper: Option<i64>) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let out = cx.out_name(0)?;
    let y = band_part(cx, &x, lower.unwrap_or(-1), upper.unwrap_or(-1), &out);
    cx.set(0, y)
}

/// `lowerTriangular` (keeps `j - i <= k`) and `upperTriangular` (keeps
/// `j - i >= k`): a band, or the input minus the complementary band.
pub(crate) fn triangular(cx: &mut Cx<'_>, k: i64, lower: bool) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let out = cx.out_name(0)?;
    let y = match (lower, k) {
        (true, 0..) => band_part(cx, &x, -1, k, &out),
        (false, ..=0) => band_part(cx, &x, -k, -1, &out),
        (true, _) => {
            let drop = band_part(cx, &x, -k - 1, -1, &out);
            cx.em.binary("sub", &x, &drop, &out)
        }
        (false, _) => {
            let drop = band_part(cx, &x, -1, k - 1, &out);
            cx.em.binary("sub", &x, &drop, &out)
        }
    };
    cx.set(0, y)
}

/// `NonMaximumSuppression`: boxes, scores, indices and counts (all float).
pub(crate) fn nms(cx: &mut Cx<'_>, p: &pb::NonMaximumSuppressionLayerParams) -> Result<()> {
    cx.expect_inputs(2..=2)?;
    let (boxes, scores) = (cx.input(0)?, cx.input(1)?);
    if cx.layer.output.len() != 4 {
        return Err(cx.err("needs 4 outputs"));
    }
    let hint = cx.name().to_string();
    let outs = cx.em.op(
        "non_maximum_suppression",
        &hint,
        vec![
            ("boxes", Arg::V(boxes)),
            ("scores", Arg::V(scores)),
            ("iou_threshold", Arg::C(float(p.iou_threshold))),
            ("score_threshold", Arg::C(float(p.score_threshold))),
            ("max_boxes", Arg::C(int(p.max_boxes as i64))),
            (
                "per_class_suppression",
                Arg::C(boolean(p.per_class_suppression)),
            ),
        ],
        &[
            (DataType::Fp32, Some(3)),
            (DataType::Fp32, Some(3)),
            (DataType::Int32, Some(2)),
            (DataType::Int32, Some(1)),
        ],
    );
    cx.set(0, outs[0].clone())?;
    cx.set(1, outs[1].clone())?;
    cx.set_float(2, &outs[2])?;
    cx.set_float(3, &outs[3])
}

/// Where a random layer's output shape comes from.
enum RandomShape<'s> {
    /// The shape of the input (`*Like`).
    Like,
    /// A parameter (`*Static`).
    Static(&'s [u64]),
    /// The values of the input (`*Dynamic`).
    Dynamic,
}

/// A random layer's MIL op, shape source, seed and distribution parameters.
type RandomSpec<'s> = (&'static str, RandomShape<'s>, i64, Vec<(&'static str, f32)>);

fn random_spec(layer: &pb::neural_network_layer::Layer) -> Option<RandomSpec<'_>> {
    use pb::neural_network_layer::Layer as L;
    use RandomShape::{Dynamic, Like, Static};
    let normal = |m: f32, s: f32| vec![("mean", m), ("stddev", s)];
    let uniform = |lo: f32, hi: f32| vec![("low", lo), ("high", hi)];
    Some(match layer {
        L::RandomNormalLike(p) => ("random_normal", Like, p.seed, normal(p.mean, p.std_dev)),
        L::RandomNormalStatic(p) => (
            "random_normal",
            Static(&p.output_shape),
            p.seed,
            normal(p.mean, p.std_dev),
        ),
        L::RandomNormalDynamic(p) => ("random_normal", Dynamic, p.seed, normal(p.mean, p.std_dev)),
        L::RandomUniformLike(p) => (
            "random_uniform",
            Like,
            p.seed,
            uniform(p.min_val, p.max_val),
        ),
        L::RandomUniformStatic(p) => (
            "random_uniform",
            Static(&p.output_shape),
            p.seed,
            uniform(p.min_val, p.max_val),
        ),
        L::RandomUniformDynamic(p) => (
            "random_uniform",
            Dynamic,
            p.seed,
            uniform(p.min_val, p.max_val),
        ),
        L::RandomBernoulliLike(p) => ("random_bernoulli", Like, p.seed, vec![("prob", p.prob)]),
        L::RandomBernoulliStatic(p) => (
            "random_bernoulli",
            Static(&p.output_shape),
            p.seed,
            vec![("prob", p.prob)],
        ),
        L::RandomBernoulliDynamic(p) => {
            ("random_bernoulli", Dynamic, p.seed, vec![("prob", p.prob)])
        }
        _ => return None,
    })
}

/// The random layers: the shape comes from an input's shape (`*Like`), a
/// parameter (`*Static`) or an input's values (`*Dynamic`).
pub(crate) fn random(cx: &mut Cx<'_>, layer: &pb::neural_network_layer::Layer) -> Result<()> {
    let (op, shape, seed, params) =
        random_spec(layer).ok_or_else(|| cx.err("not a random layer"))?;
    let hint = cx.name().to_string();
    let (shape, rank) = match shape {
        RandomShape::Like => {
            cx.expect_inputs(1..=1)?;
            let x = cx.input(0)?;
            (Arg::V(cx.em.shape(&x, &hint)), x.rank)
        }
        RandomShape::Static(s) => {
            cx.expect_inputs(0..=0)?;
            let dims: Vec<i64> = s.iter().map(|&d| d as i64).collect();
            (Arg::C(ints(&dims)), Some(s.len()))
        }
        RandomShape::Dynamic => {
            cx.expect_inputs(1..=1)?;
            let s = cx.input(0)?;
            (Arg::V(cx.int_of(&s)), None)
        }
    };
    let mut args = vec![("shape", shape), ("seed", Arg::C(int(seed)))];
    args.extend(params.into_iter().map(|(n, v)| (n, Arg::C(float(v)))));
    cx.out_op(0, op, args, rank)
}

/// `categoricalDistribution`: samples class indices (as floats).
pub(crate) fn categorical(
    cx: &mut Cx<'_>,
    p: &pb::CategoricalDistributionLayerParams,
) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let mut x = cx.input(0)?;
    let hint = cx.name().to_string();
    if p.temperature != 0.0 && p.temperature != 1.0 {
        x = cx.em.binary_scalar("real_div", &x, p.temperature, &hint);
    }
    let args = vec![
        ("x", Arg::V(x.clone())),
        (
            "mode",
            Arg::C(string(if p.is_logits { "logits" } else { "probs" })),
        ),
        ("size", Arg::C(int(p.num_samples))),
        ("seed", Arg::C(int(p.seed))),
    ];
    let s = cx.typed("random_categorical", args, DataType::Int32, x.rank);
    cx.set_float(0, &s)
}

/// Translates the layer when it belongs to this family.
pub(super) fn dispatch(
    cx: &mut Cx<'_>,
    layer: &pb::neural_network_layer::Layer,
) -> Option<Result<()>> {
    use pb::neural_network_layer::Layer as L;
    Some(match layer {
        L::FillLike(p) => fill_like(cx, p.value),
        L::FillStatic(p) => fill_static(cx, p),
        L::FillDynamic(p) => fill_dynamic(cx, p.value),
        L::BroadcastToLike(_) => broadcast_to_like(cx),
        L::BroadcastToStatic(p) => broadcast_to_static(cx, p),
        L::BroadcastToDynamic(_) => broadcast_to_dynamic(cx),
        L::RangeStatic(p) => range_static(cx, p),
        L::RangeDynamic(p) => range_dynamic(cx, p),
        L::Gather(p) => gather(cx, "gather", Some(p.axis)),
        L::GatherNd(_) => gather(cx, "gather_nd", None),
        L::GatherAlongAxis(p) => gather(cx, "gather_along_axis", Some(p.axis)),
        L::Scatter(p) => scatter(cx, "scatter", Some(p.axis), p.mode),
        L::ScatterNd(p) => scatter(cx, "scatter_nd", None, p.mode),
        L::ScatterAlongAxis(p) => scatter(cx, "scatter_along_axis", Some(p.axis), p.mode),
        L::ArgMax(p) => arg(cx, "reduce_argmax", p.axis, p.remove_dim),
        L::ArgMin(p) => arg(cx, "reduce_argmin", p.axis, p.remove_dim),
        L::TopK(p) => top_k(cx, p),
        L::ArgSort(p) => arg_sort(cx, p),
        L::WhereNonZero(_) => where_non_zero(cx),
        L::OneHot(p) => one_hot(cx, p),
        L::CumSum(p) => cum_sum(cx, p),
        L::MatrixBandPart(p) => band(cx, Some(p.num_lower), Some(p.num_upper)),
        L::LowerTriangular(p) => triangular(cx, p.k, true),
        L::UpperTriangular(p) => triangular(cx, p.k, false),
        L::NonMaximumSuppression(p) => nms(cx, p),
        L::RandomNormalLike(_)
        | L::RandomNormalStatic(_)
        | L::RandomNormalDynamic(_)
        | L::RandomUniformLike(_)
        | L::RandomUniformStatic(_)
        | L::RandomUniformDynamic(_)
        | L::RandomBernoulliLike(_)
        | L::RandomBernoulliStatic(_)
        | L::RandomBernoulliDynamic(_) => random(cx, layer),
        L::CategoricalDistribution(p) => categorical(cx, p),
        _ => return None,
    })
}
