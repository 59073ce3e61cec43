//! Recurrent layers: `rnn`, `gru` and `lstm` (iOS15, and the iOS17/iOS18
//! versions, which add fp16 and, for `gru`, `reset_after` and `input_bias`).
//!
//! Gate layouts follow the MIL documentation: `lstm` weights stack the gates
//! as `[input, forget, output, cell]`, `gru` weights as `[reset, output,
//! update]`. The input projections of every time step are computed with one
//! matmul up front; only the recurrent matmul runs per step. Everything runs
//! in f32 and is cast to the declared output dtype at the end.
//!
//! Output order: a `reverse` layer returns its sequence in processing order
//! (last input first), as coremltools' reference does; the backward half of
//! a `bidirectional` lstm is aligned with the input time steps.

use candle_core::{DType, Tensor, D};

use super::registry::Registry;
use super::util::cast;
use crate::error::{Error, Result};
use crate::portable::kernel::{kernel, In, Kernel, OpBuilder};

/// Registers this family's ops.
pub(crate) fn register(reg: &mut Registry) {
    reg.insert("rnn", build_rnn);
    reg.insert("gru", build_gru);
    reg.insert("lstm", build_lstm);
}

/// An activation of a recurrent layer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Act {
    Sigmoid,
    Tanh,
    Relu,
    HardSigmoid,
    Linear,
}

impl Act {
    fn parse(b: &OpBuilder<'_>, name: &str, default: &str) -> Result<Act> {
        let s = b.string_or(name, default)?;
        Ok(match s.to_ascii_lowercase().as_str() {
            "sigmoid" => Act::Sigmoid,
            // scaled_tanh with its default alpha = beta = 1.
            "tanh" | "scaled_tanh" => Act::Tanh,
            "relu" => Act::Relu,
            "hard_sigmoid" | "sigmoid_hard" => Act::HardSigmoid,
            "linear" => Act::Linear,
            other => return Err(b.err(format!("{name}: unsupported activation {other:?}"))),
        })
    }

    fn apply(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Act::Sigmoid => (x.neg()?.exp()? + 1.0)?.recip()?,
            Act::Tanh => x.tanh()?,
            Act::Relu => x.relu()?,
            Act::HardSigmoid => x.affine(0.2, 0.5)?.clamp(0f32, 1f32)?,
            Act::Linear => x.clone(),
        })
    }
}

/// The weights of one direction, prepared at load in f32.
struct Weights {
    /// `weight_ih` transposed: `[I, G*H]`.
    w_ih: Tensor,
    /// `weight_hh` transposed: `[H, G*H]`.
    w_hh: Tensor,
    /// Bias added to the input projection, `[G*H]`.
    bias_x: Option<Tensor>,
    /// Bias added to the recurrent projection (gru `reset_after`), `[G*H]`.
    bias_h: Option<Tensor>,
    /// lstm peephole `[3*H]` (`[input, forget, output]`).
    peephole: Option<Tensor>,
    /// gru: the output gate's part of `w_hh`, `[H, H]`.
    w_ho: Option<Tensor>,
}

/// A constant weight of the op, in f32.
fn weight(b: &OpBuilder<'_>, name: &str) -> Result<Option<Tensor>> {
    if !b.has(name) {
        return Ok(None);
    }
    let t = b
        .const_tensor(name)
        .ok_or_else(|| b.err(format!("{name} must be a constant")))?;
    Ok(Some(t.to_dtype(DType::F32)?))
}

fn required(b: &OpBuilder<'_>, name: &str) -> Result<Tensor> {
    weight(b, name)?.ok_or_else(|| b.err(format!("missing input {name:?}")))
}

/// Checks a vector parameter has `n` elements.
fn vector(b: &OpBuilder<'_>, name: &str, t: Option<Tensor>, n: usize) -> Result<Option<Tensor>> {
    match t {
        Some(t) if t.dims() != [n] => {
            Err(b.err(format!("{name} has shape {:?}, expected [{n}]", t.dims())))
        }
        t => Ok(t),
    }
}

