//! The public facade: [`Model`], [`ModelBuilder`], [`State`], [`Outputs`].
//!
//! A `Model` holds one loaded function of one backend behind the
//! [`Engine`] interface; everything backend-specific (function resolution,
//! state checks, binding) lives in the backend.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::description::{FeatureDescription, FunctionDescription, ModelDescription};
use crate::engine::inputs::check_inputs;
use crate::engine::{Engine, EngineState};
use crate::error::{Error, Result};
use crate::format::ModelFile;
use crate::options::{Backend, ComputePrecision, ComputeUnits, ModelOptions};
use crate::{native, portable};

/// Builds a [`Model`] with options.
///
/// ```no_run
/// use candle_coreml::{Backend, Model};
/// let model = Model::builder()
///     .backend(Backend::Portable)
///     .function("infer")
///     .load("model.mlpackage")?;
/// # Ok::<(), candle_coreml::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ModelBuilder {
    options: ModelOptions,
}

impl ModelBuilder {
    /// Picks the backend.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.options.backend = backend;
        self
    }

    /// Picks the candle device of the portable backend.
    pub fn device(mut self, device: Device) -> Self {
        self.options.device = device;
        self
    }

    /// Picks a function of a multifunction model.
    pub fn function(mut self, name: impl Into<String>) -> Self {
        self.options.function = Some(name.into());
        self
    }

    /// Picks the compute units of the native backend.
    pub fn compute_units(mut self, units: ComputeUnits) -> Self {
        self.options.compute_units = units;
        self
    }

    /// Picks the float precision of the portable backend.
    pub fn precision(mut self, precision: ComputePrecision) -> Self {
        self.options.precision = precision;
        self
    }

    /// Sets where compiled models are cached (native backend).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.options.cache_dir = Some(dir.into());
        self
    }

    /// Loads the model at `path` (`.mlpackage`, `.mlmodel` or `.mlmodelc`).
    pub fn load(self, path: impl AsRef<Path>) -> Result<Model> {
        Model::load_with(path, self.options)
    }
}

/// A loaded Core ML model, ready to predict. `Model` is `Send + Sync`: one
/// model serves concurrent `predict` calls from several threads.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use candle_coreml::Model;
///
/// // A small MLP converted from torch by coremltools (shipped with the tests).
/// let model = Model::load("tests/fixtures/models/mlp_fp32.mlpackage")?;
/// let input = &model.inputs()[0];
/// assert_eq!((input.name.as_str(), input.ty.shape()), ("x", Some(vec![1, 16])));
///
/// let x = Tensor::ones((1, 16), DType::F32, &Device::Cpu)?;
/// let outputs = model.predict([("x", &x)])?;
/// for (name, value) in outputs.iter() {
///     println!("{name}: {:?} {:?}", value.dtype(), value.dims());
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Model {
    path: PathBuf,
    engine: Box<dyn Engine>,
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Model>();
    send_sync::<State>();
};

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.path)
            .field("function", &self.function_name())
            .field("backend", &self.backend())
            .finish()
    }
}

impl Model {
    /// Loads a model with default options (`Backend::Auto`, CPU, default function).
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        Self::load_with(path, ModelOptions::default())
    }

    /// A builder for loading with options.
    pub fn builder() -> ModelBuilder {
        ModelBuilder::default()
    }

    /// Loads a model with `options`.
    pub fn load_with(path: impl AsRef<Path>, options: ModelOptions) -> Result<Model> {
        let path = path.as_ref().to_path_buf();
        let engine = match options.backend {
            Backend::Native => native::load(&path, &options)?,
            Backend::Portable => portable::load(&path, &options)?,
            Backend::Auto if native::AVAILABLE => native::load(&path, &options)?,
            Backend::Auto => portable::load(&path, &options)?,
        };
        Ok(Model { path, engine })
    }

    /// The same model running another of its functions. On the portable
    /// backend the weights are shared with `self`, not read again.
    pub fn with_function(&self, name: &str) -> Result<Model> {
        Ok(Model {
            path: self.path.clone(),
            engine: self.engine.with_function(name)?,
        })
    }

    /// The whole model's description (every function).
    pub fn description(&self) -> &ModelDescription {
        self.engine.description()
    }

    /// The model as read from disk (portable backend only).
    pub fn file(&self) -> Option<&ModelFile> {
        self.engine.file()
    }

    /// The function this model runs.
    pub fn function_name(&self) -> &str {
        &self.engine.function().name
    }

    /// The description of the function this model runs.
    pub fn function(&self) -> &FunctionDescription {
        self.engine.function()
    }

    /// Inputs of the function this model runs.
    pub fn inputs(&self) -> &[FeatureDescription] {
        &self.function().inputs
    }

    /// Outputs of the function this model runs.
    pub fn outputs(&self) -> &[FeatureDescription] {
        &self.function().outputs
    }

    /// States of the function this model runs.
    pub fn states(&self) -> &[FeatureDescription] {
        &self.function().states
    }

    /// The backend actually in use (never `Auto`).
    pub fn backend(&self) -> Backend {
        self.engine.backend()
    }

    /// Predicts from named inputs. Tensors of another dtype than the model's
    /// are converted where that is lossless or usual (f32 <-> f16, f64 -> f32,
    /// i64 -> i32 with an overflow check). A stateful function runs on a
    /// fresh state, dropped afterwards.
    ///
    /// ```no_run
    /// # use candle_coreml::Model;
    /// # use candle_core::{Device, Tensor};
    /// let model = Model::load("model.mlpackage")?;
    /// let x = Tensor::zeros((1, 10), candle_core::DType::F32, &Device::Cpu)?;
    /// let out = model.predict([("x", x)])?;
    /// println!("{}", out["var_3"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn predict<I, K, V>(&self, inputs: I) -> Result<Outputs>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Borrow<Tensor>,
    {
        if !self.states().is_empty() {
            let mut state = self.make_state()?;
            return self.predict_with_state(inputs, &mut state);
        }
        let inputs = check_inputs(self.function(), inputs)?;
        self.engine.predict(&inputs, None).map(Outputs::new)
    }

    /// Predicts for a model with one input and one output.
    pub fn predict_one(&self, x: &Tensor) -> Result<Tensor> {
        let (input, output) = match (self.inputs(), self.outputs()) {
            ([i], [o]) => (i.name.clone(), o.name.clone()),
            (i, o) => {
                return Err(Error::NotSingleInputOutput {
                    function: self.function_name().to_string(),
                    inputs: i.len(),
                    outputs: o.len(),
                })
            }
        };
        let mut out = self.predict([(input, x)])?;
        out.remove(&output).ok_or_else(|| Error::MissingOutput {
            function: self.function_name().to_string(),
            output,
        })
    }

    /// A fresh state (zero-filled buffers) for the model's states.
    pub fn make_state(&self) -> Result<State> {
        Ok(State {
            inner: self.engine.make_state()?,
        })
    }

    /// Predicts, reading and updating `state` in place. A state works with
    /// every function of the model that made it, and with any other model
    /// whose states have the same names, shapes and dtypes.
    pub fn predict_with_state<I, K, V>(&self, inputs: I, state: &mut State) -> Result<Outputs>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Borrow<Tensor>,
    {
        let inputs = check_inputs(self.function(), inputs)?;
        self.engine
            .predict(&inputs, Some(state.inner.as_mut()))
            .map(Outputs::new)
    }
}

