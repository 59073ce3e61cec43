//! Load-time rewrite of KV-cache updates into in-place writes.
//!
//! Converted stateful models update a cache as
//! `v = read_state(s); [cast]; w = slice_update(x = v, ...); [cast]; write_state(s, w)`,
//! often reading the state again afterwards. Run literally, that copies the
//! whole cache on every call. The rewrite drops the `read_state`, the casts
//! and the `write_state`, and turns the `slice_update` into one op that writes
//! the window into the state buffer in place. Later readers of the updated
//! value read the state instead.
//!
//! It applies only where it cannot change results: every value that may share
//! the read's storage (derived from it through views such as slices,
//! reshapes, squeezes, tiles, casts; not through ops that always compute a
//! new tensor, [`FRESH`]) must be consumed before the in-place write runs,
//! and every later reader of the updated value must run before the next
//! write to that state. (ANEMLL's chunks read the cache once per layer for
//! attention and write the next layer's window into that same read: the
//! attention's matmuls end the views before the write.)
//! Everywhere else `read_state` keeps snapshot semantics (the value read does
//! not change when the state is written later). Note that coremltools' common
//! subexpression pass can merge a `read_state` placed after a write into the
//! one before it; such programs read the pre-write value here, and are left
//! unfused.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use crate::mil::{
    Argument, Binding, Block, DataType, NamedValueType, Operation, TensorData, TensorValue, Value,
};

/// Internal op name of the fused in-place update (never appears in MIL).
pub(crate) const SLICE_UPDATE_STATE: &str = "_slice_update_state";

/// Ops whose kernels always return a newly computed tensor (never an input,
/// a view of one, or a clone sharing its storage): what they compute from a
/// state read stays valid when the state is written in place afterwards.
const FRESH: &[&str] = &["matmul", "linear", "conv"];

/// One KV-cache update found in a block (indices into its operations).
struct Chain {
    state: String,
    read: usize,
    pre_casts: Vec<usize>,
    update: usize,
    post_casts: Vec<usize>,
    write: usize,
}

impl Chain {
    fn members(&self) -> impl Iterator<Item = usize> + '_ {
        [self.read, self.update, self.write]
            .into_iter()
            .chain(self.pre_casts.iter().copied())
            .chain(self.post_casts.iter().copied())
    }
}

struct Index<'a> {
    ops: &'a [Operation],
    producer: HashMap<&'a str, usize>,
    uses: HashMap<&'a str, Vec<usize>>,
}

impl<'a> Index<'a> {
    fn new(block: &'a Block) -> Self {
        let ops = block.operations.as_slice();
        let producer = ops
            .iter()
            .enumerate()
            .flat_map(|(i, op)| op.outputs.iter().map(move |o| (o.name.as_str(), i)))
            .collect();
        let mut uses: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            let mut names = Vec::new();
            collect_reads(op, &mut names);
            for n in names {
                uses.entry(n).or_default().push(i);
            }
        }
        for o in &block.outputs {
            uses.entry(o.as_str()).or_default().push(usize::MAX);
        }
        Self {
            ops,
            producer,
            uses,
        }
    }

    fn uses(&self, name: &str) -> &[usize] {
        self.uses.get(name).map_or(&[], Vec::as_slice)
    }

    /// The op producing `name`, seen through float-to-float casts (whose
    /// indices are pushed to `casts`).
    fn producer_through_casts(&self, mut name: &'a str, casts: &mut Vec<usize>) -> Option<usize> {
        loop {
            let p = *self.producer.get(name)?;
            let op = &self.ops[p];
            if op.op_type != "cast" || !float_cast(op) {
                return Some(p);
            }
            casts.push(p);
            name = arg_name(op, "x")?;
        }
    }

    fn find_chain(&self, w: usize) -> Option<Chain> {
        let write = &self.ops[w];
        let state = arg_name(write, "input")?;
        let mut post_casts = Vec::new();
        let u = self.producer_through_casts(arg_name(write, "data")?, &mut post_casts)?;
        let update = &self.ops[u];
        if update.op_type != "slice_update" {
            return None;
        }
        let mut pre_casts = Vec::new();
        let r = self.producer_through_casts(arg_name(update, "x")?, &mut pre_casts)?;
        let read = &self.ops[r];
        (read.op_type == "read_state" && arg_name(read, "input") == Some(state)).then(|| Chain {
            state: state.to_string(),
            read: r,
            pre_casts,
            update: u,
            post_casts,
            write: w,
        })
    }

    /// Every value derived from op `from`'s outputs that may share their
    /// storage: not through `stop`, nor past the ops in [`FRESH`].
    fn derived(&self, from: usize, stop: &HashSet<usize>) -> HashSet<&'a str> {
        let mut tainted: HashSet<&str> = self.ops[from]
            .outputs
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        for (i, op) in self.ops.iter().enumerate().skip(from + 1) {
            if stop.contains(&i) {
                continue;
            }
            let mut reads = Vec::new();
            collect_reads(op, &mut reads);
            if !FRESH.contains(&op.op_type.as_str()) && reads.iter().any(|n| tainted.contains(n)) {
                tainted.extend(op.outputs.iter().map(|o| o.name.as_str()));
            }
        }
        tainted
    }
}

