//! `activation` ops (MIL iOS15–iOS18): relu family, gelu, sigmoid family,
//! softplus, softmax, prelu...
//!
//! Float only (fp16/fp32 by the spec); other inputs are converted to a float
//! dtype first. Results are cast to the op's declared output dtype.

use candle_core::{DType, Tensor};

use super::registry::Registry;
use super::util::norm_axis;
use super::util::numeric::{full_like, to_float, widen_half};
use crate::error::Result;
use crate::portable::cpu;
use crate::portable::kernel::{kernel, Kernel, OpBuilder};

/// The approximation `gelu` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GeluMode {
    Exact,
    Tanh,
    Sigmoid,
}

/// An elementwise activation with its constant parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Act {
    Relu,
    Relu6,
    LeakyRelu(f64),
    Elu(f64),
    Gelu(GeluMode),
    Sigmoid,
    SigmoidHard(f64, f64),
    Silu,
    Softplus,
    Softsign,
    ScaledTanh(f64, f64),
    Linear(f64, f64),
    ThresholdedRelu(f64),
    ClampedRelu(f64, f64),
}

const ELEMENTWISE: &[&str] = &[
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "gelu",
    "sigmoid",
    "sigmoid_hard",
    "silu",
    "softplus",
    "softsign",
    "scaled_tanh",
    "linear_activation",
    "thresholded_relu",
    "clamped_relu",
];

/// Registers this family's ops.
pub(crate) fn register(reg: &mut Registry) {
    for name in ELEMENTWISE {
        reg.insert(name, build_elementwise);
    }
    reg.insert("softmax", build_softmax);
    reg.insert("prelu", build_prelu);
    reg.insert("softplus_parametric", build_softplus_parametric);
}

/// Reads the op's constant parameters into an [`Act`].
fn parse_act(b: &OpBuilder<'_>) -> Result<Act> {
    let ab =
        |b: &OpBuilder<'_>| -> Result<(f64, f64)> { Ok((b.float("alpha")?, b.float("beta")?)) };
    Ok(match b.op().op_type.as_str() {
        "relu" => Act::Relu,
        "relu6" => Act::Relu6,
        "leaky_relu" => Act::LeakyRelu(b.float("alpha")?),
        "elu" => Act::Elu(b.float("alpha")?),
        "gelu" => {
            let mode = b.string_or("mode", "EXACT")?;
            Act::Gelu(match mode.as_str() {
                "EXACT" => GeluMode::Exact,
                "TANH_APPROXIMATION" => GeluMode::Tanh,
                "SIGMOID_APPROXIMATION" => GeluMode::Sigmoid,
                other => return Err(b.err(format!("unknown gelu mode {other:?}"))),
            })
        }
        "sigmoid" => Act::Sigmoid,
        "sigmoid_hard" => {
            let (a, c) = ab(b)?;
            Act::SigmoidHard(a, c)
        }
        "silu" => Act::Silu,
        "softplus" => Act::Softplus,
        "softsign" => Act::Softsign,
        "scaled_tanh" => {
            let (a, c) = ab(b)?;
            Act::ScaledTanh(a, c)
        }
        "linear_activation" => {
            let (a, c) = ab(b)?;
            Act::Linear(a, c)
        }
        "thresholded_relu" => Act::ThresholdedRelu(b.float("alpha")?),
        "clamped_relu" => {
            let (a, c) = ab(b)?;
            Act::ClampedRelu(a, c)
        }
        _ => return Err(b.err("op is not in this family's table")),
    })
}

fn build_elementwise(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let act = parse_act(b)?;
    let x = b.input("x")?;
    let out = b.output_dtype(0)?;
    Ok(kernel(move |a| {
        let x = to_float(a.tensor(x)?, out)?;
        Ok(vec![apply(act, &x)?.to_dtype(out)?])
    }))
}

/// `1 / (1 + exp(-x))`.
pub(super) fn sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok(x.neg()?.exp()?.affine(1.0, 1.0)?.recip()?)
}

/// `log(1 + exp(x))`, stable for large `|x|`: `log1p(exp(-|x|)) + max(x, 0)`.
fn softplus(x: &Tensor) -> Result<Tensor> {
    let tail = x.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    Ok(tail.add(&x.maximum(0.0)?)?)
}

