//! Load-time rewrite of a `conv` and the elementwise ops after it into one
//! fused conv (`_conv_fused`), so the CPU fast path applies them to each
//! output tile while it is in cache instead of in separate passes.
//!
//! Fused after a conv, as long as each intermediate value has no other
//! reader (and is not a block output):
//! - activations: `relu`, `relu6`, `clip`, `sigmoid`, `silu`,
//!   `sigmoid_hard`, `thresholded_relu`, `leaky_relu`, `linear_activation`;
//! - hard-swish as coremltools writes it: `s = sigmoid_hard(v)`, `mul(v, s)`;
//! - one residual `add` of a tensor of the same (fixed) shape and dtype,
//!   followed by more activations (ResNet's `conv, add, relu`).
//!
//! (coremltools already folds batch norms and biases into the conv weights
//! of converted models, so those need no rewrite here.)
//!
//! The fused op keeps the conv's inputs and attributes, adds the residual as
//! an input and the steps as an attribute (`ops::epilogue`), takes the last
//! op's outputs and sits where that op was. Elsewhere than the CPU fast path
//! the steps run as candle ops in the same order, so results are the same.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::mil::{Argument, Binding, Operation, Value};
use crate::portable::cpu::act::Act;
use crate::portable::ops::epilogue::{Step, EPILOGUE_ATTR, RESIDUAL_INPUT};
use crate::portable::rewrite::{splice, OpIndex};

/// Internal op name of a fused conv (never appears in MIL).
pub(crate) const CONV_FUSED: &str = "_conv_fused";

/// The ops' readers, producers and constants ([`OpIndex`]), with the
/// questions the fusion asks of them.
struct Index<'o> {
    ops: &'o [Cow<'o, Operation>],
    base: OpIndex<'o>,
}

impl<'o> Index<'o> {
    fn new(ops: &'o [Cow<'o, Operation>], outputs: &'o [String]) -> Self {
        Self {
            ops,
            base: OpIndex::new(ops, outputs),
        }
    }

    fn uses(&self, name: &str) -> &[usize] {
        self.base.uses(name)
    }

    /// A scalar float parameter of `op` (literal or named constant).
    fn float(&self, op: &'o Operation, name: &str) -> Option<f32> {
        let tv = self.base.tensor(op, name)?;
        tv.scalar_f64().ok().map(|v| v as f32)
    }

    /// The activation op `op` applied to `input`, as a step.
    fn act(&self, op: &'o Operation, input: &str) -> Option<Act> {
        if op.input("x")?.as_name()? != input || op.inputs.len() > 3 || op.outputs.len() != 1 {
            return None;
        }
        let f = |n: &str| self.float(op, n);
        Some(match op.op_type.as_str() {
            "relu" => Act::Relu,
            "relu6" => Act::Clip(0.0, 6.0),
            "clip" => Act::Clip(f("alpha")?, f("beta")?),
            "sigmoid" => Act::Sigmoid,
            "silu" => Act::Silu,
            "sigmoid_hard" => Act::HardSigmoid(f("alpha")?, f("beta")?),
            "thresholded_relu" => Act::Threshold(f("alpha")?),
            "leaky_relu" => Act::LeakyRelu(f("alpha")?),
            "linear_activation" => Act::Linear(f("alpha")?, f("beta")?),
            _ => return None,
        })
    }

    /// `v * sigmoid_hard(v)` starting at value `v` read by exactly ops
    /// `users`: the step and the index of the `mul`.
    fn hard_swish(&self, v: &str, users: &[usize]) -> Option<(Act, usize)> {
        let [a, b] = users else { return None };
        for (s, m) in [(*a, *b), (*b, *a)] {
            let (sop, mop) = (&self.ops.get(s)?, &self.ops.get(m)?);
            let Some(Act::HardSigmoid(al, be)) = self.act(sop, v) else {
                continue;
            };
            let sname = sop.outputs[0].name.as_str();
            let (x, y) = (mop.input("x")?.as_name()?, mop.input("y")?.as_name()?);
            let pair = (x == v && y == sname) || (x == sname && y == v);
            if mop.op_type == "mul" && pair && self.uses(sname) == [m] && s < m {
                return Some((Act::HardSwish(None, al, be), m));
            }
        }
        None
    }

    /// The residual `add` op `op` of `v`: the other operand's name.
    fn residual(&self, op: &Operation, v: &str, vty: &crate::mil::ValueType) -> Option<String> {
        if op.op_type != "add" || op.outputs.len() != 1 {
            return None;
        }
        let (x, y) = (op.input("x")?.as_name()?, op.input("y")?.as_name()?);
        let other = match (x == v, y == v) {
            (true, false) => y,
            (false, true) => x,
            _ => return None,
        };
        // The other operand's type, from its producer.
        let oty = &self.ops[self.base.producer(other)?]
            .outputs
            .iter()
            .find(|o| o.name == other)?
            .ty;
        let (a, b) = (vty.as_tensor()?, oty.as_tensor()?);
        let fixed = a.fixed_shape()?;
        let same = a.dtype == b.dtype && b.fixed_shape().as_ref() == Some(&fixed);
        let out_same = op.outputs[0].ty.as_tensor()?.fixed_shape().as_ref() == Some(&fixed);
        (same && out_same).then(|| other.to_string())
    }
}

