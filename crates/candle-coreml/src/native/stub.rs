//! Stand-in for the native backend on platforms without Core ML: loading
//! answers [`Error::BackendUnavailable`], so no native engine or state can
//! ever exist here.

use std::path::Path;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::options::ModelOptions;

/// Always [`Error::BackendUnavailable`]: Core ML exists only on Apple platforms.
pub(crate) fn load(_path: &Path, _options: &ModelOptions) -> Result<Box<dyn Engine>> {
    Err(Error::BackendUnavailable {
        backend: "native",
        reason:
            "native Core ML is only available on Apple platforms; use Backend::Portable (or Auto)"
                .into(),
    })
}
