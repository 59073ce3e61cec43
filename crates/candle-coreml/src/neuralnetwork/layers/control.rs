//! Control flow: `branch` as MIL `cond`, `loop` as MIL `while_loop`.
//!
//! NeuralNetwork branches and loops run nested networks that read and write
//! blobs of the enclosing network. The blobs they write that already exist
//! (and, for a branch, blobs both branches write) become the outputs of the
//! MIL op, and loop variables of a loop; a blob a loop body creates is not
//! visible after the loop. A condition "holds" when its absolute value
//! exceeds 1e-6.
//!
//! `loopBreak` and `loopContinue` set a flag blob of their loop; the layers
//! after one that may set a flag run in a branch taken while no flag is set,
//! and the loop stops once the break flag is set.

use std::collections::{BTreeSet, HashMap};

use coreml_proto::proto as pb;

use super::cx::Cx;
use crate::error::Result;
use crate::mil::{Block, DataType, NamedValueType};
use crate::neuralnetwork::emit::{float, floats, Arg, Emitter, Val};

/// Translates the layer when it is a control-flow layer.
pub(super) fn dispatch(
    cx: &mut Cx<'_>,
    layer: &pb::neural_network_layer::Layer,
) -> Option<Result<()>> {
    use pb::neural_network_layer::Layer as L;
    Some(match layer {
        L::Branch(p) => branch(cx, p),
        L::Loop(p) => while_loop(cx, p),
        L::LoopBreak(_) | L::LoopContinue(_) => Err(cx.err("is outside a loop body")),
        _ => return None,
    })
}

/// Names of the blobs `layers` write, nested networks included.
fn written(layers: &[pb::NeuralNetworkLayer], out: &mut BTreeSet<String>, depth: usize) {
    use pb::neural_network_layer::Layer as L;
    if depth > crate::mil::MAX_DEPTH {
        return;
    }
    for l in layers {
        out.extend(l.output.iter().cloned());
        let nested: Vec<&pb::NeuralNetwork> = match &l.layer {
            Some(L::Branch(b)) => b.if_branch.iter().chain(b.else_branch.iter()).collect(),
            Some(L::Loop(p)) => p
                .condition_network
                .iter()
                .chain(p.body_network.iter())
                .collect(),
            _ => Vec::new(),
        };
        for n in nested {
            written(&n.layers, out, depth + 1);
        }
    }
}

/// Names of the blobs `layers` read.
fn read(layers: &[pb::NeuralNetworkLayer]) -> BTreeSet<String> {
    let mut r = BTreeSet::new();
    for l in layers {
        r.extend(l.input.iter().cloned());
    }
    r
}

/// `|x| > 1e-6` as a bool value.
fn truth(em: &mut Emitter, x: &Val, hint: &str) -> Val {
    let a = em.unary("abs", x, vec![], hint);
    em.typed_op(
        "greater",
        hint,
        vec![("x", Arg::V(a)), ("y", Arg::C(float(1e-6)))],
        DataType::Bool,
        x.rank,
    )
}

/// Translates `layers` inside a nested block whose scope is `blobs`;
/// returns the block's ops and the scope afterwards.
fn nested(
    cx: &mut Cx<'_>,
    mut blobs: HashMap<String, Val>,
    layers: &[pb::NeuralNetworkLayer],
) -> Result<(Vec<crate::mil::Operation>, HashMap<String, Val>)> {
    let (path, translate) = (cx.path, cx.nested);
    cx.em.nested(|em| {
        translate(em, &mut blobs, layers, path)?;
        Ok(blobs)
    })
}

