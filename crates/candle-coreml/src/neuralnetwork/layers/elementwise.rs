//! Elementwise layers of several inputs: `add`, `multiply`, `average`,
//! `max`, `min`, `dot`, `scale`, `bias`, `copy`, the `*Broadcastable`
//! layers, comparisons, logical layers and `whereBroadcastable`.

use coreml_proto::proto as pb;

use super::cx::Cx;
use crate::error::Result;
use crate::mil::DataType;
use crate::neuralnetwork::emit::{floats, ints, Arg, Val};
use crate::neuralnetwork::weights::Channels;

/// `add`: the sum of the inputs, or `x + alpha` for one input.
pub(crate) fn add(cx: &mut Cx<'_>, alpha: f32) -> Result<()> {
    chain(cx, "add", Some(alpha))
}

/// `multiply`: the product of the inputs, or `alpha * x` for one input.
pub(crate) fn multiply(cx: &mut Cx<'_>, alpha: f32) -> Result<()> {
    chain(cx, "mul", Some(alpha))
}

/// `average`, `max`, `min` of several inputs.
pub(crate) fn fold(cx: &mut Cx<'_>) -> Result<()> {
    match cx.kind {
        "average" => {
            let n = cx.n_inputs();
            chain(cx, "add", None)?;
            let out = cx.out_name(0)?;
            let sum = cx.blobs[&out].clone();
            let y = cx.em.binary_scalar("real_div", &sum, n as f32, &out);
            cx.set(0, y)
        }
        "max" => chain(cx, "maximum", None),
        _ => chain(cx, "minimum", None),
    }
}

/// Folds the inputs with `op`; one input combines with `alpha`.
fn chain(cx: &mut Cx<'_>, op: &str, alpha: Option<f32>) -> Result<()> {
    cx.expect_inputs(1..=usize::MAX)?;
    let ins = cx.inputs()?;
    let out = cx.out_name(0)?;
    let y = match (ins.as_slice(), alpha) {
        ([x], Some(a)) => cx.em.binary_scalar(op, x, a, &out),
        ([x], None) => x.clone(),
        (many, _) => {
            let mut acc = many[0].clone();
            for v in &many[1..] {
                acc = cx.em.binary(op, &acc, v, &out);
            }
            acc
        }
    };
    cx.set(0, y)
}

/// `dot`: the dot product (or cosine similarity) over axis -3.
pub(crate) fn dot(cx: &mut Cx<'_>, p: &pb::DotProductLayerParams) -> Result<()> {
    cx.expect_inputs(2..=2)?;
    let (x, y) = (cx.input(0)?, cx.input(1)?);
    let out = cx.out_name(0)?;
    let sum = |cx: &mut Cx<'_>, v: &Val| -> Val {
        cx.em.f32_op(
            "reduce_sum",
            &out,
            vec![
                ("x", Arg::V(v.clone())),
                ("axes", Arg::C(ints(&[-3]))),
                (
                    "keep_dims",
                    Arg::C(crate::neuralnetwork::emit::boolean(true)),
                ),
            ],
            v.rank,
        )
    };
    let xy = cx.em.binary("mul", &x, &y, &out);
    let mut d = sum(cx, &xy);
    if p.cosine_similarity {
        let xx = cx.em.binary("mul", &x, &x, &out);
        let yy = cx.em.binary("mul", &y, &y, &out);
        let (sx, sy) = (sum(cx, &xx), sum(cx, &yy));
        let n = cx.em.binary("mul", &sx, &sy, &out);
        let n = cx.em.unary("sqrt", &n, vec![], &out);
        d = cx.em.binary("real_div", &d, &n, &out);
    }
    cx.set(0, d)
}

/// A `scale`/`bias` parameter of shape `[1]`, `[C]`, `[1, H, W]` or
/// `[C, H, W]`, shaped to broadcast against `[..., C, H, W]`.
fn chw_param(
    cx: &Cx<'_>,
    wp: Option<&pb::WeightParams>,
    shape: &[u64],
    what: &str,
) -> Result<crate::mil::TensorValue> {
    let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let (n, target) = match dims.as_slice() {
        [] | [1] => (1, vec![]),
        [c] => (*c, vec![*c, 1, 1]),
        [c, h, w] => (cx.count(&[*c, *h, *w], what)?, vec![*c, *h, *w]),
        other => {
            return Err(cx.err(format!(
                "{what} shape {other:?}: expected [1], [C], [1, H, W] or [C, H, W]"
            )))
        }
    };
    let v = cx.weights(
        wp,
        n,
        Some(Channels::first(dims.first().copied().unwrap_or(1))),
        what,
    )?;
    Ok(floats(v, &target))
}

/// `scale`: `x * scale (+ bias)`.
pub(crate) fn scale(cx: &mut Cx<'_>, p: &pb::ScaleLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let out = cx.out_name(0)?;
    let s = chw_param(cx, p.scale.as_ref(), &p.shape_scale, "scale")?;
    let mut y = cx.em.binary_const("mul", &x, s, &out);
    if p.has_bias {
        let b = chw_param(cx, p.bias.as_ref(), &p.shape_bias, "bias")?;
        y = cx.em.binary_const("add", &y, b, &out);
    }
    cx.set(0, y)
}

/// `bias`: `x + bias`.
pub(crate) fn bias(cx: &mut Cx<'_>, p: &pb::BiasLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let out = cx.out_name(0)?;
    let b = chw_param(cx, p.bias.as_ref(), &p.shape, "bias")?;
    let y = cx.em.binary_const("add", &x, b, &out);
    cx.set(0, y)
}

/// `copy`: the input under a new name.
pub(crate) fn copy(cx: &mut Cx<'_>) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let out = cx.out_name(0)?;
    let y = cx.em.unary("identity", &x, vec![], &out);
    cx.set(0, y)
}

