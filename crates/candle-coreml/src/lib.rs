//! Run Apple Core ML models with [candle](https://github.com/huggingface/candle).
//!
//! The crate reads `.mlpackage`, `.mlmodel` and compiled `.mlmodelc` models
//! into one in-memory MIL [`mil::Program`], describes them, and runs them on
//! one of two backends: Apple's own Core ML runtime on Apple platforms, or a
//! portable evaluator of MIL programs on candle ops that runs everywhere
//! candle does (CPU, CUDA).

pub mod description;
pub mod error;
pub mod format;
pub mod mil;

pub use description::ModelDescription;
pub use error::{Error, Result};