/// `branch`: runs the if-network when the input holds, else the else-network.
fn branch(cx: &mut Cx<'_>, p: &pb::BranchLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let hint = cx.name().to_string();
    let if_net = p
        .if_branch
        .as_ref()
        .ok_or_else(|| cx.err("ifBranch is missing"))?;
    let empty = pb::NeuralNetwork::default();
    let else_net = p.else_branch.as_ref().unwrap_or(&empty);
    let (mut wi, mut we) = (BTreeSet::new(), BTreeSet::new());
    written(&if_net.layers, &mut wi, 0);
    written(&else_net.layers, &mut we, 0);
    let outs: Vec<String> = wi
        .union(&we)
        .filter(|n| cx.blobs.contains_key(*n) || (wi.contains(*n) && we.contains(*n)))
        .cloned()
        .collect();
    let pred = truth(cx.em, &x, &hint);
    let mut blocks = Vec::new();
    let mut ranks: Vec<Option<usize>> = Vec::new();
    for (k, net) in [if_net, else_net].into_iter().enumerate() {
        let (ops, scope) = nested(cx, cx.blobs.clone(), &net.layers)?;
        let mut outputs = Vec::with_capacity(outs.len());
        for (i, name) in outs.iter().enumerate() {
            let v = scope
                .get(name)
                .ok_or_else(|| cx.err(format!("{name:?} is written by one branch only")))?;
            match k {
                0 => ranks.push(v.rank),
                _ if ranks[i] != v.rank => ranks[i] = None,
                _ => {}
            }
            outputs.push(v.name.clone());
        }
        blocks.push(Block {
            inputs: Vec::new(),
            outputs,
            operations: ops,
            attributes: Default::default(),
        });
    }
    let vals = cx
        .em
        .op_with_blocks("cond", &hint, vec![("pred", Arg::V(pred))], &ranks, blocks);
    for (name, v) in outs.into_iter().zip(vals) {
        cx.blobs.insert(name, v);
    }
    Ok(())
}

/// The inputs of a loop block (one per loop variable, then the iteration
/// counter) and the scope that sees them in place of the variables.
fn loop_scope(
    cx: &mut Cx<'_>,
    vars: &[String],
    init: &[Val],
) -> (Vec<NamedValueType>, Vec<Val>, HashMap<String, Val>) {
    let mut scope = cx.blobs.clone();
    let mut decls = Vec::with_capacity(init.len());
    let mut vals = Vec::with_capacity(init.len());
    for (i, v) in init.iter().enumerate() {
        let hint = vars.get(i).map_or("loop_iteration", String::as_str);
        let (decl, val) = cx.em.block_input(hint, v.rank);
        if let Some(name) = vars.get(i) {
            scope.insert(name.clone(), val.clone());
        }
        decls.push(decl);
        vals.push(val);
    }
    (decls, vals, scope)
}

/// A synthetic layer writing `[value]` to blob `name`.
fn constant_layer(name: &str, value: f32) -> pb::NeuralNetworkLayer {
    pb::NeuralNetworkLayer {
        name: name.to_string(),
        output: vec![name.to_string()],
        layer: Some(pb::neural_network_layer::Layer::LoadConstantNd(
            pb::LoadConstantNdLayerParams {
                shape: vec![1],
                data: Some(pb::WeightParams {
                    float_value: vec![value],
                    ..Default::default()
                }),
            },
        )),
        ..Default::default()
    }
}

/// `layers` with each `loopBreak` / `loopContinue` (outside nested loops)
/// replaced by a layer setting the flag blob `brk` / `cont`.
fn rewrite_jumps(
    layers: &[pb::NeuralNetworkLayer],
    brk: &str,
    cont: &str,
    depth: usize,
) -> Vec<pb::NeuralNetworkLayer> {
    use pb::neural_network_layer::Layer as L;
    layers
        .iter()
        .map(|l| match &l.layer {
            Some(L::LoopBreak(_)) => constant_layer(brk, 1.0),
            Some(L::LoopContinue(_)) => constant_layer(cont, 1.0),
            Some(L::Branch(b)) if depth < crate::mil::MAX_DEPTH => {
                let sub = |n: &Option<pb::NeuralNetwork>| {
                    n.as_ref().map(|n| pb::NeuralNetwork {
                        layers: rewrite_jumps(&n.layers, brk, cont, depth + 1),
                        ..n.clone()
                    })
                };
                let mut l = l.clone();
                l.layer = Some(L::Branch(pb::BranchLayerParams {
                    if_branch: sub(&b.if_branch),
                    else_branch: sub(&b.else_branch),
                }));
                l
            }
            _ => l.clone(),
        })
        .collect()
}

