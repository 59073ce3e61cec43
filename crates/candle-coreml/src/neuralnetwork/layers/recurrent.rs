//! Recurrent layers: `simpleRecurrent`, `gru`, `uniDirectionalLSTM`,
//! `biDirectionalLSTM`, as MIL `rnn`, `gru` and `lstm`.
//!
//! NeuralNetwork sequences are `[Seq, Batch, I, 1, 1]` blobs and states
//! `[1, Batch, H, 1, 1]`; MIL takes `[T, B, I]` and `[B, H]`. Gates are
//! reordered to MIL's layouts (gru `[reset, output, update]`, lstm `[input,
//! forget, output, cell]`). Recurrent activations ignore their parameters,
//! as NeuralNetwork.proto documents (hard sigmoid is `0.2 x + 0.5`).

use coreml_proto::proto as pb;

use super::cx::Cx;
use crate::error::Result;
use crate::mil::DataType;
use crate::neuralnetwork::emit::{boolean, float, floats, ints, string, Arg, Val};
use crate::neuralnetwork::weights::Channels;

/// The MIL name of a recurrent activation.
fn act(cx: &Cx<'_>, a: Option<&pb::ActivationParams>) -> Result<&'static str> {
    use pb::activation_params::NonlinearityType as N;
    Ok(match a.and_then(|a| a.nonlinearity_type.as_ref()) {
        Some(N::Sigmoid(_)) => "sigmoid",
        Some(N::Tanh(_)) => "tanh",
        Some(N::ReLu(_)) => "relu",
        Some(N::SigmoidHard(_)) => "hard_sigmoid",
        Some(N::Linear(_)) => "linear",
        Some(other) => return Err(cx.unsupported(format!("recurrent activation {other:?}"))),
        None => return Err(cx.err("a recurrent activation is not set")),
    })
}

/// The MIL direction of a layer.
fn direction(reverse: bool) -> &'static str {
    if reverse {
        "reverse"
    } else {
        "forward"
    }
}

/// `[Seq, B, I, 1, 1]` -> `[Seq, B, I]`.
fn sequence(cx: &mut Cx<'_>) -> Result<Val> {
    let x = cx.input(0)?;
    if x.rank.is_some_and(|r| r != 5) {
        return Err(cx.err(format!(
            "needs a rank-5 [Seq, Batch, I, 1, 1] input, got rank {:?}",
            x.rank
        )));
    }
    Ok(cx.op(
        "squeeze",
        vec![("x", Arg::V(x)), ("axes", Arg::C(ints(&[3, 4])))],
        Some(3),
    ))
}

/// Initial state `i` (`[1, B, H, 1, 1]` -> `[B, H]`), zeros of `[B, h]` when
/// the layer has no such input.
fn state(cx: &mut Cx<'_>, i: usize, x: &Val, h: usize) -> Result<Val> {
    if cx.n_inputs() > i {
        let s = cx.input(i)?;
        return Ok(cx.op(
            "reshape",
            vec![("x", Arg::V(s)), ("shape", Arg::C(ints(&[-1, h as i64])))],
            Some(2),
        ));
    }
    let hint = cx.name().to_string();
    let shape = cx.em.shape(x, &hint);
    let b = cx.em.slice1(&shape, 1, Some(2), &hint);
    let dims = cx
        .em
        .concat_ints(vec![Arg::V(b), Arg::C(ints(&[h as i64]))], &hint);
    Ok(cx.op(
        "fill",
        vec![("shape", Arg::V(dims)), ("value", Arg::C(float(0.0)))],
        Some(2),
    ))
}

/// Output `i` from `[T, B, H]` (`seq`) or `[B, H]`, as a rank-5 blob.
fn put(cx: &mut Cx<'_>, i: usize, v: &Val, seq: bool) -> Result<()> {
    if i >= cx.layer.output.len() {
        return Ok(());
    }
    let hint = cx.out_name(i)?;
    let axes: &[i64] = if seq { &[3, 4] } else { &[0, 3, 4] };
    let y = cx.em.f32_op(
        "expand_dims",
        &hint,
        vec![("x", Arg::V(v.clone())), ("axes", Arg::C(ints(axes)))],
        Some(5),
    );
    cx.set(i, y)
}

