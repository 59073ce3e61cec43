//! The MIL program in memory: what every container reader produces and every
//! backend consumes. Nothing here depends on candle.

pub mod constexpr;
pub mod elements;
mod program;
mod types;
mod value;

pub use program::{
    Argument, Binding, Block, Function, Location, NamedValueType, Operation, Program,
};
pub use types::{DataType, Dim, TensorType, ValueType};
pub use value::{BlobRef, ByteView, TensorData, TensorValue, Value};

/// How deeply pipelines, nested blocks, values and types may nest (the
/// protobuf reader refuses deeper models); walks over the nested networks of
/// NeuralNetwork branches and loops stop at this depth too.
pub const MAX_DEPTH: usize = 64;
