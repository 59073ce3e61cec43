//! The native backend on Apple platforms: Apple's Core ML runtime through
//! objc2 (`objc2-core-ml`).
//!
//! - [`mod@load`]: `.mlmodelc` loaded directly; `.mlpackage` / `.mlmodel`
//!   compiled once by Core ML and cached; `MLModelConfiguration` from
//!   [`ModelOptions`].
//! - [`description`]: Core ML's `MLModelDescription` into our
//!   [`ModelDescription`].
//! - [`io`]: inputs bound without copying where possible, outputs written by
//!   Core ML straight into the memory of the tensors we return.
//! - [`state`]: `MLState` (macOS 15+).
//!
//! # Thread safety
//!
//! [`NativeModel`](model::NativeModel) is `Send + Sync`: Apple documents `MLModel`'s prediction
//! methods as safe to call from several threads at once (Swift marks `MLModel`
//! `Sendable`), and after loading we never mutate the model or its
//! configuration; everything else in [`NativeModel`](model::NativeModel) is plain Rust data or an
//! atomic. [`NativeState`](state::NativeState) is `Send + Sync` too, but every call that changes a
//! state (a prediction, `write`, `reset`) takes `&mut NativeState`, so the
//! borrow checker forbids two predictions on one `MLState` at once (Core ML
//! does not support that); shared `&NativeState` only allows `read`, which
//! copies the buffer out.
//!
//! All `unsafe` of the crate's native backend lives in this module; each
//! block says why it is sound.

mod array;
mod description;
mod io;
mod load;
mod model;
pub(crate) mod probe;
mod state;
mod support;
mod timing;

use std::path::Path;

use crate::engine::Engine;
use crate::error::Result;
use crate::options::ModelOptions;

/// Loads the model at `path` with Core ML.
pub(crate) fn load(path: &Path, options: &ModelOptions) -> Result<Box<dyn Engine>> {
    Ok(Box::new(model::NativeModel::load(path, options)?))
}
