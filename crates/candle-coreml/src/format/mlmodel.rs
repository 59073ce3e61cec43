//! Reader for `.mlmodel` models: one `CoreML.Specification.Model` protobuf.
//!
//! ML Programs saved this way usually carry every weight inline; any
//! `@model_path` blob reference resolves against the file's own folder.

use std::path::Path;

use super::blob::BlobResolver;
use super::model_file::{ModelFile, ModelFormat};
use super::proto;
use crate::error::{Error, Result};

/// Reads a `.mlmodel` model.
pub fn read(path: &Path) -> Result<ModelFile> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let model = proto::decode_model(&bytes, path)?;
    drop(bytes);
    let root = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut blobs = BlobResolver::deferred(root);
    proto::convert_model(model, path, path, ModelFormat::MlModel, &mut blobs)
}
