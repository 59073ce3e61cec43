//! The contract between the evaluator and op kernels.
//!
//! At load, each op's builder (registered by name in `ops/`) reads its
//! constant parameters once through an [`OpBuilder`] and returns a prepared
//! [`Kernel`]. At run time the kernel receives its tensors through [`Args`].

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::dtype::compute_dtype;
use super::plan::env::Env;
use super::state::StateStore;
use crate::error::{Error, Result};
use crate::mil::{DataType, Operation, TensorValue, ValueType};
use crate::options::ComputePrecision;

/// A prepared op: parameters already parsed, ready to run many times.
pub(crate) trait Kernel: Send + Sync {
    /// Runs the op and returns its outputs in declaration order.
    fn run(&self, args: &mut Args<'_>) -> Result<Vec<Tensor>>;
}

impl<F> Kernel for F
where
    F: Fn(&mut Args<'_>) -> Result<Vec<Tensor>> + Send + Sync,
{
    fn run(&self, args: &mut Args<'_>) -> Result<Vec<Tensor>> {
        self(args)
    }
}

/// Boxes a closure as a kernel.
pub(crate) fn kernel<F>(f: F) -> Box<dyn Kernel>
where
    F: Fn(&mut Args<'_>) -> Result<Vec<Tensor>> + Send + Sync + 'static,
{
    Box::new(f)
}

/// Builds a kernel for one op at load time.
pub(crate) type BuildFn = fn(&mut OpBuilder<'_>) -> Result<Box<dyn Kernel>>;

/// A handle to one runtime input of a kernel, handed out by [`OpBuilder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct In(pub(crate) usize);

/// Where one binding of an op's argument comes from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// A value computed at run time, in this slot of the environment.
    Slot(usize),
    /// A constant, materialised on the device at load.
    Const(Tensor),
    /// A state of the function, by name.
    State(String),
}

/// One binding as the builder sees it: its source, its declared type, and the
/// MIL constant when known at load.
#[derive(Debug, Clone)]
pub(crate) struct Bound {
    pub(crate) source: Source,
    pub(crate) ty: Option<ValueType>,
    pub(crate) constant: Option<Arc<TensorValue>>,
}

/// An integer-list parameter that is either known at load or computed at run time
/// (e.g. `reshape`'s `shape` built from `shape` ops).
#[derive(Debug, Clone)]
pub(crate) enum IntsArg {
    /// Known at load.
    Const(Vec<i64>),
    /// Read from this runtime input.
    Runtime(In),
}

/// A nested block prepared at load (`cond`'s branches, `while_loop`'s
/// condition and body), run by its op's kernel inside the current block.
pub(crate) trait BlockPlan: Send + Sync {
    /// Runs the block with `inputs` bound to its block inputs; captured
    /// values of the enclosing block are read from `outer`.
    fn run_nested(
        &self,
        outer: &Env,
        inputs: Vec<Tensor>,
        states: &mut StateStore,
    ) -> Result<Vec<Tensor>>;
}

/// An operand prepared at load (a constant, already cast and laid out) or
/// read at run time; see [`OpBuilder::operand`].
#[derive(Clone)]
pub(crate) enum Operand {
    /// Prepared at load.
    Ready(Tensor),
    /// A runtime input.
    Input(In),
}

impl Operand {
    /// The operand's tensor for this call.
    pub(crate) fn get(&self, a: &Args<'_>) -> Result<Tensor> {
        match self {
            Operand::Ready(t) => Ok(t.clone()),
            Operand::Input(i) => Ok(a.tensor(*i)?.clone()),
        }
    }
}

/// Builds nested block `index` of the op being built.
pub(crate) type BlockBuildFn<'a> = dyn FnMut(usize) -> Result<Arc<dyn BlockPlan>> + 'a;

/// The load-time view of one op.
pub(crate) struct OpBuilder<'a> {
    pub(crate) op: &'a Operation,
    pub(crate) function: &'a str,
    pub(crate) args: std::collections::BTreeMap<String, Vec<Bound>>,
    pub(crate) device: &'a Device,
    pub(crate) precision: ComputePrecision,
    /// Sources of the runtime inputs handed out so far, indexed by [`In`].
    pub(crate) sources: Vec<Source>,
    /// Nested-block plans built for this op.
    pub(crate) build_block: &'a mut BlockBuildFn<'a>,
}

impl<'a> OpBuilder<'a> {
    /// The op being built.
    pub(crate) fn op(&self) -> &'a Operation {
        self.op
    }

    /// An [`Error::InvalidOp`] naming this op.
    pub(crate) fn err(&self, message: impl Into<String>) -> Error {
        Error::InvalidOp {
            function: self.function.to_string(),
            op: self.op.label().to_string(),
            op_type: self.op.op_type.clone(),
            message: message.into(),
        }
    }

    /// The device kernels run on.
    pub(crate) fn device(&self) -> &Device {
        self.device
    }

    /// True when the op has input `name`.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.args.contains_key(name)
    }

