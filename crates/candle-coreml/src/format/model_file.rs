//! The model a reader produces: [`ModelFile`], its [`ModelBody`] and
//! [`ModelFormat`], and the mapping of its weights.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::blob::BlobResolver;
use crate::description::ModelDescription;
use crate::error::Result;
use crate::mil::{Binding, Block, Program, Value};
use crate::neuralnetwork::{ClassLabels, Network};

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
        network: Option<std::sync::Arc<Network>>,
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
    /// The folder `@model_path` weight references resolve against.
    pub weights_root: PathBuf,
}

impl ModelFile {
    /// Maps every weight-file constant of the program (readers leave them
    /// unmapped, so [`open`](super::open) never touches weights): each weight file is
    /// memory-mapped once and every blob is checked against its declared
    /// dtype and shape. A missing weight file is [`Error::MissingWeights`](crate::Error::MissingWeights)
    /// naming it. Sub-models of a pipeline are mapped too.
    pub fn map_weights(&mut self) -> Result<()> {
        let mut blobs = BlobResolver::new(&self.weights_root);
        match &mut self.body {
            ModelBody::Program(p) => {
                for f in &mut p.functions {
                    map_block(&mut f.block, &mut blobs)?;
                }
                Ok(())
            }
            ModelBody::Pipeline(models) => models.iter_mut().try_for_each(ModelFile::map_weights),
            ModelBody::NeuralNetwork { .. } | ModelBody::Other(_) => Ok(()),
        }
    }

    /// The class labels of a NeuralNetwork classifier, or of the last
    /// classifier stage of a pipeline.
    pub fn class_labels(&self) -> Option<&ClassLabels> {
        match &self.body {
            ModelBody::NeuralNetwork {
                network: Some(n), ..
            } => n.class_labels(),
            ModelBody::Pipeline(stages) => stages.iter().rev().find_map(|s| s.class_labels()),
            _ => None,
        }
    }

    /// The ML Program, if the model is one.
    pub fn program(&self) -> Option<&Program> {
        match &self.body {
            ModelBody::Program(p) => Some(p),
            _ => None,
        }
    }
}

/// Maps the blobs of every constant of `block` (nested blocks included).
fn map_block(block: &mut Block, blobs: &mut BlobResolver) -> Result<()> {
    for op in &mut block.operations {
        for v in op.attributes.values_mut() {
            map_value(v, blobs)?;
        }
        for arg in op.inputs.values_mut() {
            for b in &mut arg.bindings {
                if let Binding::Value(v) = b {
                    map_value(v, blobs)?;
                }
            }
        }
        for nested in &mut op.blocks {
            map_block(nested, blobs)?;
        }
    }
    Ok(())
}

fn map_value(v: &mut Value, blobs: &mut BlobResolver) -> Result<()> {
    match v {
        Value::Tensor(t) => blobs.map(t),
        Value::List(items) | Value::Tuple(items) => {
            items.iter_mut().try_for_each(|i| map_value(i, blobs))
        }
        Value::Dict(pairs) => pairs.iter_mut().try_for_each(|(k, v)| {
            map_value(k, blobs)?;
            map_value(v, blobs)
        }),
    }
}
