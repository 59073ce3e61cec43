//! Readers for the three Core ML containers. Each produces a [`ModelFile`]:
//! the model's description and, for ML Programs, one [`Program`](crate::mil::Program).
//!
//! Nothing in this module knows about candle.

pub mod blob;
pub mod mil_text;
pub mod mlmodel;
pub mod mlmodelc;
pub mod mlpackage;
mod model_file;
pub mod proto;

use std::path::Path;

use crate::description::ModelDescription;
use crate::error::{Error, Result};
pub use model_file::{ModelBody, ModelFile, ModelFormat};

/// Reads a model, picking the reader from the path (weights stay unmapped
/// until [`ModelFile::map_weights`]): a directory ending in
/// `.mlpackage` or holding `Manifest.json`, a directory ending in `.mlmodelc`
/// or holding `model.mil`/`coremldata.bin`, or a protobuf file.
pub fn open(path: impl AsRef<Path>) -> Result<ModelFile> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if meta.is_dir() {
        if ext == "mlpackage" || path.join("Manifest.json").is_file() {
            mlpackage::read(path)
        } else if ext == "mlmodelc"
            || path.join("model.mil").is_file()
            || path.join("coremldata.bin").is_file()
        {
            mlmodelc::read(path)
        } else {
            Err(Error::format(
                path,
                "a directory that is neither an .mlpackage (no Manifest.json) nor an .mlmodelc (no model.mil)",
            ))
        }
    } else {
        mlmodel::read(path)
    }
}

/// Reads only a model's description (functions, inputs, outputs, states,
/// metadata), as [`open`] does it: weight files are never opened.
pub fn describe(path: impl AsRef<Path>) -> Result<ModelDescription> {
    open(path).map(|f| f.description)
}
