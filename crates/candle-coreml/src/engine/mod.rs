//! The interface between the public facade (`model.rs`) and the backends.
//!
//! A backend implements [`Engine`] for a loaded function of a model and
//! [`EngineState`] for the states it makes. Each backend owns its rules:
//! which function runs ([`resolve_function`] is the one place that checks a
//! requested name), whether a state fits, how inputs are bound. The facade
//! only checks inputs against the description ([`inputs::check_inputs`]) and
//! hands them over. Nothing here imports a backend or the facade, so the
//! import graph stays `model -> {engine, portable, native}`,
//! `{portable, native} -> engine`.

pub(crate) mod dtype;
pub(crate) mod inputs;

use std::any::Any;
use std::collections::HashMap;

use candle_core::Tensor;

use crate::description::{FunctionDescription, ModelDescription};
use crate::error::{Error, Result};
use crate::format::ModelFile;
use crate::options::Backend;

/// Named output tensors, in the function's output order.
pub(crate) type NamedTensors = Vec<(String, Tensor)>;

/// One function of a model, loaded by a backend.
pub(crate) trait Engine: Send + Sync {
    /// The backend (never [`Backend::Auto`]).
    fn backend(&self) -> Backend;

    /// The whole model's description (every function).
    fn description(&self) -> &ModelDescription;

    /// The description of the function this engine runs.
    fn function(&self) -> &FunctionDescription;

    /// The model as our reader parsed it, when the backend keeps it.
    fn file(&self) -> Option<&ModelFile> {
        None
    }

    /// The same model running function `name` (sharing what can be shared).
    fn with_function(&self, name: &str) -> Result<Box<dyn Engine>>;

    /// Runs one prediction. `inputs` are checked against [`Engine::function`]
    /// already. A stateful function needs `state`, which must have been
    /// made by this backend with matching states; a stateless one ignores it.
    fn predict(
        &self,
        inputs: &HashMap<String, Tensor>,
        state: Option<&mut dyn EngineState>,
    ) -> Result<NamedTensors>;

    /// A fresh state (zero-filled buffers) for the function's states.
    fn make_state(&self) -> Result<Box<dyn EngineState>>;
}

/// The states of a stateful model, as one backend keeps them.
pub(crate) trait EngineState: Send + Sync {
    /// The backend that made the state.
    fn backend(&self) -> Backend;

    /// Names of the states held.
    fn names(&self) -> Vec<String>;

    /// A copy of state `name`, in the model's declared dtype.
    fn read(&self, name: &str) -> Result<Tensor>;

    /// Overwrites state `name` with `value` (same shape; dtype converted).
    fn write(&mut self, name: &str, value: &Tensor) -> Result<()>;

    /// Zero-fills every state.
    fn reset(&mut self) -> Result<()>;

    /// The state as `Any`, for the backend that made it to downcast.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// `state` as the concrete state type `T` of `backend`; a state made by
/// another backend is [`Error::StateBackend`].
pub(crate) fn downcast_state<T: 'static>(
    state: &mut dyn EngineState,
    backend: Backend,
) -> Result<&mut T> {
    let made_by = state.backend();
    state
        .as_any_mut()
        .downcast_mut::<T>()
        .ok_or(Error::StateBackend {
            state: made_by.name(),
            model: backend.name(),
        })
}

/// The function to run: `asked` when the model has it, else the model's
/// default. An unknown name is [`Error::UnknownFunction`].
pub(crate) fn resolve_function(d: &ModelDescription, asked: Option<&str>) -> Result<String> {
    let name = asked.unwrap_or(&d.default_function);
    if d.function(name).is_some() {
        return Ok(name.to_string());
    }
    Err(Error::UnknownFunction {
        name: name.to_string(),
        available: d.functions.iter().map(|f| f.name.clone()).collect(),
    })
}
