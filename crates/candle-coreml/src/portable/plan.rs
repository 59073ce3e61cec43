//! Load-time preparation of a MIL block into a [`Plan`], and running it.
//!
//! Preparation resolves every name to a slot or a constant, builds each op's
//! kernel once, folds ops whose inputs are all constants, decodes constexpr
//! weights, and records after which step each slot is last used so that
//! intermediates are dropped as early as possible.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use candle_core::{Device, Tensor};

use super::kernel::{Args, Bound, Kernel, OpBuilder, Source};
use super::ops::Registry;
use super::state::StateStore;
use super::values::{materialize, tensor_to_value};
use crate::error::{Error, Result};
use crate::mil::{Binding, Block, Function, Operation, TensorValue, Value, ValueType};
use crate::options::ComputePrecision;

/// Values of one running block, by slot.
#[derive(Debug, Default)]
pub(crate) struct Env {
    slots: Vec<Option<Tensor>>,
}

impl Env {
    fn new(n: usize) -> Self {
        Self {
            slots: vec![None; n],
        }
    }

    /// The tensor in slot `s`.
    pub(crate) fn get(&self, s: usize) -> Result<&Tensor> {
        self.slots
            .get(s)
            .and_then(Option::as_ref)
            .ok_or_else(|| Error::msg(format!("internal: slot {s} read before it was written")))
    }

    fn set(&mut self, s: usize, t: Tensor) {
        if let Some(slot) = self.slots.get_mut(s) {
            *slot = Some(t);
        }
    }
}

struct Step {
    kernel: Box<dyn Kernel>,
    sources: Vec<Source>,
    outputs: Vec<usize>,
    free_after: Vec<usize>,
    op_type: String,
    label: String,
}

/// A prepared block, ready to run.
pub(crate) struct Plan {
    function: String,
    steps: Vec<Step>,
    n_slots: usize,
    /// Block (or function) inputs bound at run time, in order: name and slot.
    pub(crate) inputs: Vec<(String, usize)>,
    /// What the block returns.
    outputs: Vec<Source>,
    /// Values of the enclosing block this nested block reads: outer source, local slot.
    captures: Vec<(Source, usize)>,
}

#[derive(Clone)]
struct Entry {
    source: Source,
    ty: Option<ValueType>,
    constant: Option<Arc<TensorValue>>,
    /// Identity of a weight-file constant, for sharing across functions.
    key: Option<Arc<str>>,
}

/// Ops never folded at load even when all inputs are constant.
const NO_FOLD: &[&str] = &[
    super::fuse::SLICE_UPDATE_STATE,
    "read_state",
    "write_state",
    "coreml_update_state",
    "random_bernoulli",
    "random_categorical",
    "random_normal",
    "random_uniform",
];

/// Constants up to this many elements are also kept as MIL values after folding,
/// so that later ops can read them as parameters (shapes, axes).
const FOLD_KEEP_VALUE: usize = 1 << 16;

/// Shared load-time context.
pub(crate) struct BuildCtx<'a> {
    pub(crate) registry: &'a Registry,
    pub(crate) device: &'a Device,
    pub(crate) precision: ComputePrecision,
    pub(crate) function: &'a str,
    pub(crate) consts: &'a ConstCache,
}

impl BuildCtx<'_> {
    fn precision_tag(&self) -> &'static str {
        match self.precision {
            ComputePrecision::Float32 => "f32",
            ComputePrecision::Program => "program",
        }
    }
}

/// Constants materialised on the device, shared by every function of a
/// model loaded from one file, keyed by where their data lives in the weight
/// file (and the compute dtype), so `prefill` and `infer` hold one copy.
#[derive(Default)]
pub(crate) struct ConstCache {
    tensors: std::sync::Mutex<HashMap<String, Tensor>>,
}

impl ConstCache {
    fn get(&self, key: &str) -> Option<Tensor> {
        self.tensors.lock().ok()?.get(key).cloned()
    }

