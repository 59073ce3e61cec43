//! Load-time rewrite of a palettized weight and the product reading it into
//! one op, so the weight is never expanded: `constexpr_lut_to_dense`
//! feeding the `weight` of a 1x1 `conv` (ANEMLL writes every linear layer
//! so) or of a `linear` becomes `_conv_lut` / `_linear_lut`, which carries
//! the constexpr's parameters as attributes (`lut.indices`, `lut.lut`, and
//! `lut.shape` / `lut.vector_axis` when given). Parameters move into
//! attributes because inputs bound to constants are materialised on the
//! device at load, which is the expansion this avoids.
//!
//! Rewritten only when the constexpr's output has no other reader, and for
//! a conv only when it is a plain matrix product: kernel of ones, one
//! group, unit strides, no padding. The op's kernel multiplies in the
//! stored form on the CPU and falls back to decoding the weight at load
//! elsewhere (or for layouts the CPU kernel does not take), so the rewrite
//! never changes what a program computes.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use crate::mil::Operation;
use crate::portable::rewrite::{splice, OpIndex as Index};

/// Internal op name of a conv with a palettized weight.
pub(crate) const CONV_LUT: &str = "_conv_lut";
/// Internal op name of a linear layer with a palettized weight.
pub(crate) const LINEAR_LUT: &str = "_linear_lut";
/// Prefix of the attributes holding the constexpr's parameters.
pub(crate) const LUT_ATTR_PREFIX: &str = "lut.";
/// The parameters of `constexpr_lut_to_dense` (both forms).
pub(crate) const LUT_PARAMS: [&str; 4] = ["indices", "lut", "shape", "vector_axis"];

/// What a rewrite replaces.
struct Rewrite {
    /// The product op, replaced in place.
    product: usize,
    op: Operation,
    /// The constexpr and the `const` ops only it read.
    dropped: Vec<usize>,
}

/// True when `conv` is a plain matrix product (1x1 kernel of `weight_shape`,
/// one group, unit strides, no padding).
fn conv_is_matmul(idx: &Index<'_>, conv: &Operation, weight_shape: &[usize]) -> bool {
    let ones = |name: &str| match idx.tensor(conv, name) {
        None => true,
        Some(t) => t.to_i64_vec().is_ok_and(|v| v.iter().all(|&x| x == 1)),
    };
    let zeros = |name: &str| match idx.tensor(conv, name) {
        None => true,
        Some(t) => t.to_i64_vec().is_ok_and(|v| v.iter().all(|&x| x == 0)),
    };
    let pad_type = idx
        .param(conv, "pad_type")
        .and_then(|(v, _)| v.as_str().map(str::to_ascii_lowercase));
    let pad_ok = match pad_type.as_deref() {
        None | Some("valid" | "same" | "same_lower") => true,
        Some("custom") => zeros("pad"),
        Some(_) => false,
    };
    weight_shape.len() >= 3
        && weight_shape[2..].iter().all(|&d| d == 1)
        && ones("groups")
        && ones("strides")
        && pad_ok
}

fn rewrite(idx: &Index<'_>, i: usize) -> Option<Rewrite> {
    let op = &idx.ops[i];
    let new_type = match op.op_type.as_str() {
        "conv" | crate::portable::fuse_conv::CONV_FUSED => CONV_LUT,
        "linear" => LINEAR_LUT,
        _ => return None,
    };
    let weight = op.input("weight")?.as_name()?;
    let j = idx.producer(weight)?;
    let lut_op = &idx.ops[j];
    if lut_op.op_type != "constexpr_lut_to_dense" || idx.uses(weight) != [i] {
        return None;
    }
    let shape = lut_op.outputs.first()?.ty.as_tensor()?.fixed_shape()?;
    let fits = match new_type {
        CONV_LUT => conv_is_matmul(idx, op, &shape),
        _ => shape.len() == 2,
    };
    if !fits {
        return None;
    }
    let mut fused = op.clone().into_owned();
    fused.op_type = new_type.into();
    fused.inputs.remove("weight");
    let mut dropped = vec![j];
    for name in LUT_PARAMS {
        let given = lut_op.attribute(name).is_some() || lut_op.input(name).is_some();
        if !given {
            continue;
        }
        // A parameter computed by another op (a chained constexpr) stays
        // with the dense path.
        let (value, from) = idx.param(lut_op, name)?;
        fused
            .attributes
            .insert(format!("{LUT_ATTR_PREFIX}{name}"), value.clone());
        if let Some(c) = from {
            let out = idx.ops[c].outputs.first().map(|o| o.name.as_str());
            if out.is_some_and(|n| idx.uses(n) == [j]) {
                dropped.push(c);
            }
        }
    }
    Some(Rewrite {
        product: i,
        op: fused,
        dropped,
    })
}

/// `ops` with every palettized conv/linear weight rewritten into its
/// product op. Ops left unchanged stay borrowed.
pub(crate) fn fuse_lut_weights<'a>(
    ops: Vec<Cow<'a, Operation>>,
    outputs: &[String],
) -> Vec<Cow<'a, Operation>> {
    let rewrites: Vec<Rewrite> = {
        let idx = Index::new(&ops, outputs);
        (0..ops.len()).filter_map(|i| rewrite(&idx, i)).collect()
    };
    if rewrites.is_empty() {
        return ops;
    }
    let drop: HashSet<usize> = rewrites.iter().flat_map(|r| r.dropped.clone()).collect();
    let replace: HashMap<usize, Operation> =
        rewrites.into_iter().map(|r| (r.product, r.op)).collect();
    splice(ops, replace, &drop)
}
