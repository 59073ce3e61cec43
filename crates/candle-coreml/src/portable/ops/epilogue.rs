//! The epilogue of a fused convolution (`_conv_fused`, made at load by
//! `portable::fuse_conv`): the activations and residual add that followed a
//! `conv`, as one list of steps. The CPU fast path applies them to each tile
//! of the output; elsewhere they run as candle ops, one after the other, as
//! the unfused ops would.

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::portable::cpu::act::Act;
use crate::portable::kernel::{Args, In, OpBuilder};

/// Name of the fused op's attribute holding the steps, written by
/// [`Step::encode`] joined with `;`.
pub(crate) const EPILOGUE_ATTR: &str = "_epilogue";
/// Name of the fused op's input added at the `add` step.
pub(crate) const RESIDUAL_INPUT: &str = "_residual";

/// One step after the conv.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Step {
    /// An elementwise activation.
    Act(Act),
    /// `+ residual` (a tensor of the conv output's shape).
    Add,
}

impl Step {
    /// The text form (`relu`, `clip:0:6`, `add`...); f32 parameters are
    /// written in Rust's shortest round-trip form.
    pub(crate) fn encode(&self) -> String {
        let f = |name: &str, v: &[f32]| {
            let mut s = name.to_string();
            for x in v {
                s.push_str(&format!(":{x:?}"));
            }
            s
        };
        match *self {
            Step::Add => "add".into(),
            Step::Act(a) => match a {
                Act::Relu => "relu".into(),
                Act::Clip(lo, hi) => f("clip", &[lo, hi]),
                Act::Sigmoid => "sigmoid".into(),
                Act::Silu => "silu".into(),
                Act::HardSigmoid(a, b) => f("hard_sigmoid", &[a, b]),
                Act::Threshold(a) => f("threshold", &[a]),
                Act::LeakyRelu(a) => f("leaky_relu", &[a]),
                Act::Linear(a, b) => f("linear", &[a, b]),
                Act::HardSwish(None, a, b) => f("hard_swish", &[a, b]),
                Act::HardSwish(Some(t), a, b) => f("hard_swish_thr", &[t, a, b]),
            },
        }
    }

    /// Parses [`Step::encode`]'s form.
    pub(crate) fn decode(s: &str) -> Option<Step> {
        let mut parts = s.split(':');
        let name = parts.next()?;
        let v: Vec<f32> = parts
            .map(str::parse)
            .collect::<std::result::Result<_, _>>()
            .ok()?;
        Some(match (name, v.as_slice()) {
            ("add", []) => Step::Add,
            ("relu", []) => Step::Act(Act::Relu),
            ("clip", &[lo, hi]) => Step::Act(Act::Clip(lo, hi)),
            ("sigmoid", []) => Step::Act(Act::Sigmoid),
            ("silu", []) => Step::Act(Act::Silu),
            ("hard_sigmoid", &[a, b]) => Step::Act(Act::HardSigmoid(a, b)),
            ("threshold", &[a]) => Step::Act(Act::Threshold(a)),
            ("leaky_relu", &[a]) => Step::Act(Act::LeakyRelu(a)),
            ("linear", &[a, b]) => Step::Act(Act::Linear(a, b)),
            ("hard_swish", &[a, b]) => Step::Act(Act::HardSwish(None, a, b)),
            ("hard_swish_thr", &[t, a, b]) => Step::Act(Act::HardSwish(Some(t), a, b)),
            _ => return None,
        })
    }
}

/// The epilogue of one fused conv: activations before the residual add,
/// the add, activations after it.
#[derive(Debug, Clone, Default)]
pub(crate) struct EpilogueSpec {
    pub(crate) pre: Vec<Act>,
    pub(crate) residual: Option<In>,
    pub(crate) post: Vec<Act>,
}