/// `layers` where everything after a layer that may set one of `flags` runs
/// only while none is set.
fn guard(mut layers: Vec<pb::NeuralNetworkLayer>, flags: &[String]) -> Vec<pb::NeuralNetworkLayer> {
    use pb::neural_network_layer::Layer as L;
    let sets_flag = |l: &pb::NeuralNetworkLayer| {
        let mut w = BTreeSet::new();
        written(std::slice::from_ref(l), &mut w, 0);
        flags.iter().any(|f| w.contains(f))
    };
    let Some(k) = layers.iter().position(sets_flag) else {
        return layers;
    };
    let rest = guard(layers.split_off(k + 1), flags);
    if rest.is_empty() {
        return layers;
    }
    let stop = format!("{}:stop{k}", flags[0]);
    layers.push(pb::NeuralNetworkLayer {
        name: stop.clone(),
        input: flags.to_vec(),
        output: vec![stop.clone()],
        layer: Some(L::Add(pb::AddLayerParams { alpha: 0.0 })),
        ..Default::default()
    });
    layers.push(pb::NeuralNetworkLayer {
        name: format!("{stop}:branch"),
        input: vec![stop],
        layer: Some(L::Branch(pb::BranchLayerParams {
            if_branch: Some(pb::NeuralNetwork::default()),
            else_branch: Some(pb::NeuralNetwork {
                layers: rest,
                ..Default::default()
            }),
        })),
        ..Default::default()
    });
    layers
}

/// A loop prepared for translation: its body with jumps turned into flags,
/// its variables and their initial values.
struct LoopParts {
    body: Vec<pb::NeuralNetworkLayer>,
    cond: Vec<pb::NeuralNetworkLayer>,
    /// Blobs the loop updates (they exist before it), then the break flag.
    vars: Vec<String>,
    init: Vec<Val>,
    /// The break flag's blob, when the body can break.
    brk: Option<String>,
    /// Index of the iteration counter in `init`, and the iteration limit.
    counter: Option<(usize, Val)>,
}

fn loop_parts(cx: &mut Cx<'_>, p: &pb::LoopLayerParams) -> Result<LoopParts> {
    let hint = cx.name().to_string();
    let body = p
        .body_network
        .as_ref()
        .ok_or_else(|| cx.err("bodyNetwork is missing"))?;
    let max = match (cx.n_inputs(), p.max_loop_iterations) {
        (1, _) => Some(cx.input(0)?),
        (_, 0) => None,
        (_, n) => Some(cx.em.constant(floats(vec![n as f32], &[1]), &hint)),
    };
    if p.condition_var.is_empty() && max.is_none() {
        return Err(cx.err("a loop needs a conditionVar or an iteration count"));
    }
    // Break and continue become flags; the break flag is a loop variable.
    let (brk, cont) = (
        format!("\u{0}break:{hint}"),
        format!("\u{0}continue:{hint}"),
    );
    let mut layers = rewrite_jumps(&body.layers, &brk, &cont, 0);
    let mut set = BTreeSet::new();
    written(&layers, &mut set, 0);
    let (uses_break, uses_continue) = (set.contains(&brk), set.contains(&cont));
    if uses_break {
        let zero = cx.em.constant(floats(vec![0.0], &[1]), &hint);
        cx.blobs.insert(brk.clone(), zero);
    }
    let flags: Vec<String> = [(uses_break, &brk), (uses_continue, &cont)]
        .into_iter()
        .filter(|(used, _)| *used)
        .map(|(_, f)| f.clone())
        .collect();
    layers = guard(layers, &flags);
    if uses_continue {
        layers.insert(0, constant_layer(&cont, 0.0));
    }
    let cond: Vec<pb::NeuralNetworkLayer> = p
        .condition_network
        .as_ref()
        .map(|c| c.layers.clone())
        .unwrap_or_default();
    let mut w = BTreeSet::new();
    written(&layers, &mut w, 0);
    written(&cond, &mut w, 0);
    let vars: Vec<String> = w.into_iter().filter(|n| cx.blobs.contains_key(n)).collect();
    let mut init: Vec<Val> = vars.iter().map(|n| cx.blobs[n].clone()).collect();
    let counter = match max {
        Some(m) => {
            init.push(cx.em.constant(floats(vec![0.0], &[1]), &hint));
            Some((init.len() - 1, m))
        }
        None => None,
    };
    Ok(LoopParts {
        body: layers,
        cond,
        vars,
        init,
        brk: uses_break.then_some(brk),
        counter,
    })
}

