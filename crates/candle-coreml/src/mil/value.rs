//! Constant values of a MIL program: immediate literals and weight-file blobs.

use std::fmt;
use std::sync::Arc;

use super::types::DataType;

/// A read-only view of bytes owned elsewhere: a memory-mapped weight file or
/// an owned buffer. Cloning is cheap; the bytes are never copied.
#[derive(Clone)]
pub struct ByteView {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    start: usize,
    len: usize,
}

impl ByteView {
    /// A view of all of an owned buffer.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        let len = bytes.len();
        Self {
            owner: Arc::new(bytes),
            start: 0,
            len,
        }
    }

    /// A view of `owner[start..start + len]`; `None` when the range does not fit.
    pub fn new(
        owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
        start: usize,
        len: usize,
    ) -> Option<Self> {
        let end = start.checked_add(len)?;
        if end > (*owner).as_ref().len() {
            return None;
        }
        Some(Self { owner, start, len })
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &(*self.owner).as_ref()[self.start..self.start + self.len]
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for ByteView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ByteView({} bytes)", self.len)
    }
}

/// The elements of a constant tensor, as they were stored.
///
/// Readers keep the storage they found (protobuf repeated fields, packed
/// bytes, blobs in weight.bin); [`TensorValue`]'s accessors convert.
#[derive(Debug, Clone)]
pub enum TensorData {
    /// 32-bit floats (protobuf `floats`).
    F32(Vec<f32>),
    /// 64-bit floats (protobuf `doubles`; float literals of MIL text).
    F64(Vec<f64>),
    /// 32-bit integers (protobuf `ints`).
    I32(Vec<i32>),
    /// 64-bit integers (protobuf `longInts`; integer literals of MIL text).
    I64(Vec<i64>),
    /// Booleans.
    Bool(Vec<bool>),
    /// Strings.
    Str(Vec<String>),
    /// Little-endian bytes in the tensor's own dtype, sub-byte types packed
    /// LSB-first (protobuf `bytes`, and blobs of weight.bin, memory-mapped).
    Bytes(ByteView),
    /// A weight-file blob not mapped yet: [`TensorValue::blob`] says where.
    /// Readers leave blobs unmapped (describing a model never touches its
    /// weights); `ModelFile::map_weights` turns them into [`TensorData::Bytes`].
    Unmapped,
}

/// Where a blob-backed constant lives in its weight file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// The file as the program names it (e.g. `@model_path/weights/weight.bin`).
    pub file: String,
    /// Offset of the blob's metadata record.
    pub offset: u64,
}

/// A constant tensor.
#[derive(Debug, Clone)]
pub struct TensorValue {
    /// Element type.
    pub dtype: DataType,
    /// Shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// Elements.
    pub data: TensorData,
    /// Origin in a weight file, for blob-backed constants.
    pub blob: Option<BlobRef>,
}

impl TensorValue {
    /// A constant from its parts.
    pub fn new(dtype: DataType, shape: Vec<usize>, data: TensorData) -> Self {
        Self {
            dtype,
            shape,
            data,
            blob: None,
        }
    }

    /// Number of elements the shape holds (saturating on overflow).
    pub fn element_count(&self) -> usize {
        self.shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .unwrap_or(usize::MAX)
    }

    /// The single string of a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.data {
            TensorData::Str(s) if s.len() == 1 => Some(&s[0]),
            _ => None,
        }
    }
}

/// A constant MIL value.
#[derive(Debug, Clone)]
pub enum Value {
    /// A tensor or scalar.
    Tensor(TensorValue),
    /// A list.
    List(Vec<Value>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A dictionary, in file order.
    Dict(Vec<(Value, Value)>),
}

impl Value {
    /// The tensor, when this value is one.
    pub fn as_tensor(&self) -> Option<&TensorValue> {
        match self {
            Value::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// The string of a string scalar.
    pub fn as_str(&self) -> Option<&str> {
        self.as_tensor()?.as_str()
    }

    /// A string scalar value.
    pub fn string(s: impl Into<String>) -> Self {
        Value::Tensor(TensorValue::new(
            DataType::String,
            vec![],
            TensorData::Str(vec![s.into()]),
        ))
    }
}
