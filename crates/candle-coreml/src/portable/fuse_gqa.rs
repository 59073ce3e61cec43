//! Load-time rewrite of grouped-query attention's key/value repetition into
//! the product that reads it, so the cache is never copied.
//!
//! Converters write GQA as `expand_dims(K [G, T, D], axes=[1])`, then
//! `tile(reps=[1, R, 1, 1])`, then `reshape([1, G*R, T, D])` (or
//! `[G*R, T, D]`): head `h` reads group `h / R`. A `matmul(x, that)` with
//! `x` of `[1, G*R, S, C]` (or `[G*R, S, C]`) computes,
//! for each group, the product of its `R` consecutive heads of `x` (one
//! `[R*S, C]` matrix, a free reshape of `x`) with the group's `K` (or `Kᵀ`),
//! so the chain and the matmul become one `_matmul_gqa(x, y=K)` that
//! reshapes instead of copying. Rewritten only when every value in the chain
//! has no other reader and the shapes are known at load.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use crate::mil::{Argument, Binding, Operation};
use crate::portable::rewrite::{splice, OpIndex as Index};

/// Internal op name of a matmul whose `y` is a grouped `[G, T, D]` tensor.
pub(crate) const MATMUL_GQA: &str = "_matmul_gqa";

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
    let x_shape = idx.shape_of(mm.input("x")?.as_name()?);
    let transpose_x = match idx.param(mm, "transpose_x") {
        None => vec![false],
        Some((v, _)) => v.as_tensor()?.to_bool_vec().ok()?,
    };
    // The heads with or without the leading 1 (coremltools drops it in
    // prefill windows), the same for `x`.
    let h = g.checked_mul(rep)?;
    let fits = (axes == [1] || axes == [-3])
        && (heads == [1, h, tt, d] || heads == [h, tt, d])
        && transpose_x == [false]
        && x_shape.is_some_and(|s| matches!(s[..], [1, xh, _, _] | [xh, _, _] if xh == h));
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
    splice(ops, replace, &drop)
}
