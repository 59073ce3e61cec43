//! Building a [`Plan`]: scope, bindings, kernels, nested blocks.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use candle_core::Tensor;

use super::cache::CacheKey;
use super::liveness::plan_frees;
use super::steps::{BuildCtx, Plan, Step};
use crate::error::{Error, Result};
use crate::mil::constexpr::is_constexpr;
use crate::mil::{Binding, Block, Function, Operation, TensorValue, Value, ValueType};
use crate::portable::fuse::fuse_state_updates;
use crate::portable::fuse_conv::fuse_conv_epilogues;
use crate::portable::fuse_gather::fuse_table_gathers;
use crate::portable::fuse_gqa::fuse_gqa_matmuls;
use crate::portable::fuse_lut::fuse_lut_weights;
use crate::portable::kernel::{BlockPlan, Bound, Kernel, OpBuilder, Source};
use crate::portable::ops::OpEntry;
use crate::portable::values::materialize;

/// What a name in scope stands for.
#[derive(Clone)]
pub(super) struct Entry {
    pub(super) source: Source,
    pub(super) ty: Option<ValueType>,
    /// The MIL constant, when known at load.
    pub(super) constant: Option<Arc<TensorValue>>,
    /// Identity of a constant in the [`super::cache::ConstCache`], when it has one.
    pub(super) key: Option<Arc<CacheKey>>,
}

impl Entry {
    fn slot(s: usize, ty: &ValueType) -> Self {
        Entry {
            source: Source::Slot(s),
            ty: Some(ty.clone()),
            constant: None,
            key: None,
        }
    }
}

/// Prepares function `f` of a program.
pub(crate) fn build_function(ctx: &BuildCtx<'_>, f: &Function) -> Result<Plan> {
    let mut scope: HashMap<String, Entry> = HashMap::new();
    let mut inputs = Vec::new();
    let mut n_slots = 0;
    for input in &f.inputs {
        let source = if matches!(input.ty, ValueType::State(_)) {
            Source::State(input.name.clone())
        } else {
            inputs.push((input.name.clone(), n_slots));
            n_slots += 1;
            Source::Slot(n_slots - 1)
        };
        scope.insert(
            input.name.clone(),
            Entry {
                source,
                ty: Some(input.ty.clone()),
                constant: None,
                key: None,
            },
        );
    }
    BlockBuilder::new(ctx, scope, n_slots).build(&f.block, inputs)
}

/// Builds one block (a function body or a nested block).
pub(super) struct BlockBuilder<'a> {
    pub(super) ctx: &'a BuildCtx<'a>,
    pub(super) scope: HashMap<String, Entry>,
    n_slots: usize,
    captures: Vec<(Source, usize)>,
    steps: Vec<Step>,
    /// Ops no kernel exists for, as (op type, output name); reported at once.
    pub(super) unknown: Vec<(String, String)>,
}

impl<'a> BlockBuilder<'a> {
    fn new(ctx: &'a BuildCtx<'a>, scope: HashMap<String, Entry>, n_slots: usize) -> Self {
        Self {
            ctx,
            scope,
            n_slots,
            captures: Vec::new(),
            steps: Vec::new(),
            unknown: Vec::new(),
        }
    }

    pub(super) fn invalid(&self, op: &Operation, message: String) -> Error {
        Error::InvalidOp {
            function: self.ctx.function.to_string(),
            op: op.label().to_string(),
            op_type: op.op_type.clone(),
            message,
        }
    }

    fn new_slot(&mut self) -> usize {
        self.n_slots += 1;
        self.n_slots - 1
    }

    pub(super) fn define(&mut self, name: &str, entry: Entry) {
        self.scope.insert(name.to_string(), entry);
    }

    /// Gives every output of `op` a slot (an op whose kernel is missing
    /// still defines its outputs, so later ops resolve and every unknown op
    /// is found).
    pub(super) fn define_slots(&mut self, op: &Operation) -> Vec<usize> {
        let mut slots = Vec::with_capacity(op.outputs.len());
        for out in &op.outputs {
            let s = self.new_slot();
            slots.push(s);
            self.define(&out.name, Entry::slot(s, &out.ty));
        }
        slots
    }

