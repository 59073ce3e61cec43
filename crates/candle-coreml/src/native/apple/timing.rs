//! Time spent in each phase of native predictions (see `probe`).

use std::time::Duration;

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
