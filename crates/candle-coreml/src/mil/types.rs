//! MIL data types and value types.

use std::fmt;

/// An element type of a MIL tensor, spelled in MIL text as `fp16`, `int32`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataType {
    /// `bool`
    Bool,
    /// `string`
    String,
    /// `fp16`
    Fp16,
    /// `fp32`
    Fp32,
    /// `fp64`
    Fp64,
    /// `bf16`
    Bf16,
    /// `fp8e4m3fn`
    Fp8E4M3Fn,
    /// `fp8e5m2`
    Fp8E5M2,
    /// `int4`
    Int4,
    /// `int8`
    Int8,
    /// `int16`
    Int16,
    /// `int32`
    Int32,
    /// `int64`
    Int64,
    /// `uint1`
    UInt1,
    /// `uint2`
    UInt2,
    /// `uint3`
    UInt3,
    /// `uint4`
    UInt4,
    /// `uint6`
    UInt6,
    /// `uint8`
    UInt8,
    /// `uint16`
    UInt16,
    /// `uint32`
    UInt32,
    /// `uint64`
    UInt64,
}

impl DataType {
    /// Every data type, in declaration order.
    pub const ALL: [DataType; 22] = [
        DataType::Bool,
        DataType::String,
        DataType::Fp16,
        DataType::Fp32,
        DataType::Fp64,
        DataType::Bf16,
        DataType::Fp8E4M3Fn,
        DataType::Fp8E5M2,
        DataType::Int4,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::UInt1,
        DataType::UInt2,
        DataType::UInt3,
        DataType::UInt4,
        DataType::UInt6,
        DataType::UInt8,
        DataType::UInt16,
        DataType::UInt32,
        DataType::UInt64,
    ];

    /// The MIL text spelling (`fp16`, `int32`, `uint4`...).
    pub fn mil_name(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::String => "string",
            DataType::Fp16 => "fp16",
            DataType::Fp32 => "fp32",
            DataType::Fp64 => "fp64",
            DataType::Bf16 => "bf16",
            DataType::Fp8E4M3Fn => "fp8e4m3fn",
            DataType::Fp8E5M2 => "fp8e5m2",
            DataType::Int4 => "int4",
            DataType::Int8 => "int8",
            DataType::Int16 => "int16",
            DataType::Int32 => "int32",
            DataType::Int64 => "int64",
            DataType::UInt1 => "uint1",
            DataType::UInt2 => "uint2",
            DataType::UInt3 => "uint3",
            DataType::UInt4 => "uint4",
            DataType::UInt6 => "uint6",
            DataType::UInt8 => "uint8",
            DataType::UInt16 => "uint16",
            DataType::UInt32 => "uint32",
            DataType::UInt64 => "uint64",
        }
    }

    /// Parses a MIL text spelling; `None` for an unknown name.
    pub fn from_mil_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|d| d.mil_name() == name)
    }

    /// The `MILSpec.DataType` protobuf code.
    pub fn proto_code(self) -> i32 {
        match self {
            DataType::Bool => 1,
            DataType::String => 2,
            DataType::Fp16 => 10,
            DataType::Fp32 => 11,
            DataType::Fp64 => 12,
            DataType::Bf16 => 13,
            DataType::Int8 => 21,
            DataType::Int16 => 22,
            DataType::Int32 => 23,
            DataType::Int64 => 24,
            DataType::Int4 => 25,
            DataType::UInt8 => 31,
            DataType::UInt16 => 32,
            DataType::UInt32 => 33,
            DataType::UInt64 => 34,
            DataType::UInt4 => 35,
            DataType::UInt2 => 36,
            DataType::UInt1 => 37,
            DataType::UInt6 => 38,
            DataType::UInt3 => 39,
            DataType::Fp8E4M3Fn => 40,
            DataType::Fp8E5M2 => 41,
        }
    }

    /// The data type of a `MILSpec.DataType` protobuf code; `None` if unknown.
    pub fn from_proto_code(code: i32) -> Option<Self> {
        Self::ALL.iter().copied().find(|d| d.proto_code() == code)
    }

    /// Width of one element in bits (`None` for `string`).
    pub fn bit_width(self) -> Option<u32> {
        Some(match self {
            DataType::String => return None,
            DataType::Bool => 8,
            DataType::UInt1 => 1,
            DataType::UInt2 => 2,
            DataType::UInt3 => 3,
            DataType::Int4 | DataType::UInt4 => 4,
            DataType::UInt6 => 6,
            DataType::Int8 | DataType::UInt8 | DataType::Fp8E4M3Fn | DataType::Fp8E5M2 => 8,
            DataType::Int16 | DataType::UInt16 | DataType::Fp16 | DataType::Bf16 => 16,
            DataType::Int32 | DataType::UInt32 | DataType::Fp32 => 32,
            DataType::Int64 | DataType::UInt64 | DataType::Fp64 => 64,
        })
    }

    /// True for the floating-point types.
    pub fn is_float(self) -> bool {
        matches!(
            self,
            DataType::Fp16
                | DataType::Fp32
                | DataType::Fp64
                | DataType::Bf16
                | DataType::Fp8E4M3Fn
                | DataType::Fp8E5M2
        )
    }

    /// True for the signed and unsigned integer types.
    pub fn is_int(self) -> bool {
        !self.is_float() && !matches!(self, DataType::Bool | DataType::String)
    }

    /// True for the unsigned integer types.
    pub fn is_unsigned(self) -> bool {
        matches!(
            self,
            DataType::UInt1
                | DataType::UInt2
                | DataType::UInt3
                | DataType::UInt4
                | DataType::UInt6
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
                | DataType::UInt64
        )
    }

    /// True for the types palette indices are stored in: unsigned, at most
    /// 8 bits (packed LSB first when narrower than a byte).
    pub fn is_palette_index(self) -> bool {
        self.is_unsigned() && self.bit_width().is_some_and(|b| b <= 8)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mil_name())
    }
}

