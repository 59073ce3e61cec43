//! Inputs and outputs of a prediction.
//!
//! Inputs: a contiguous CPU tensor whose dtype Core ML takes is handed to
//! Core ML in place (`MLMultiArray initWithDataPointer:...` over candle's
//! storage, held under its read lock until the prediction returns, and kept
//! alive by the array's deallocator). Other tensors are copied once: dtype
//! conversion (i64 -> i32 with an overflow check, i16 -> i8...),
//! non-contiguous layouts, Metal tensors (synchronised to CPU memory). CUDA
//! tensors are refused. (Passing one tensor as two inputs takes its read
//! lock twice; with parking_lot that only blocks if another thread is
//! waiting to write into that very tensor meanwhile.)
//!
//! Outputs: for every output of fixed shape, a zeroed host buffer is wrapped
//! in an `MLMultiArray` and passed as `MLPredictionOptions.outputBackings`:
//! Core ML writes the result straight into it and the buffer becomes the
//! returned tensor without another copy. Other outputs (flexible shapes, or
//! when Core ML put the result elsewhere) are copied out once, honouring
//! Core ML's strides (`getBytesWithHandler:`), in their own dtype.

use std::collections::HashMap;
use std::ffi::c_void;
use std::ptr::NonNull;

use candle_core::{DType, Device, Layout, Storage, StorageRef, Tensor};
use objc2::rc::Retained;
use objc2::runtime::{AnyObject, ProtocolObject};
use objc2::AnyThread;
use objc2_core_ml::{
    MLDictionaryFeatureProvider, MLFeatureProvider, MLFeatureType, MLFeatureValue, MLMultiArray,
    MLPredictionOptions,
};
use objc2_foundation::{NSDictionary, NSString};

use super::array::{array_over, elem_count, read_array, Buffer, Elem};
use super::support::{native_error, ns};
use crate::description::{FeatureDescription, FeatureType};
use crate::engine::dtype::convert_dtype;
use crate::error::{Error, Result};

/// What Core ML takes for one input.
#[derive(Debug, Clone)]
enum InputKind {
    /// A multi-array of this element type (`None`: Core ML leaves it open).
    Array(Option<Elem>),
    /// An `Int64` scalar.
    Int64,
    /// A `Double` scalar.
    Double,
    /// Something we cannot build from a tensor (image, string...).
    Unsupported(&'static str),
}

/// One input as Core ML declares it.
pub(super) struct InputSpec {
    name: String,
    kind: InputKind,
    optional: bool,
}

impl InputSpec {
    pub fn new(f: &FeatureDescription) -> Self {
        let kind = match &f.ty {
            FeatureType::MultiArray(a) => InputKind::Array(a.dtype.and_then(Elem::from_data_type)),
            FeatureType::Int64 => InputKind::Int64,
            FeatureType::Double => InputKind::Double,
            FeatureType::Image(_) => InputKind::Unsupported("image"),
            FeatureType::String => InputKind::Unsupported("string"),
            FeatureType::Dictionary => InputKind::Unsupported("dictionary"),
            FeatureType::Sequence => InputKind::Unsupported("sequence"),
            FeatureType::State(_) => InputKind::Unsupported("state"),
        };
        Self {
            name: f.name.clone(),
            kind,
            optional: f.optional,
        }
    }
}

/// An input ready to bind.
pub(super) enum Prepared {
    /// A contiguous CPU tensor whose storage holds `elem` values (i8 as u8).
    Array {
        name: String,
        elem: Elem,
        tensor: Tensor,
    },
    Int64 {
        name: String,
        value: i64,
    },
    Double {
        name: String,
        value: f64,
    },
}

/// Checks and converts the inputs: every declared input present (unless
/// optional), nothing undeclared, each in a form Core ML takes.
pub(super) fn prepare_inputs(
    specs: &[InputSpec],
    inputs: &HashMap<String, Tensor>,
    function: &str,
) -> Result<Vec<Prepared>> {
    if let Some(extra) = inputs.keys().find(|k| !specs.iter().any(|s| &s.name == *k)) {
        return Err(Error::UnexpectedInput {
            function: function.to_string(),
            input: extra.clone(),
            expected: specs.iter().map(|s| s.name.clone()).collect(),
        });
    }
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let Some(t) = inputs.get(&spec.name) else {
            if spec.optional {
                continue;
            }
            return Err(Error::MissingInput {
                function: function.to_string(),
                input: spec.name.clone(),
            });
        };
        out.push(prepare(spec, t)?);
    }
    Ok(out)
}

