//! The portable backend: evaluates MIL programs with candle ops, so Core ML
//! models run wherever candle does (CPU, CUDA).

pub(crate) mod cpu;
mod dtype;
pub(crate) mod fuse;
pub(crate) mod fuse_conv;
pub(crate) mod fuse_gather;
pub(crate) mod fuse_gqa;
pub(crate) mod fuse_lut;
pub(crate) mod kernel;
pub(crate) mod ops;
pub(crate) mod plan;
mod profile;
pub(crate) mod rewrite;
pub(crate) mod state;
#[cfg(test)]
pub(crate) mod testutil;
pub(crate) mod values;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::Tensor;

use crate::description::{FunctionDescription, ModelDescription};
use crate::engine::dtype::io_dtype;
use crate::engine::{downcast_state, resolve_function, Engine, EngineState, NamedTensors};
use crate::error::{Error, Result};
use crate::format::{self, ModelBody, ModelFile};
use crate::mil::{DataType, Function, TensorType, ValueType};
use crate::options::{Backend, ModelOptions};
pub(crate) use plan::ConstCache;
use state::{PortableState, StateStore};

pub use crate::options::ComputePrecision;
pub use ops::supported_ops;

/// Loads the model at `path` for the portable backend.
pub(crate) fn load(path: &Path, options: &ModelOptions) -> Result<Box<dyn Engine>> {
    let mut file = format::open(path)?;
    file.map_weights()?;
    let file = Arc::new(file);
    let m = PortableModel::new(file, options.clone(), Arc::default())?;
    Ok(Box::new(m))
}

/// A function of a model prepared for the portable backend.
pub(crate) struct PortableModel {
    file: Arc<ModelFile>,
    /// Device tensors of the weights, shared with every `with_function` sibling.
    consts: Arc<ConstCache>,
    options: ModelOptions,
    function: FunctionDescription,
    plan: Arc<plan::Plan>,
    /// Declared types of the function's (non-state) inputs.
    inputs: Vec<(String, TensorType)>,
    /// Declared types of the states.
    states: Vec<(String, TensorType)>,
    /// Output names and declared dtypes, in order.
    outputs: Vec<(String, DataType)>,
}

impl PortableModel {
    /// Prepares the function `options.function` (or the default) of `file`
    /// on `options.device`, sharing device constants through `consts`.
    fn new(file: Arc<ModelFile>, options: ModelOptions, consts: Arc<ConstCache>) -> Result<Self> {
        // NeuralNetworks and pipelines run as the MIL program they translate to.
        let translated;
        let program = match &file.body {
            ModelBody::Program(p) => p,
            _ => {
                translated = crate::neuralnetwork::pipeline::program_of(&file)?;
                &translated
            }
        };
        let name = resolve_function(&file.description, options.function.as_deref())?;
        let f = program
            .function(&name)
            .ok_or_else(|| Error::UnknownFunction {
                name: name.clone(),
                available: program.functions.iter().map(|f| f.name.clone()).collect(),
            })?;
        let function =
            file.description
                .function(&name)
                .cloned()
                .ok_or_else(|| Error::UnknownFunction {
                    name: name.clone(),
                    available: file
                        .description
                        .functions
                        .iter()
                        .map(|f| f.name.clone())
                        .collect(),
                })?;
        let registry = ops::registry();
        let ctx = plan::BuildCtx {
            registry: &registry,
            device: &options.device,
            precision: options.precision,
            function: &name,
            consts: &consts,
        };
        let plan = plan::build_function(&ctx, f)?;
        let (inputs, states) = split_inputs(f);
        let outputs = output_dtypes(f)?;
        Ok(Self {
            file,
            consts,
            options,
            function,
            plan: Arc::new(plan),
            inputs,
            states,
            outputs,
        })
    }

