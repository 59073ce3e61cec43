//! Load-time rewrite of a `gather` of rows from a large constant table (an
//! embedding) into `_gather_rows`, which carries the table as an attribute
//! (`table`) so it is never materialised on the device: on the CPU the
//! gathered rows are read from the weight file's mapping as they are
//! needed, so only the rows used ever become resident. Rewritten for
//! `axis` 0, no `batch_dims`, a table of at least [`MIN_ELEMENTS`] read by
//! this gather alone.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use crate::mil::{Operation, Value};
use crate::portable::rewrite::{splice, OpIndex};

/// Internal op name of a row gather from a constant table.
pub(crate) const GATHER_ROWS: &str = "_gather_rows";
/// The attribute holding the table.
pub(crate) const TABLE_ATTR: &str = "table";
/// Smaller tables are materialised as before.
const MIN_ELEMENTS: usize = 1 << 16;

fn rewrite(idx: &OpIndex<'_>, i: usize) -> Option<(Operation, usize)> {
    let op = &idx.ops[i];
    if op.op_type != "gather" {
        return None;
    }
    let x = op.input("x")?.as_name()?;
    let c = idx.sole_producer(x, i, "const")?;
    let table = idx.const_value(x)?.as_tensor()?;
    let axis_ok = match idx.ints(op, "axis").as_deref() {
        None => true,
        Some([a]) => *a == 0 || *a == -(table.shape.len() as i64),
        Some(_) => false,
    };
    let batch_ok = matches!(idx.ints(op, "batch_dims").as_deref(), None | Some([0]));
    let elements = table
        .shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d));
    let big = elements.is_some_and(|n| n >= MIN_ELEMENTS);
    if !(axis_ok && batch_ok && big && table.dtype.is_float()) {
        return None;
    }
    let mut fused = op.clone().into_owned();
    fused.op_type = GATHER_ROWS.into();
    for name in ["x", "axis", "batch_dims"] {
        fused.inputs.remove(name);
    }
    fused
        .attributes
        .insert(TABLE_ATTR.into(), Value::Tensor(table.clone()));
    Some((fused, c))
}

/// `ops` with every row gather from a large constant table rewritten.
pub(crate) fn fuse_table_gathers<'a>(
    ops: Vec<Cow<'a, Operation>>,
    outputs: &[String],
) -> Vec<Cow<'a, Operation>> {
    let mut replace = HashMap::new();
    let mut drop = HashSet::new();
    {
        let idx = OpIndex::new(&ops, outputs);
        for i in 0..ops.len() {
            if let Some((op, c)) = rewrite(&idx, i) {
                replace.insert(i, op);
                drop.insert(c);
            }
        }
    }
    splice(ops, replace, &drop)
}
