//! Readers for the three Core ML containers. Each produces a [`ModelFile`]:
//! the model's description and, for ML Programs, one [`Program`].
//!
//! Nothing in this module knows about candle.

pub mod blob;
pub mod mil_text;
pub mod mlmodel;
pub mod mlmodelc;
pub mod mlpackage;
pub mod proto;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::description::ModelDescription;
use crate::error::{Error, Result};
use crate::mil::Program;

/// The container a model came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    /// `.mlpackage` directory.
    MlPackage,
    /// Single `.mlmodel` protobuf file.
    MlModel,
    /// Compiled `.mlmodelc` directory.
    MlModelc,
}

impl ModelFormat {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ModelFormat::MlPackage => "mlpackage",
            ModelFormat::MlModel => "mlmodel",
            ModelFormat::MlModelc => "mlmodelc",
        }
    }
}

/// What kind of model the file holds.
#[derive(Debug, Clone)]
pub enum ModelBody {
    /// An ML Program.
    Program(Program),
    /// A NeuralNetwork model (the layer list of NeuralNetwork.proto).
    NeuralNetwork {
        /// Number of layers.
        layers: usize,
        /// The layers, translated to MIL by the portable backend at load;
        /// `None` when the container holds only the compiled network
        /// (`.mlmodelc`).
        network: Option<std::sync::Arc<crate::neuralnetwork::Network>>,
    },
    /// A pipeline of sub-models, in order.
    Pipeline(Vec<ModelFile>),
    /// Any other model type (tree ensembles, GLMs...), by its protobuf field name.
    Other(String),
}

impl ModelBody {
    /// A human-readable kind (`mlProgram`, `neuralNetwork`, `pipeline`...).
    pub fn kind(&self) -> &str {
        match self {
            ModelBody::Program(_) => "mlProgram",
            ModelBody::NeuralNetwork { .. } => "neuralNetwork",
            ModelBody::Pipeline(_) => "pipeline",
            ModelBody::Other(k) => k,
        }
    }
}

/// A model read from disk.
#[derive(Debug, Clone)]
pub struct ModelFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Container format.
    pub format: ModelFormat,
    /// Core ML specification version, when the container records it.
    pub spec_version: Option<u32>,
    /// Interface.
    pub description: ModelDescription,
    /// Content.
    pub body: ModelBody,
    /// Op histogram recorded by Apple's compiler (`.mlmodelc` metadata.json),
    /// keys lower-cased without the opset prefix (`ios16.mul` -> `mul`).
    pub compiled_op_histogram: Option<BTreeMap<String, usize>>,
}

impl ModelFile {
    /// The ML Program, if the model is one.
    pub fn program(&self) -> Option<&Program> {
        match &self.body {
            ModelBody::Program(p) => Some(p),
            _ => None,
        }
    }
}

/// Reads a model, picking the reader from the path: a directory ending in
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