/// A conv and the ops fused into it.
struct Chain {
    conv: usize,
    steps: Vec<Step>,
    residual: Option<String>,
    /// Every op after the conv in the chain; the last is replaced.
    members: Vec<usize>,
}

fn find_chain(idx: &Index<'_>, conv: usize) -> Option<Chain> {
    let op = &idx.ops[conv];
    let out = op.outputs.first()?;
    let (mut v, mut vty) = (out.name.as_str(), &out.ty);
    let mut chain = Chain {
        conv,
        steps: Vec::new(),
        residual: None,
        members: Vec::new(),
    };
    loop {
        let users = idx.uses(v);
        if let Some((act, m)) = idx.hard_swish(v, users) {
            let s = users.iter().copied().find(|&u| u != m)?;
            match chain.steps.last() {
                Some(Step::Act(Act::Threshold(t))) => {
                    let t = *t;
                    chain.steps.pop();
                    if let Act::HardSwish(None, a, b) = act {
                        chain.steps.push(Step::Act(Act::HardSwish(Some(t), a, b)));
                    }
                }
                _ => chain.steps.push(Step::Act(act)),
            }
            chain.members.extend([s, m]);
            (v, vty) = (&idx.ops[m].outputs[0].name, &idx.ops[m].outputs[0].ty);
            continue;
        }
        let [u] = users else { break };
        let Some(next) = idx.ops.get(*u) else { break };
        if let Some(act) = idx.act(next, v) {
            chain.steps.push(Step::Act(act));
        } else if let Some(r) = chain
            .residual
            .is_none()
            .then(|| idx.residual(next, v, vty))
            .flatten()
        {
            chain.residual = Some(r);
            chain.steps.push(Step::Add);
        } else {
            break;
        }
        chain.members.push(*u);
        (v, vty) = (&next.outputs[0].name, &next.outputs[0].ty);
    }
    (!chain.steps.is_empty()).then_some(chain)
}

/// `ops` with every conv and its fusable followers rewritten into one
/// `_conv_fused` op. Ops left unchanged stay borrowed.
pub(crate) fn fuse_conv_epilogues<'a>(
    ops: Vec<Cow<'a, Operation>>,
    outputs: &[String],
) -> Vec<Cow<'a, Operation>> {
    let chains: Vec<Chain> = {
        let idx = Index::new(&ops, outputs);
        // A residual add can end two chains (both operands are convs): the
        // first conv in program order takes it.
        let mut claimed = std::collections::HashSet::new();
        (0..ops.len())
            .filter(|&i| ops[i].op_type == "conv")
            .filter_map(|i| find_chain(&idx, i))
            .filter(|c| {
                let free = c.members.iter().all(|m| !claimed.contains(m));
                if free {
                    claimed.extend(c.members.iter().copied());
                }
                free
            })
            .collect()
    };
    if chains.is_empty() {
        return ops;
    }
    let mut replace: HashMap<usize, Operation> = HashMap::new();
    let mut drop = std::collections::HashSet::new();
    for c in &chains {
        let last = *c.members.last().unwrap_or(&c.conv);
        let mut fused = ops[c.conv].clone().into_owned();
        fused.op_type = CONV_FUSED.into();
        fused.outputs = ops[last].outputs.clone();
        let text: Vec<String> = c.steps.iter().map(Step::encode).collect();
        fused
            .attributes
            .insert(EPILOGUE_ATTR.into(), Value::string(text.join(";")));
        if let Some(r) = &c.residual {
            fused.inputs.insert(
                RESIDUAL_INPUT.into(),
                Argument::single(Binding::Name(r.clone())),
            );
        }
        drop.insert(c.conv);
        drop.extend(c.members.iter().copied());
        drop.remove(&last);
        replace.insert(last, fused);
    }
    splice(ops, replace, &drop)
}

#[cfg(test)]
#[path = "fuse_conv_tests.rs"]
mod tests;
