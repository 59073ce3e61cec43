//! Where the time of a native prediction goes, for
//! `benches/native_overhead.rs`: our code before Core ML's call (input
//! checks, binding, output buffers), Core ML's call, our code after it
//! (reading outputs). Not part of the supported API.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;

use super::model::NativeModel;
pub use super::timing::Timing;
use crate::error::Result;
use crate::options::ModelOptions;

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
