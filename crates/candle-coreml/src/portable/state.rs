//! States of the portable backend: the buffers of one [`crate::State`].

use std::any::Any;
use std::collections::BTreeMap;

use candle_core::{Device, Tensor};

use super::dtype::compute_dtype;
use crate::engine::dtype::io_dtype;
use crate::engine::EngineState;
use crate::error::{Error, Result};
use crate::mil::TensorType;
use crate::options::{Backend, ComputePrecision};

/// State buffers by name, in the backend's compute dtypes.
#[derive(Debug, Default, Clone)]
pub(crate) struct StateStore {
    buffers: BTreeMap<String, Tensor>,
}

impl StateStore {
    /// Zero-filled buffers for `states` on `device`.
    pub(crate) fn zeros(
        states: &[(String, TensorType)],
        device: &Device,
        precision: ComputePrecision,
    ) -> Result<Self> {
        let mut buffers = BTreeMap::new();
        for (name, ty) in states {
            let shape = ty.fixed_shape().ok_or_else(|| Error::State {
                name: name.clone(),
                message: format!("state type {ty} has no fixed shape"),
            })?;
            let dtype = compute_dtype(ty.dtype, precision).ok_or_else(|| Error::State {
                name: name.clone(),
                message: format!("unsupported state dtype {}", ty.dtype),
            })?;
            buffers.insert(name.clone(), Tensor::zeros(shape, dtype, device)?);
        }
        Ok(Self { buffers })
    }

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
        let t = t.to_device(old.device())?.to_dtype(old.dtype())?.copy()?;
        self.buffers.insert(name.to_string(), t);
        Ok(())
    }

    /// Zero-fills every buffer.
    fn reset(&mut self) -> Result<()> {
        for t in self.buffers.values_mut() {
            *t = t.zeros_like()?;
        }
        Ok(())
    }
}

/// A [`crate::State`] of the portable backend: the buffers and the types the
/// model that made them declares.
pub(crate) struct PortableState {
    pub(crate) store: StateStore,
    pub(crate) types: BTreeMap<String, TensorType>,
}

impl PortableState {
    /// Checks that this state holds every state of `wanted`, with the same type.
    pub(crate) fn check_compatible(&self, wanted: &[(String, TensorType)]) -> Result<()> {
        for (name, ty) in wanted {
            let message = match self.types.get(name) {
                Some(t) if t == ty => continue,
                Some(t) => format!("this model declares {ty}, the State holds {t}"),
                None => format!("this model declares {ty}; the State has no such state"),
            };
            return Err(Error::State {
                name: name.clone(),
                message,
            });
        }
        Ok(())
    }
}

impl EngineState for PortableState {
    fn backend(&self) -> Backend {
        Backend::Portable
    }

    fn names(&self) -> Vec<String> {
        self.types.keys().cloned().collect()
    }

    fn read(&self, name: &str) -> Result<Tensor> {
        let t = self.store.get(name)?;
        let io = self
            .types
            .get(name)
            .and_then(|ty| io_dtype(ty.dtype))
            .unwrap_or(t.dtype());
        Ok(t.to_dtype(io)?.copy()?)
    }

    fn write(&mut self, name: &str, value: &Tensor) -> Result<()> {
        self.store.set(name, value.clone())
    }

    fn reset(&mut self) -> Result<()> {
        self.store.reset()
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