fn prepare(spec: &InputSpec, t: &Tensor) -> Result<Prepared> {
    let name = spec.name.clone();
    let t = on_cpu(&name, t)?;
    match spec.kind {
        InputKind::Array(elem) => {
            let elem = elem
                .or_else(|| Elem::from_dtype(t.dtype()))
                .unwrap_or(Elem::F32);
            let t = match elem {
                Elem::I8 => to_i8_bytes(&name, &t)?,
                e => convert_dtype(&name, &t, e.dtype())?,
            };
            // A copy only when the layout is not row-major from some offset.
            let tensor = if t.is_contiguous() {
                t
            } else {
                t.contiguous()?
            };
            Ok(Prepared::Array { name, elem, tensor })
        }
        InputKind::Int64 => {
            let value = scalar(&name, &convert_dtype(&name, &t, DType::I64)?, |t| {
                t.to_vec1::<i64>()
            })?;
            Ok(Prepared::Int64 { name, value })
        }
        InputKind::Double => {
            let value = scalar(&name, &convert_dtype(&name, &t, DType::F64)?, |t| {
                t.to_vec1::<f64>()
            })?;
            Ok(Prepared::Double { name, value })
        }
        InputKind::Unsupported(kind) => Err(Error::Unsupported {
            what: format!("{kind} input {name:?}"),
            backend: "native",
        }),
    }
}

/// The tensor in CPU memory: CPU as is, Metal synchronised (copied) to CPU,
/// CUDA refused.
fn on_cpu(name: &str, t: &Tensor) -> Result<Tensor> {
    match t.device() {
        Device::Cpu => Ok(t.clone()),
        Device::Metal(_) => Ok(t.to_device(&Device::Cpu)?),
        Device::Cuda(_) => Err(Error::BackendUnavailable {
            backend: "native",
            reason: format!(
                "input {name:?} is a CUDA tensor; Core ML takes CPU (or Metal) tensors"
            ),
        }),
    }
}

fn scalar<T: Copy>(
    name: &str,
    t: &Tensor,
    get: impl Fn(&Tensor) -> candle_core::Result<Vec<T>>,
) -> Result<T> {
    let v = get(&t.flatten_all()?)?;
    match v.as_slice() {
        [x] => Ok(*x),
        _ => Err(Error::ShapeMismatch {
            input: name.to_string(),
            expected: "one value".into(),
            got: t.dims().to_vec(),
        }),
    }
}

/// An integer tensor as i8 bytes (a U8 tensor), refusing values out of range.
fn to_i8_bytes(name: &str, t: &Tensor) -> Result<Tensor> {
    if !t.dtype().is_int() {
        return Err(Error::DtypeMismatch {
            input: name.to_string(),
            expected: "int8".into(),
            got: format!("{:?}", t.dtype()).to_lowercase(),
        });
    }
    let v = t.flatten_all()?.to_dtype(DType::I64)?.to_vec1::<i64>()?;
    let bytes = v
        .iter()
        .map(|&x| i8::try_from(x).map(|b| b as u8))
        .collect::<std::result::Result<Vec<u8>, _>>()
        .map_err(|_| Error::DtypeMismatch {
            input: name.to_string(),
            expected: "int8".into(),
            got: "integers outside -128..=127".into(),
        })?;
    Ok(Tensor::from_vec(bytes, t.dims(), &Device::Cpu)?)
}

/// Inputs bound for Core ML: the feature provider, and the read locks that
/// keep candle from changing the memory Core ML reads until we drop them.
pub(super) struct Bound<'a> {
    pub provider: Retained<ProtocolObject<dyn MLFeatureProvider>>,
    _guards: Vec<StorageRef<'a>>,
}

