//! The public API: [`Model`], [`ModelBuilder`], [`State`], [`Outputs`].

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use crate::description::{FeatureDescription, FeatureType, FunctionDescription, ModelDescription};
use crate::error::{Error, Result};
use crate::format::{self, ModelFile};
use crate::mil::{DataType, TensorType};
use crate::native;
use crate::portable::{values::io_dtype, ComputePrecision, ConstCache, PortableModel, StateStore};

/// Which runtime executes a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Native Core ML on Apple platforms, portable elsewhere.
    #[default]
    Auto,
    /// Apple's Core ML runtime (Apple platforms only).
    Native,
    /// Our MIL evaluator on candle (every platform).
    Portable,
}

impl Backend {
    /// Lower-case name (`auto`, `native`, `portable`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Native => "native",
            Backend::Portable => "portable",
        }
    }
}

/// Hardware Core ML may use (native backend only), as in `MLComputeUnits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComputeUnits {
    /// CPU only.
    CpuOnly,
    /// CPU and GPU.
    CpuAndGpu,
    /// CPU and Neural Engine.
    CpuAndNeuralEngine,
    /// Everything available.
    #[default]
    All,
}

/// Options for loading a [`Model`]; see [`ModelBuilder`].
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// Backend choice.
    pub backend: Backend,
    /// Device for the portable backend.
    pub device: Device,
    /// Function to run; the model's default when `None`.
    pub function: Option<String>,
    /// Compute units for the native backend.
    pub compute_units: ComputeUnits,
    /// Float precision of the portable backend.
    pub precision: ComputePrecision,
    /// Where the native backend caches compiled models (default: the system temp dir).
    pub cache_dir: Option<PathBuf>,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            backend: Backend::Auto,
            device: Device::Cpu,
            function: None,
            compute_units: ComputeUnits::All,
            precision: ComputePrecision::default(),
            cache_dir: None,
        }
    }
}

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

enum Engine {
    Portable(PortableModel),
    Native(native::NativeModel),
}