    /// The entry of a literal or `const` value, materialised on the device
    /// (or taken from the cache when it comes from a weight file).
    pub(super) fn constant_entry(
        &self,
        op: &Operation,
        tv: TensorValue,
        ty: Option<ValueType>,
    ) -> Result<Entry> {
        let key = tv.blob.as_ref().map(|b| {
            Arc::new(CacheKey::Blob {
                file: Arc::from(b.file.as_str()),
                offset: b.offset,
                dtype: tv.dtype,
                precision: self.ctx.precision,
            })
        });
        self.constant_entry_keyed(op, tv, ty, key)
    }

    pub(super) fn constant_entry_keyed(
        &self,
        op: &Operation,
        tv: TensorValue,
        ty: Option<ValueType>,
        key: Option<Arc<CacheKey>>,
    ) -> Result<Entry> {
        let cached = key.as_deref().and_then(|k| self.ctx.consts.get(k));
        let source = match cached {
            Some(t) => Source::Const(t),
            None => {
                let t = materialize(&tv, self.ctx.device, self.ctx.precision)
                    .map_err(|e| self.invalid(op, e.report()))?;
                match t {
                    Some(t) => {
                        if let Some(k) = key.as_deref() {
                            self.ctx.consts.insert(k, &t);
                        }
                        Source::Const(t)
                    }
                    None => {
                        Source::Const(Tensor::zeros(0, candle_core::DType::U8, self.ctx.device)?)
                    }
                }
            }
        };
        Ok(Entry {
            source,
            ty,
            constant: Some(Arc::new(tv)),
            key,
        })
    }

    fn bind(&mut self, op: &Operation, b: &Binding) -> Result<Bound> {
        let e = match b {
            Binding::Name(n) => self
                .scope
                .get(n)
                .cloned()
                .ok_or_else(|| self.invalid(op, format!("refers to undefined value {n:?}")))?,
            Binding::Value(Value::Tensor(tv)) => self.constant_entry(op, tv.clone(), None)?,
            Binding::Value(_) => return Err(self.invalid(op, "non-tensor literal argument".into())),
        };
        Ok(Bound {
            source: e.source,
            ty: e.ty,
            constant: e.constant,
        })
    }

    fn build(&mut self, block: &Block, inputs: Vec<(String, usize)>) -> Result<Plan> {
        let ops = rewritten_ops(block);
        for op in &ops {
            self.build_op(op)?;
        }
        if !self.unknown.is_empty() {
            return Err(Error::UnknownOps {
                function: self.ctx.function.to_string(),
                ops: std::mem::take(&mut self.unknown),
            });
        }
        let mut outputs = Vec::new();
        for name in &block.outputs {
            let e = self.scope.get(name).ok_or_else(|| Error::InvalidProgram {
                function: self.ctx.function.to_string(),
                message: format!("block returns undefined value {name:?}"),
            })?;
            outputs.push(e.source.clone());
        }
        let mut steps = std::mem::take(&mut self.steps);
        plan_frees(&mut steps, &outputs, self.n_slots);
        Ok(Plan {
            function: self.ctx.function.to_string(),
            steps,
            n_slots: self.n_slots,
            inputs,
            outputs,
            captures: std::mem::take(&mut self.captures),
        })
    }

    fn build_op(&mut self, op: &Operation) -> Result<()> {
        if op.op_type == "const" {
            return self.build_const(op);
        }
        if is_constexpr(&op.op_type) {
            return self.build_constexpr(op);
        }
        let Some(entry) = self.ctx.registry.get(&op.op_type) else {
            // Unknown ops, `constexpr_*` ones included, are all reported at once.
            self.unknown
                .push((op.op_type.clone(), op.label().to_string()));
            self.define_slots(op);
            return Ok(());
        };
        let mut args = BTreeMap::new();
        for (name, arg) in &op.inputs {
            let bound = arg
                .bindings
                .iter()
                .map(|b| self.bind(op, b))
                .collect::<Result<Vec<_>>>()?;
            args.insert(name.clone(), bound);
        }
        let (kernel, sources) = self.make_kernel(op, args, entry)?;
        let foldable = entry.foldable
            && op.blocks.is_empty()
            && sources.iter().all(|s| matches!(s, Source::Const(_)));
        if foldable {
            return self.fold(op, kernel.as_ref(), &sources);
        }
        let outputs = self.define_slots(op);
        self.steps.push(Step {
            kernel,
            sources,
            outputs,
            free_after: Vec::new(),
            op_type: op.op_type.clone(),
            label: op.label().to_string(),
        });
        Ok(())
    }