impl EpilogueSpec {
    /// Reads the fused op's epilogue (empty for a plain `conv`).
    pub(crate) fn parse(b: &mut OpBuilder<'_>) -> Result<Self> {
        let Some(text) = b.op().attribute(EPILOGUE_ATTR) else {
            return Ok(Self::default());
        };
        let text = text
            .as_str()
            .ok_or_else(|| b.err("the fused epilogue is not a string"))?
            .to_string();
        let mut spec = Self::default();
        for s in text.split(';').filter(|s| !s.is_empty()) {
            match Step::decode(s) {
                Some(Step::Add) if spec.residual.is_none() => {
                    spec.residual = Some(b.input(RESIDUAL_INPUT)?);
                }
                Some(Step::Act(a)) if spec.residual.is_none() => spec.pre.push(a),
                Some(Step::Act(a)) => spec.post.push(a),
                _ => return Err(b.err(format!("bad fused epilogue step {s:?}"))),
            }
        }
        Ok(spec)
    }

    /// Applies the steps with candle ops (any device and dtype).
    pub(crate) fn apply_candle(&self, y: Tensor, a: &Args<'_>) -> Result<Tensor> {
        let mut y = y;
        for &act in &self.pre {
            y = act_candle(act, &y)?;
        }
        if let Some(r) = self.residual {
            let r = a.tensor(r)?.to_dtype(y.dtype())?;
            y = y.broadcast_add(&r)?;
        }
        for &act in &self.post {
            y = act_candle(act, &y)?;
        }
        Ok(y)
    }
}

/// One activation as candle ops, as `ops/activation.rs` computes the MIL op.
fn act_candle(act: Act, x: &Tensor) -> Result<Tensor> {
    let sigmoid = |x: &Tensor| -> Result<Tensor> { Ok(x.neg()?.exp()?.affine(1.0, 1.0)?.recip()?) };
    let hard = |x: &Tensor, a: f32, b: f32| -> Result<Tensor> {
        Ok(x.affine(a as f64, b as f64)?.maximum(0.0)?.minimum(1.0)?)
    };
    let thr = |x: &Tensor, t: f32| -> Result<Tensor> {
        let zeros = x.zeros_like()?;
        Ok(x.lt(t as f64)?.where_cond(&zeros, x)?)
    };
    Ok(match act {
        Act::Relu => x.maximum(0.0)?,
        Act::Clip(lo, hi) => x.maximum(lo as f64)?.minimum(hi as f64)?,
        Act::Sigmoid => sigmoid(x)?,
        Act::Silu => x.silu()?,
        Act::HardSigmoid(a, b) => hard(x, a, b)?,
        Act::Threshold(t) => thr(x, t)?,
        Act::LeakyRelu(alpha) => x
            .maximum(0.0)?
            .add(&x.minimum(0.0)?.affine(alpha as f64, 0.0)?)?,
        Act::Linear(a, b) => x.affine(a as f64, b as f64)?,
        Act::HardSwish(t, a, b) => {
            let t = match t {
                Some(t) => thr(x, t)?,
                None => x.clone(),
            };
            t.mul(&hard(&t, a, b)?)?
        }
    })
}

/// Checks that a residual has the conv output's shape (the fast path adds
/// it element by element).
pub(crate) fn same_shape(y: &[usize], r: &Tensor) -> Result<()> {
    if r.dims() == y {
        Ok(())
    } else {
        Err(Error::msg(format!(
            "residual {:?} does not match the conv output {y:?}",
            r.dims()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_round_trip() {
        let steps = [
            Step::Add,
            Step::Act(Act::Relu),
            Step::Act(Act::Clip(0.0, 6.0)),
            Step::Act(Act::Sigmoid),
            Step::Act(Act::Silu),
            Step::Act(Act::HardSigmoid(1.0 / 6.0, 0.5)),
            Step::Act(Act::Threshold(-3.0)),
            Step::Act(Act::LeakyRelu(0.01)),
            Step::Act(Act::Linear(0.1, -7.25)),
            Step::Act(Act::HardSwish(None, 0.2, 0.5)),
            Step::Act(Act::HardSwish(Some(-3.0), 1.0 / 6.0, 0.5)),
        ];
        for s in steps {
            assert_eq!(Step::decode(&s.encode()), Some(s), "{}", s.encode());
        }
        assert_eq!(Step::decode("relu:1"), None);
        assert_eq!(Step::decode("nope"), None);
    }
}
