//! Activations and one-input elementwise functions: `activation` (every
//! nonlinearity), `clampedReLU`, `gelu`, `unary`, `clip`, the trigonometric
//! and rounding layers.

use coreml_proto::proto as pb;

use super::cx::Cx;
use crate::error::Result;
use crate::mil::TensorValue;
use crate::neuralnetwork::emit::{float, floats, string, Val};
use crate::neuralnetwork::weights::stored_len;

/// `alpha`/`beta` style float parameters.
fn ab(alpha: f32, beta: f32) -> Vec<(&'static str, TensorValue)> {
    vec![("alpha", float(alpha)), ("beta", float(beta))]
}

/// A per-channel parameter of PReLU / parametric softplus as a constant that
/// broadcasts along axis -3 (`[C, 1, 1]`, or a scalar when shared).
fn channel_param(cx: &Cx<'_>, wp: Option<&pb::WeightParams>, what: &str) -> Result<TensorValue> {
    let n = wp.and_then(stored_len).unwrap_or(0);
    if n == 0 {
        return Err(cx.err(format!("{what}: no values")));
    }
    let v = cx.weights(wp, n, None, what)?;
    Ok(if n == 1 {
        floats(v, &[])
    } else {
        floats(v, &[n, 1, 1])
    })
}

/// `activation`: every NeuralNetwork nonlinearity.
pub(crate) fn activation(cx: &mut Cx<'_>, p: &pb::ActivationParams) -> Result<()> {
    use pb::activation_params::NonlinearityType as N;
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let out = cx.out_name(0)?;
    let Some(kind) = &p.nonlinearity_type else {
        return Err(cx.err("sets no nonlinearity"));
    };
    let simple = |op: &str, params: Vec<(&'static str, TensorValue)>| (op.to_string(), params);
    let (op, params) = match kind {
        N::Linear(a) => simple("linear_activation", ab(a.alpha, a.beta)),
        N::ReLu(_) => simple("relu", vec![]),
        N::LeakyReLu(a) => simple("leaky_relu", vec![("alpha", float(a.alpha))]),
        N::ThresholdedReLu(a) => simple("thresholded_relu", vec![("alpha", float(a.alpha))]),
        N::Tanh(_) => simple("tanh", vec![]),
        N::ScaledTanh(a) => simple("scaled_tanh", ab(a.alpha, a.beta)),
        N::Sigmoid(_) => simple("sigmoid", vec![]),
        N::SigmoidHard(a) => simple("sigmoid_hard", ab(a.alpha, a.beta)),
        N::Elu(a) => simple("elu", vec![("alpha", float(a.alpha))]),
        N::Softsign(_) => simple("softsign", vec![]),
        N::Softplus(_) => simple("softplus", vec![]),
        N::PReLu(a) => {
            // max(x, 0) + alpha * min(x, 0), alpha along axis -3.
            let alpha = channel_param(cx, a.alpha.as_ref(), "PReLU alpha")?;
            let pos = cx.em.binary_scalar("maximum", &x, 0.0, &out);
            let neg = cx.em.binary_scalar("minimum", &x, 0.0, &out);
            let neg = cx.em.binary_const("mul", &neg, alpha, &out);
            let y = cx.em.binary("add", &pos, &neg, &out);
            return cx.set(0, y.with_rank(x.rank));
        }
        N::ParametricSoftplus(a) => {
            // alpha * softplus(beta * x), both along axis -3.
            let alpha = channel_param(cx, a.alpha.as_ref(), "parametric softplus alpha")?;
            let beta = channel_param(cx, a.beta.as_ref(), "parametric softplus beta")?;
            let bx = cx.em.binary_const("mul", &x, beta, &out);
            let sp = cx.em.unary("softplus", &bx, vec![], &out);
            let y = cx.em.binary_const("mul", &sp, alpha, &out);
            return cx.set(0, y.with_rank(x.rank));
        }
    };
    let y = cx.em.unary(&op, &x, params, &out);
    cx.set(0, y)
}

/// `clampedReLU`: `min(beta, x >= 0 ? x : alpha * x)`.
pub(crate) fn clamped_relu(cx: &mut Cx<'_>, p: &pb::ClampedReLuLayerParams) -> Result<()> {
    one(cx, "clamped_relu", ab(p.alpha, p.beta))
}

/// `gelu` in its three modes.
pub(crate) fn gelu(cx: &mut Cx<'_>, p: &pb::GeluLayerParams) -> Result<()> {
    let mode = match p.mode {
        0 => "EXACT",
        1 => "TANH_APPROXIMATION",
        2 => "SIGMOID_APPROXIMATION",
        m => return Err(cx.err(format!("unknown gelu mode {m}"))),
    };
    one(cx, "gelu", vec![("mode", string(mode))])
}

/// `clip`: `min(max(x, minVal), maxVal)`.
pub(crate) fn clip(cx: &mut Cx<'_>, p: &pb::ClipLayerParams) -> Result<()> {
    one(cx, "clip", ab(p.min_val, p.max_val))
}

/// One MIL op of `x` and constant parameters as the layer's output.
fn one(cx: &mut Cx<'_>, op: &str, params: Vec<(&'static str, TensorValue)>) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let out = cx.out_name(0)?;
    let y = cx.em.unary(op, &x, params, &out);
    cx.set(0, y)
}

