//! The crate's error type.
//!
//! One convention for every variant: `Display` says what failed at this
//! layer, and the cause (an `io::Error`, a protobuf or JSON error, the
//! failure of an op) is only reachable through `std::error::Error::source`.
//! Each cause is therefore printed once by a chain printer (anyhow's `{:#}`,
//! or [`Error::report`]), never twice.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong reading or running a model. Each variant
/// names what was wrong and where (file, function, op, input).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder could not be read (or, for the native compile
    /// cache, written).
    #[error("I/O error on {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },

    /// A protobuf message could not be decoded.
    #[error("{path}: not a valid Core ML protobuf")]
    Protobuf {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: prost::DecodeError,
    },

    /// A JSON file (Manifest.json, metadata.json) could not be parsed.
    #[error("{path}: invalid JSON")]
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

    /// A weight file the program refers to is not there.
    #[error("{path}: weight file missing (the program refers to {reference:?}); a partial download, or a clone without Git LFS?")]
    MissingWeights {
        /// Where the weight file should be.
        path: PathBuf,
        /// The reference as the program writes it.
        reference: String,
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

    /// A model kind or feature a backend cannot run (tree ensembles, a
    /// compiled NeuralNetwork on the portable backend...).
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

    /// NeuralNetwork layers the portable backend cannot translate, all listed
    /// at once.
    #[error("{path}: NeuralNetwork layers the portable backend cannot run: {}", .layers.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(", "))]
    UnsupportedLayers {
        /// The model file.
        path: PathBuf,
        /// Each layer, in network order (nested networks included).
        layers: Vec<UnsupportedLayer>,
    },

    /// A NeuralNetwork layer whose parameters, inputs or weights are wrong
    /// for its type.
    #[error("{path}: layer {layer:?} ({layer_type}): {message}")]
    InvalidLayer {
        /// The model file.
        path: PathBuf,
        /// The layer's name.
        layer: String,
        /// The layer's type (`convolution`, `innerProduct`...).
        layer_type: &'static str,
        /// What is wrong.
        message: String,
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

    /// A program that is inconsistent beyond one op (a block returning an
    /// undefined value, a state read as a value).
    #[error("function {function:?}: {message}")]
    InvalidProgram {
        /// The function.
        function: String,
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

    /// A feature of another kind than the call needs (e.g. an image
    /// conversion asked for a multi-array input).
    #[error("input {input:?}: expected a {expected} feature, got {got}")]
    FeatureKind {
        /// The input.
        input: String,
        /// The kind needed ([`crate::description::FeatureType::kind`]).
        expected: &'static str,
        /// The input's kind.
        got: &'static str,
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

    /// An error from Apple's Core ML runtime: the `NSError`'s domain and
    /// code, or an empty domain and code 0 when Core ML answered something
    /// unusable without an `NSError` (a missing output, an unknown type).
    #[error("Core ML: {message}{}", native_code(domain, *code))]
    Native {
        /// The `NSError` domain (`com.apple.CoreML`...); empty without one.
        domain: String,
        /// The `NSError` code; 0 without one.
        code: i64,
        /// What failed, with Core ML's localized description.
        message: String,
    },

    /// An op failed while running (or while being folded at load); the
    /// cause is the `source`.
    #[error("function {function:?}, op {op:?} ({op_type}) failed")]
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

    /// Any other error, with its message: kernels' complaints about the
    /// values they were given (always wrapped in [`Error::OpFailed`] or
    /// [`Error::InvalidOp`], which name the op), and internal invariants.
    #[error("{0}")]
    Msg(String),
}

/// A NeuralNetwork layer the portable backend cannot translate (in
/// [`Error::UnsupportedLayers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedLayer {
    /// The layer's name.
    pub layer: String,
    /// The layer's type (`custom`, `convolution`...).
    pub layer_type: &'static str,
    /// What the backend cannot do.
    pub what: String,
}

impl std::fmt::Display for UnsupportedLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (layer {:?}): {}",
            self.layer_type, self.layer, self.what
        )
    }
}

/// ` (domain code)` after a native error's message, when there is a domain.
fn native_code(domain: &str, code: i64) -> String {
    if domain.is_empty() {
        String::new()
    } else {
        format!(" ({domain} {code})")
    }
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

    /// An [`Error::Native`] without an `NSError` (domain empty, code 0).
    pub fn native(message: impl Into<String>) -> Self {
        Error::Native {
            domain: String::new(),
            code: 0,
            message: message.into(),
        }
    }

    /// This error and every cause after it, joined by `": "` (what anyhow's
    /// `{:#}` prints): the one-line form to show a user.
    ///
    /// ```
    /// use candle_coreml::Error;
    /// let e = Error::io("model.mlpackage", std::io::Error::other("gone"));
    /// assert_eq!(e.report(), "I/O error on model.mlpackage: gone");
    /// ```
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cause = c.source();
        }
        out
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
