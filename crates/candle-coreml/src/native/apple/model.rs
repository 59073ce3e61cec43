//! [`NativeModel`]: one function of a model loaded by Core ML, and its
//! predictions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{Device, Tensor};
use objc2::rc::{autoreleasepool, Retained};
use objc2::runtime::ProtocolObject;
use objc2_core_ml::{MLFeatureProvider, MLModel, MLPredictionOptions, MLState};
use objc2_foundation::NSError;

use super::state::{self, NativeState};
use super::support::native_error;
use super::timing::Timing;
use super::{description, io, load};
use crate::description::{FunctionDescription, ModelDescription};
use crate::engine::{downcast_state, Engine, EngineState, NamedTensors};
use crate::error::{Error, Result};
use crate::options::{Backend, ModelOptions};

/// An `MLModel` that may be shared between threads.
struct SharedModel(Retained<MLModel>);

// SAFETY: Apple documents MLModel's prediction methods as thread-safe (one
// model may serve concurrent predictions; Swift declares MLModel Sendable).
// Through this wrapper we only call prediction, `modelDescription` and
// `newState`, all read-only with respect to the model; the configuration is
// set before loading and never changed afterwards.
unsafe impl Send for SharedModel {}
// SAFETY: as for Send: only thread-safe, non-mutating methods are called
// through a shared reference.
unsafe impl Sync for SharedModel {}

/// A model loaded by Apple's Core ML runtime.
pub(crate) struct NativeModel {
    model: SharedModel,
    /// Where the model was loaded from, and how (for `with_function`).
    path: PathBuf,
    options: ModelOptions,
    description: ModelDescription,
    /// The function this model runs.
    function: FunctionDescription,
    /// Inputs of that function as Core ML declares them.
    inputs: Vec<io::InputSpec>,
    /// Outputs, in description order.
    outputs: Vec<io::OutputSpec>,
    /// States (empty for stateless models).
    states: Vec<state::StateSpec>,
    /// Device outputs are moved to (CPU or Metal).
    device: Device,
    /// Whether Core ML writes fixed-shape outputs straight into our buffers
    /// (`MLPredictionOptions.outputBackings`); turned off for good the first
    /// time Core ML refuses them.
    output_backings: AtomicBool,
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<NativeModel>();
    send_sync::<NativeState>();
};