    fn single(&self, name: &str) -> Result<&Bound> {
        match self.args.get(name).map(Vec::as_slice) {
            Some([b]) => Ok(b),
            Some(_) => Err(self.err(format!("input {name:?} must be a single value"))),
            None => Err(self.err(format!("missing input {name:?}"))),
        }
    }

    fn push(&mut self, source: Source) -> In {
        self.sources.push(source);
        In(self.sources.len() - 1)
    }

    /// A required tensor input.
    pub(crate) fn input(&mut self, name: &str) -> Result<In> {
        let source = self.single(name)?.source.clone();
        Ok(self.push(source))
    }

    /// An optional tensor input.
    pub(crate) fn opt_input(&mut self, name: &str) -> Result<Option<In>> {
        if self.has(name) {
            self.input(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A variadic input (`concat`'s `values`): one handle per binding.
    pub(crate) fn variadic(&mut self, name: &str) -> Result<Vec<In>> {
        let bound = self
            .args
            .get(name)
            .ok_or_else(|| self.err(format!("missing input {name:?}")))?;
        let sources: Vec<Source> = bound.iter().map(|b| b.source.clone()).collect();
        Ok(sources.into_iter().map(|s| self.push(s)).collect())
    }

    /// The declared type of input `name`, when known.
    pub(crate) fn input_type(&self, name: &str) -> Option<&ValueType> {
        self.args.get(name)?.first()?.ty.as_ref()
    }

    /// The declared shape of input `name`, when fully known.
    pub(crate) fn input_shape(&self, name: &str) -> Option<Vec<usize>> {
        self.input_type(name)?.as_tensor()?.fixed_shape()
    }

    /// The declared rank of input `name`, when known.
    pub(crate) fn input_rank(&self, name: &str) -> Option<usize> {
        Some(self.input_type(name)?.as_tensor()?.shape.as_ref()?.len())
    }

    /// The MIL constant bound to `name`, when it is known at load.
    pub(crate) fn constant(&self, name: &str) -> Option<&TensorValue> {
        match self.args.get(name).map(Vec::as_slice) {
            Some([b]) => b.constant.as_deref(),
            _ => None,
        }
    }

    /// The MIL constants of a variadic input, when all are known at load.
    pub(crate) fn constants(&self, name: &str) -> Option<Vec<&TensorValue>> {
        self.args
            .get(name)?
            .iter()
            .map(|b| b.constant.as_deref())
            .collect()
    }

    fn require_const(&self, name: &str) -> Result<&TensorValue> {
        if !self.has(name) {
            return Err(self.err(format!("missing input {name:?}")));
        }
        self.constant(name)
            .ok_or_else(|| self.err(format!("input {name:?} must be a constant")))
    }

    /// A constant integer list (a scalar reads as one element).
    pub(crate) fn ints(&self, name: &str) -> Result<Vec<i64>> {
        self.require_const(name)?
            .to_i64_vec()
            .map_err(|e| self.err(format!("input {name:?}: {e}")))
    }

    /// A constant integer list, or `None` when absent.
    pub(crate) fn opt_ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        if self.has(name) {
            self.ints(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A constant integer scalar.
    pub(crate) fn int(&self, name: &str) -> Result<i64> {
        match self.ints(name)?.as_slice() {
            [v] => Ok(*v),
            v => Err(self.err(format!("input {name:?} must be one integer, got {v:?}"))),
        }
    }

    /// A constant integer scalar, or `default` when absent.
    pub(crate) fn int_or(&self, name: &str, default: i64) -> Result<i64> {
        if self.has(name) {
            self.int(name)
        } else {
            Ok(default)
        }
    }

    /// A constant float list.
    pub(crate) fn floats(&self, name: &str) -> Result<Vec<f64>> {
        self.require_const(name)?
            .to_f64_vec()
            .map_err(|e| self.err(format!("input {name:?}: {e}")))
    }

    /// A constant float scalar.
    pub(crate) fn float(&self, name: &str) -> Result<f64> {
        match self.floats(name)?.as_slice() {
            [v] => Ok(*v),
            v => Err(self.err(format!(
                "input {name:?} must be one number, got {} values",
                v.len()
            ))),
        }
    }

    /// A constant float scalar, or `default` when absent.
    pub(crate) fn float_or(&self, name: &str, default: f64) -> Result<f64> {
        if self.has(name) {
            self.float(name)
        } else {
            Ok(default)
        }
    }

    /// A constant boolean, or `default` when absent.
    pub(crate) fn bool_or(&self, name: &str, default: bool) -> Result<bool> {
        if !self.has(name) {
            return Ok(default);
        }
        let v = self
            .require_const(name)?
            .to_bool_vec()
            .map_err(|e| self.err(format!("input {name:?}: {e}")))?;
        match v.as_slice() {
            [b] => Ok(*b),
            _ => Err(self.err(format!("input {name:?} must be one boolean"))),
        }
    }

    /// A constant string.
    pub(crate) fn string(&self, name: &str) -> Result<String> {
        self.require_const(name)?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| self.err(format!("input {name:?} must be a string")))
    }

    /// A constant string, or `default` when absent.
    pub(crate) fn string_or(&self, name: &str, default: &str) -> Result<String> {
        if self.has(name) {
            self.string(name)
        } else {
            Ok(default.to_string())
        }
    }

    /// A constant boolean list, or `None` when absent (masks of
    /// `slice_by_index` / `slice_update`).
    pub(crate) fn opt_bools(&self, name: &str) -> Result<Option<Vec<bool>>> {
        if !self.has(name) {
            return Ok(None);
        }
        self.require_const(name)?
            .to_bool_vec()
            .map(Some)
            .map_err(|e| self.err(format!("input {name:?}: {e}")))
    }

    /// The tensor bound to input `name` when it is a load-time constant, so a
    /// builder can prepare it once (transpose, cast) instead of on every call.
    /// The builder then keeps only its own prepared copy.
    pub(crate) fn const_tensor(&self, name: &str) -> Option<Tensor> {
        match self.args.get(name).map(Vec::as_slice) {
            Some([bound]) => match &bound.source {
                Source::Const(t) => Some(t.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Input `name` as an [`Operand`]: a constant is cast to `dtype` and
    /// passed through `prepare` once at load; a runtime input is handed out
    /// as is.
    pub(crate) fn operand(
        &mut self,
        name: &str,
        dtype: DType,
        prepare: impl FnOnce(Tensor) -> Result<Tensor>,
    ) -> Result<Operand> {
        match self.const_tensor(name) {
            Some(t) => {
                let t = prepare(t.to_dtype(dtype)?)
                    .map_err(|e| self.err(format!("input {name:?}: {}", e.report())))?;
                Ok(Operand::Ready(t))
            }
            None => Ok(Operand::Input(self.input(name)?)),
        }
    }

    /// Optional form of [`OpBuilder::operand`].
    pub(crate) fn opt_operand(
        &mut self,
        name: &str,
        dtype: DType,
        prepare: impl FnOnce(Tensor) -> Result<Tensor>,
    ) -> Result<Option<Operand>> {
        if self.has(name) {
            self.operand(name, dtype, prepare).map(Some)
        } else {
            Ok(None)
        }
    }

    /// An integer list known at load, or else a runtime input to read it from.
    pub(crate) fn ints_or_input(&mut self, name: &str) -> Result<IntsArg> {
        if self.constant(name).is_some() {
            Ok(IntsArg::Const(self.ints(name)?))
        } else {
            Ok(IntsArg::Runtime(self.input(name)?))
        }
    }

    /// Optional form of [`OpBuilder::ints_or_input`].
    pub(crate) fn opt_ints_or_input(&mut self, name: &str) -> Result<Option<IntsArg>> {
        if self.has(name) {
            self.ints_or_input(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Number of outputs the op declares.
    pub(crate) fn output_count(&self) -> usize {
        self.op.outputs.len()
    }

    /// Declared type of output `i`.
    pub(crate) fn output_type(&self, i: usize) -> Result<&ValueType> {
        self.op
            .outputs
            .get(i)
            .map(|o| &o.ty)
            .ok_or_else(|| self.err(format!("op declares no output {i}")))
    }

    /// Declared MIL dtype of output `i`.
    pub(crate) fn output_mil_dtype(&self, i: usize) -> Result<DataType> {
        self.output_type(i)?
            .as_tensor()
            .map(|t| t.dtype)
            .ok_or_else(|| self.err(format!("output {i} is not a tensor")))
    }

    /// The candle dtype output `i` is computed in.
    pub(crate) fn output_dtype(&self, i: usize) -> Result<DType> {
        let d = self.output_mil_dtype(i)?;
        self.compute_dtype(d)
    }

    /// The candle dtype values of MIL dtype `d` are computed in.
    pub(crate) fn compute_dtype(&self, d: DataType) -> Result<DType> {
        compute_dtype(d, self.precision)
            .ok_or_else(|| self.err(format!("dtype {d} cannot be computed")))
    }

    /// Builds nested block `index` of this op.
    pub(crate) fn block(&mut self, index: usize) -> Result<Arc<dyn BlockPlan>> {
        if index >= self.op.blocks.len() {
            return Err(self.err(format!("op has no block {index}")));
        }
        (self.build_block)(index)
    }
}

/// The run-time view of one op's inputs, states and nested blocks.
pub(crate) struct Args<'a> {
    pub(crate) sources: &'a [Source],
    pub(crate) env: &'a Env,
    pub(crate) states: &'a mut StateStore,
}

impl Args<'_> {
    /// The tensor of input `i`.
    pub(crate) fn tensor(&self, i: In) -> Result<&Tensor> {
        match self.sources.get(i.0) {
            Some(Source::Const(t)) => Ok(t),
            Some(Source::Slot(s)) => self.env.get(*s),
            Some(Source::State(name)) => Err(Error::msg(format!(
                "state {name:?} used where a tensor is expected"
            ))),
            None => Err(Error::msg(format!(
                "kernel asked for unknown input {}",
                i.0
            ))),
        }
    }

    /// The tensors of several inputs (cheap clones).
    pub(crate) fn tensors(&self, ins: &[In]) -> Result<Vec<Tensor>> {
        ins.iter().map(|&i| self.tensor(i).cloned()).collect()
    }

    /// An integer list from a load-time constant or a runtime tensor.
    pub(crate) fn ints(&self, arg: &IntsArg) -> Result<Vec<i64>> {
        match arg {
            IntsArg::Const(v) => Ok(v.clone()),
            IntsArg::Runtime(i) => {
                let t = self.tensor(*i)?;
                Ok(t.flatten_all()?.to_dtype(DType::I64)?.to_vec1::<i64>()?)
            }
        }
    }

    /// The name of the state bound to input `i`.
    pub(crate) fn state_name(&self, i: In) -> Result<&str> {
        match self.sources.get(i.0) {
            Some(Source::State(name)) => Ok(name),
            _ => Err(Error::msg("input is not a state")),
        }
    }

    /// The states of this call.
    pub(crate) fn states(&mut self) -> &mut StateStore {
        self.states
    }

    /// Runs a nested block with `inputs` bound to its block inputs, inside the
    /// current environment (so it sees the enclosing values).
    pub(crate) fn run_block(
        &mut self,
        plan: &dyn BlockPlan,
        inputs: Vec<Tensor>,
    ) -> Result<Vec<Tensor>> {
        plan.run_nested(self.env, inputs, self.states)
    }
}