/// Builds the feature provider over `prepared` without copying tensor data.
pub(super) fn bind_inputs(prepared: &[Prepared]) -> Result<Bound<'_>> {
    let mut keys = Vec::with_capacity(prepared.len());
    let mut values: Vec<Retained<AnyObject>> = Vec::with_capacity(prepared.len());
    let mut guards = Vec::new();
    for p in prepared {
        let (name, value) = match p {
            Prepared::Array { name, elem, tensor } => {
                let (guard, layout) = tensor.storage_and_layout();
                let ptr = cpu_ptr(name, &guard, layout, *elem)?;
                // SAFETY: `ptr` covers the tensor's `elem_count` contiguous
                // elements of `elem` in candle's CPU storage. The storage is
                // read-locked (`guard`, dropped only after the prediction) so
                // nothing writes to it while Core ML reads, and the array's
                // deallocator owns a clone of the tensor, so the memory
                // outlives the array even if Core ML keeps it. Core ML only
                // reads input arrays.
                let array = unsafe { array_over(ptr, tensor.dims(), *elem, Some(tensor.clone()))? };
                guards.push(guard);
                // SAFETY: wrapping a live multi-array in a feature value.
                let value = unsafe { MLFeatureValue::featureValueWithMultiArray(&array) };
                (name, value)
            }
            // SAFETY: a feature value from a plain integer.
            Prepared::Int64 { name, value } => (name, unsafe {
                MLFeatureValue::featureValueWithInt64(*value)
            }),
            // SAFETY: a feature value from a plain double.
            Prepared::Double { name, value } => (name, unsafe {
                MLFeatureValue::featureValueWithDouble(*value)
            }),
        };
        keys.push(ns(name));
        values.push(Retained::into_super(Retained::into_super(value)));
    }
    let key_refs: Vec<&NSString> = keys.iter().map(|k| &**k).collect();
    let dict = NSDictionary::from_retained_objects(&key_refs, &values);
    // SAFETY: a dictionary of NSString -> MLFeatureValue, as the initialiser requires.
    let provider = unsafe {
        MLDictionaryFeatureProvider::initWithDictionary_error(
            MLDictionaryFeatureProvider::alloc(),
            &dict,
        )
    }
    .map_err(|e| native_error("cannot build the input features", &e))?;
    Ok(Bound {
        provider: ProtocolObject::from_retained(provider),
        _guards: guards,
    })
}

/// Pointer to the first element of a contiguous CPU tensor holding `elem`.
fn cpu_ptr(name: &str, storage: &Storage, layout: &Layout, elem: Elem) -> Result<NonNull<c_void>> {
    let bad = || {
        Error::msg(format!(
            "input {name:?}: internal error: storage does not hold contiguous {elem:?}"
        ))
    };
    let Storage::Cpu(cpu) = storage else {
        return Err(bad());
    };
    let (start, end) = layout.contiguous_offsets().ok_or_else(bad)?;
    fn at<T>(v: &[T], start: usize, end: usize) -> Option<NonNull<c_void>> {
        v.get(start..end).map(|s| NonNull::from(s).cast())
    }
    let ptr = match elem {
        Elem::F32 => at(cpu.as_slice::<f32>()?, start, end),
        Elem::F16 => at(cpu.as_slice::<half::f16>()?, start, end),
        Elem::F64 => at(cpu.as_slice::<f64>()?, start, end),
        Elem::I32 => at(cpu.as_slice::<i32>()?, start, end),
        Elem::I8 => at(cpu.as_slice::<u8>()?, start, end),
    };
    ptr.ok_or_else(bad)
}

/// One output as Core ML declares it.
pub(super) struct OutputSpec {
    name: String,
    /// Element type and shape when fixed: Core ML can write into our buffer.
    fixed: Option<(Elem, Vec<usize>)>,
}

impl OutputSpec {
    /// The spec of output `f` of `function`. An output that cannot become a
    /// tensor (image, string, dictionary, sequence) is refused here, at load,
    /// rather than missing from every prediction.
    pub fn new(f: &FeatureDescription, function: &str) -> Result<Self> {
        let fixed = match &f.ty {
            FeatureType::MultiArray(a) if a.flexibility.is_none() && !a.shape.is_empty() => a
                .dtype
                .and_then(Elem::from_data_type)
                .filter(|&e| e != Elem::I8)
                .map(|e| (e, a.shape.clone())),
            FeatureType::MultiArray(_) | FeatureType::Int64 | FeatureType::Double => None,
            other => {
                return Err(Error::Unsupported {
                    what: format!(
                        "output {:?} of function {function:?}, of feature type {}",
                        f.name,
                        other.kind()
                    ),
                    backend: "native",
                })
            }
        };
        Ok(Self {
            name: f.name.clone(),
            fixed,
        })
    }
}

/// A buffer Core ML may write one output into.
struct Backing {
    buffer: Buffer,
    shape: Vec<usize>,
    array: Retained<MLMultiArray>,
}

/// Output buffers for one prediction, by output index.
pub(super) struct OutputBackings {
    slots: Vec<Option<Backing>>,
    options: Option<Retained<MLPredictionOptions>>,
}

