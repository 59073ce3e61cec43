//! The crate's error type.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong reading or running a model. Each variant
/// names what was wrong and where (file, function, op, input).
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

    /// A protobuf message could not be decoded.
    #[error("{path}: not a valid Core ML protobuf: {source}")]
    Protobuf {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: prost::DecodeError,
    },

    /// A JSON file (Manifest.json, metadata.json) could not be parsed.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },

    /// MIL text that does not parse.
    #[error("{path}:{line}:{column}: {message}")]
    MilSyntax {
        /// The `model.mil` file.
        path: PathBuf,
        /// Line, from 1.
        line: u32,
        /// Column, from 1.
        column: u32,
        /// What was expected or wrong.
        message: String,
    },

    /// A weight-file blob that is out of range or malformed.
    #[error("{path}: blob at offset {offset}: {message}")]
    Blob {
        /// The weight file.
        path: PathBuf,
        /// Offset of the blob's metadata record.
        offset: u64,
        /// What is wrong.
        message: String,
    },

    /// A path inside a model that points outside the model's folder.
    #[error("{path}: reference {reference:?} escapes the model folder")]
    PathEscape {
        /// The file holding the reference.
        path: PathBuf,
        /// The offending reference.
        reference: String,
    },

    /// Any other malformed model content.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// A model kind a backend cannot run (NeuralNetwork, pipelines...).
    #[error("{what} is not supported by the {backend} backend")]
    Unsupported {
        /// What is not supported.
        what: String,
        /// The backend that refused.
        backend: &'static str,
    },

    /// Ops the portable backend does not implement, all listed at once.
    #[error("function {function:?} uses ops the portable backend does not implement: {}", .ops.iter().map(|(t, o)| format!("{t} (output {o:?})")).collect::<Vec<_>>().join(", "))]
    UnknownOps {
        /// The function.
        function: String,
        /// Each unknown op as (op type, output name).
        ops: Vec<(String, String)>,
    },

    /// An op whose arguments are wrong for its type.
    #[error("function {function:?}, op {op:?} ({op_type}): {message}")]
    InvalidOp {
        /// The function.
        function: String,
        /// The op's output name.
        op: String,
        /// The op type.
        op_type: String,
        /// What is wrong.
        message: String,
    },

    /// The function named does not exist.
    #[error("no function {name:?}; the model has {available:?}")]
    UnknownFunction {
        /// Requested name.
        name: String,
        /// The model's functions.
        available: Vec<String>,
    },

    /// A required input was not given.
    #[error("function {function:?}: missing input {input:?}")]
    MissingInput {
        /// The function.
        function: String,
        /// The input.
        input: String,
    },

    /// An input the function does not declare.
    #[error("function {function:?} has no input {input:?}; it takes {expected:?}")]
    UnexpectedInput {
        /// The function.
        function: String,
        /// The input given.
        input: String,
        /// The inputs the function takes.
        expected: Vec<String>,
    },

    /// An input of the wrong shape.
    #[error("input {input:?}: expected shape {expected}, got {got:?}")]
    ShapeMismatch {
        /// The input.
        input: String,
        /// What the model accepts.
        expected: String,
        /// What was given.
        got: Vec<usize>,
    },

    /// An input of a dtype that cannot be converted to the model's.
    #[error("input {input:?}: expected dtype {expected}, got {got}")]
    DtypeMismatch {
        /// The input.
        input: String,
        /// The model's dtype.
        expected: String,
        /// The given dtype.
        got: String,
    },

    /// A state that does not fit the model it is used with.
    #[error("state {name:?}: {message}")]
    State {
        /// The state.
        name: String,
        /// What is wrong.
        message: String,
    },

    /// A [`crate::State`] made by one backend, used with a model of another.
    #[error("a State made by the {state} backend cannot be used with a {model} model")]
    StateBackend {
        /// The backend that made the state.
        state: &'static str,
        /// The backend of the model it was used with.
        model: &'static str,
    },

    /// [`crate::Model::predict_one`] on a function without exactly one
    /// input and one output.
    #[error("predict_one needs one input and one output; function {function:?} has {inputs} and {outputs}")]
    NotSingleInputOutput {
        /// The function.
        function: String,
        /// Its number of inputs.
        inputs: usize,
        /// Its number of outputs.
        outputs: usize,
    },

    /// A declared output missing from a prediction's result.
    #[error("function {function:?}: output {output:?} missing from the result")]
    MissingOutput {
        /// The function.
        function: String,
        /// The output.
        output: String,
    },

    /// A backend that is not available here.
    #[error("{backend} backend unavailable: {reason}")]
    BackendUnavailable {
        /// The backend.
        backend: &'static str,
        /// Why.
        reason: String,
    },

    /// An error from Apple's Core ML runtime.
    #[error("Core ML: {0}")]
    Native(String),

    /// An op failed while running.
    #[error("function {function:?}, op {op:?} ({op_type}): {source}")]
    OpFailed {
        /// The function.
        function: String,
        /// The op's output name.
        op: String,
        /// The op type.
        op_type: String,
        /// The cause.
        source: Box<Error>,
    },

    /// A candle error.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// Any other error, with its message.
    #[error("{0}")]
    Msg(String),
}

impl Error {
    /// A plain-message error.
    pub fn msg(m: impl Into<String>) -> Self {
        Error::Msg(m.into())
    }

    /// An [`Error::Format`] for `path`.
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            message: message.into(),
        }
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
