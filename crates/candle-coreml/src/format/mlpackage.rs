//! Reader for `.mlpackage` models.

use std::path::Path;

use super::ModelFile;
use crate::error::{Error, Result};

/// Reads a `.mlpackage` model.
pub fn read(path: &Path) -> Result<ModelFile> {
    Err(Error::format(path, "reader not written yet"))
}
