//! Normalization and reduction layers: `batchnorm`, `mvn`, `l2normalize`,
//! `lrn`, `softmax`, `softmaxND`, `layerNormalization`, `reduce` and the
//! `reduce*` layers of spec 4+.

use coreml_proto::proto as pb;

use super::cx::Cx;
use crate::error::Result;
use crate::mil::DataType;
use crate::neuralnetwork::emit::{boolean, float, floats, int, ints, Arg, Val};

/// A reduction of `x` over `axes` (all axes when `None`).
fn reduce(cx: &mut Cx<'_>, op: &str, x: &Val, axes: Option<&[i64]>, keep: bool, hint: &str) -> Val {
    let mut args = vec![
        ("x", Arg::V(x.clone())),
        ("keep_dims", Arg::C(boolean(keep))),
    ];
    let rank = match axes {
        Some(a) => {
            args.push(("axes", Arg::C(ints(a))));
            if keep {
                x.rank
            } else {
                x.rank.map(|r| r.saturating_sub(a.len()))
            }
        }
        None => {
            if keep {
                x.rank
            } else {
                Some(0)
            }
        }
    };
    cx.em.f32_op(op, hint, args, rank)
}

/// The values of a `[C]` parameter.
fn vector(cx: &Cx<'_>, wp: Option<&pb::WeightParams>, c: usize, what: &str) -> Result<Vec<f64>> {
    Ok(cx
        .weights(wp, c, None, what)?
        .into_iter()
        .map(f64::from)
        .collect())
}

/// `batchnorm` along axis -3, with given or computed statistics.
pub(crate) fn batchnorm(cx: &mut Cx<'_>, p: &pb::BatchnormLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let out = cx.out_name(0)?;
    let c = p.channels as usize;
    let eps = if p.epsilon == 0.0 {
        1e-5
    } else {
        f64::from(p.epsilon)
    };
    let gamma = vector(cx, p.gamma.as_ref(), c, "gamma")?;
    let beta = vector(cx, p.beta.as_ref(), c, "beta")?;
    let chw = |v: Vec<f64>| floats(v.into_iter().map(|x| x as f32).collect(), &[c, 1, 1]);
    if !p.compute_mean_var {
        let mean = vector(cx, p.mean.as_ref(), c, "mean")?;
        let var = vector(cx, p.variance.as_ref(), c, "variance")?;
        let scale: Vec<f64> = gamma
            .iter()
            .zip(&var)
            .map(|(g, v)| g / (v + eps).sqrt())
            .collect();
        let shift: Vec<f64> = beta
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        let y = cx.em.binary_const("mul", &x, chw(scale), &out);
        let y = cx.em.binary_const("add", &y, chw(shift), &out);
        return cx.set(0, y);
    }
    let axes: Vec<i64> = if p.instance_normalization {
        vec![-2, -1]
    } else {
        let r = x
            .rank
            .ok_or_else(|| cx.err("computing batch statistics needs the input's rank"))?;
        (0..r as i64).filter(|&a| a != r as i64 - 3).collect()
    };
    let norm = normalize(cx, &x, &axes, eps, false, &out);
    let y = cx.em.binary_const("mul", &norm, chw(gamma), &out);
    let y = cx.em.binary_const("add", &y, chw(beta), &out);
    cx.set(0, y)
}

/// `(x - mean) / f(var)` over `axes`: `sqrt(var + eps)`, or (`std_plus_eps`)
/// `sqrt(var) + eps`.
fn normalize(
    cx: &mut Cx<'_>,
    x: &Val,
    axes: &[i64],
    eps: f64,
    std_plus_eps: bool,
    hint: &str,
) -> Val {
    let mean = reduce(cx, "reduce_mean", x, Some(axes), true, hint);
    let centered = cx.em.binary("sub", x, &mean, hint);
    let sq = cx.em.binary("mul", &centered, &centered, hint);
    let var = reduce(cx, "reduce_mean", &sq, Some(axes), true, hint);
    let std = if std_plus_eps {
        let s = cx.em.unary("sqrt", &var, vec![], hint);
        cx.em.binary_scalar("add", &s, eps as f32, hint)
    } else {
        let v = cx.em.binary_scalar("add", &var, eps as f32, hint);
        cx.em.unary("sqrt", &v, vec![], hint)
    };
    cx.em
        .binary("real_div", &centered, &std, hint)
        .with_rank(x.rank)
}