/// `loop`: a for loop (iteration count as a parameter or input), a while
/// loop (condition network), or both; `loopBreak`/`loopContinue` in its body.
fn while_loop(cx: &mut Cx<'_>, p: &pb::LoopLayerParams) -> Result<()> {
    cx.expect_inputs(0..=1)?;
    let hint = cx.name().to_string();
    let lp = loop_parts(cx, p)?;
    let c_block = cond_block(cx, &lp, &p.condition_var)?;
    let b_block = body_block(cx, &lp)?;
    let ranks: Vec<Option<usize>> = lp.init.iter().map(|v| v.rank).collect();
    let vals = cx.em.op_with_blocks(
        "while_loop",
        &hint,
        vec![("loop_vars", Arg::Vs(lp.init.clone()))],
        &ranks,
        vec![c_block, b_block],
    );
    for (name, v) in lp.vars.into_iter().zip(vals) {
        cx.blobs.insert(name, v);
    }
    Ok(())
}

/// The condition block: the condition network, then whether to go on.
fn cond_block(cx: &mut Cx<'_>, lp: &LoopParts, var: &str) -> Result<Block> {
    let hint = cx.name().to_string();
    let (inputs, vals, scope) = loop_scope(cx, &lp.vars, &lp.init);
    let (mut ops, scope) = nested(cx, scope, &lp.cond)?;
    let held = match var {
        "" => None,
        v => Some(scope.get(v).cloned().ok_or_else(|| {
            cx.err(format!(
                "conditionVar {v:?} is not written by the condition network"
            ))
        })?),
    };
    let count = lp
        .counter
        .as_ref()
        .map(|(i, max)| (max.clone(), vals[*i].clone()));
    let broken = lp.brk.as_ref().map(|b| scope[b].clone());
    let (more, out) = cx
        .em
        .nested(|em| Ok(condition(em, held.as_ref(), count, broken.as_ref(), &hint)))?;
    ops.extend(more);
    Ok(Block {
        inputs,
        outputs: vec![out],
        operations: ops,
        attributes: Default::default(),
    })
}

/// The body block; it recomputes the condition network's blobs when it reads them.
fn body_block(cx: &mut Cx<'_>, lp: &LoopParts) -> Result<Block> {
    let hint = cx.name().to_string();
    let (inputs, vals, scope) = loop_scope(cx, &lp.vars, &lp.init);
    let mut cw = BTreeSet::new();
    written(&lp.cond, &mut cw, 0);
    let needs_cond = read(&lp.body)
        .iter()
        .any(|n| cw.contains(n) && !lp.vars.contains(n));
    let mut layers = Vec::new();
    if needs_cond {
        layers.extend(lp.cond.iter().cloned());
    }
    layers.extend(lp.body.iter().cloned());
    let (mut ops, scope) = nested(cx, scope, &layers)?;
    let mut outputs: Vec<String> = lp.vars.iter().map(|n| scope[n].name.clone()).collect();
    if let Some((i, _)) = &lp.counter {
        let it = vals[*i].clone();
        let (more, next) = cx
            .em
            .nested(|em| Ok(em.binary_scalar("add", &it, 1.0, &hint)))?;
        ops.extend(more);
        outputs.push(next.name);
    }
    Ok(Block {
        inputs,
        outputs,
        operations: ops,
        attributes: Default::default(),
    })
}

/// Whether the loop goes on: the condition variable holds, the iteration
/// counter is below the maximum and the break flag is unset (each when present).
fn condition(
    em: &mut Emitter,
    held: Option<&Val>,
    count: Option<(Val, Val)>,
    broken: Option<&Val>,
    hint: &str,
) -> String {
    let mut parts: Vec<Val> = Vec::new();
    if let Some(v) = held {
        parts.push(truth(em, v, hint));
    }
    if let Some((max, it)) = count {
        let args = vec![("x", Arg::V(it)), ("y", Arg::V(max))];
        parts.push(em.typed_op("less", hint, args, DataType::Bool, Some(1)));
    }
    if let Some(b) = broken {
        let set = truth(em, b, hint);
        parts.push(em.typed_op(
            "logical_not",
            hint,
            vec![("x", Arg::V(set))],
            DataType::Bool,
            b.rank,
        ));
    }
    let mut all = match parts.pop() {
        Some(v) => v,
        None => {
            return em
                .constant(crate::neuralnetwork::emit::boolean(true), hint)
                .name
        }
    };
    for p in parts {
        all = em.typed_op(
            "logical_and",
            hint,
            vec![("x", Arg::V(p)), ("y", Arg::V(all))],
            DataType::Bool,
            None,
        );
    }
    all.name
}