/// Reads one direction's weights; `gates` is 1 (rnn), 3 (gru) or 4 (lstm).
/// Returns the weights and the hidden size.
fn read_weights(
    b: &OpBuilder<'_>,
    gates: usize,
    suffix: &str,
    hidden: Option<usize>,
) -> Result<(Weights, usize)> {
    let name = |n: &str| format!("{n}{suffix}");
    let w_ih = required(b, &name("weight_ih"))?;
    let w_hh = required(b, &name("weight_hh"))?;
    let (&[gh, _], &[gh2, h]) = (w_ih.dims(), w_hh.dims()) else {
        return Err(b.err("weight_ih and weight_hh must be rank 2"));
    };
    if h == 0 || gh != gates * h || gh2 != gates * h || hidden.is_some_and(|x| x != h) {
        return Err(b.err(format!(
            "weight shapes {:?} and {:?} do not fit {gates} gates",
            w_ih.dims(),
            w_hh.dims()
        )));
    }
    let bias = vector(b, &name("bias"), weight(b, &name("bias"))?, gates * h)?;
    let input_bias = vector(b, "input_bias", weight(b, "input_bias")?, gates * h)?;
    let peephole = vector(b, &name("peephole"), weight(b, &name("peephole"))?, 3 * h)?;
    let w_hh = w_hh.t()?.contiguous()?;
    let w_ho = match gates {
        3 => Some(w_hh.narrow(1, h, h)?.contiguous()?),
        _ => None,
    };
    let w = Weights {
        w_ih: w_ih.t()?.contiguous()?,
        w_hh,
        bias_x: bias,
        bias_h: None,
        peephole,
        w_ho,
    };
    let w = if input_bias.is_some() {
        Weights {
            bias_x: input_bias,
            bias_h: w.bias_x.clone(),
            ..w
        }
    } else {
        w
    };
    Ok((w, h))
}

/// The recurrence of one layer kind.
#[derive(Clone, Copy)]
enum Cell {
    Rnn {
        act: Act,
    },
    Gru {
        ract: Act,
        act: Act,
        reset_after: bool,
    },
    Lstm {
        ract: Act,
        cact: Act,
        act: Act,
        clip: Option<f64>,
    },
}

/// One recurrent op, prepared.
struct Layer {
    cell: Cell,
    dirs: Vec<Weights>,
    reverse: bool,
    hidden: usize,
    output_sequence: bool,
    x: In,
    h0: In,
    c0: Option<In>,
    out_dtypes: Vec<DType>,
}

fn direction(b: &OpBuilder<'_>, allow_bi: bool) -> Result<(bool, bool)> {
    match b.string_or("direction", "forward")?.as_str() {
        "forward" => Ok((false, false)),
        "reverse" => Ok((true, false)),
        "bidirectional" if allow_bi => Ok((false, true)),
        d => Err(b.err(format!("unsupported direction {d:?}"))),
    }
}

fn out_dtypes(b: &OpBuilder<'_>, n: usize) -> Result<Vec<DType>> {
    if b.output_count() != n {
        return Err(b.err(format!(
            "expected {n} outputs, op declares {}",
            b.output_count()
        )));
    }
    (0..n).map(|i| b.output_dtype(i)).collect()
}

fn build_rnn(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let (reverse, _) = direction(b, false)?;
    let (w, hidden) = read_weights(b, 1, "", None)?;
    let cell = Cell::Rnn {
        act: Act::parse(b, "activation", "tanh")?,
    };
    finish(b, cell, vec![w], reverse, hidden, 2)
}

fn build_gru(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let (reverse, _) = direction(b, false)?;
    let (mut w, hidden) = read_weights(b, 3, "", None)?;
    let reset_after = b.bool_or("reset_after", false)?;
    if !reset_after {
        // Both biases add to the input projection.
        w.bias_x = match (w.bias_x.take(), w.bias_h.take()) {
            (Some(x), Some(h)) => Some((x + h)?),
            (x, h) => x.or(h),
        };
    }
    let cell = Cell::Gru {
        ract: Act::parse(b, "recurrent_activation", "sigmoid")?,
        act: Act::parse(b, "activation", "tanh")?,
        reset_after,
    };
    finish(b, cell, vec![w], reverse, hidden, 2)
}

fn build_lstm(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let (reverse, bi) = direction(b, true)?;
    let (fwd, hidden) = read_weights(b, 4, "", None)?;
    let mut dirs = vec![fwd];
    if bi {
        dirs.push(read_weights(b, 4, "_back", Some(hidden))?.0);
    }
    let clip = match b.has("clip") {
        true => Some(b.float("clip")?),
        false => None,
    };
    let cell = Cell::Lstm {
        ract: Act::parse(b, "recurrent_activation", "sigmoid")?,
        cact: Act::parse(b, "cell_activation", "tanh")?,
        act: Act::parse(b, "activation", "tanh")?,
        clip,
    };
    finish(b, cell, dirs, reverse, hidden, 3)
}

