//! Run Apple Core ML models with [candle](https://github.com/huggingface/candle).
//!
//! The crate reads `.mlpackage`, `.mlmodel` and compiled `.mlmodelc` models
//! into one in-memory MIL [`mil::Program`], describes them, and runs them on
//! one of two backends: Apple's own Core ML runtime on Apple platforms
//! ([`Backend::Native`]), or a portable evaluator of MIL programs on candle
//! ops that runs everywhere candle does ([`Backend::Portable`]: CPU, CUDA).
//!
//! ```no_run
//! use candle_coreml::Model;
//! use candle_core::{DType, Device, Tensor};
//!
//! let model = Model::load("model.mlpackage")?;
//! for input in model.inputs() {
//!     println!("{} {:?}", input.name, input.ty);
//! }
//! let x = Tensor::zeros((1, 10), DType::F32, &Device::Cpu)?;
//! let y = model.predict_one(&x)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod description;
mod engine;
pub mod error;
pub mod format;
#[cfg(feature = "image")]
pub mod image_input;
pub mod mil;
mod model;
pub mod native;
pub mod neuralnetwork;
mod options;
pub mod portable;

pub use description::ModelDescription;
pub use error::{Error, Result};
pub use model::{Model, ModelBuilder, Outputs, State};
pub use options::{Backend, ComputePrecision, ComputeUnits, ModelOptions};