impl NativeModel {
    /// Loads (compiling and caching when needed) the model at `path`.
    pub(crate) fn load(path: &Path, options: &ModelOptions) -> Result<Self> {
        if options.device.is_cuda() {
            return Err(Error::BackendUnavailable {
                backend: "native",
                reason: "Core ML cannot return CUDA tensors; use Device::Cpu or Device::Metal"
                    .into(),
            });
        }
        let loaded = load::load(path, options)?;
        let description = description::describe(
            &loaded.model,
            &loaded.function,
            path,
            loaded.file_description,
        )?;
        let f = description
            .function(&loaded.function)
            .cloned()
            .ok_or_else(|| Error::UnknownFunction {
                name: loaded.function.clone(),
                available: description
                    .functions
                    .iter()
                    .map(|f| f.name.clone())
                    .collect(),
            })?;
        let inputs = f.inputs.iter().map(io::InputSpec::new).collect();
        let outputs = f
            .outputs
            .iter()
            .map(|o| io::OutputSpec::new(o, &f.name))
            .collect::<Result<Vec<_>>>()?;
        let states = f
            .states
            .iter()
            .map(state::StateSpec::new)
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            model: SharedModel(loaded.model),
            path: path.to_path_buf(),
            options: options.clone(),
            description,
            function: f,
            inputs,
            outputs,
            states,
            device: options.device.clone(),
            output_backings: AtomicBool::new(true),
        })
    }

    /// Runs one prediction. A stateful model needs `state`.
    fn run(
        &self,
        inputs: &HashMap<String, Tensor>,
        state: Option<&mut NativeState>,
    ) -> Result<NamedTensors> {
        if let Some(s) = &state {
            s.check_compatible(&self.states)?;
        } else if !self.states.is_empty() {
            return Err(Error::State {
                name: self
                    .states
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                message: format!(
                    "function {:?} is stateful: predict with a state",
                    self.function.name
                ),
            });
        }
        // A stateless function ignores a state it is given (a State serves
        // every function of a model).
        let state = state
            .filter(|_| !self.states.is_empty())
            .and_then(|s| s.ml_state());
        let use_backings = self.output_backings.load(Ordering::Relaxed);
        let outputs = match self.predict_once(inputs, state, use_backings, None) {
            Err(e @ Error::Native { .. }) if use_backings => {
                // Core ML refused the prediction with our output buffers:
                // retry without them and, if that works, stop offering them.
                // This assumes Core ML rejects unusable backings before it
                // runs the model (a state is then not advanced twice); a
                // failure inside the run is merely repeated, once per call,
                // until the plain path has worked once.
                let retry = self.predict_once(inputs, state, false, None);
                if retry.is_ok() {
                    self.output_backings.store(false, Ordering::Relaxed);
                }
                retry.map_err(|_| e)?
            }
            other => other?,
        };
        if matches!(self.device, Device::Cpu) {
            return Ok(outputs);
        }
        outputs
            .into_iter()
            .map(|(n, t)| Ok((n, t.to_device(&self.device)?)))
            .collect()
    }

    /// One prediction inside an autorelease pool, so that the objects Core ML
    /// autoreleases (feature values, arrays over our memory) are freed before
    /// we return. `timing`, when given, receives the time of each phase.
    pub(super) fn predict_once(
        &self,
        inputs: &HashMap<String, Tensor>,
        state: Option<&MLState>,
        use_backings: bool,
        timing: Option<&mut Timing>,
    ) -> Result<Vec<(String, Tensor)>> {
        let start = Instant::now();
        let prepared = io::prepare_inputs(&self.inputs, inputs, &self.function.name)?;
        autoreleasepool(|_| {
            let bound = io::bind_inputs(&prepared)?;
            let mut backings = if use_backings {
                io::OutputBackings::new(&self.outputs)?
            } else {
                io::OutputBackings::none()
            };
            let options = backings.options();
            let before_call = Instant::now();
            let result = self.call_core_ml(&bound.provider, state, options.as_deref());
            let after_call = Instant::now();
            let provider = result.map_err(|e| native_error("prediction failed", &e))?;
            let outputs = io::read_outputs(&self.outputs, &provider, &mut backings);
            // Core ML is done with the input memory: release what we hold
            // over it before the storage guards go.
            drop(provider);
            drop(options);
            drop(bound);
            if let Some(t) = timing {
                t.add(
                    before_call - start,
                    after_call - before_call,
                    after_call.elapsed(),
                );
            }
            outputs
        })
    }

    fn call_core_ml(
        &self,
        provider: &ProtocolObject<dyn MLFeatureProvider>,
        state: Option<&MLState>,
        options: Option<&MLPredictionOptions>,
    ) -> Result<Retained<ProtocolObject<dyn MLFeatureProvider>>, Retained<NSError>> {
        let model = &self.model.0;
        match (state, options) {
            // SAFETY: `provider` holds a feature value for every input Core ML
            // declares (checked by `prepare_inputs`), each backed by memory that
            // stays valid and unmodified until this call returns (storage
            // guards in `bound`); `options` only holds output backings of the
            // shape and dtype Core ML declares, over live buffers; the state
            // was made by a model with the same states (`check_compatible`).
            (Some(s), Some(o)) => unsafe {
                model.predictionFromFeatures_usingState_options_error(provider, s, o)
            },
            // SAFETY: as above.
            (Some(s), None) => unsafe {
                model.predictionFromFeatures_usingState_error(provider, s)
            },
            // SAFETY: as above.
            (None, Some(o)) => unsafe { model.predictionFromFeatures_options_error(provider, o) },
            // SAFETY: as above.
            (None, None) => unsafe { model.predictionFromFeatures_error(provider) },
        }
    }

    /// A fresh state (zero-filled buffers) for the model's states.
    pub(super) fn new_state(&self) -> Result<NativeState> {
        NativeState::new(&self.model.0, &self.states, &self.function.name)
    }
}

impl Engine for NativeModel {
    fn backend(&self) -> Backend {
        Backend::Native
    }

    fn description(&self) -> &ModelDescription {
        &self.description
    }

    fn function(&self) -> &FunctionDescription {
        &self.function
    }

    fn with_function(&self, name: &str) -> Result<Box<dyn Engine>> {
        let mut options = self.options.clone();
        options.function = Some(name.to_string());
        Ok(Box::new(NativeModel::load(&self.path, &options)?))
    }

    fn predict(
        &self,
        inputs: &HashMap<String, Tensor>,
        state: Option<&mut dyn EngineState>,
    ) -> Result<NamedTensors> {
        let state = match state {
            Some(s) => Some(downcast_state::<NativeState>(s, Backend::Native)?),
            None => None,
        };
        self.run(inputs, state)
    }

    fn make_state(&self) -> Result<Box<dyn EngineState>> {
        Ok(Box::new(self.new_state()?))
    }
}