fn finish(
    b: &mut OpBuilder<'_>,
    cell: Cell,
    dirs: Vec<Weights>,
    reverse: bool,
    hidden: usize,
    n_out: usize,
) -> Result<Box<dyn Kernel>> {
    let out_dtypes = out_dtypes(b, n_out)?;
    let output_sequence = b.bool_or("output_sequence", false)?;
    let x = b.input("x")?;
    let h0 = b.input("initial_h")?;
    let c0 = match cell {
        Cell::Lstm { .. } => Some(b.input("initial_c")?),
        _ => None,
    };
    let layer = Layer {
        cell,
        dirs,
        reverse,
        hidden,
        output_sequence,
        x,
        h0,
        c0,
        out_dtypes,
    };
    Ok(kernel(move |a| {
        let x = a.tensor(layer.x)?.to_dtype(DType::F32)?;
        let h0 = a.tensor(layer.h0)?.to_dtype(DType::F32)?;
        let c0 = match layer.c0 {
            Some(c) => Some(a.tensor(c)?.to_dtype(DType::F32)?),
            None => None,
        };
        layer.run(&x, &h0, c0.as_ref())
    }))
}

/// What one direction produced: outputs in processing order, final h and c.
struct DirOut {
    seq: Vec<Tensor>,
    h: Tensor,
    c: Option<Tensor>,
}

impl Layer {
    fn run(&self, x: &Tensor, h0: &Tensor, c0: Option<&Tensor>) -> Result<Vec<Tensor>> {
        let &[t, batch, input] = x.dims() else {
            return Err(Error::msg(format!("x must be rank 3, got {:?}", x.dims())));
        };
        let nd = self.dirs.len();
        let width = nd * self.hidden;
        for (name, s) in [("initial_h", Some(h0)), ("initial_c", c0)] {
            if let Some(s) = s {
                if s.dims() != [batch, width] {
                    return Err(Error::msg(format!(
                        "{name} has shape {:?}, expected [{batch}, {width}]",
                        s.dims()
                    )));
                }
            }
        }
        let mut outs = Vec::with_capacity(nd);
        for (d, w) in self.dirs.iter().enumerate() {
            if w.w_ih.dim(0)? != input {
                return Err(Error::msg(format!(
                    "x has {input} features, weight_ih expects {}",
                    w.w_ih.dim(0)?
                )));
            }
            let part = |s: &Tensor| s.narrow(1, d * self.hidden, self.hidden);
            let c = c0.map(part).transpose()?;
            let reverse = self.reverse || d == 1;
            outs.push(self.run_dir(w, x, part(h0)?, c, reverse, (t, batch, input))?);
        }
        let seq = if self.output_sequence && t > 0 {
            let mut halves = Vec::with_capacity(nd);
            for (d, o) in outs.iter_mut().enumerate() {
                if d == 1 {
                    o.seq.reverse();
                }
                halves.push(Tensor::stack(&o.seq, 0)?);
            }
            Tensor::cat(&halves, 2)?
        } else if self.output_sequence {
            Tensor::zeros((0, batch, width), DType::F32, x.device())?
        } else {
            let hs: Vec<&Tensor> = outs.iter().map(|o| &o.h).collect();
            Tensor::cat(&hs, 1)?.unsqueeze(0)?
        };
        let h = Tensor::cat(&outs.iter().map(|o| &o.h).collect::<Vec<_>>(), 1)?;
        let mut result = vec![seq, h];
        if c0.is_some() {
            let cs = outs
                .iter()
                .map(|o| {
                    o.c.clone()
                        .ok_or_else(|| Error::msg("lstm lost its cell state"))
                })
                .collect::<Result<Vec<_>>>()?;
            result.push(Tensor::cat(&cs, 1)?);
        }
        result
            .into_iter()
            .zip(&self.out_dtypes)
            .map(|(r, &d)| cast(r, d))
            .collect()
    }

    fn run_dir(
        &self,
        w: &Weights,
        x: &Tensor,
        mut h: Tensor,
        mut c: Option<Tensor>,
        reverse: bool,
        (t, batch, input): (usize, usize, usize),
    ) -> Result<DirOut> {
        let g = w.w_ih.dim(1)?;
        let mut xw = x.reshape((t * batch, input))?.matmul(&w.w_ih)?;
        if let Some(bias) = &w.bias_x {
            xw = xw.broadcast_add(bias)?;
        }
        let xw = xw.reshape((t, batch, g))?;
        let mut seq = Vec::with_capacity(t);
        for step in 0..t {
            let at = if reverse { t - 1 - step } else { step };
            let gx = xw.get(at)?;
            let (nh, nc) = self.step(w, &gx, &h, c.as_ref())?;
            h = nh;
            c = nc;
            seq.push(h.clone());
        }
        Ok(DirOut { seq, h, c })
    }

