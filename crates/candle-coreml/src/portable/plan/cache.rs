//! Device constants shared by the functions of one model, under structured keys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::Tensor;

use crate::mil::{DataType, TensorData, TensorValue};
use crate::options::ComputePrecision;

/// What a cached device tensor is: a weight-file constant, or output `output`
/// of a constexpr or folded op whose parameters all have keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum CacheKey {
    /// A constant stored in a weight file.
    Blob {
        /// The file as the program names it.
        file: Arc<str>,
        /// Offset of the blob's metadata record.
        offset: u64,
        /// Declared dtype.
        dtype: DataType,
        /// Compute precision it was materialised for.
        precision: ComputePrecision,
    },
    /// Output `output` of an op computed at load.
    Derived {
        /// The op type.
        op_type: Arc<str>,
        /// Compute precision.
        precision: ComputePrecision,
        /// Each parameter (inputs in name order, then attributes) and its identity.
        params: Arc<[(Arc<str>, Param)]>,
        /// Which output of the op.
        output: usize,
    },
}

impl CacheKey {
    /// The key of output `output` of the same op as `self` (a derived key).
    pub(crate) fn output(&self, output: usize) -> CacheKey {
        match self {
            CacheKey::Derived {
                op_type,
                precision,
                params,
                ..
            } => CacheKey::Derived {
                op_type: op_type.clone(),
                precision: *precision,
                params: params.clone(),
                output,
            },
            other => other.clone(),
        }
    }
}

/// The identity of one parameter of a derived key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Param {
    /// A value that has a key itself.
    Keyed(Arc<CacheKey>),
    /// A small literal, by value.
    Literal(Literal),
}

/// A small constant in hashable form (floats by bit pattern).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Literal {
    dtype: DataType,
    shape: Vec<usize>,
    data: LiteralData,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum LiteralData {
    Floats(Vec<u64>),
    Ints(Vec<i64>),
    Bools(Vec<bool>),
    Strs(Vec<String>),
    Bytes(Vec<u8>),
}

/// Literals up to this many elements take part in keys; larger ones make
/// the op uncacheable (hashing them would cost more than it saves).
const MAX_LITERAL: usize = 64;

impl Literal {
    /// The hashable form of `t`, when it is small enough.
    pub(crate) fn of(t: &TensorValue) -> Option<Self> {
        if t.element_count() > MAX_LITERAL {
            return None;
        }
        let data = match &t.data {
            TensorData::F32(v) => {
                LiteralData::Floats(v.iter().map(|x| f64::from(*x).to_bits()).collect())
            }
            TensorData::F64(v) => LiteralData::Floats(v.iter().map(|x| x.to_bits()).collect()),
            TensorData::I32(v) => LiteralData::Ints(v.iter().map(|x| i64::from(*x)).collect()),
            TensorData::I64(v) => LiteralData::Ints(v.clone()),
            TensorData::Bool(v) => LiteralData::Bools(v.clone()),
            TensorData::Str(v) => LiteralData::Strs(v.clone()),
            TensorData::Bytes(b) => LiteralData::Bytes(b.as_slice().to_vec()),
            TensorData::Unmapped => return None,
        };
        Some(Self {
            dtype: t.dtype,
            shape: t.shape.clone(),
            data,
        })
    }
}

/// Constants materialised on the device, shared by every function of a
/// model loaded from one file, keyed by where their data lives in the weight
/// file (and the compute precision), so `prefill` and `infer` hold one copy.
#[derive(Default)]
pub(crate) struct ConstCache {
    tensors: Mutex<HashMap<CacheKey, Tensor>>,
}

impl ConstCache {
    /// The tensor cached under `key`.
    pub(crate) fn get(&self, key: &CacheKey) -> Option<Tensor> {
        self.tensors.lock().ok()?.get(key).cloned()
    }

    /// Caches `t` under `key`.
    pub(crate) fn insert(&self, key: &CacheKey, t: &Tensor) {
        if let Ok(mut m) = self.tensors.lock() {
            m.insert(key.clone(), t.clone());
        }
    }
}