/// The `*Broadcastable` binary layers (numpy broadcasting).
pub(crate) fn broadcastable(cx: &mut Cx<'_>) -> Result<()> {
    let op = match cx.kind {
        "addBroadcastable" => "add",
        "subtractBroadcastable" => "sub",
        "multiplyBroadcastable" => "mul",
        "divideBroadcastable" => "real_div",
        "maxBroadcastable" => "maximum",
        "minBroadcastable" => "minimum",
        "floorDivBroadcastable" => "floor_div",
        "modBroadcastable" => "mod",
        _ => "pow",
    };
    cx.expect_inputs(2..=2)?;
    let (x, y) = (cx.input(0)?, cx.input(1)?);
    let out = cx.out_name(0)?;
    let z = cx.em.binary(op, &x, &y, &out);
    cx.set(0, z)
}

/// A comparison: 1.0 where it holds, else 0.0; one input compares with `alpha`.
pub(crate) fn compare(cx: &mut Cx<'_>, op: &str, alpha: f32) -> Result<()> {
    cx.expect_inputs(1..=2)?;
    let x = cx.input(0)?;
    let y = if cx.n_inputs() == 2 {
        Arg::V(cx.input(1)?)
    } else {
        Arg::C(crate::neuralnetwork::emit::float(alpha))
    };
    let rank = match (&y, x.rank) {
        (Arg::V(v), Some(a)) => v.rank.map(|b| a.max(b)),
        (_, r) => r,
    };
    let b = cx.typed(op, vec![("x", Arg::V(x)), ("y", y)], DataType::Bool, rank);
    cx.set_float(0, &b)
}

/// `logicalAnd`, `logicalOr`, `logicalXor`, `logicalNot` on "not zero".
pub(crate) fn logical(cx: &mut Cx<'_>) -> Result<()> {
    let not = cx.kind == "logicalNot";
    cx.expect_inputs(if not { 1..=1 } else { 2..=2 })?;
    let ins = cx.inputs()?;
    let truth: Vec<Val> = ins
        .iter()
        .map(|v| {
            cx.typed(
                "not_equal",
                vec![
                    ("x", Arg::V(v.clone())),
                    ("y", Arg::C(crate::neuralnetwork::emit::float(0.0))),
                ],
                DataType::Bool,
                v.rank,
            )
        })
        .collect();
    let r = if not {
        cx.typed(
            "logical_not",
            vec![("x", Arg::V(truth[0].clone()))],
            DataType::Bool,
            truth[0].rank,
        )
    } else {
        let op = match cx.kind {
            "logicalAnd" => "logical_and",
            "logicalOr" => "logical_or",
            _ => "logical_xor",
        };
        let rank = match (truth[0].rank, truth[1].rank) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        cx.typed(
            op,
            vec![
                ("x", Arg::V(truth[0].clone())),
                ("y", Arg::V(truth[1].clone())),
            ],
            DataType::Bool,
            rank,
        )
    };
    cx.set_float(0, &r)
}

/// `whereBroadcastable`: `cond != 0 ? a : b`.
pub(crate) fn where_broadcastable(cx: &mut Cx<'_>) -> Result<()> {
    cx.expect_inputs(3..=3)?;
    let ins = cx.inputs()?;
    let out = cx.out_name(0)?;
    let cond = cx.typed(
        "not_equal",
        vec![
            ("x", Arg::V(ins[0].clone())),
            ("y", Arg::C(crate::neuralnetwork::emit::float(0.0))),
        ],
        DataType::Bool,
        ins[0].rank,
    );
    let rank = ins
        .iter()
        .map(|v| v.rank)
        .try_fold(0, |m, r| r.map(|r| m.max(r)));
    let y = cx.em.f32_op(
        "select",
        &out,
        vec![
            ("cond", Arg::V(cond)),
            ("a", Arg::V(ins[1].clone())),
            ("b", Arg::V(ins[2].clone())),
        ],
        rank,
    );
    cx.set(0, y)
}

/// Translates the layer when it belongs to this family.
pub(super) fn dispatch(
    cx: &mut Cx<'_>,
    layer: &pb::neural_network_layer::Layer,
) -> Option<Result<()>> {
    use pb::neural_network_layer::Layer as L;
    Some(match layer {
        L::Add(p) => add(cx, p.alpha),
        L::Multiply(p) => multiply(cx, p.alpha),
        L::Average(_) | L::Max(_) | L::Min(_) => fold(cx),
        L::Dot(p) => dot(cx, p),
        L::Scale(p) => scale(cx, p),
        L::Bias(p) => bias(cx, p),
        L::Copy(_) => copy(cx),
        L::AddBroadcastable(_)
        | L::SubtractBroadcastable(_)
        | L::MultiplyBroadcastable(_)
        | L::DivideBroadcastable(_)
        | L::MaxBroadcastable(_)
        | L::MinBroadcastable(_)
        | L::FloorDivBroadcastable(_)
        | L::ModBroadcastable(_)
        | L::PowBroadcastable(_) => broadcastable(cx),
        L::GreaterThan(p) => compare(cx, "greater", p.alpha),
        L::GreaterEqual(p) => compare(cx, "greater_equal", p.alpha),
        L::LessThan(p) => compare(cx, "less", p.alpha),
        L::LessEqual(p) => compare(cx, "less_equal", p.alpha),
        L::Equal(p) => compare(cx, "equal", p.alpha),
        L::NotEqual(p) => compare(cx, "not_equal", p.alpha),
        L::LogicalAnd(_) | L::LogicalOr(_) | L::LogicalXor(_) | L::LogicalNot(_) => logical(cx),
        L::WhereBroadcastable(_) => where_broadcastable(cx),
        _ => return None,
    })
}