fn float_cast(op: &Operation) -> bool {
    let to_float = op
        .input("dtype")
        .and_then(|a| match a.bindings.as_slice() {
            [Binding::Value(v)] => v.as_str().map(|s| matches!(s, "fp16" | "fp32")),
            _ => None,
        })
        .unwrap_or(false);
    let out_float = op
        .outputs
        .first()
        .and_then(|o| o.ty.as_tensor())
        .is_some_and(|t| matches!(t.dtype, DataType::Fp16 | DataType::Fp32));
    to_float || out_float
}

fn arg_name<'a>(op: &'a Operation, name: &str) -> Option<&'a str> {
    op.input(name)?.as_name()
}

/// Every name `op` reads, its nested blocks included.
pub(crate) fn collect_reads<'a>(op: &'a Operation, out: &mut Vec<&'a str>) {
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

/// The block's operations with every safe KV-cache update rewritten.
pub(crate) fn fuse_state_updates(block: &Block) -> Vec<Cow<'_, Operation>> {
    let idx = Index::new(block);
    let ops = &block.operations;
    let chains: Vec<Chain> = (0..ops.len())
        .filter(|&w| ops[w].op_type == "write_state")
        .filter_map(|w| idx.find_chain(w))
        .collect();
    let mut drop = HashSet::new();
    let mut replace: HashMap<usize, Vec<Operation>> = HashMap::new();
    for c in &chains {
        // The next in-place write to the same state, or any other write to it.
        let next_write = chains
            .iter()
            .filter(|o| o.state == c.state && o.update > c.update)
            .map(|o| o.update)
            .chain((c.write + 1..ops.len()).filter(|&i| {
                ops[i].op_type == "write_state"
                    && arg_name(&ops[i], "input") == Some(c.state.as_str())
            }))
            .min()
            .unwrap_or(usize::MAX);
        let members: HashSet<usize> = c.members().collect();
        let chain_links: HashSet<&str> = [c.read]
            .iter()
            .chain(&c.pre_casts)
            .flat_map(|&i| ops[i].outputs.iter().map(|o| o.name.as_str()))
            .collect();
        // Values derived from the read must be consumed before the write.
        let read_safe = idx.derived(c.read, &members).iter().all(|n| {
            idx.uses(n)
                .iter()
                .all(|&u| u < c.update || (chain_links.contains(n) && members.contains(&u)))
        }) && chain_links.iter().all(|n| {
            idx.uses(n)
                .iter()
                .all(|&u| u < c.update || members.contains(&u))
        });
        // Later readers of the updated value (or its casts) run before the next write.
        let updated: Vec<&NamedValueType> = [c.update]
            .iter()
            .chain(&c.post_casts)
            .flat_map(|&i| ops[i].outputs.iter())
            .collect();
        let readers_safe = updated.iter().all(|o| {
            idx.uses(&o.name)
                .iter()
                .all(|&u| members.contains(&u) || (u > c.write && u < next_write))
        });
        if !(read_safe && readers_safe) {
            continue;
        }
        let mut fused = ops[c.update].clone();
        fused.op_type = SLICE_UPDATE_STATE.to_string();
        fused
            .inputs
            .insert("x".into(), Argument::single(Binding::Name(c.state.clone())));
        fused.outputs.clear();
        let mut seq = vec![fused];
        let state_ty = ops[c.read].outputs.first().map(|o| &o.ty);
        for o in updated {
            if idx.uses(&o.name).iter().any(|u| !members.contains(u)) {
                seq.extend(reread(&c.state, o, state_ty == Some(&o.ty)));
            }
        }
        // The read and its casts stay where something else still reads them
        // (before the write, as checked above), and so do the links they read.
        let mut kept: HashSet<usize> = HashSet::new();
        loop {
            let before = kept.len();
            for i in std::iter::once(c.read).chain(c.pre_casts.iter().copied()) {
                let read_elsewhere = ops[i].outputs.iter().any(|o| {
                    idx.uses(&o.name)
                        .iter()
                        .any(|u| !members.contains(u) || kept.contains(u))
                });
                if read_elsewhere {
                    kept.insert(i);
                }
            }
            if kept.len() == before {
                break;
            }
        }
        drop.extend(
            members
                .iter()
                .copied()
                .filter(|&i| i != c.update && !kept.contains(&i)),
        );
        replace.insert(c.update, seq);
    }
    // Unchanged ops are borrowed, never cloned; only the rewritten ones are new.
    let mut out = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        if let Some(seq) = replace.remove(&i) {
            out.extend(seq.into_iter().map(Cow::Owned));
        } else if !drop.contains(&i) {
            out.push(Cow::Borrowed(op));
        }
    }
    out
}

