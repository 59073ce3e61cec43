//! The crate's error type.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong loading a bundle or generating. Each variant
/// names the file, key or limit involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },

    /// `meta.yaml` is malformed or lacks a key.
    #[error("{path}: {message}")]
    Meta {
        /// The meta.yaml file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// A model file the bundle needs is missing.
    #[error("{what}: none of {} exists", .tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    MissingFile {
        /// What the file is (e.g. "FFN chunk 2 of 2").
        what: String,
        /// The paths looked for.
        tried: Vec<PathBuf>,
    },

    /// A part of the bundle does not fit the others or meta.yaml.
    #[error("{path}: {message}")]
    Mismatch {
        /// The file that disagrees.
        path: PathBuf,
        /// What disagrees, with both values.
        message: String,
    },

    /// The tokenizer or its configuration cannot be used.
    #[error("{path}: {message}")]
    Tokenizer {
        /// tokenizer.json or tokenizer_config.json.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// The chat template failed to compile or render.
    #[error("chat template from {path}: {message}")]
    Template {
        /// Where the template came from.
        path: PathBuf,
        /// The template engine's message.
        message: String,
    },

    /// A prompt that does not fit the context.
    #[error("the prompt has {tokens} tokens; the bundle's context holds {limit}")]
    PromptTooLong {
        /// Prompt length in tokens.
        tokens: usize,
        /// The context length.
        limit: usize,
    },

    /// Sampling parameters out of range.
    #[error("invalid sampling parameter {name}: {message}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// What is wrong.
        message: String,
    },

    /// A model call failed.
    #[error("{part}: {source}")]
    Model {
        /// Which part was running (e.g. "FFN chunk 1 infer").
        part: String,
        /// The cause.
        source: candle_coreml::Error,
    },

    /// A model load failed.
    #[error(transparent)]
    CoreMl(#[from] candle_coreml::Error),

    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// Anything else.
    #[error("{0}")]
    Msg(String),
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Mismatch`] for `path`.
    pub fn mismatch(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Mismatch {
            path: path.into(),
            message: message.into(),
        }
    }

    /// An [`Error::Meta`] for `path`.
    pub fn meta(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Meta {
            path: path.into(),
            message: message.into(),
        }
    }
}
