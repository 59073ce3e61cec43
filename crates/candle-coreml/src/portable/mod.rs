//! The portable backend: evaluates MIL programs with candle ops, so Core ML
//! models run wherever candle does (CPU, CUDA).

pub(crate) mod fuse;
pub(crate) mod kernel;
pub(crate) mod ops;
pub(crate) mod plan;
mod profile;
pub(crate) use plan::ConstCache;
#[cfg(test)]
pub(crate) mod testutil;
pub(crate) mod values;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};
use crate::format::{ModelBody, ModelFile};
use crate::mil::{DataType, Function, TensorType, ValueType};

pub use ops::supported_ops;

/// The precision the portable backend computes fp16 programs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComputePrecision {
    /// Every float value is computed in f32 (fp64 stays f64). The default:
    /// candle's CPU kernels are fastest and most complete in f32, and it keeps
    /// fp16 programs closer to their fp32 source than Core ML itself.
    #[default]
    Float32,
    /// Floats are computed in the program's own types (fp16 stays f16): half
    /// the memory for weights, and the natural choice on CUDA.
    Program,
}

/// State buffers of one [`crate::State`], in the backend's compute dtypes.
#[derive(Debug, Default, Clone)]
pub(crate) struct StateStore {
    pub(crate) buffers: BTreeMap<String, Tensor>,
}

impl StateStore {
    /// The buffer of state `name`.
    pub(crate) fn get(&self, name: &str) -> Result<&Tensor> {
        self.buffers.get(name).ok_or_else(|| Error::State {
            name: name.to_string(),
            message: "not in this State (was it made by a model with other states?)".into(),
        })
    }

    /// Replaces the buffer of state `name`, keeping its shape.
    pub(crate) fn set(&mut self, name: &str, t: Tensor) -> Result<()> {
        let old = self.get(name)?;
        if old.dims() != t.dims() {
            return Err(Error::State {
                name: name.to_string(),
                message: format!(
                    "write of shape {:?} into a state of shape {:?}",
                    t.dims(),
                    old.dims()
                ),
            });
        }
        // A private copy: the fused KV-cache write updates buffers in place,
        // which must never reach a tensor the caller or another value holds.
        let t = t.to_dtype(old.dtype())?.copy()?;
        self.buffers.insert(name.to_string(), t);
        Ok(())
    }
}

/// A function of a model prepared for the portable backend.
pub(crate) struct PortableModel {
    plan: Arc<plan::Plan>,
    device: Device,
    precision: ComputePrecision,
    /// Declared types of the function's (non-state) inputs.
    inputs: Vec<(String, TensorType)>,
    /// Declared types of the states.
    states: Vec<(String, TensorType)>,
    /// Output names and declared dtypes, in order.
    outputs: Vec<(String, DataType)>,
}

impl PortableModel {
    /// Prepares `function` of `file` on `device`.
    pub(crate) fn load(
        file: &ModelFile,
        function: &str,
        device: &Device,
        precision: ComputePrecision,
        consts: &plan::ConstCache,
    ) -> Result<Self> {
        // NeuralNetworks and pipelines run as the MIL program they translate to.
        let translated;
        let program = match &file.body {
            ModelBody::Program(p) => p,
            _ => {
                translated = crate::neuralnetwork::pipeline::program_of(file)?;
                &translated
            }
        };
        let f = program
            .function(function)
            .ok_or_else(|| Error::UnknownFunction {
                name: function.to_string(),
                available: program.functions.iter().map(|f| f.name.clone()).collect(),
            })?;
        let registry = ops::Registry::new();
        let ctx = plan::BuildCtx {
            registry: &registry,
            device,
            precision,
            function,
            consts,
        };
        let plan = plan::build_function(&ctx, f)?;
        let (inputs, states) = split_inputs(f);
        let outputs = output_dtypes(f)?;
        Ok(Self {
            plan: Arc::new(plan),
            device: device.clone(),
            precision,
            inputs,
            states,
            outputs,
        })
    }

    /// The declared types of the states.
    pub(crate) fn state_types(&self) -> &[(String, TensorType)] {
        &self.states
    }

    /// Zero-initialised state buffers.
    pub(crate) fn make_state(&self) -> Result<StateStore> {
        let mut buffers = BTreeMap::new();
        for (name, ty) in &self.states {
            let shape = ty.fixed_shape().ok_or_else(|| Error::State {
                name: name.clone(),
                message: format!("state type {ty} has no fixed shape"),
            })?;
            let dtype =
                kernel::compute_dtype(ty.dtype, self.precision).ok_or_else(|| Error::State {
                    name: name.clone(),
                    message: format!("unsupported state dtype {}", ty.dtype),
                })?;
            buffers.insert(name.clone(), Tensor::zeros(shape, dtype, &self.device)?);
        }
        Ok(StateStore { buffers })
    }

    /// Runs the function. `inputs` are keyed by name and already checked
    /// against the description.
    pub(crate) fn predict(
        &self,
        inputs: &HashMap<String, Tensor>,
        states: &mut StateStore,
    ) -> Result<Vec<(String, Tensor)>> {
        for (name, _) in &self.states {
            states.get(name)?;
        }
        let mut bound = Vec::with_capacity(self.plan.inputs.len());
        for (name, _) in &self.plan.inputs {
            let t = inputs.get(name).ok_or_else(|| Error::MissingInput {
                function: String::new(),
                input: name.clone(),
            })?;
            let ty = self
                .inputs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.dtype);
            let dtype = ty
                .and_then(|d| kernel::compute_dtype(d, self.precision))
                .unwrap_or(t.dtype());
            bound.push(t.to_device(&self.device)?.to_dtype(dtype)?);
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
                let t = match values::io_dtype(*d) {
                    Some(io) if io != t.dtype() => t.to_dtype(io)?,
                    _ => t,
                };
                Ok((name.clone(), t))
            })
            .collect()
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
/// and op outputs.
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
                .ok_or_else(|| {
                    Error::msg(format!(
                        "function {:?}: output {name:?} is not a tensor",
                        f.name
                    ))
                })?;
            Ok((name.clone(), d))
        })
        .collect()
}