/// A loaded Core ML model, ready to predict. `Model` is `Send + Sync`: one
/// model serves concurrent `predict` calls from several threads.
pub struct Model {
    path: PathBuf,
    file: Option<Arc<ModelFile>>,
    /// Device tensors of the weights, shared with every `with_function` sibling.
    consts: Arc<ConstCache>,
    description: ModelDescription,
    function: String,
    options: ModelOptions,
    engine: Engine,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.path)
            .field("function", &self.function)
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
        let use_native = match options.backend {
            Backend::Native => true,
            Backend::Portable => false,
            Backend::Auto => native::AVAILABLE,
        };
        if use_native {
            let m = native::NativeModel::load(&path, &options)?;
            let description = m.description().clone();
            let function = options
                .function
                .clone()
                .unwrap_or_else(|| description.default_function.clone());
            return Ok(Model {
                path,
                file: None,
                consts: Arc::default(),
                description,
                function,
                options,
                engine: Engine::Native(m),
            });
        }
        let file = Arc::new(format::open(&path)?);
        Self::portable(path, file, options, Arc::default())
    }

    fn portable(
        path: PathBuf,
        file: Arc<ModelFile>,
        options: ModelOptions,
        consts: Arc<ConstCache>,
    ) -> Result<Model> {
        let description = file.description.clone();
        let function = options
            .function
            .clone()
            .unwrap_or_else(|| description.default_function.clone());
        if description.function(&function).is_none() {
            return Err(Error::UnknownFunction {
                name: function,
                available: description
                    .functions
                    .iter()
                    .map(|f| f.name.clone())
                    .collect(),
            });
        }
        let m = PortableModel::load(
            &file,
            &function,
            &options.device,
            options.precision,
            &consts,
        )?;
        Ok(Model {
            path,
            file: Some(file),
            consts,
            description,
            function,
            options,
            engine: Engine::Portable(m),
        })
    }

    /// The same model running another of its functions. On the portable
    /// backend the weights are shared with `self`, not read again.
    pub fn with_function(&self, name: &str) -> Result<Model> {
        let mut options = self.options.clone();
        options.function = Some(name.to_string());
        match &self.file {
            Some(file) => Self::portable(
                self.path.clone(),
                file.clone(),
                options,
                self.consts.clone(),
            ),
            None => Self::load_with(&self.path, options),
        }
    }

    /// The whole model's description (every function).
    pub fn description(&self) -> &ModelDescription {
        &self.description
    }

    /// The model as read from disk (portable backend only).
    pub fn file(&self) -> Option<&ModelFile> {
        self.file.as_deref()
    }

    /// The function this model runs.
    pub fn function_name(&self) -> &str {
        &self.function
    }

    /// The description of the function this model runs.
    pub fn function(&self) -> &FunctionDescription {
        self.description
            .function(&self.function)
            .or_else(|| self.description.functions.first())
            .expect("a model has at least one function")
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
        match self.engine {
            Engine::Portable(_) => Backend::Portable,
            Engine::Native(_) => Backend::Native,
        }
    }

    /// Predicts from named inputs. Tensors of another dtype than the model's
    /// are converted where that is lossless or usual (f32 <-> f16, f64 -> f32,
    /// i64 -> i32 with an overflow check).
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
        let inputs = self.check_inputs(inputs)?;
        match &self.engine {
            Engine::Portable(m) => m
                .predict(&inputs, &mut StateStore::default())
                .map(Outputs::new),
            Engine::Native(m) => m.predict(&inputs, None).map(Outputs::new),
        }
    }

    /// Predicts for a model with one input and one output.
    pub fn predict_one(&self, x: &Tensor) -> Result<Tensor> {
        let (input, output) = match (self.inputs(), self.outputs()) {
            ([i], [o]) => (i.name.clone(), o.name.clone()),
            (i, o) => {
                return Err(Error::msg(format!(
                    "predict_one needs one input and one output; function {:?} has {} and {}",
                    self.function,
                    i.len(),
                    o.len()
                )))
            }
        };
        let mut out = self.predict([(input, x)])?;
        out.remove(&output)
            .ok_or_else(|| Error::msg(format!("output {output:?} missing")))
    }

    /// A fresh state (zero-filled buffers) for the model's states.
    pub fn make_state(&self) -> Result<State> {
        match &self.engine {
            Engine::Portable(m) => Ok(State {
                inner: StateInner::Portable {
                    store: m.make_state()?,
                    types: m.state_types().iter().cloned().collect(),
                },
            }),
            Engine::Native(m) => Ok(State {
                inner: StateInner::Native(m.make_state()?),
            }),
        }
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
        let inputs = self.check_inputs(inputs)?;
        match (&self.engine, &mut state.inner) {
            (Engine::Portable(m), StateInner::Portable { store, types }) => {
                for (name, ty) in m.state_types() {
                    match types.get(name) {
                        Some(t) if t == ty => {}
                        Some(t) => {
                            return Err(Error::State {
                                name: name.clone(),
                                message: format!("this model declares {ty}, the State holds {t}"),
                            })
                        }
                        None => {
                            return Err(Error::State {
                                name: name.clone(),
                                message: format!(
                                    "this model declares {ty}; the State has no such state"
                                ),
                            })
                        }
                    }
                }
                m.predict(&inputs, store).map(Outputs::new)
            }
            (Engine::Native(m), StateInner::Native(s)) => {
                m.predict(&inputs, Some(s)).map(Outputs::new)
            }
            _ => Err(Error::msg(
                "a State made by one backend cannot be used with the other",
            )),
        }
    }

    fn check_inputs<I, K, V>(&self, inputs: I) -> Result<HashMap<String, Tensor>>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Borrow<Tensor>,
    {
        let f = self.function();
        let mut out = HashMap::new();
        for (k, v) in inputs {
            let name = k.as_ref();
            let feature =
                f.inputs
                    .iter()
                    .find(|i| i.name == name)
                    .ok_or_else(|| Error::UnexpectedInput {
                        function: f.name.clone(),
                        input: name.to_string(),
                        expected: f.inputs.iter().map(|i| i.name.clone()).collect(),
                    })?;
            out.insert(name.to_string(), convert_input(feature, v.borrow())?);
        }
        for i in &f.inputs {
            if !i.optional && !out.contains_key(&i.name) {
                return Err(Error::MissingInput {
                    function: f.name.clone(),
                    input: i.name.clone(),
                });
            }
        }
        Ok(out)
    }
}