    /// Runs the function on checked inputs with `states`.
    fn run(
        &self,
        inputs: &HashMap<String, Tensor>,
        states: &mut StateStore,
    ) -> Result<NamedTensors> {
        let mut bound = Vec::with_capacity(self.plan.inputs.len());
        for (name, _) in &self.plan.inputs {
            let t = inputs.get(name).ok_or_else(|| Error::MissingInput {
                function: self.function.name.clone(),
                input: name.clone(),
            })?;
            let ty = self
                .inputs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.dtype);
            let dtype = ty
                .and_then(|d| dtype::compute_dtype(d, self.options.precision))
                .unwrap_or(t.dtype());
            bound.push(t.to_device(&self.options.device)?.to_dtype(dtype)?);
        }
        let outs = self.plan.run(bound, states)?;
        self.outputs
            .iter()
            .zip(outs)
            .map(|((name, d), t)| {
                // An output read straight from a state would alias a buffer
                // the next call updates in place.
                let t = if self.states.is_empty() { t } else { t.copy()? };
                // Core ML hands rank-0 outputs back as shape [1].
                let t = if t.rank() == 0 { t.reshape(1)? } else { t };
                let t = match io_dtype(*d) {
                    Some(io) if io != t.dtype() => t.to_dtype(io)?,
                    _ => t,
                };
                Ok((name.clone(), t))
            })
            .collect()
    }
}

impl Engine for PortableModel {
    fn backend(&self) -> Backend {
        Backend::Portable
    }

    fn description(&self) -> &ModelDescription {
        &self.file.description
    }

    fn function(&self) -> &FunctionDescription {
        &self.function
    }

    fn file(&self) -> Option<&ModelFile> {
        Some(&self.file)
    }

    fn with_function(&self, name: &str) -> Result<Box<dyn Engine>> {
        let mut options = self.options.clone();
        options.function = Some(name.to_string());
        let m = PortableModel::new(self.file.clone(), options, self.consts.clone())?;
        Ok(Box::new(m))
    }

    fn predict(
        &self,
        inputs: &HashMap<String, Tensor>,
        state: Option<&mut dyn EngineState>,
    ) -> Result<NamedTensors> {
        match state {
            Some(s) if !self.states.is_empty() => {
                let s = downcast_state::<PortableState>(s, Backend::Portable)?;
                s.check_compatible(&self.states)?;
                self.run(inputs, &mut s.store)
            }
            _ if !self.states.is_empty() => Err(Error::State {
                name: self
                    .states
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                message: format!(
                    "function {:?} is stateful: predict with a state",
                    self.function.name
                ),
            }),
            // A stateless function ignores a state it is given (a State
            // serves every function of a model).
            _ => self.run(inputs, &mut StateStore::default()),
        }
    }

    fn make_state(&self) -> Result<Box<dyn EngineState>> {
        let store = StateStore::zeros(&self.states, &self.options.device, self.options.precision)?;
        Ok(Box::new(PortableState {
            store,
            types: self.states.iter().cloned().collect(),
        }))
    }
}

/// Named tensor types.
type Typed = Vec<(String, TensorType)>;

/// The function's tensor inputs and its states.
fn split_inputs(f: &Function) -> (Typed, Typed) {
    let mut inputs = Vec::new();
    let mut states = Vec::new();
    for i in &f.inputs {
        match &i.ty {
            ValueType::Tensor(t) => inputs.push((i.name.clone(), t.clone())),
            ValueType::State(_) => {
                if let Some(t) = i.ty.state_tensor() {
                    states.push((i.name.clone(), t.clone()));
                }
            }
            _ => {}
        }
    }
    (inputs, states)
}

/// Output names with their declared dtypes, found among the function's inputs
/// and op outputs. An output that is not a tensor is refused at load.
fn output_dtypes(f: &Function) -> Result<Vec<(String, DataType)>> {
    let mut types: HashMap<&str, &ValueType> =
        f.inputs.iter().map(|i| (i.name.as_str(), &i.ty)).collect();
    for op in &f.block.operations {
        for o in &op.outputs {
            types.insert(&o.name, &o.ty);
        }
    }
    f.block
        .outputs
        .iter()
        .map(|name| {
            let d = types
                .get(name.as_str())
                .and_then(|t| t.as_tensor())
                .map(|t| t.dtype)
                .ok_or_else(|| Error::Unsupported {
                    what: format!(
                        "output {name:?} of function {:?}, which is not a tensor",
                        f.name
                    ),
                    backend: "portable",
                })?;
            Ok((name.clone(), d))
        })
        .collect()
}