impl OutputBackings {
    /// No backings: Core ML allocates every output.
    pub fn none() -> Self {
        Self {
            slots: Vec::new(),
            options: None,
        }
    }

    /// A zeroed buffer for every fixed-shape output, and the prediction
    /// options that hand them to Core ML.
    pub fn new(specs: &[OutputSpec]) -> Result<Self> {
        let mut slots = Vec::with_capacity(specs.len());
        let mut keys = Vec::new();
        let mut arrays: Vec<Retained<AnyObject>> = Vec::new();
        for spec in specs {
            let Some((elem, shape)) = &spec.fixed else {
                slots.push(None);
                continue;
            };
            let n = elem_count(shape)?;
            if n == 0 {
                slots.push(None);
                continue;
            }
            let mut buffer = Buffer::zeros(*elem, n);
            let ptr = NonNull::from(buffer.bytes_mut()).cast::<c_void>();
            // SAFETY: `ptr` covers `n` elements of `elem` in `buffer`'s heap
            // allocation, which this struct owns and does not touch until the
            // prediction has returned (`take`); moving the Vec does not move
            // its allocation. After that the memory belongs to the returned
            // tensor and Core ML no longer writes to it.
            let array = unsafe { array_over::<()>(ptr, shape, *elem, None)? };
            keys.push(ns(&spec.name));
            arrays.push(Retained::into_super(Retained::into_super(array.clone())));
            slots.push(Some(Backing {
                buffer,
                shape: shape.clone(),
                array,
            }));
        }
        if keys.is_empty() {
            return Ok(Self::none());
        }
        let key_refs: Vec<&NSString> = keys.iter().map(|k| &**k).collect();
        let dict = NSDictionary::from_retained_objects(&key_refs, &arrays);
        // SAFETY: fresh options; backings is a dictionary of output name ->
        // MLMultiArray of the output's declared shape and data type.
        let options = unsafe {
            let o = MLPredictionOptions::new();
            o.setOutputBackings(&dict);
            o
        };
        Ok(Self {
            slots,
            options: Some(options),
        })
    }

    /// The prediction options to pass, if any output is backed.
    pub fn options(&self) -> Option<Retained<MLPredictionOptions>> {
        self.options.clone()
    }

    /// The backed buffer of output `i` as a tensor, if Core ML wrote the
    /// result into it (`returned` is the array Core ML returned).
    fn take(&mut self, i: usize, returned: &MLMultiArray) -> Option<Result<Tensor>> {
        let slot = self.slots.get_mut(i)?;
        let same = slot
            .as_ref()
            .is_some_and(|b| std::ptr::eq(&*b.array, returned));
        if !same {
            return None;
        }
        let b = slot.take()?;
        Some(b.buffer.into_tensor(&b.shape))
    }
}

/// Reads every declared output from Core ML's result, in order. Every
/// output was checked at load to have a tensor form; a value of another
/// type is an error.
pub(super) fn read_outputs(
    specs: &[OutputSpec],
    provider: &ProtocolObject<dyn MLFeatureProvider>,
    backings: &mut OutputBackings,
) -> Result<Vec<(String, Tensor)>> {
    let mut out = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        // SAFETY: looking a name up in Core ML's result provider.
        let value = unsafe { provider.featureValueForName(&ns(&spec.name)) }
            .ok_or_else(|| Error::native(format!("Core ML returned no output {:?}", spec.name)))?;
        // SAFETY: read-only properties of a feature value, read per its type.
        let tensor = match unsafe { value.r#type() } {
            MLFeatureType::MultiArray => {
                // SAFETY: the value is a multi-array (checked just above).
                let array = unsafe { value.multiArrayValue() }.ok_or_else(|| {
                    Error::native(format!("output {:?}: no multi-array", spec.name))
                })?;
                match backings.take(i, &array) {
                    Some(t) => t?,
                    None => read_array(&array)?,
                }
            }
            // SAFETY: the value is an Int64 (checked).
            MLFeatureType::Int64 => Tensor::new(unsafe { value.int64Value() }, &Device::Cpu)?,
            // SAFETY: the value is a Double (checked).
            MLFeatureType::Double => Tensor::new(unsafe { value.doubleValue() }, &Device::Cpu)?,
            other => {
                return Err(Error::native(format!(
                    "output {:?}: Core ML returned a value of feature type {}, not a tensor",
                    spec.name, other.0
                )))
            }
        };
        out.push((spec.name.clone(), tensor));
    }
    Ok(out)
}