/// `mvn`: mean (and variance) normalization over C, H, W or H, W.
pub(crate) fn mvn(cx: &mut Cx<'_>, p: &pb::MeanVarianceNormalizeLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let out = cx.out_name(0)?;
    let axes: &[i64] = if p.across_channels {
        &[-3, -2, -1]
    } else {
        &[-2, -1]
    };
    let eps = if p.epsilon == 0.0 {
        1e-6
    } else {
        f64::from(p.epsilon)
    };
    let y = if p.normalize_variance {
        normalize(cx, &x, axes, eps, true, &out)
    } else {
        let mean = reduce(cx, "reduce_mean", &x, Some(axes), true, &out);
        cx.em.binary("sub", &x, &mean, &out)
    };
    cx.set(0, y)
}

/// `l2normalize`: `x / sqrt(sum(x^2) + eps)` over C, H, W.
pub(crate) fn l2_normalize(cx: &mut Cx<'_>, p: &pb::L2NormalizeLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let out = cx.out_name(0)?;
    let eps = if p.epsilon == 0.0 { 1e-6 } else { p.epsilon };
    let axes: Vec<i64> = match x.rank {
        Some(r) if r < 3 => (-(r as i64)..0).collect(),
        _ => vec![-3, -2, -1],
    };
    let ss = reduce(cx, "reduce_sum_square", &x, Some(&axes), true, &out);
    let d = cx.em.binary_scalar("add", &ss, eps, &out);
    let d = cx.em.unary("sqrt", &d, vec![], &out);
    let y = cx.em.binary("real_div", &x, &d, &out);
    cx.set(0, y)
}

/// `lrn` across channels.
pub(crate) fn lrn(cx: &mut Cx<'_>, p: &pb::LrnLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let out = cx.out_name(0)?;
    let k = if p.k == 0.0 { 1.0 } else { p.k };
    if p.local_size == 0 {
        return Err(cx.err("localSize must be positive"));
    }
    let y = cx.batched(&x, 3, |cx, x4| {
        Ok(cx.em.f32_op(
            "local_response_norm",
            &out,
            vec![
                ("x", Arg::V(x4)),
                ("size", Arg::C(int(p.local_size as i64))),
                ("alpha", Arg::C(float(p.alpha))),
                ("beta", Arg::C(float(p.beta))),
                ("k", Arg::C(float(k))),
            ],
            Some(4),
        ))
    })?;
    cx.set(0, y)
}

/// `softmax` (axis -3) and `softmaxND`.
pub(crate) fn softmax(cx: &mut Cx<'_>, axis: i64) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let axis = match x.rank {
        // A legacy softmax of a rank < 3 blob normalizes its first axis.
        Some(r) if axis == -3 && r < 3 => -(r.max(1) as i64),
        _ => axis,
    };
    cx.out_op(
        0,
        "softmax",
        vec![("x", Arg::V(x.clone())), ("axis", Arg::C(int(axis)))],
        x.rank,
    )
}

/// `layerNormalization` over the trailing `normalizedShape` dimensions.
pub(crate) fn layer_norm(cx: &mut Cx<'_>, p: &pb::LayerNormalizationLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let shape: Vec<usize> = p
        .normalized_shape
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| cx.err(format!("normalizedShape {:?}", p.normalized_shape)))
        })
        .collect::<Result<_>>()?;
    let n = cx.count(&shape, "normalizedShape")?;
    let gamma = floats(cx.weights(p.gamma.as_ref(), n, None, "gamma")?, &shape);
    let beta = floats(cx.weights(p.beta.as_ref(), n, None, "beta")?, &shape);
    let axes: Vec<i64> = (-(shape.len() as i64)..0).collect();
    let args = vec![
        ("x", Arg::V(x.clone())),
        ("axes", Arg::C(ints(&axes))),
        ("gamma", Arg::C(gamma)),
        ("beta", Arg::C(beta)),
        ("epsilon", Arg::C(float(p.eps))),
    ];
    cx.out_op(0, "layer_norm", args, x.rank)
}