    fn insert(&self, key: &str, t: &Tensor) {
        if let Ok(mut m) = self.tensors.lock() {
            m.insert(key.to_string(), t.clone());
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

struct BlockBuilder<'a> {
    ctx: &'a BuildCtx<'a>,
    scope: HashMap<String, Entry>,
    n_slots: usize,
    captures: Vec<(Source, usize)>,
    steps: Vec<Step>,
    unknown: Vec<(String, String)>,
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

    fn invalid(&self, op: &Operation, message: String) -> Error {
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

    /// Finds `name` in this block's scope (captured outer names included).
    fn lookup(&self, name: &str) -> Option<Entry> {
        self.scope.get(name).cloned()
    }

    fn define(&mut self, name: &str, entry: Entry) {
        self.scope.insert(name.to_string(), entry);
    }

    fn constant_entry(
        &self,
        op: &Operation,
        tv: TensorValue,
        ty: Option<ValueType>,
    ) -> Result<Entry> {
        let key = tv
            .blob
            .as_ref()
            .map(|b| Arc::from(format!("blob:{}@{}:{}", b.file, b.offset, tv.dtype)));
        self.constant_entry_keyed(op, tv, ty, key)
    }

    fn constant_entry_keyed(
        &self,
        op: &Operation,
        tv: TensorValue,
        ty: Option<ValueType>,
        key: Option<Arc<str>>,
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
        match b {
            Binding::Name(n) => {
                let e = self
                    .lookup(n)
                    .ok_or_else(|| self.invalid(op, format!("refers to undefined value {n:?}")))?;
                Ok(Bound {
                    source: e.source,
                    ty: e.ty,
                    constant: e.constant,
                })
            }
            Binding::Value(Value::Tensor(tv)) => {
                let e = self.constant_entry(op, tv.clone(), None)?;
                Ok(Bound {
                    source: e.source,
                    ty: e.ty,
                    constant: e.constant,
                })
            }
            Binding::Value(_) => Err(self.invalid(op, "non-tensor literal argument".into())),
        }
    }

    fn build(&mut self, block: &Block, inputs: Vec<(String, usize)>) -> Result<Plan> {
        for op in &super::fuse::fuse_state_updates(block) {
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
            let e = self.lookup(name).ok_or_else(|| Error::InvalidProgram {
                function: self.ctx.function.to_string(),
                message: format!("block returns undefined value {name:?}"),
            })?;
            outputs.push(e.source);
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
            return Ok(());
        }
        if op.op_type.starts_with("constexpr_") {
            return self.build_constexpr(op);
        }
        let mut args = BTreeMap::new();
        for (name, arg) in &op.inputs {
            let bound = arg
                .bindings
                .iter()
                .map(|b| self.bind(op, b))
                .collect::<Result<Vec<_>>>()?;
            args.insert(name.clone(), bound);
        }
        let Some(build) = self.ctx.registry.get(&op.op_type) else {
            self.unknown
                .push((op.op_type.clone(), op.label().to_string()));
            for out in &op.outputs {
                let s = self.new_slot();
                self.define(&out.name, Entry::slot(s, &out.ty));
            }
            return Ok(());
        };
        let (kernel, sources) = self.make_kernel(op, args, build)?;
        let foldable = !NO_FOLD.contains(&op.op_type.as_str())
            && op.blocks.is_empty()
            && sources.iter().all(|s| matches!(s, Source::Const(_)));
        if foldable {
            self.fold(op, kernel.as_ref(), &sources)
        } else {
            let mut outputs = Vec::new();
            for out in &op.outputs {
                let s = self.new_slot();
                outputs.push(s);
                self.define(&out.name, Entry::slot(s, &out.ty));
            }
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
    }

    fn make_kernel(
        &mut self,
        op: &Operation,
        args: BTreeMap<String, Vec<Bound>>,
        build: super::kernel::BuildFn,
    ) -> Result<(Box<dyn Kernel>, Vec<Source>)> {
        let ctx = self.ctx;
        let outer_scope = &self.scope;
        let captured_outer = RefCell::new(Vec::new());
        let mut build_block = |index: usize, _examples: &[Tensor]| -> Result<Arc<Plan>> {
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
        let kernel = build(&mut b)?;
        let mut sources = std::mem::take(&mut b.sources);
        // Captured values count as inputs of the op owning the block, so
        // they stay alive until it has run.
        sources.extend(captured_outer.into_inner());
        Ok((kernel, sources))
    }

    fn fold(&mut self, op: &Operation, kernel: &dyn Kernel, sources: &[Source]) -> Result<()> {
        let key = self.derived_key(op);
        let cached: Option<Vec<Tensor>> = key.as_ref().and_then(|k| {
            (0..op.outputs.len())
                .map(|i| self.ctx.consts.get(&format!("{k}#{i}")))
                .collect()
        });
        let outs = match cached {
            Some(outs) => outs,
            None => {
                let env = Env::default();
                let mut states = StateStore::default();
                let mut args = Args {
                    sources,
                    env: &env,
                    states: &mut states,
                };
                let outs = kernel.run(&mut args).map_err(|e| {
                    self.invalid(op, format!("while folding constants: {}", e.report()))
                })?;
                if outs.len() != op.outputs.len() {
                    return Err(self.invalid(
                        op,
                        format!(
                            "kernel gave {} outputs, op declares {}",
                            outs.len(),
                            op.outputs.len()
                        ),
                    ));
                }
                if let Some(k) = &key {
                    for (i, t) in outs.iter().enumerate() {
                        self.ctx.consts.insert(&format!("{k}#{i}"), t);
                    }
                }
                outs
            }
        };
        for (i, (t, out)) in outs.into_iter().zip(&op.outputs).enumerate() {
            let constant = match out.ty.as_tensor() {
                Some(tt) if t.elem_count() <= FOLD_KEEP_VALUE => {
                    tensor_to_value(&t, tt.dtype).ok().map(Arc::new)
                }
                _ => None,
            };
            let entry = Entry {
                source: Source::Const(t),
                ty: Some(out.ty.clone()),
                constant,
                key: key.as_ref().map(|k| Arc::from(format!("{k}#{i}"))),
            };
            self.define(&out.name, entry);
        }
        Ok(())
    }

    fn build_constexpr(&mut self, op: &Operation) -> Result<()> {
        let key = self.derived_key(op);
        if let Some(k) = &key {
            let hits: Option<Vec<Tensor>> = (0..op.outputs.len())
                .map(|i| self.ctx.consts.get(&format!("{k}#{i}")))
                .collect();
            if let Some(hits) = hits {
                for (i, (t, out)) in hits.into_iter().zip(&op.outputs).enumerate() {
                    let entry = Entry {
                        source: Source::Const(t),
                        ty: Some(out.ty.clone()),
                        constant: None,
                        key: Some(Arc::from(format!("{k}#{i}"))),
                    };
                    self.define(&out.name, entry);
                }
                return Ok(());
            }
        }
        // Parameters bound by name (iOS18 form) resolve to the constants in scope.
        let mut known: HashMap<&str, Value> = HashMap::new();
        for arg in op.inputs.values() {
            for b in &arg.bindings {
                if let Binding::Name(n) = b {
                    let c = self
                        .scope
                        .get(n)
                        .and_then(|e| e.constant.as_ref())
                        .ok_or_else(|| {
                            self.invalid(op, format!("parameter {n:?} is not a constant"))
                        })?;
                    known.insert(n, Value::Tensor((**c).clone()));
                }
            }
        }
        let lookup = |name: &str| known.get(name);
        let dense =
            crate::mil::constexpr::decompress_all(op, &lookup).map_err(|e| self.invalid(op, e))?;
        if dense.len() != op.outputs.len() {
            return Err(self.invalid(
                op,
                format!(
                    "decoded {} values for {} outputs",
                    dense.len(),
                    op.outputs.len()
                ),
            ));
        }
        for (i, (tv, out)) in dense.into_iter().zip(&op.outputs).enumerate() {
            let k = key.as_ref().map(|k| Arc::from(format!("{k}#{i}")));
            let e = self.constant_entry_keyed(op, tv, Some(out.ty.clone()), k)?;
            self.define(&out.name, e);
        }
        Ok(())
    }

    /// A cache key for a constexpr or folded op: its type and the identity of every
    /// parameter (weight-file keys, or the literal itself when small).
    fn derived_key(&self, op: &Operation) -> Option<String> {
        let mut parts = vec![op.op_type.clone(), self.ctx.precision_tag().to_string()];
        let literal = |v: &Value| -> Option<String> {
            let t = v.as_tensor()?;
            if let Some(b) = &t.blob {
                return Some(format!("blob:{}@{}", b.file, b.offset));
            }
            (t.element_count() <= 64).then(|| format!("{:?}{:?}{:?}", t.dtype, t.shape, t.data))
        };
        for (name, arg) in &op.inputs {
            for b in &arg.bindings {
                let id = match b {
                    Binding::Name(n) => self.scope.get(n)?.key.as_deref()?.to_string(),
                    Binding::Value(v) => literal(v)?,
                };
                parts.push(format!("{name}={id}"));
            }
        }
        for (name, v) in &op.attributes {
            if name != "name" {
                parts.push(format!("{name}={}", literal(v)?));
            }
        }
        Some(format!("op:{}", parts.join(";")))
    }
}

/// Names a block reads that it does not define itself (nested blocks included).
fn block_free_names(block: &Block) -> Vec<String> {
    let mut defined: std::collections::HashSet<&str> =
        block.inputs.iter().map(|i| i.name.as_str()).collect();
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

/// Records, for each step, the slots whose last reader it is.
fn plan_frees(steps: &mut [Step], outputs: &[Source], n_slots: usize) {
    let mut last_use: Vec<Option<usize>> = vec![None; n_slots];
    for (i, step) in steps.iter().enumerate() {
        for s in &step.sources {
            if let Source::Slot(slot) = s {
                if let Some(l) = last_use.get_mut(*slot) {
                    *l = Some(i);
                }
            }
        }
    }
    for s in outputs {
        if let Source::Slot(slot) = s {
            if let Some(l) = last_use.get_mut(*slot) {
                *l = None;
            }
        }
    }
    let kept: std::collections::HashSet<usize> = outputs
        .iter()
        .filter_map(|s| match s {
            Source::Slot(x) => Some(*x),
            _ => None,
        })
        .collect();
    for (slot, l) in last_use.iter().enumerate() {
        if let Some(i) = l {
            if !kept.contains(&slot) {
                steps[*i].free_after.push(slot);
            }
        }
    }
    // Outputs of a step nobody reads are dropped right away.
    for step in steps.iter_mut() {
        let unused: Vec<usize> = step
            .outputs
            .iter()
            .copied()
            .filter(|o| last_use.get(*o).copied().flatten().is_none() && !kept.contains(o))
            .collect();
        step.free_after.extend(unused);
    }
}

impl Plan {
    /// Runs the plan with `inputs` bound to its inputs in order.
    pub(crate) fn run(&self, inputs: Vec<Tensor>, states: &mut StateStore) -> Result<Vec<Tensor>> {
        let mut env = Env::new(self.n_slots);
        for ((_, slot), t) in self.inputs.iter().zip(inputs) {
            env.set(*slot, t);
        }
        self.execute(env, states)
    }

    /// Runs a nested block inside `outer`, reading its captured values from there.
    pub(crate) fn run_nested(
        &self,
        outer: &Env,
        inputs: Vec<Tensor>,
        states: &mut StateStore,
    ) -> Result<Vec<Tensor>> {
        let mut env = Env::new(self.n_slots);
        for ((_, slot), t) in self.inputs.iter().zip(inputs) {
            env.set(*slot, t);
        }
        for (source, local) in &self.captures {
            let t = match source {
                Source::Slot(s) => outer.get(*s)?.clone(),
                Source::Const(t) => t.clone(),
                Source::State(n) => {
                    return Err(Error::InvalidProgram {
                        function: self.function.clone(),
                        message: format!("state {n:?} captured as a value"),
                    })
                }
            };
            env.set(*local, t);
        }
        self.execute(env, states)
    }

    fn execute(&self, mut env: Env, states: &mut StateStore) -> Result<Vec<Tensor>> {
        let mut profile = super::profile::enabled().then(Vec::new);
        for step in &self.steps {
            let started = profile.as_ref().map(|_| std::time::Instant::now());
            let mut args = Args {
                sources: &step.sources,
                env: &env,
                states: &mut *states,
            };
            let outs = step
                .kernel
                .run(&mut args)
                .map_err(|e| self.op_error(step, e))?;
            if outs.len() < step.outputs.len() {
                return Err(self.op_error(
                    step,
                    Error::msg(format!(
                        "gave {} outputs, op declares {}",
                        outs.len(),
                        step.outputs.len()
                    )),
                ));
            }
            for (slot, t) in step.outputs.iter().zip(outs) {
                env.set(*slot, t);
            }
            for &slot in &step.free_after {
                if let Some(s) = env.slots.get_mut(slot) {
                    *s = None;
                }
            }
            if let (Some(p), Some(t0)) = (profile.as_mut(), started) {
                p.push((step.op_type.as_str(), step.label.as_str(), t0.elapsed()));
            }
        }
        if let Some(p) = profile {
            super::profile::report(&self.function, &p);
        }
        self.outputs
            .iter()
            .map(|s| match s {
                Source::Slot(x) => env.get(*x).cloned(),
                Source::Const(t) => Ok(t.clone()),
                Source::State(n) => Err(Error::InvalidProgram {
                    function: self.function.clone(),
                    message: format!("returns state {n:?} as a value"),
                }),
            })
            .collect()
    }

    fn op_error(&self, step: &Step, e: Error) -> Error {
        match e {
            already @ Error::OpFailed { .. } => already,
            e => Error::OpFailed {
                function: self.function.clone(),
                op: step.label.clone(),
                op_type: step.op_type.clone(),
                source: Box::new(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::error::Error;
    use crate::portable::testutil::build_program;

    #[test]
    fn every_unknown_op_is_reported_at_load() {
        let err = build_program(&[
            ("frobnicate", &[("x", "x")], "a"),
            ("relu", &[("x", "a")], "b"),
            ("defenestrate", &[("x", "b")], "c"),
        ])
        .unwrap_err();
        match err {
            Error::UnknownOps { function, ops } => {
                assert_eq!(function, "main");
                assert_eq!(
                    ops,
                    vec![
                        ("frobnicate".to_string(), "a".to_string()),
                        ("defenestrate".to_string(), "c".to_string())
                    ]
                );
            }
            other => panic!("expected UnknownOps, got {other}"),
        }
    }

    #[test]
    fn undefined_value_names_the_op() {
        let err = build_program(&[("relu", &[("x", "nowhere")], "a")]).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::InvalidOp { .. }), "{msg}");
        assert!(
            msg.contains("\"a\"") && msg.contains("relu") && msg.contains("nowhere"),
            "{msg}"
        );
    }

    #[test]
    fn missing_required_input_names_the_op() {
        let err = build_program(&[("add", &[("x", "x")], "s")]).unwrap_err();
        assert!(err.to_string().contains("missing input \"y\""), "{err}");
    }
}
