//! What the load-time rewrites (`fuse_lut`, `fuse_gqa`, `fuse_gather`)
//! share: an index of a block's ops (who reads and who produces each
//! value, the `const` values) and the splice that applies a rewrite.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use crate::mil::{Binding, Operation, TensorValue, Value};
use crate::portable::fuse::collect_reads;

/// Readers, producers and constants of a block's ops.
pub(crate) struct OpIndex<'o> {
    pub(crate) ops: &'o [Cow<'o, Operation>],
    uses: HashMap<&'o str, Vec<usize>>,
    producer: HashMap<&'o str, usize>,
}

/// The reader index standing for "returned by the block".
const BLOCK_OUTPUT: usize = usize::MAX;

impl<'o> OpIndex<'o> {
    pub(crate) fn new(ops: &'o [Cow<'o, Operation>], outputs: &'o [String]) -> Self {
        let mut uses: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut producer = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            let mut names = Vec::new();
            collect_reads(op, &mut names);
            for n in names {
                uses.entry(n).or_default().push(i);
            }
            for o in &op.outputs {
                producer.insert(o.name.as_str(), i);
            }
        }
        for o in outputs {
            uses.entry(o.as_str()).or_default().push(BLOCK_OUTPUT);
        }
        Self {
            ops,
            uses,
            producer,
        }
    }

    /// The ops reading `name` (a block output counts as a reader).
    pub(crate) fn uses(&self, name: &str) -> &[usize] {
        self.uses.get(name).map_or(&[], Vec::as_slice)
    }

    /// The op defining `name`.
    pub(crate) fn producer(&self, name: &str) -> Option<usize> {
        self.producer.get(name).copied()
    }

    /// The `op_type` op producing `name`, when `reader` is its only reader.
    pub(crate) fn sole_producer(&self, name: &str, reader: usize, op_type: &str) -> Option<usize> {
        let p = self.producer(name)?;
        (self.uses(name) == [reader] && self.ops[p].op_type == op_type).then_some(p)
    }

    /// The value of `const` op output `name`.
    pub(crate) fn const_value(&self, name: &str) -> Option<&'o Value> {
        let op = &self.ops[self.producer(name)?];
        if op.op_type != "const" {
            return None;
        }
        op.attribute("val")
            .or_else(|| match op.input("val")?.bindings.as_slice() {
                [Binding::Value(v)] => Some(v),
                _ => None,
            })
    }

    /// Parameter `name` of `op` known at load: an attribute, a literal
    /// input, or an input naming a `const` (then also that op's index).
    pub(crate) fn param(
        &self,
        op: &'o Operation,
        name: &str,
    ) -> Option<(&'o Value, Option<usize>)> {
        if let Some(v) = op.attribute(name) {
            return Some((v, None));
        }
        match op.input(name)?.bindings.as_slice() {
            [Binding::Value(v)] => Some((v, None)),
            [Binding::Name(n)] => Some((self.const_value(n)?, self.producer(n))),
            _ => None,
        }
    }

    /// A tensor parameter known at load.
    pub(crate) fn tensor(&self, op: &'o Operation, name: &str) -> Option<&'o TensorValue> {
        self.param(op, name)?.0.as_tensor()
    }

    /// An integer-list parameter known at load.
    pub(crate) fn ints(&self, op: &'o Operation, name: &str) -> Option<Vec<i64>> {
        self.tensor(op, name)?.to_i64_vec().ok()
    }

    /// The fixed shape of `op`'s first output.
    pub(crate) fn shape(&self, op: &Operation) -> Option<Vec<usize>> {
        op.outputs.first()?.ty.as_tensor()?.fixed_shape()
    }

    /// The fixed shape of value `name`, from its producer.
    pub(crate) fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        let op = &self.ops[self.producer(name)?];
        op.outputs
            .iter()
            .find(|o| o.name == name)?
            .ty
            .as_tensor()?
            .fixed_shape()
    }
}

/// `ops` with the ops at `replace`'s indices replaced and those in `drop`
/// removed; the others stay borrowed.
pub(crate) fn splice<'a>(
    ops: Vec<Cow<'a, Operation>>,
    mut replace: HashMap<usize, Operation>,
    drop: &HashSet<usize>,
) -> Vec<Cow<'a, Operation>> {
    ops.into_iter()
        .enumerate()
        .filter(|(i, _)| !drop.contains(i))
        .map(|(i, op)| match replace.remove(&i) {
            Some(f) => Cow::Owned(f),
            None => op,
        })
        .collect()
}

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;