/// Several `[rows, cols]` matrices (or vectors) stacked, from their weights.
fn stacked(
    cx: &Cx<'_>,
    parts: &[(Option<&pb::WeightParams>, &str)],
    rows: usize,
    cols: usize,
) -> Result<Vec<f32>> {
    let mut v = Vec::new();
    let n = cx.count(&[rows, cols], "weights")?;
    for (wp, what) in parts {
        v.extend(cx.weights(*wp, n, Some(Channels::first(rows)), what)?);
    }
    Ok(v)
}

/// One gate of a recurrent layer: its input weights, recursion weights and
/// bias, and its name for errors.
struct Gate<'a> {
    name: &'static str,
    w: Option<&'a pb::WeightParams>,
    r: Option<&'a pb::WeightParams>,
    b: Option<&'a pb::WeightParams>,
}

/// Input weights, recursion weights and biases of stacked gates.
type GateWeights = (Vec<f32>, Vec<f32>, Option<Vec<f32>>);

/// The stacked `[G*h, i]` input weights, `[G*h, h]` recursion weights and
/// (when `bias`) `[G*h]` biases of `gates`, in order.
fn gate_weights(
    cx: &Cx<'_>,
    gates: &[Gate<'_>],
    i: usize,
    h: usize,
    bias: bool,
) -> Result<GateWeights> {
    let (mut w, mut r, mut b) = (Vec::new(), Vec::new(), Vec::new());
    let (hi, hh) = (cx.count(&[h, i], "weights")?, cx.count(&[h, h], "weights")?);
    for g in gates {
        let ch = Some(Channels::first(h));
        w.extend(cx.weights(g.w, hi, ch, &format!("{} weight matrix", g.name))?);
        r.extend(cx.weights(g.r, hh, ch, &format!("{} recursion matrix", g.name))?);
        if bias {
            b.extend(cx.weights(g.b, h, None, &format!("{} bias vector", g.name))?);
        }
    }
    Ok((w, r, bias.then_some(b)))
}

/// `simpleRecurrent`: `y_t = f(W x_t + R y_{t-1} + b)`.
pub(crate) fn simple(cx: &mut Cx<'_>, p: &pb::SimpleRecurrentLayerParams) -> Result<()> {
    cx.expect_inputs(1..=2)?;
    let (i, h) = (p.input_vector_size as usize, p.output_vector_size as usize);
    let x = sequence(cx)?;
    let h0 = state(cx, 1, &x, h)?;
    let w = stacked(cx, &[(p.weight_matrix.as_ref(), "weightMatrix")], h, i)?;
    let r = stacked(
        cx,
        &[(p.recursion_matrix.as_ref(), "recursionMatrix")],
        h,
        h,
    )?;
    let mut args = vec![
        ("x", Arg::V(x)),
        ("initial_h", Arg::V(h0)),
        ("weight_ih", Arg::C(floats(w, &[h, i]))),
        ("weight_hh", Arg::C(floats(r, &[h, h]))),
        ("output_sequence", Arg::C(boolean(p.sequence_output))),
        (
            "direction",
            Arg::C(string(if p.reverse_input {
                "reverse"
            } else {
                "forward"
            })),
        ),
        (
            "activation",
            Arg::C(string(act(cx, p.activation.as_ref())?)),
        ),
    ];
    if p.has_bias_vector {
        args.push((
            "bias",
            Arg::C(floats(
                cx.weights(p.bias_vector.as_ref(), h, None, "biasVector")?,
                &[h],
            )),
        ));
    }
    let hint = cx.name().to_string();
    let outs = cx.em.op(
        "rnn",
        &hint,
        args,
        &[(DataType::Fp32, Some(3)), (DataType::Fp32, Some(2))],
    );
    put(cx, 0, &outs[0], true)?;
    put(cx, 1, &outs[1], false)
}

/// `gru` (update, reset and output gates; reset applied before `R_o`).
pub(crate) fn gru(cx: &mut Cx<'_>, p: &pb::GruLayerParams) -> Result<()> {
    cx.expect_inputs(1..=2)?;
    let (i, h) = (p.input_vector_size as usize, p.output_vector_size as usize);
    let x = sequence(cx)?;
    let h0 = state(cx, 1, &x, h)?;
    // MIL order: reset, output, update.
    let gates = [
        Gate {
            name: "reset gate",
            w: p.reset_gate_weight_matrix.as_ref(),
            r: p.reset_gate_recursion_matrix.as_ref(),
            b: p.reset_gate_bias_vector.as_ref(),
        },
        Gate {
            name: "output gate",
            w: p.output_gate_weight_matrix.as_ref(),
            r: p.output_gate_recursion_matrix.as_ref(),
            b: p.output_gate_bias_vector.as_ref(),
        },
        Gate {
            name: "update gate",
            w: p.update_gate_weight_matrix.as_ref(),
            r: p.update_gate_recursion_matrix.as_ref(),
            b: p.update_gate_bias_vector.as_ref(),
        },
    ];
    let (w, r, b) = gate_weights(cx, &gates, i, h, p.has_bias_vectors)?;
    let (f, g) = match p.activations.as_slice() {
        [] => ("sigmoid", "tanh"),
        [f, g] => (act(cx, Some(f))?, act(cx, Some(g))?),
        other => return Err(cx.err(format!("{} activations, expected 2", other.len()))),
    };
    let mut args = vec![
        ("x", Arg::V(x)),
        ("initial_h", Arg::V(h0)),
        ("weight_ih", Arg::C(floats(w, &[3 * h, i]))),
        ("weight_hh", Arg::C(floats(r, &[3 * h, h]))),
        ("output_sequence", Arg::C(boolean(p.sequence_output))),
        ("direction", Arg::C(string(direction(p.reverse_input)))),
        ("recurrent_activation", Arg::C(string(f))),
        ("activation", Arg::C(string(g))),
    ];
    if let Some(b) = b {
        args.push(("bias", Arg::C(floats(b, &[3 * h]))));
    }
    let hint = cx.name().to_string();
    let outs = cx.em.op(
        "gru",
        &hint,
        args,
        &[(DataType::Fp32, Some(3)), (DataType::Fp32, Some(2))],
    );
    put(cx, 0, &outs[0], true)?;
    put(cx, 1, &outs[1], false)
}

/// The MIL arguments of one LSTM direction's weights (`suffix` "" or "_back").
fn lstm_weights(
    cx: &Cx<'_>,
    w: &pb::LstmWeightParams,
    p: &pb::LstmParams,
    i: usize,
    h: usize,
    suffix: &str,
) -> Result<Vec<(String, Arg)>> {
    // MIL order: input, forget, output, cell (block input).
    let gates = [
        Gate {
            name: "input gate",
            w: w.input_gate_weight_matrix.as_ref(),
            r: w.input_gate_recursion_matrix.as_ref(),
            b: w.input_gate_bias_vector.as_ref(),
        },
        Gate {
            name: "forget gate",
            w: w.forget_gate_weight_matrix.as_ref(),
            r: w.forget_gate_recursion_matrix.as_ref(),
            b: w.forget_gate_bias_vector.as_ref(),
        },
        Gate {
            name: "output gate",
            w: w.output_gate_weight_matrix.as_ref(),
            r: w.output_gate_recursion_matrix.as_ref(),
            b: w.output_gate_bias_vector.as_ref(),
        },
        Gate {
            name: "block input",
            w: w.block_input_weight_matrix.as_ref(),
            r: w.block_input_recursion_matrix.as_ref(),
            b: w.block_input_bias_vector.as_ref(),
        },
    ];
    let (wx, wh, bias) = gate_weights(cx, &gates, i, h, p.has_bias_vectors)?;
    let mut bias = bias.unwrap_or_else(|| vec![0.0; 4 * h]);
    if p.forget_bias {
        for v in &mut bias[h..2 * h] {
            *v += 1.0;
        }
    }
    let mut args = vec![
        (
            format!("weight_ih{suffix}"),
            Arg::C(floats(wx, &[4 * h, i])),
        ),
        (
            format!("weight_hh{suffix}"),
            Arg::C(floats(wh, &[4 * h, h])),
        ),
        (format!("bias{suffix}"), Arg::C(floats(bias, &[4 * h]))),
    ];
    if p.has_peephole_vectors {
        let mut pv = Vec::new();
        for (wp, name) in [
            (&w.input_gate_peephole_vector, "input gate peephole"),
            (&w.forget_gate_peephole_vector, "forget gate peephole"),
            (&w.output_gate_peephole_vector, "output gate peephole"),
        ] {
            pv.extend(cx.weights(wp.as_ref(), h, None, name)?);
        }
        args.push((format!("peephole{suffix}"), Arg::C(floats(pv, &[3 * h]))));
    }
    Ok(args)
}

/// The common arguments of both LSTM layers.
fn lstm_common(
    cx: &Cx<'_>,
    acts: &[pb::ActivationParams],
    p: &pb::LstmParams,
) -> Result<Vec<(&'static str, Arg)>> {
    if p.coupled_input_and_forget_gate {
        return Err(cx.unsupported("coupledInputAndForgetGate"));
    }
    let (f, g, h) = match acts {
        [] => ("sigmoid", "tanh", "tanh"),
        [f, g, h] => (act(cx, Some(f))?, act(cx, Some(g))?, act(cx, Some(h))?),
        other => return Err(cx.err(format!("{} activations, expected 3", other.len()))),
    };
    let clip = if p.cell_clip_threshold == 0.0 {
        50.0
    } else {
        p.cell_clip_threshold
    };
    Ok(vec![
        ("output_sequence", Arg::C(boolean(p.sequence_output))),
        ("recurrent_activation", Arg::C(string(f))),
        ("cell_activation", Arg::C(string(g))),
        ("activation", Arg::C(string(h))),
        ("clip", Arg::C(float(clip))),
    ])
}

/// Emits MIL `lstm` with `args` (named by owned strings for the weights).
fn emit_lstm(cx: &mut Cx<'_>, args: Vec<(String, Arg)>) -> Vec<Val> {
    let hint = cx.name().to_string();
    let names: Vec<String> = args.iter().map(|(n, _)| n.clone()).collect();
    let leaked: Vec<(&str, Arg)> = names
        .iter()
        .map(String::as_str)
        .zip(args.into_iter().map(|(_, a)| a))
        .collect();
    cx.em.op(
        "lstm",
        &hint,
        leaked,
        &[
            (DataType::Fp32, Some(3)),
            (DataType::Fp32, Some(2)),
            (DataType::Fp32, Some(2)),
        ],
    )
}

/// `uniDirectionalLSTM`: outputs `y`, final `h` and `c`.
pub(crate) fn lstm(cx: &mut Cx<'_>, p: &pb::UniDirectionalLstmLayerParams) -> Result<()> {
    cx.expect_inputs(1..=3)?;
    let params = p.params.unwrap_or_default();
    let w = p
        .weight_params
        .as_ref()
        .ok_or_else(|| cx.err("weightParams is missing"))?;
    let (i, h) = (p.input_vector_size as usize, p.output_vector_size as usize);
    let x = sequence(cx)?;
    let h0 = state(cx, 1, &x, h)?;
    let c0 = state(cx, 2, &x, h)?;
    let mut args: Vec<(String, Arg)> = vec![
        ("x".into(), Arg::V(x)),
        ("initial_h".into(), Arg::V(h0)),
        ("initial_c".into(), Arg::V(c0)),
        (
            "direction".into(),
            Arg::C(string(if p.reverse_input {
                "reverse"
            } else {
                "forward"
            })),
        ),
    ];
    args.extend(
        lstm_common(cx, &p.activations, &params)?
            .into_iter()
            .map(|(n, a)| (n.to_string(), a)),
    );
    args.extend(lstm_weights(cx, w, &params, i, h, "")?);
    let outs = emit_lstm(cx, args);
    put(cx, 0, &outs[0], true)?;
    put(cx, 1, &outs[1], false)?;
    put(cx, 2, &outs[2], false)
}

/// `biDirectionalLSTM`: `y` holds both directions (backward aligned with the
/// input steps); final `h`, `c` of the forward then the backward direction.
pub(crate) fn bilstm(cx: &mut Cx<'_>, p: &pb::BiDirectionalLstmLayerParams) -> Result<()> {
    cx.expect_inputs(1..=5)?;
    let params = p.params.unwrap_or_default();
    let [wf, wb] = p.weight_params.as_slice() else {
        return Err(cx.err(format!(
            "{} weightParams, expected 2",
            p.weight_params.len()
        )));
    };
    if !p.activations_backward_lstm.is_empty()
        && p.activations_backward_lstm != p.activations_forward_lstm
    {
        return Err(cx.unsupported("different activations for the two directions"));
    }
    let (i, h) = (p.input_vector_size as usize, p.output_vector_size as usize);
    let x = sequence(cx)?;
    let hint = cx.name().to_string();
    let mut init = Vec::new();
    for (fw, bw) in [(1, 3), (2, 4)] {
        let f = state(cx, fw, &x, h)?;
        let b = state(cx, bw, &x, h)?;
        init.push(cx.op(
            "concat",
            vec![
                ("values", Arg::Vs(vec![f, b])),
                ("axis", Arg::C(crate::neuralnetwork::emit::int(1))),
            ],
            Some(2),
        ));
    }
    let mut args: Vec<(String, Arg)> = vec![
        ("x".into(), Arg::V(x)),
        ("initial_h".into(), Arg::V(init[0].clone())),
        ("initial_c".into(), Arg::V(init[1].clone())),
        ("direction".into(), Arg::C(string("bidirectional"))),
    ];
    args.extend(
        lstm_common(cx, &p.activations_forward_lstm, &params)?
            .into_iter()
            .map(|(n, a)| (n.to_string(), a)),
    );
    args.extend(lstm_weights(cx, wf, &params, i, h, "")?);
    args.extend(lstm_weights(cx, wb, &params, i, h, "_back")?);
    let outs = emit_lstm(cx, args);
    put(cx, 0, &outs[0], true)?;
    // Final states [B, 2H] split into the two directions.
    for (k, s) in [(1usize, &outs[1]), (2, &outs[2])] {
        let halves = cx.em.op(
            "split",
            &hint,
            vec![
                ("x", Arg::V(s.clone())),
                ("num_splits", Arg::C(crate::neuralnetwork::emit::int(2))),
                ("axis", Arg::C(crate::neuralnetwork::emit::int(1))),
            ],
            &[(DataType::Fp32, Some(2)), (DataType::Fp32, Some(2))],
        );
        put(cx, k, &halves[0], false)?;
        put(cx, k + 2, &halves[1], false)?;
    }
    Ok(())
}

/// Translates the layer when it belongs to this family.
pub(super) fn dispatch(
    cx: &mut Cx<'_>,
    layer: &pb::neural_network_layer::Layer,
) -> Option<Result<()>> {
    use pb::neural_network_layer::Layer as L;
    Some(match layer {
        L::SimpleRecurrent(p) => simple(cx, p),
        L::Gru(p) => gru(cx, p),
        L::UniDirectionalLstm(p) => lstm(cx, p),
        L::BiDirectionalLstm(p) => bilstm(cx, p),
        _ => return None,
    })
}
