//! States of stateful models through `MLState` (macOS 15 / iOS 18).

use std::cell::RefCell;
use std::ptr::NonNull;

use block2::StackBlock;
use candle_core::{Device, Tensor};
use objc2::rc::Retained;
use objc2_core_ml::{MLModel, MLMultiArray, MLState};

use super::array::{read_array, write_array, Buffer, Elem};
use super::support::{has_macos15_apis, ns};
use crate::description::{FeatureDescription, FeatureType};
use crate::engine::dtype::convert_dtype;
use crate::engine::EngineState;
use crate::error::{Error, Result};
use crate::options::Backend;

/// One state as Core ML declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StateSpec {
    pub name: String,
    elem: Elem,
    shape: Vec<usize>,
}

impl StateSpec {
    pub fn new(f: &FeatureDescription) -> Result<Self> {
        let bad = |what: String| Error::State {
            name: f.name.clone(),
            message: what,
        };
        let FeatureType::State(a) = &f.ty else {
            return Err(bad("not described as a state".into()));
        };
        let elem = a
            .dtype
            .and_then(Elem::from_data_type)
            .ok_or_else(|| bad(format!("unsupported state data type {:?}", a.dtype)))?;
        Ok(Self {
            name: f.name.clone(),
            elem,
            shape: a.shape.clone(),
        })
    }
}

/// The states of a stateful model, held by Core ML (`MLState`).
///
/// `Send + Sync` (see the module docs of `native::apple`): predictions,
/// `write` and `reset` need `&mut`, so one state never serves two
/// predictions at once; `read` copies the buffer out.
pub(crate) struct NativeState {
    /// `None` for a model without states.
    state: Option<Retained<MLState>>,
    specs: Vec<StateSpec>,
}

impl NativeState {
    /// A fresh state of `model` (Core ML zero-fills the buffers).
    pub(super) fn new(model: &MLModel, specs: &[StateSpec], function: &str) -> Result<Self> {
        if specs.is_empty() {
            return Ok(Self {
                state: None,
                specs: Vec::new(),
            });
        }
        if !has_macos15_apis() {
            return Err(Error::BackendUnavailable {
                backend: "native",
                reason: format!(
                    "function {function:?} is stateful; Core ML states (MLState) need macOS 15 / iOS 18. \
                     Use Backend::Portable on older systems"
                ),
            });
        }
        // SAFETY: newState exists on macOS 15 / iOS 18 (checked) and the
        // model declares states (checked), so it returns a fresh state.
        let state = unsafe { model.newState() };
        Ok(Self {
            state: Some(state),
            specs: specs.to_vec(),
        })
    }

    /// The Core ML state, `None` for a model without states.
    pub(super) fn ml_state(&self) -> Option<&MLState> {
        self.state.as_deref()
    }

    /// Checks that this state carries every state `wanted` declares, with the
    /// same shape and dtype (a state is shared by the functions of a model).
    pub(super) fn check_compatible(&self, wanted: &[StateSpec]) -> Result<()> {
        for w in wanted {
            match self.specs.iter().find(|s| s.name == w.name) {
                Some(s) if s == w => {}
                Some(s) => {
                    return Err(Error::State {
                        name: w.name.clone(),
                        message: format!(
                            "this model declares {:?} {:?}, the State holds {:?} {:?}",
                            w.elem, w.shape, s.elem, s.shape
                        ),
                    })
                }
                None => {
                    return Err(Error::State {
                        name: w.name.clone(),
                        message: "this model declares it; the State has no such state".into(),
                    })
                }
            }
        }
        Ok(())
    }

    fn state_names(&self) -> Vec<String> {
        self.specs.iter().map(|s| s.name.clone()).collect()
    }

    fn spec(&self, name: &str) -> Result<&StateSpec> {
        self.specs
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::State {
                name: name.to_string(),
                message: format!("no such state; the State holds {:?}", self.state_names()),
            })
    }

    /// Runs `f` on the Core ML buffer of state `name` (a known name: Core ML
    /// raises an Objective-C exception for unknown ones).
    fn with_buffer<R>(&self, name: &str, f: impl Fn(&MLMultiArray) -> Result<R>) -> Result<R> {
        self.spec(name)?;
        let state = self.state.as_deref().ok_or_else(|| Error::State {
            name: name.to_string(),
            message: "no Core ML state".into(),
        })?;
        let out = RefCell::new(None);
        let block = StackBlock::new(|array: NonNull<MLMultiArray>| {
            // SAFETY: Core ML passes the state's live buffer for the duration
            // of this synchronous handler.
            let array = unsafe { array.as_ref() };
            *out.borrow_mut() = Some(f(array));
        });
        // SAFETY: `name` is one of the model's states (checked above); the
        // handler is called synchronously, before this returns.
        unsafe { state.getMultiArrayForStateNamed_handler(&ns(name), &block) };
        out.into_inner().unwrap_or_else(|| {
            Err(Error::State {
                name: name.to_string(),
                message: "Core ML did not hand out the buffer".into(),
            })
        })
    }
}

impl EngineState for NativeState {
    fn backend(&self) -> Backend {
        Backend::Native
    }

    fn names(&self) -> Vec<String> {
        self.state_names()
    }

    /// A copy of state `name`, in its declared dtype.
    fn read(&self, name: &str) -> Result<Tensor> {
        self.with_buffer(name, read_array)
    }

    /// Overwrites state `name` with `value` (same shape; dtype converted).
    fn write(&mut self, name: &str, value: &Tensor) -> Result<()> {
        let spec = self.spec(name)?.clone();
        if value.dims() != spec.shape.as_slice() {
            return Err(Error::State {
                name: name.to_string(),
                message: format!("expected shape {:?}, got {:?}", spec.shape, value.dims()),
            });
        }
        let bytes = host_bytes(name, value, spec.elem)?;
        self.with_buffer(name, |a| write_array(a, &spec.shape, spec.elem, &bytes))
    }

    /// Zero-fills every state.
    fn reset(&mut self) -> Result<()> {
        for spec in self.specs.clone() {
            let n = super::array::elem_count(&spec.shape)?;
            let mut zeros = Buffer::zeros(spec.elem, n);
            let bytes = zeros.bytes_mut().to_vec();
            self.with_buffer(&spec.name, |a| {
                write_array(a, &spec.shape, spec.elem, &bytes)
            })?;
        }
        Ok(())
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

/// `value` as row-major bytes of `elem`.
fn host_bytes(name: &str, value: &Tensor, elem: Elem) -> Result<Vec<u8>> {
    let t = value.to_device(&Device::Cpu)?;
    let t = convert_dtype(name, &t, elem.dtype())?.flatten_all()?;
    let n = t.elem_count();
    let mut buf = Buffer::zeros(elem, n);
    match &mut buf {
        Buffer::F32(v) => v.copy_from_slice(&t.to_vec1::<f32>()?),
        Buffer::F16(v) => v.copy_from_slice(&t.to_vec1::<half::f16>()?),
        Buffer::F64(v) => v.copy_from_slice(&t.to_vec1::<f64>()?),
        Buffer::I32(v) => v.copy_from_slice(&t.to_vec1::<i32>()?),
        Buffer::I8(v) => {
            for (dst, x) in v.iter_mut().zip(t.to_vec1::<i16>()?) {
                *dst = i8::try_from(x).map_err(|_| Error::State {
                    name: name.to_string(),
                    message: format!("value {x} does not fit int8"),
                })? as u8;
            }
        }
    }
    Ok(buf.bytes_mut().to_vec())
}
