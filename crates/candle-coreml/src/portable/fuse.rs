//! Load-time rewrite of the KV-cache update pattern
//! `v = read_state(s); w = slice_update(x = v, ...); write_state(s, data = w)`
//! into one op that writes the window into the state buffer in place, so a
//! decode step never copies the whole cache.

use std::collections::{HashMap, HashSet};

use crate::mil::{Argument, Binding, Block, Operation};

/// Internal op name of the fused in-place update (never appears in MIL).
pub(crate) const SLICE_UPDATE_STATE: &str = "_slice_update_state";

/// The block's operations with each fusable pattern rewritten: the
/// `read_state` and `write_state` are dropped and the `slice_update` becomes
/// [`SLICE_UPDATE_STATE`] with `x` bound to the state itself.
pub(crate) fn fuse_state_updates(block: &Block) -> Vec<Operation> {
    let ops = &block.operations;
    let uses = use_positions(block);
    let producer: HashMap<&str, usize> = ops
        .iter()
        .enumerate()
        .flat_map(|(i, op)| op.outputs.iter().map(move |o| (o.name.as_str(), i)))
        .collect();
    let mut drop = HashSet::new();
    let mut replace = HashMap::new();
    for (w, write) in ops.iter().enumerate() {
        if write.op_type != "write_state" {
            continue;
        }
        let (Some(state), Some(data)) = (arg_name(write, "input"), arg_name(write, "data")) else {
            continue;
        };
        let Some(&u) = producer.get(data) else {
            continue;
        };
        let update = &ops[u];
        if update.op_type != "slice_update" || only_use(&uses, data) != Some(w) {
            continue;
        }
        let Some(x) = arg_name(update, "x") else {
            continue;
        };
        let Some(&r) = producer.get(x) else { continue };
        let read = &ops[r];
        if read.op_type != "read_state"
            || arg_name(read, "input") != Some(state)
            || only_use(&uses, x) != Some(u)
        {
            continue;
        }
        // Another read of the same state whose value is still used after the
        // write would see the in-place change: keep the copying path then.
        let aliased = ops.iter().enumerate().any(|(i, op)| {
            i != r
                && i < w
                && op.op_type == "read_state"
                && arg_name(op, "input") == Some(state)
                && op.outputs.iter().any(|o| {
                    uses.get(o.name.as_str())
                        .is_some_and(|p| p.iter().any(|&q| q > w))
                })
        });
        if aliased || block.outputs.iter().any(|o| o == data || o == x) {
            continue;
        }
        let mut fused = update.clone();
        fused.op_type = SLICE_UPDATE_STATE.to_string();
        fused.inputs.insert(
            "x".into(),
            Argument::single(Binding::Name(state.to_string())),
        );
        fused.outputs.clear();
        replace.insert(u, fused);
        drop.insert(r);
        drop.insert(w);
    }
    ops.iter()
        .enumerate()
        .filter(|(i, _)| !drop.contains(i))
        .map(|(i, op)| replace.remove(&i).unwrap_or_else(|| op.clone()))
        .collect()
}

fn arg_name<'a>(op: &'a Operation, name: &str) -> Option<&'a str> {
    op.input(name)?.as_name()
}

fn only_use(uses: &HashMap<&str, Vec<usize>>, name: &str) -> Option<usize> {
    match uses.get(name).map(Vec::as_slice) {
        Some([one]) => Some(*one),
        _ => None,
    }
}

/// For each name, the indices of the top-level ops reading it (reads inside
/// nested blocks count for the op owning the block).
fn use_positions(block: &Block) -> HashMap<&str, Vec<usize>> {
    let mut uses: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, op) in block.operations.iter().enumerate() {
        let mut names = Vec::new();
        collect_reads(op, &mut names);
        for n in names {
            uses.entry(n).or_default().push(i);
        }
    }
    uses
}

fn collect_reads<'a>(op: &'a Operation, out: &mut Vec<&'a str>) {
    for arg in op.inputs.values() {
        for b in &arg.bindings {
            if let Binding::Name(n) = b {
                out.push(n);
            }
        }
    }
    for b in &op.blocks {
        for inner in &b.operations {
            collect_reads(inner, out);
        }
        out.extend(b.outputs.iter().map(String::as_str));
    }
}