    fn build_const(&mut self, op: &Operation) -> Result<()> {
        let val = op
            .attribute("val")
            .or_else(|| match op.input("val").map(|a| a.bindings.as_slice()) {
                Some([Binding::Value(v)]) => Some(v),
                _ => None,
            })
            .and_then(Value::as_tensor)
            .ok_or_else(|| self.invalid(op, "const without a tensor `val`".into()))?;
        let out = op
            .outputs
            .first()
            .ok_or_else(|| self.invalid(op, "no output".into()))?;
        let e = self.constant_entry(op, val.clone(), Some(out.ty.clone()))?;
        self.define(&out.name, e);
        Ok(())
    }

    fn make_kernel(
        &mut self,
        op: &Operation,
        args: BTreeMap<String, Vec<Bound>>,
        entry: &OpEntry,
    ) -> Result<(Box<dyn Kernel>, Vec<Source>)> {
        let ctx = self.ctx;
        let outer_scope = &self.scope;
        let captured_outer = RefCell::new(Vec::new());
        let mut build_block = |index: usize| -> Result<Arc<dyn BlockPlan>> {
            let block = op
                .blocks
                .get(index)
                .ok_or_else(|| Error::msg(format!("op has no block {index}")))?;
            let mut nested = BlockBuilder::new(ctx, HashMap::new(), 0);
            let mut inputs = Vec::new();
            for input in &block.inputs {
                let s = nested.new_slot();
                inputs.push((input.name.clone(), s));
                nested.define(&input.name, Entry::slot(s, &input.ty));
            }
            // Values of the enclosing scope that the block reads are captured.
            for name in block_free_names(block) {
                if nested.scope.contains_key(&name) {
                    continue;
                }
                if let Some(e) = outer_scope.get(&name) {
                    let entry = match &e.source {
                        Source::Slot(_) => {
                            let local = nested.new_slot();
                            nested.captures.push((e.source.clone(), local));
                            captured_outer.borrow_mut().push(e.source.clone());
                            Entry {
                                source: Source::Slot(local),
                                ..e.clone()
                            }
                        }
                        _ => e.clone(),
                    };
                    nested.define(&name, entry);
                }
            }
            Ok(Arc::new(nested.build(block, inputs)?))
        };
        let mut b = OpBuilder {
            op,
            function: ctx.function,
            args,
            device: ctx.device,
            precision: ctx.precision,
            sources: Vec::new(),
            build_block: &mut build_block,
        };
        let kernel = (entry.build)(&mut b)?;
        let mut sources = std::mem::take(&mut b.sources);
        // Captured values count as inputs of the op owning the block, so
        // they stay alive until it has run.
        sources.extend(captured_outer.into_inner());
        Ok((kernel, sources))
    }
}

/// The block's ops after the load-time rewrites, in the order they apply:
/// in-place state updates, conv epilogues, palettized weights (which take
/// fused convs too), grouped-query attention, table gathers.
pub(crate) fn rewritten_ops(block: &Block) -> Vec<Cow<'_, Operation>> {
    let out = &block.outputs;
    let ops = fuse_conv_epilogues(fuse_state_updates(block), out);
    let ops = fuse_lut_weights(ops, out);
    let ops = fuse_gqa_matmuls(ops, out);
    fuse_table_gathers(ops, out)
}

/// Names a block reads that it does not define itself (nested blocks included).
fn block_free_names(block: &Block) -> Vec<String> {
    let mut defined: HashSet<&str> = block.inputs.iter().map(|i| i.name.as_str()).collect();
    let mut free = Vec::new();
    for op in &block.operations {
        for arg in op.inputs.values() {
            for b in &arg.bindings {
                if let Binding::Name(n) = b {
                    if !defined.contains(n.as_str()) {
                        free.push(n.clone());
                    }
                }
            }
        }
        for nested in &op.blocks {
            for n in block_free_names(nested) {
                if !defined.contains(n.as_str()) {
                    free.push(n);
                }
            }
        }
        for o in &op.outputs {
            defined.insert(&o.name);
        }
    }
    for n in &block.outputs {
        if !defined.contains(n.as_str()) {
            free.push(n.clone());
        }
    }
    free.sort();
    free.dedup();
    free
}