/// The legacy `reduce` layer (dimensions kept).
pub(crate) fn reduce_legacy(cx: &mut Cx<'_>, p: &pb::ReduceLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let out = cx.out_name(0)?;
    let axes: &[i64] = match p.axis {
        0 => &[-3, -2, -1],
        1 => &[-2, -1],
        2 => &[-3],
        3 => &[-2],
        4 => &[-1],
        a => return Err(cx.err(format!("unknown reduce axis {a}"))),
    };
    let eps = if p.epsilon == 0.0 { 1e-6 } else { p.epsilon };
    let op = match p.mode {
        0 => "reduce_sum",
        1 => "reduce_mean",
        2 => "reduce_prod",
        3 => {
            let l = cx.em.unary("log", &x, vec![("epsilon", float(eps))], &out);
            let y = reduce(cx, "reduce_sum", &l, Some(axes), true, &out);
            return cx.set(0, y);
        }
        4 => "reduce_sum_square",
        5 => "reduce_l1_norm",
        6 => "reduce_l2_norm",
        7 => "reduce_max",
        8 => "reduce_min",
        9 => {
            if axes.len() != 1 {
                return Err(cx.err("ARGMAX reduces one axis (C, H or W)"));
            }
            let i = cx.typed(
                "reduce_argmax",
                vec![
                    ("x", Arg::V(x.clone())),
                    ("axis", Arg::C(int(axes[0]))),
                    ("keep_dims", Arg::C(boolean(true))),
                ],
                DataType::Int32,
                x.rank,
            );
            return cx.set_float(0, &i);
        }
        m => return Err(cx.err(format!("unknown reduce mode {m}"))),
    };
    let y = reduce(cx, op, &x, Some(axes), true, &out);
    cx.set(0, y)
}

/// The `reduce*` layers of spec 4+: axes or all, dimensions kept or squeezed.
pub(crate) fn reduce_nd(
    cx: &mut Cx<'_>,
    op: &str,
    axes: &[i64],
    keep: bool,
    all: bool,
) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let out = cx.out_name(0)?;
    let axes = if all { None } else { Some(axes) };
    if let Some([]) = axes {
        return Err(cx.err("reduces no axes (set axes or reduceAll)"));
    }
    let y = reduce(cx, op, &x, axes, keep, &out);
    // A reduction to a scalar stays a one-element vector, as NeuralNetwork blobs have rank >= 1.
    let y = if y.rank == Some(0) || (!keep && axes.is_none()) {
        cx.em.reshape(&y, &[1], &out)
    } else {
        y
    };
    cx.set(0, y)
}

/// Translates the layer when it belongs to this family.
pub(super) fn dispatch(
    cx: &mut Cx<'_>,
    layer: &pb::neural_network_layer::Layer,
) -> Option<Result<()>> {
    use pb::neural_network_layer::Layer as L;
    Some(match layer {
        L::Batchnorm(p) => batchnorm(cx, p),
        L::Mvn(p) => mvn(cx, p),
        L::L2normalize(p) => l2_normalize(cx, p),
        L::Lrn(p) => lrn(cx, p),
        L::Softmax(_) => softmax(cx, -3),
        L::SoftmaxNd(p) => softmax(cx, p.axis),
        L::LayerNormalization(p) => layer_norm(cx, p),
        L::Reduce(p) => reduce_legacy(cx, p),
        L::ReduceSum(p) => reduce_nd(cx, "reduce_sum", &p.axes, p.keep_dims, p.reduce_all),
        L::ReduceProd(p) => reduce_nd(cx, "reduce_prod", &p.axes, p.keep_dims, p.reduce_all),
        L::ReduceMean(p) => reduce_nd(cx, "reduce_mean", &p.axes, p.keep_dims, p.reduce_all),
        L::ReduceMax(p) => reduce_nd(cx, "reduce_max", &p.axes, p.keep_dims, p.reduce_all),
        L::ReduceMin(p) => reduce_nd(cx, "reduce_min", &p.axes, p.keep_dims, p.reduce_all),
        L::ReduceL1(p) => reduce_nd(cx, "reduce_l1_norm", &p.axes, p.keep_dims, p.reduce_all),
        L::ReduceL2(p) => reduce_nd(cx, "reduce_l2_norm", &p.axes, p.keep_dims, p.reduce_all),
        L::ReduceSumSquare(p) => {
            reduce_nd(cx, "reduce_sum_square", &p.axes, p.keep_dims, p.reduce_all)
        }
        L::ReduceLogSum(p) => reduce_nd(cx, "reduce_log_sum", &p.axes, p.keep_dims, p.reduce_all),
        L::ReduceLogSumExp(p) => {
            reduce_nd(cx, "reduce_log_sum_exp", &p.axes, p.keep_dims, p.reduce_all)
        }
        _ => return None,
    })
}
