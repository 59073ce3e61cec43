//! Where the time of a native prediction goes, for
//! `benches/native_overhead.rs`: our code before Core ML's call (input
//! checks, binding, output buffers), Core ML's call, our code after it
//! (reading outputs). Not part of the supported API.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use candle_core::Tensor;

use super::NativeModel;
use crate::error::Result;
use crate::options::ModelOptions;

/// Accumulated time of each phase of native predictions.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    /// Predictions measured.
    pub calls: u32,
    /// Our code before Core ML's prediction call: input checks and
    /// conversions, `MLMultiArray`s over tensor memory, the feature
    /// provider, output buffers.
    pub bind: Duration,
    /// Core ML's prediction call itself.
    pub core_ml: Duration,
    /// Our code after it: outputs into tensors, releasing what we made.
    pub read: Duration,
}

impl Timing {
    pub(super) fn add(&mut self, bind: Duration, core_ml: Duration, read: Duration) {
        self.calls += 1;
        self.bind += bind;
        self.core_ml += core_ml;
        self.read += read;
    }

    /// Our time (`bind + read`) per call.
    pub fn overhead_per_call(&self) -> Duration {
        (self.bind + self.read) / self.calls.max(1)
    }

    /// Core ML's time per call.
    pub fn core_ml_per_call(&self) -> Duration {
        self.core_ml / self.calls.max(1)
    }
}

/// Loads `path` natively and runs `iterations` predictions on `inputs`
/// (one state for them all when the model is stateful), timing each phase.
pub fn overhead_probe(
    path: &Path,
    options: &ModelOptions,
    inputs: &HashMap<String, Tensor>,
    iterations: u32,
) -> Result<Timing> {
    let model = NativeModel::load(path, options)?;
    let state = model.new_state()?;
    let mut timing = Timing::default();
    for _ in 0..iterations {
        model.predict_once(inputs, state.ml_state(), true, Some(&mut timing))?;
    }
    Ok(timing)
}