    /// One time step: the new hidden state and (lstm) cell state.
    fn step(
        &self,
        w: &Weights,
        gx: &Tensor,
        h: &Tensor,
        c: Option<&Tensor>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let hd = self.hidden;
        let gate = |t: &Tensor, k: usize| t.narrow(D::Minus1, k * hd, hd);
        match self.cell {
            Cell::Rnn { act } => Ok((act.apply(&(gx + h.matmul(&w.w_hh)?)?)?, None)),
            Cell::Gru {
                ract,
                act,
                reset_after,
            } => {
                let mut gh = h.matmul(&w.w_hh)?;
                if let Some(bh) = &w.bias_h {
                    gh = gh.broadcast_add(bh)?;
                }
                let r = ract.apply(&(gate(gx, 0)? + gate(&gh, 0)?)?)?;
                let z = ract.apply(&(gate(gx, 2)? + gate(&gh, 2)?)?)?;
                let rec = if reset_after {
                    (&r * gate(&gh, 1)?)?
                } else {
                    let w_ho = w.w_ho.as_ref().ok_or_else(|| Error::msg("gru weights"))?;
                    (&r * h)?.matmul(w_ho)?
                };
                let o = act.apply(&(gate(gx, 1)? + rec)?)?;
                // h = (1 - z) * o + z * h = o + z * (h - o)
                let nh = (&o + (&z * (h - &o)?)?)?;
                Ok((nh, None))
            }
            Cell::Lstm {
                ract,
                cact,
                act,
                clip,
            } => {
                let c = c.ok_or_else(|| Error::msg("lstm without a cell state"))?;
                let g = (gx + h.matmul(&w.w_hh)?)?;
                let peep = |k: usize, s: &Tensor| -> Result<Tensor> {
                    let pre = gate(&g, k)?;
                    Ok(match &w.peephole {
                        Some(p) => (pre + s.broadcast_mul(&p.narrow(0, k * hd, hd)?)?)?,
                        None => pre,
                    })
                };
                let i = ract.apply(&peep(0, c)?)?;
                let f = ract.apply(&peep(1, c)?)?;
                let z = cact.apply(&gate(&g, 3)?)?;
                let mut nc = ((f * c)? + (i * z)?)?;
                if let Some(clip) = clip {
                    nc = nc.clamp(-clip as f32, clip as f32)?;
                }
                let o = ract.apply(&peep(2, &nc)?)?;
                let nh = (o * act.apply(&nc)?)?;
                Ok((nh, Some(nc)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::mil::DataType;
    use crate::portable::testutil::{assert_close, boolean, floats, run_op, string, Arg};

    fn t(v: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
    }

    /// rnn, H = I = 1: h_t = tanh(0.5 x_t - 0.25 h_{t-1} + 0.1), by hand.
    #[test]
    fn rnn_by_hand_and_reverse_order() {
        let xs = [1.0f32, -2.0, 0.5];
        let step = |h: f64, x: f64| (0.5 * x - 0.25 * h + 0.1).tanh();
        let args = |dir: &str| {
            vec![
                ("x", Arg::T(t(&xs, &[3, 1, 1]))),
                ("initial_h", Arg::T(t(&[0.3], &[1, 1]))),
                ("weight_ih", Arg::C(floats(&[0.5], &[1, 1]))),
                ("weight_hh", Arg::C(floats(&[-0.25], &[1, 1]))),
                ("bias", Arg::C(floats(&[0.1], &[1]))),
                ("direction", Arg::C(string(dir))),
                ("output_sequence", Arg::C(boolean(true))),
            ]
        };
        for (dir, order) in [("forward", [0, 1, 2]), ("reverse", [2, 1, 0])] {
            let mut h = 0.3;
            let want: Vec<f32> = order
                .iter()
                .map(|&k| {
                    h = step(h, xs[k] as f64);
                    h as f32
                })
                .collect();
            let out = run_op("rnn", args(dir), &[DataType::Fp32, DataType::Fp32]).unwrap();
            assert_close(&out[0], &want, &[3, 1, 1], 1e-6);
            assert_close(&out[1], &want[2..], &[1, 1], 1e-6);
        }
    }

    #[test]
    fn bad_weights_and_options_are_errors() {
        let base = |w_hh: &[usize], dir: &str| {
            let n: usize = w_hh.iter().product();
            vec![
                ("x", Arg::T(t(&[0.0; 6], &[3, 1, 2]))),
                ("initial_h", Arg::T(t(&[0.0; 2], &[1, 2]))),
                ("initial_c", Arg::T(t(&[0.0; 2], &[1, 2]))),
                ("weight_ih", Arg::C(floats(&[0.0; 16], &[8, 2]))),
                ("weight_hh", Arg::C(floats(&vec![0.0; n], w_hh))),
                ("direction", Arg::C(string(dir))),
            ]
        };
        let outs = [DataType::Fp32; 3];
        assert!(run_op("lstm", base(&[8, 2], "forward"), &outs).is_ok());
        assert!(run_op("lstm", base(&[6, 2], "forward"), &outs).is_err());
        assert!(run_op("lstm", base(&[8, 2], "sideways"), &outs).is_err());
        // bidirectional without the backward weights.
        assert!(run_op("lstm", base(&[8, 2], "bidirectional"), &outs).is_err());
    }
}
