//! Stand-in for the native backend on platforms without Core ML.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;

use crate::description::ModelDescription;
use crate::error::{Error, Result};
use crate::model::ModelOptions;

fn unavailable() -> Error {
    Error::BackendUnavailable {
        backend: "native",
        reason:
            "native Core ML is only available on Apple platforms; use Backend::Portable (or Auto)"
                .into(),
    }
}

/// Never constructed off Apple platforms.
pub(crate) enum NativeModel {}

/// Never constructed off Apple platforms.
pub(crate) enum NativeState {}

impl NativeModel {
    pub(crate) fn load(_path: &Path, _options: &ModelOptions) -> Result<Self> {
        Err(unavailable())
    }

    pub(crate) fn description(&self) -> &ModelDescription {
        match *self {}
    }

    pub(crate) fn predict(
        &self,
        _inputs: &HashMap<String, Tensor>,
        _state: Option<&mut NativeState>,
    ) -> Result<Vec<(String, Tensor)>> {
        match *self {}
    }

    pub(crate) fn make_state(&self) -> Result<NativeState> {
        match *self {}
    }
}

impl NativeState {
    pub(crate) fn names(&self) -> Vec<String> {
        match *self {}
    }

    pub(crate) fn read(&self, _name: &str) -> Result<Tensor> {
        match *self {}
    }

    pub(crate) fn write(&mut self, _name: &str, _value: &Tensor) -> Result<()> {
        match *self {}
    }

    pub(crate) fn reset(&mut self) -> Result<()> {
        match *self {}
    }
}