/// `read_state` of `state` giving `value` (through a cast to its declared
/// dtype unless the state already has `value`'s type).
fn reread(state: &str, value: &NamedValueType, same_type: bool) -> Vec<Operation> {
    let tmp = format!("{}__reread", value.name);
    let read = Operation {
        op_type: "read_state".into(),
        inputs: [(
            "input".to_string(),
            Argument::single(Binding::Name(state.to_string())),
        )]
        .into(),
        outputs: vec![NamedValueType {
            name: tmp.clone(),
            ty: value.ty.clone(),
        }],
        blocks: vec![],
        attributes: Default::default(),
        location: None,
    };
    let dtype = value.ty.as_tensor().map(|t| t.dtype.mil_name());
    let Some(dtype) = dtype.filter(|_| !same_type) else {
        let mut read = read;
        read.outputs[0].name = value.name.clone();
        return vec![read];
    };
    let dtype = Value::Tensor(TensorValue::new(
        DataType::String,
        vec![],
        TensorData::Str(vec![dtype.to_string()]),
    ));
    let cast = Operation {
        op_type: "cast".into(),
        inputs: [
            ("x".to_string(), Argument::single(Binding::Name(tmp))),
            ("dtype".to_string(), Argument::single(Binding::Value(dtype))),
        ]
        .into(),
        outputs: vec![value.clone()],
        blocks: vec![],
        attributes: Default::default(),
        location: None,
    };
    vec![read, cast]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fused_counts(rel: &str) -> (usize, usize) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(rel);
        let file = crate::format::open(path).unwrap();
        let f = &file.program().unwrap().functions[0];
        let ops = fuse_state_updates(&f.block);
        let count = |t: &str| ops.iter().filter(|o| o.op_type == t).count();
        (count(SLICE_UPDATE_STATE), count("write_state"))
    }

    #[test]
    fn torch_kv_decoder_updates_in_place() {
        // Two layers, each writing k and v; layer 2 re-reads the caches.
        assert_eq!(fused_counts("torch/kv_decoder.mlpackage"), (4, 0));
    }

    /// ANEMLL chunks (the LLM crate's fixtures, whose generations
    /// `candle-coreml-llm/tests/generate.rs` checks against transformers):
    /// each layer's attention reads views of the cache that the next layer's
    /// update then writes into; the views end at the attention's matmuls, so
    /// every update is in place.
    #[test]
    fn anemll_chunks_update_in_place() {
        for rel in [
            "bundles/qwen3_035_1chunk_lut/qwen_FFN_PF_lut4_chunk_01of01.mlpackage",
            "bundles/llama3_035_2chunk_lut/llama_FFN_PF_lut4_chunk_01of02.mlpackage",
        ] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../candle-coreml-llm/tests/fixtures")
                .join(rel);
            let file = crate::format::open(path).unwrap();
            for f in &file.program().unwrap().functions {
                let ops = fuse_state_updates(&f.block);
                let count = |t: &str| ops.iter().filter(|o| o.op_type == t).count();
                let before = f
                    .block
                    .operations
                    .iter()
                    .filter(|o| o.op_type == "slice_update");
                assert!(before.count() >= 4, "{rel} {}", f.name);
                assert_eq!(
                    (count("slice_update"), count("write_state")),
                    (0, 0),
                    "{rel} {}",
                    f.name
                );
            }
        }
    }

    #[test]
    fn builder_kv_cache_updates_in_place() {
        assert_eq!(fused_counts("models/stateful_kv_cache.mlpackage"), (1, 0));
    }
}