/// Checks an input tensor's shape against its feature and converts its dtype.
fn convert_input(feature: &FeatureDescription, t: &Tensor) -> Result<Tensor> {
    let name = &feature.name;
    match &feature.ty {
        FeatureType::MultiArray(a) if !a.accepts(t.dims()) => {
            let expected = match &a.flexibility {
                Some(f) => format!(
                    "{:?} or within {}",
                    a.shape,
                    serde_json::to_string(f).unwrap_or_default()
                ),
                None => format!("{:?}", a.shape),
            };
            return Err(Error::ShapeMismatch {
                input: name.clone(),
                expected,
                got: t.dims().to_vec(),
            });
        }
        FeatureType::Image(_) => {
            if let Some(shape) = feature.ty.shape() {
                if t.rank() != shape.len() {
                    return Err(Error::ShapeMismatch {
                        input: name.clone(),
                        expected: format!("{shape:?} (image as N, C, H, W)"),
                        got: t.dims().to_vec(),
                    });
                }
            }
        }
        _ => {}
    }
    let Some(want) = feature.ty.dtype().and_then(io_dtype) else {
        return Ok(t.clone());
    };
    let want = match &feature.ty {
        // Images are accepted in any float dtype or u8, as pixel values.
        FeatureType::Image(_) if t.dtype().is_float() => t.dtype(),
        _ => want,
    };
    convert_dtype(name, t, want)
}

/// Converts `t` to `want` where that is lossless or usual.
pub(crate) fn convert_dtype(input: &str, t: &Tensor, want: DType) -> Result<Tensor> {
    let got = t.dtype();
    if got == want {
        return Ok(t.clone());
    }
    let mismatch = || Error::DtypeMismatch {
        input: input.to_string(),
        expected: format!("{want:?}").to_lowercase(),
        got: format!("{got:?}").to_lowercase(),
    };
    let ok = match (got, want) {
        (a, b) if a.is_float() && b.is_float() => true,
        (DType::I64, DType::I32) | (DType::I64, DType::I16) | (DType::I32, DType::I16) => {
            let v = t.flatten_all()?.to_dtype(DType::I64)?;
            let (lo, hi) = if want == DType::I32 {
                (i32::MIN as i64, i32::MAX as i64)
            } else {
                (i16::MIN as i64, i16::MAX as i64)
            };
            if v.elem_count() > 0 {
                let min = v.min(0)?.to_scalar::<i64>()?;
                let max = v.max(0)?.to_scalar::<i64>()?;
                if min < lo || max > hi {
                    return Err(Error::DtypeMismatch {
                        input: input.to_string(),
                        expected: format!("{want:?}").to_lowercase(),
                        got: format!("i64 with values {min}..={max} that do not fit"),
                    });
                }
            }
            true
        }
        (a, b) if a.is_int() && b.is_int() => {
            // Widening only: anything to i64, and to i32 from narrower types.
            b == DType::I64 || (b == DType::I32 && a != DType::U32)
        }
        _ => false,
    };
    if ok {
        Ok(t.to_dtype(want)?)
    } else {
        Err(mismatch())
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

enum StateInner {
    Portable {
        store: StateStore,
        types: BTreeMap<String, TensorType>,
    },
    Native(native::NativeState),
}

/// The states (e.g. a KV cache) of a stateful model, kept between calls.
/// Make one with [`Model::make_state`]; pass it to [`Model::predict_with_state`].
pub struct State {
    inner: StateInner,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("names", &self.names())
            .finish()
    }
}

impl State {
    /// Names of the states held.
    pub fn names(&self) -> Vec<String> {
        match &self.inner {
            StateInner::Portable { types, .. } => types.keys().cloned().collect(),
            StateInner::Native(s) => s.names(),
        }
    }

    /// A copy of state `name`, in the model's declared dtype.
    pub fn read(&self, name: &str) -> Result<Tensor> {
        match &self.inner {
            StateInner::Portable { store, types } => {
                let t = store.get(name)?;
                let d = types.get(name).map(|t| t.dtype).unwrap_or(DataType::Fp32);
                let io = io_dtype(d).unwrap_or(t.dtype());
                Ok(t.to_dtype(io)?.copy()?)
            }
            StateInner::Native(s) => s.read(name),
        }
    }

    /// Overwrites state `name` with `value` (same shape; dtype converted).
    pub fn write(&mut self, name: &str, value: &Tensor) -> Result<()> {
        match &mut self.inner {
            StateInner::Portable { store, .. } => {
                let old = store.get(name)?;
                let v = value.to_device(old.device())?;
                store.set(name, v)
            }
            StateInner::Native(s) => s.write(name, value),
        }
    }

    /// Zero-fills every state.
    pub fn reset(&mut self) -> Result<()> {
        match &mut self.inner {
            StateInner::Portable { store, .. } => {
                for t in store.buffers.values_mut() {
                    *t = t.zeros_like()?;
                }
                Ok(())
            }
            StateInner::Native(s) => s.reset(),
        }
    }
}