/// Named outputs of a prediction, in the model's output order.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    entries: Vec<(String, Tensor)>,
}

impl Outputs {
    fn new(entries: Vec<(String, Tensor)>) -> Self {
        Self { entries }
    }

    /// The output called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// Takes the output called `name` out.
    pub fn remove(&mut self, name: &str) -> Option<Tensor> {
        let i = self.entries.iter().position(|(n, _)| n == name)?;
        Some(self.entries.remove(i).1)
    }

    /// Output names and tensors, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.entries.iter().map(|(n, t)| (n.as_str(), t))
    }

    /// Number of outputs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The outputs as a map.
    pub fn into_map(self) -> BTreeMap<String, Tensor> {
        self.entries.into_iter().collect()
    }
}

impl std::ops::Index<&str> for Outputs {
    type Output = Tensor;

    /// The output called `name`; panics when there is none. Every output a
    /// model declares is present after a prediction (an output that cannot
    /// be a tensor fails the load), so this only panics for a name the model
    /// does not declare.
    fn index(&self, name: &str) -> &Tensor {
        match self.get(name) {
            Some(t) => t,
            None => panic!(
                "no output {name:?}; outputs are {:?}",
                self.entries.iter().map(|(n, _)| n).collect::<Vec<_>>()
            ),
        }
    }
}

impl IntoIterator for Outputs {
    type Item = (String, Tensor);
    type IntoIter = std::vec::IntoIter<(String, Tensor)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

/// The states (e.g. a KV cache) of a stateful model, kept between calls.
/// Make one with [`Model::make_state`]; pass it to [`Model::predict_with_state`].
/// One `State` serves every function of the model that made it, and any other
/// model whose states have the same names, shapes and dtypes.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use candle_coreml::Model;
///
/// // A tiny decoder with a KV cache (`k_cache`, `v_cache`) and two functions.
/// let infer = Model::load("tests/fixtures/torch/kv_multifunction.mlpackage")?;
/// let mut state = infer.make_state()?; // zero-filled
/// let ctx = state.read("k_cache")?.dim(2)?;
///
/// // Decode the token 7 at position 0: the call writes its keys and values
/// // into the state, where the next call finds them.
/// let cpu = Device::Cpu;
/// let mask: Vec<f32> = (0..ctx).map(|c| if c == 0 { 0.0 } else { f32::NEG_INFINITY }).collect();
/// let out = infer.predict_with_state(
///     [
///         ("input_ids", Tensor::new(&[[7i32]], &cpu)?),
///         ("position_ids", Tensor::new(&[0i32], &cpu)?),
///         ("causal_mask", Tensor::from_vec(mask, (1, 1, 1, ctx), &cpu)?),
///         ("current_pos", Tensor::new(&[0i32], &cpu)?),
///     ],
///     &mut state,
/// )?;
/// println!("logits {:?}", out["logits"].dims());
///
/// let saved = state.read("k_cache")?; // a copy, in the state's dtype (fp16 here)
/// let filled = |t: &Tensor| -> candle_core::Result<f32> {
///     t.to_dtype(DType::F32)?.abs()?.sum_all()?.to_scalar::<f32>()
/// };
/// assert!(filled(&saved)? > 0.0);
/// state.reset()?; // back to zeros
/// assert_eq!(filled(&state.read("k_cache")?)?, 0.0);
/// state.write("k_cache", &saved)?; // and back again
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct State {
    inner: Box<dyn EngineState>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("backend", &self.inner.backend())
            .field("names", &self.names())
            .finish()
    }
}

impl State {
    /// Names of the states held.
    pub fn names(&self) -> Vec<String> {
        self.inner.names()
    }

    /// A copy of state `name`, in the model's declared dtype.
    pub fn read(&self, name: &str) -> Result<Tensor> {
        self.inner.read(name)
    }

    /// Overwrites state `name` with `value` (same shape; dtype converted).
    pub fn write(&mut self, name: &str, value: &Tensor) -> Result<()> {
        self.inner.write(name, value)
    }

    /// Zero-fills every state.
    pub fn reset(&mut self) -> Result<()> {
        self.inner.reset()
    }
}
