//! Reader for `.mlpackage` models.
//!
//! A package is a folder: `Manifest.json` names the root model entry, whose
//! `path` (relative to `Data/`, usually `com.apple.CoreML/model.mlmodel`)
//! holds the protobuf; `@model_path` in the program is the folder holding
//! that file, so weights live in `Data/com.apple.CoreML/weights/`.
//! The reader never writes into the package.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::blob::BlobResolver;
use super::model_file::{ModelFile, ModelFormat};
use super::proto;
use crate::error::{Error, Result};

/// The parts of `Manifest.json` the reader needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    item_info_entries: HashMap<String, ItemInfo>,
    root_model_identifier: String,
}

#[derive(Debug, Deserialize)]
struct ItemInfo {
    path: String,
}

/// The root model entry's path (relative to `Data/`) named by the
/// `Manifest.json` held in `bytes` (read from `manifest_path`), checked
/// lexically: not empty, not absolute, no `..`.
pub fn manifest_root_entry(bytes: &[u8], manifest_path: &Path) -> Result<PathBuf> {
    let manifest: Manifest = serde_json::from_slice(bytes).map_err(|source| Error::Json {
        path: manifest_path.to_path_buf(),
        source,
    })?;
    let entry = manifest
        .item_info_entries
        .get(&manifest.root_model_identifier)
        .ok_or_else(|| {
            Error::format(
                manifest_path,
                format!(
                    "rootModelIdentifier {:?} names no entry of itemInfoEntries",
                    manifest.root_model_identifier
                ),
            )
        })?;
    let rel = Path::new(&entry.path);
    if entry.path.is_empty()
        || rel.has_root()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(Error::PathEscape {
            path: manifest_path.to_path_buf(),
            reference: entry.path.clone(),
        });
    }
    Ok(rel.to_path_buf())
}

/// The protobuf file of the package at `package`, checked to lie inside it.
pub fn root_model_path(package: &Path) -> Result<PathBuf> {
    let manifest_path = package.join("Manifest.json");
    let text = std::fs::read(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
    let rel = manifest_root_entry(&text, &manifest_path)?;
    let escape = || Error::PathEscape {
        path: manifest_path.clone(),
        reference: rel.to_string_lossy().into_owned(),
    };
    let joined = package.join("Data").join(&rel);
    let real = joined.canonicalize().map_err(|e| Error::io(&joined, e))?;
    let root = package.canonicalize().map_err(|e| Error::io(package, e))?;
    if !real.starts_with(&root) {
        return Err(escape());
    }
    if !real.is_file() {
        return Err(Error::format(&joined, "the root model entry is not a file"));
    }
    Ok(real)
}

/// Reads a `.mlpackage` model.
pub fn read(path: &Path) -> Result<ModelFile> {
    let model_path = root_model_path(path)?;
    let bytes = std::fs::read(&model_path).map_err(|e| Error::io(&model_path, e))?;
    let model = proto::decode_model(&bytes, &model_path)?;
    drop(bytes);
    let root = model_path
        .parent()
        .ok_or_else(|| Error::format(&model_path, "model file has no parent folder"))?;
    let mut blobs = BlobResolver::deferred(root);
    proto::convert_model(model, path, &model_path, ModelFormat::MlPackage, &mut blobs)
}
