//! Load-time rewrite of grouped-query attention's key/value repetition into
//! the product that reads it, so the cache is never copied.
//!
//! Converters write GQA as `expand_dims(K [G, T, D], axes=[1])`, then
//! `tile(reps=[1, R, 1, 1])`, then `reshape([1, G*R, T, D])`: head `h` reads
//! group `h / R`. A `matmul(x, that)` with `x` of `[1, G*R, S, C]` computes,
//! for each group, the product of its `R` consecutive heads of `x` (one
//! `[R*S, C]` matrix, a free reshape of `x`) with the group's `K` (or `Kᵀ`),
//! so the chain and the matmul become one `_matmul_gqa(x, y=K)` that
//! reshapes instead of copying. Rewritten only when every value in the chain
//! has no other reader and the shapes are known at load.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use crate::mil::{Argument, Binding, Operation, Value};
use crate::portable::fuse::collect_reads;

/// Internal op name of a matmul whose `y` is a grouped `[G, T, D]` tensor.
pub(crate) const MATMUL_GQA: &str = "_matmul_gqa";

struct Index<'o> {
    ops: &'o [Cow<'o, Operation>],
    uses: HashMap<&'o str, Vec<usize>>,
    producer: HashMap<&'o str, usize>,
    consts: HashMap<&'o str, &'o Value>,
}

impl<'o> Index<'o> {
    fn new(ops: &'o [Cow<'o, Operation>], outputs: &'o [String]) -> Self {
        let mut uses: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut producer = HashMap::new();
        let mut consts = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            let mut names = Vec::new();
            collect_reads(op, &mut names);
            for n in names {
                uses.entry(n).or_default().push(i);
            }
            for o in &op.outputs {
                producer.insert(o.name.as_str(), i);
            }
            if op.op_type == "const" {
                if let (Some(o), Some(v)) = (op.outputs.first(), op.attribute("val")) {
                    consts.insert(o.name.as_str(), v);
                }
            }
        }
        for o in outputs {
            uses.entry(o.as_str()).or_default().push(usize::MAX);
        }
        Self {
            ops,
            uses,
            producer,
            consts,
        }
    }

    /// The op producing `name` when `reader` is its only reader.
    fn sole_producer(&self, name: &str, reader: usize, op_type: &str) -> Option<usize> {
        let p = *self.producer.get(name)?;
        let only = self.uses.get(name).map(Vec::as_slice) == Some(&[reader][..]);
        (only && self.ops[p].op_type == op_type).then_some(p)
    }

    /// An integer-list parameter known at load.
    fn ints(&self, op: &Operation, name: &str) -> Option<Vec<i64>> {
        let v = match op.input(name)?.bindings.as_slice() {
            [Binding::Value(v)] => v,
            [Binding::Name(n)] => *self.consts.get(n.as_str())?,
            _ => return None,
        };
        v.as_tensor()?.to_i64_vec().ok()
    }

    fn shape(&self, op: &Operation) -> Option<Vec<usize>> {
        op.outputs.first()?.ty.as_tensor()?.fixed_shape()
    }
}

/// The chain feeding `y` of matmul `m`: (the ops to drop, the name of `K`).
fn chain(idx: &Index<'_>, m: usize) -> Option<([usize; 3], String)> {
    let mm = &idx.ops[m];
    let y = mm.input("y")?.as_name()?;
    let r = idx.sole_producer(y, m, "reshape")?;
    let t = idx.sole_producer(idx.ops[r].input("x")?.as_name()?, r, "tile")?;
    let e = idx.sole_producer(idx.ops[t].input("x")?.as_name()?, t, "expand_dims")?;
    let k = idx.ops[e].input("x")?.as_name()?;
    let expanded = idx.shape(&idx.ops[e])?;
    let [g, 1, tt, d] = expanded[..] else {
        return None;
    };
    let axes = idx.ints(&idx.ops[e], "axes")?;
    let reps = idx.ints(&idx.ops[t], "reps")?;
    let [1, rep, 1, 1] = reps[..] else {
        return None;
    };
    let rep = usize::try_from(rep).ok().filter(|&r| r >= 1)?;
    let heads = idx.shape(&idx.ops[r])?;
    let x_shape = idx.shape(&idx.ops[*idx.producer.get(mm.input("x")?.as_name()?)?]);
    let transpose_x = idx
        .ops
        .get(m)?
        .input("transpose_x")
        .and_then(|a| match a.bindings.as_slice() {
            [Binding::Value(v)] => v.as_tensor()?.to_bool_vec().ok(),
            [Binding::Name(n)] => idx.consts.get(n.as_str())?.as_tensor()?.to_bool_vec().ok(),
            _ => None,
        })
        .unwrap_or_else(|| vec![false]);
    let fits = (axes == [1] || axes == [-3])
        && heads == [1, g * rep, tt, d]
        && transpose_x == [false]
        && x_shape.is_some_and(|s| s.len() == 4 && s[0] == 1 && s[1] == g * rep);
    fits.then(|| ([r, t, e], k.to_string()))
}

/// `ops` with every grouped key/value repetition read by one `matmul`
/// folded into that matmul. Ops left unchanged stay borrowed.
pub(crate) fn fuse_gqa_matmuls<'a>(
    ops: Vec<Cow<'a, Operation>>,
    outputs: &[String],
) -> Vec<Cow<'a, Operation>> {
    let mut replace: HashMap<usize, Operation> = HashMap::new();
    let mut drop = HashSet::new();
    {
        let idx = Index::new(&ops, outputs);
        for m in (0..ops.len()).filter(|&i| ops[i].op_type == "matmul") {
            let Some((dropped, k)) = chain(&idx, m) else {
                continue;
            };
            let mut fused = ops[m].clone().into_owned();
            fused.op_type = MATMUL_GQA.into();
            fused
                .inputs
                .insert("y".into(), Argument::single(Binding::Name(k)));
            drop.extend(dropped);
            replace.insert(m, fused);
        }
    }
    if replace.is_empty() {
        return ops;
    }
    ops.into_iter()
        .enumerate()
        .filter(|(i, _)| !drop.contains(i))
        .map(|(i, op)| match replace.remove(&i) {
            Some(f) => Cow::Owned(f),
            None => op,
        })
        .collect()
}