/// One dimension of a tensor type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A known size.
    Fixed(usize),
    /// A size known only at run time (`?` in MIL text, possibly a flexible input).
    Unknown,
}

impl Dim {
    /// The size, when known.
    pub fn fixed(self) -> Option<usize> {
        match self {
            Dim::Fixed(n) => Some(n),
            Dim::Unknown => None,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// A tensor type: element type and shape. Scalars have an empty shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorType {
    /// Element type.
    pub dtype: DataType,
    /// Shape; `None` when even the rank is unknown.
    pub shape: Option<Vec<Dim>>,
}

impl TensorType {
    /// A tensor type with a fully known shape.
    pub fn new(dtype: DataType, shape: &[usize]) -> Self {
        Self {
            dtype,
            shape: Some(shape.iter().map(|&d| Dim::Fixed(d)).collect()),
        }
    }

    /// A scalar of `dtype`.
    pub fn scalar(dtype: DataType) -> Self {
        Self::new(dtype, &[])
    }

    /// The shape when every dimension is known.
    pub fn fixed_shape(&self) -> Option<Vec<usize>> {
        self.shape.as_ref()?.iter().map(|d| d.fixed()).collect()
    }

    /// Number of elements when the shape is fully known.
    pub fn element_count(&self) -> Option<usize> {
        self.fixed_shape()?
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.shape {
            None => write!(f, "tensor<{}, *>", self.dtype),
            Some(dims) => {
                write!(f, "tensor<{}, [", self.dtype)?;
                for (i, d) in dims.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{d}")?;
                }
                f.write_str("]>")
            }
        }
    }
}

/// The type of a MIL value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// A tensor (a scalar is a rank-0 tensor).
    Tensor(TensorType),
    /// A list of values of one type, with a known length or not.
    List {
        /// Element type.
        element: Box<ValueType>,
        /// Length when fixed.
        length: Option<usize>,
    },
    /// A tuple of values.
    Tuple(Vec<ValueType>),
    /// A dictionary.
    Dict {
        /// Key type.
        key: Box<ValueType>,
        /// Value type.
        value: Box<ValueType>,
    },
    /// A state (`state<tensor<...>>`) wrapping its buffer's type.
    State(Box<ValueType>),
}

impl ValueType {
    /// The tensor type, if this is a tensor.
    pub fn as_tensor(&self) -> Option<&TensorType> {
        match self {
            ValueType::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// The wrapped tensor type of a tensor state.
    pub fn state_tensor(&self) -> Option<&TensorType> {
        match self {
            ValueType::State(inner) => inner.as_tensor(),
            _ => None,
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueType::Tensor(t) => write!(f, "{t}"),
            ValueType::List { element, length } => match length {
                Some(n) => write!(f, "list<{element}, {n}>"),
                None => write!(f, "list<{element}, ?>"),
            },
            ValueType::Tuple(items) => {
                f.write_str("tuple<")?;
                for (i, t) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{t}")?;
                }
                f.write_str(">")
            }
            ValueType::Dict { key, value } => write!(f, "dict<{key}, {value}>"),
            ValueType::State(inner) => write!(f, "state<{inner}>"),
        }
    }
}

impl serde::Serialize for DataType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.mil_name())
    }
}