fn apply(act: Act, x: &Tensor) -> Result<Tensor> {
    // `maximum`/`minimum` (not candle's `relu`) so that NaN propagates like numpy.
    Ok(match act {
        Act::Relu => x.maximum(0.0)?,
        Act::Relu6 => x.maximum(0.0)?.minimum(6.0)?,
        Act::LeakyRelu(alpha) => x.maximum(0.0)?.add(&x.minimum(0.0)?.affine(alpha, 0.0)?)?,
        Act::Elu(alpha) => {
            let neg = x.minimum(0.0)?.exp()?.affine(alpha, -alpha)?;
            x.maximum(0.0)?.add(&neg)?
        }
        Act::Gelu(GeluMode::Exact) => x.gelu_erf()?,
        Act::Gelu(GeluMode::Tanh) => x.gelu()?,
        Act::Gelu(GeluMode::Sigmoid) => x.mul(&sigmoid(&x.affine(1.702, 0.0)?)?)?,
        Act::Sigmoid => sigmoid(x)?,
        Act::SigmoidHard(alpha, beta) => x.affine(alpha, beta)?.maximum(0.0)?.minimum(1.0)?,
        Act::Silu => x.silu()?,
        Act::Softplus => softplus(x)?,
        Act::Softsign => x.div(&x.abs()?.affine(1.0, 1.0)?)?,
        Act::ScaledTanh(alpha, beta) => x.affine(beta, 0.0)?.tanh()?.affine(alpha, 0.0)?,
        Act::Linear(alpha, beta) => x.affine(alpha, beta)?,
        Act::ThresholdedRelu(alpha) => {
            let below = x.lt(alpha)?;
            below.where_cond(&full_like(0.0, x)?, x)?
        }
        Act::ClampedRelu(alpha, beta) => {
            let pos = x.maximum(0.0)?.minimum(beta)?;
            let neg = x.minimum(0.0)?.affine(alpha, 0.0)?.minimum(beta)?;
            pos.add(&neg)?
        }
    })
}

fn build_softmax(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let axis = b.int_or("axis", -1)?;
    if let Some(rank) = b.input_rank("x") {
        norm_axis(axis, rank.max(1)).map_err(|e| b.err(e.to_string()))?;
    }
    let out = b.output_dtype(0)?;
    Ok(kernel(move |a| {
        let x = a.tensor(x)?;
        // Rank 0 is treated as a one-element vector.
        let xf = widen_half(&to_float(x, out)?)?;
        let xf = if xf.rank() == 0 { xf.reshape(1)? } else { xf };
        let d = norm_axis(axis, xf.rank())?;
        if d + 1 == xf.rank() && out == DType::F32 {
            let len = xf.dim(d)?;
            let fast = cpu::with_f32(&xf, |v| {
                let mut v = v.to_vec();
                cpu::act::softmax_rows(&mut v, len);
                v
            });
            if let Some(v) = fast {
                return Ok(vec![Tensor::from_vec(v, x.shape(), x.device())?]);
            }
        }
        let m = xf.max_keepdim(d)?;
        let e = xf.broadcast_sub(&m)?.exp()?;
        let s = e.sum_keepdim(d)?;
        let r = e.broadcast_div(&s)?.reshape(x.shape())?;
        Ok(vec![r.to_dtype(out)?])
    }))
}

/// Reads a per-channel constant (`alpha` of `prelu`...) as an f64 tensor of
/// shape `[C]` on the device, checking `C` against `x`'s channel dimension
/// (dimension 1) when known.
fn channel_param(b: &OpBuilder<'_>, name: &str) -> Result<Tensor> {
    let v = b.floats(name)?;
    if v.is_empty() {
        return Err(b.err(format!("{name:?} is empty")));
    }
    if let Some(shape) = b.input_shape("x") {
        let c = shape.get(1).copied();
        if v.len() != 1 && c != Some(v.len()) {
            return Err(b.err(format!(
                "{name:?} has {} values but x of shape {shape:?} has {c:?} channels (dimension 1)",
                v.len()
            )));
        }
    }
    let n = v.len();
    Ok(Tensor::from_vec(v, n, b.device())?)
}

/// A `[C]` parameter reshaped to broadcast along dimension 1 of `x`, in `x`'s dtype.
fn per_channel(p: &Tensor, x: &Tensor) -> Result<Tensor> {
    let c = p.elem_count();
    let p = p.to_dtype(x.dtype())?;
    if c == 1 {
        return Ok(p.reshape(())?.broadcast_as(x.shape())?);
    }
    if x.rank() < 2 || x.dim(1)? != c {
        return Err(crate::error::Error::msg(format!(
            "per-channel parameter of {c} values does not match x of shape {:?} (channels on dimension 1)",
            x.dims()
        )));
    }
    let mut shape = vec![1usize; x.rank()];
    shape[1] = c;
    Ok(p.reshape(shape)?.broadcast_as(x.shape())?)
}

fn build_prelu(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let alpha = channel_param(b, "alpha")?;
    let out = b.output_dtype(0)?;
    Ok(kernel(move |a| {
        let x = to_float(a.tensor(x)?, out)?;
        let al = per_channel(&alpha, &x)?;
        let r = x.maximum(0.0)?.add(&x.minimum(0.0)?.mul(&al)?)?;
        Ok(vec![r.to_dtype(out)?])
    }))
}

fn build_softplus_parametric(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let alpha = channel_param(b, "alpha")?;
    let beta = channel_param(b, "beta")?;
    let out = b.output_dtype(0)?;
    Ok(kernel(move |a| {
        let x = to_float(a.tensor(x)?, out)?;
        let (al, be) = (per_channel(&alpha, &x)?, per_channel(&beta, &x)?);
        let r = softplus(&x.mul(&be)?)?.mul(&al)?;
        Ok(vec![r.to_dtype(out)?])
    }))
}

#[cfg(test)]
#[path = "activation_tests.rs"]
mod tests;