/// The trigonometric, exponential and rounding layers: one MIL op each.
pub(crate) fn elementwise_fn(cx: &mut Cx<'_>) -> Result<()> {
    let op = cx.kind;
    one(cx, op, vec![])
}

/// `asinh` and `acosh`, which MIL lacks: `log(x + sqrt(x^2 +- 1))`.
pub(crate) fn inverse_hyperbolic(cx: &mut Cx<'_>) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let out = cx.out_name(0)?;
    let sign = if cx.kind == "asinh" { 1.0 } else { -1.0 };
    let sq = cx.em.binary("mul", &x, &x, &out);
    let inner = cx.em.binary_scalar("add", &sq, sign, &out);
    let root = cx.em.unary("sqrt", &inner, vec![], &out);
    let sum = cx.em.binary("add", &x, &root, &out);
    let y = cx.em.unary("log", &sum, vec![], &out);
    cx.set(0, y.with_rank(x.rank))
}

/// `unary`: `f(scale * x + shift)` for sqrt, rsqrt, inverse, power, exp,
/// log, abs and threshold.
pub(crate) fn unary(cx: &mut Cx<'_>, p: &pb::UnaryFunctionLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let out = cx.out_name(0)?;
    let scale = if p.scale == 0.0 { 1.0 } else { p.scale };
    let eps = if p.epsilon == 0.0 { 1e-6 } else { p.epsilon };
    let mut v: Val = x.clone();
    if scale != 1.0 {
        v = cx.em.binary_scalar("mul", &v, scale, &out);
    }
    if p.shift != 0.0 {
        v = cx.em.binary_scalar("add", &v, p.shift, &out);
    }
    let y = match p.r#type {
        0 => cx.em.unary("sqrt", &v, vec![], &out),
        1 => cx
            .em
            .unary("rsqrt", &v, vec![("epsilon", float(eps))], &out),
        2 => cx
            .em
            .unary("inverse", &v, vec![("epsilon", float(eps))], &out),
        3 => cx.em.binary_scalar("pow", &v, p.alpha, &out),
        4 => cx.em.unary("exp", &v, vec![], &out),
        5 => {
            // MIL `log` adds its epsilon; NeuralNetwork's LOG adds none.
            cx.em.unary("log", &v, vec![("epsilon", float(0.0))], &out)
        }
        6 => cx.em.unary("abs", &v, vec![], &out),
        7 => cx
            .em
            .unary("threshold", &v, vec![("alpha", float(p.alpha))], &out),
        t => return Err(cx.err(format!("unknown unary function {t}"))),
    };
    cx.set(0, y.with_rank(x.rank))
}

/// Translates the layer when it belongs to this family.
pub(super) fn dispatch(
    cx: &mut Cx<'_>,
    layer: &pb::neural_network_layer::Layer,
) -> Option<Result<()>> {
    use pb::neural_network_layer::Layer as L;
    Some(match layer {
        L::Activation(p) => activation(cx, p),
        L::ClampedReLu(p) => clamped_relu(cx, p),
        L::Gelu(p) => gelu(cx, p),
        L::Unary(p) => unary(cx, p),
        L::Clip(p) => clip(cx, p),
        L::Sin(_)
        | L::Cos(_)
        | L::Tan(_)
        | L::Asin(_)
        | L::Acos(_)
        | L::Atan(_)
        | L::Sinh(_)
        | L::Cosh(_)
        | L::Tanh(_)
        | L::Atanh(_)
        | L::Exp2(_)
        | L::Erf(_)
        | L::Ceil(_)
        | L::Floor(_)
        | L::Round(_)
        | L::Sign(_) => elementwise_fn(cx),
        L::Asinh(_) | L::Acosh(_) => inverse_hyperbolic(cx),
        _ => return None,
    })
}
