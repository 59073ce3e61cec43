//! `MLMultiArray` plumbing: element types, arrays over our memory, and
//! strided copies in and out of Core ML's buffers (never element by element
//! through `NSNumber`).

use std::cell::RefCell;
use std::ffi::c_void;
use std::ptr::NonNull;

use block2::{RcBlock, StackBlock};
use candle_core::{DType, Device, Tensor};
use half::f16;
use objc2::rc::Retained;
use objc2::AnyThread;
use objc2_core_ml::{MLMultiArray, MLMultiArrayDataType};
use objc2_foundation::{NSArray, NSInteger, NSNumber};

use super::description::{data_type, dims};
use crate::error::{Error, Result};
use crate::mil::DataType;

/// An element type Core ML multi-arrays hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Elem {
    F32,
    F16,
    F64,
    I32,
    I8,
}

impl Elem {
    /// The element type for one of our data types.
    pub fn from_data_type(d: DataType) -> Option<Elem> {
        Some(match d {
            DataType::Fp32 => Elem::F32,
            DataType::Fp16 => Elem::F16,
            DataType::Fp64 => Elem::F64,
            DataType::Int32 => Elem::I32,
            DataType::Int8 => Elem::I8,
            _ => return None,
        })
    }

    /// The element type of a Core ML data type.
    pub fn from_ml(t: MLMultiArrayDataType) -> Option<Elem> {
        data_type(t).and_then(Elem::from_data_type)
    }

    /// Core ML's name for it.
    pub fn ml(self) -> MLMultiArrayDataType {
        match self {
            Elem::F32 => MLMultiArrayDataType::Float32,
            Elem::F16 => MLMultiArrayDataType::Float16,
            Elem::F64 => MLMultiArrayDataType::Float64,
            Elem::I32 => MLMultiArrayDataType::Int32,
            Elem::I8 => MLMultiArrayDataType::Int8,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Elem::F32 | Elem::I32 => 4,
            Elem::F16 => 2,
            Elem::F64 => 8,
            Elem::I8 => 1,
        }
    }

    /// The candle dtype of tensors we return (candle has no i8: i16).
    pub fn dtype(self) -> DType {
        match self {
            Elem::F32 => DType::F32,
            Elem::F16 => DType::F16,
            Elem::F64 => DType::F64,
            Elem::I32 => DType::I32,
            Elem::I8 => DType::I16,
        }
    }

    /// The element type for a candle dtype, when Core ML has it.
    pub fn from_dtype(d: DType) -> Option<Elem> {
        Some(match d {
            DType::F32 => Elem::F32,
            DType::F16 => Elem::F16,
            DType::F64 => Elem::F64,
            DType::I32 => Elem::I32,
            _ => return None,
        })
    }
}

/// Plain data: no padding, every bit pattern valid.
///
/// # Safety
/// Implement only for such types.
unsafe trait Plain: Copy + Default {}
// SAFETY: primitive numbers: no padding, every bit pattern is a value.
unsafe impl Plain for f32 {}
// SAFETY: as above.
unsafe impl Plain for f64 {}
// SAFETY: as above (a 16-bit pattern).
unsafe impl Plain for f16 {}
// SAFETY: as above.
unsafe impl Plain for i32 {}
// SAFETY: as above.
unsafe impl Plain for u8 {}

fn bytes_mut<T: Plain>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: T is Plain (no padding), so its memory is `size_of_val` bytes
    // that may be read and written as u8; the borrow is carried over.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// A host buffer of one element type, zero-filled, that becomes a tensor
/// without a copy (except i8, widened to i16).
pub(super) enum Buffer {
    F32(Vec<f32>),
    F16(Vec<f16>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    I8(Vec<u8>),
}

impl Buffer {
    /// `n` zeros of `elem`.
    pub fn zeros(elem: Elem, n: usize) -> Buffer {
        match elem {
            Elem::F32 => Buffer::F32(vec![0.0; n]),
            Elem::F16 => Buffer::F16(vec![f16::ZERO; n]),
            Elem::F64 => Buffer::F64(vec![0.0; n]),
            Elem::I32 => Buffer::I32(vec![0; n]),
            Elem::I8 => Buffer::I8(vec![0; n]),
        }
    }

    /// The buffer's bytes.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Buffer::F32(v) => bytes_mut(v),
            Buffer::F16(v) => bytes_mut(v),
            Buffer::F64(v) => bytes_mut(v),
            Buffer::I32(v) => bytes_mut(v),
            Buffer::I8(v) => v,
        }
    }

    /// The buffer as a CPU tensor of `shape`.
    pub fn into_tensor(self, shape: &[usize]) -> Result<Tensor> {
        let cpu = &Device::Cpu;
        Ok(match self {
            Buffer::F32(v) => Tensor::from_vec(v, shape, cpu)?,
            Buffer::F16(v) => Tensor::from_vec(v, shape, cpu)?,
            Buffer::F64(v) => Tensor::from_vec(v, shape, cpu)?,
            Buffer::I32(v) => Tensor::from_vec(v, shape, cpu)?,
            Buffer::I8(v) => {
                let wide: Vec<i16> = v.iter().map(|&b| i16::from(b as i8)).collect();
                Tensor::from_vec(wide, shape, cpu)?
            }
        })
    }
}

/// Element count of `shape`, refusing overflow.
pub(super) fn elem_count(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| Error::msg(format!("shape {shape:?} has too many elements")))
}

/// Row-major strides of `shape`, in elements.
pub(super) fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1].max(1);
    }
    strides
}

fn ns_numbers(v: &[usize]) -> Retained<NSArray<NSNumber>> {
    let nums: Vec<Retained<NSNumber>> = v.iter().map(|&x| NSNumber::new_usize(x)).collect();
    NSArray::from_retained_slice(&nums)
}

/// Core ML wants rank >= 1: a scalar is shaped `[1]`.
fn ml_shape(shape: &[usize]) -> Vec<usize> {
    if shape.is_empty() {
        vec![1]
    } else {
        shape.to_vec()
    }
}

/// A row-major `MLMultiArray` over `len` elements at `ptr`, which must stay
/// valid (and, while Core ML writes, unaliased) until `keep_alive` is dropped
/// by Core ML's deallocator, i.e. until the array is freed.
///
/// # Safety
/// `ptr` must point to `elem_count(shape)` elements of `elem`, valid for
/// reads (and writes, for an output backing) for as long as the returned
/// array lives or until `keep_alive` is dropped, whichever comes first.
pub(super) unsafe fn array_over<K: 'static>(
    ptr: NonNull<c_void>,
    shape: &[usize],
    elem: Elem,
    keep_alive: Option<K>,
) -> Result<Retained<MLMultiArray>> {
    let shape = ml_shape(shape);
    let strides = contiguous_strides(&shape);
    let deallocator: Option<RcBlock<dyn Fn(NonNull<c_void>)>> = keep_alive.map(|k| {
        RcBlock::new(move |_: NonNull<c_void>| {
            // Holding `k` keeps the memory alive until Core ML frees the array.
            let _ = &k;
        })
    });
    // SAFETY: the caller guarantees `ptr` covers the elements that `shape`
    // and the row-major `strides` address; shape and strides have the same
    // rank; the deallocator (if any) owns what keeps the memory alive.
    let array = unsafe {
        MLMultiArray::initWithDataPointer_shape_dataType_strides_deallocator_error(
            MLMultiArray::alloc(),
            ptr,
            &ns_numbers(&shape),
            elem.ml(),
            &ns_numbers(&strides),
            deallocator.as_deref(),
        )
    };
    array.map_err(|e| super::support::native_error("cannot wrap a buffer in an MLMultiArray", &e))
}

/// Shape, strides (elements, checked non-negative) and element type of `a`.
pub(super) fn layout_of(a: &MLMultiArray) -> Result<(Vec<usize>, Vec<usize>, Elem)> {
    // SAFETY: read-only properties of a live array.
    let (shape, strides, t) = unsafe { (a.shape(), a.strides(), a.dataType()) };
    let shape = dims(&shape);
    let strides: Vec<usize> = strides
        .iter()
        .map(|s| usize::try_from(s.as_isize()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::native("MLMultiArray with negative strides"))?;
    if strides.len() != shape.len() {
        return Err(Error::native(format!(
            "MLMultiArray with shape {shape:?} but {} strides",
            strides.len()
        )));
    }
    let elem = Elem::from_ml(t)
        .ok_or_else(|| Error::native(format!("unsupported MLMultiArray data type {}", t.0)))?;
    Ok((shape, strides, elem))
}

/// Elements spanned by `shape` with `strides` (0 for an empty array).
fn span(shape: &[usize], strides: &[usize]) -> Option<usize> {
    if shape.contains(&0) {
        return Some(0);
    }
    shape.iter().zip(strides).try_fold(1usize, |acc, (&d, &s)| {
        acc.checked_add((d - 1).checked_mul(s)?)
    })
}

/// Calls `f` with the bytes of `a` (from its data pointer to the end of its
/// buffer). Uses `getBytesWithHandler:` (macOS 12.3+), the deprecated
/// `dataPointer` before.
fn with_bytes<R>(a: &MLMultiArray, need: usize, f: impl FnOnce(&[u8]) -> Result<R>) -> Result<R> {
    let f = RefCell::new(Some(f));
    let out = RefCell::new(None);
    let run = |ptr: NonNull<c_void>, len: usize| {
        if let Some(f) = f.borrow_mut().take() {
            let r = if len < need {
                Err(Error::native(format!(
                    "MLMultiArray buffer of {len} bytes, {need} needed"
                )))
            } else {
                // SAFETY: Core ML hands out `len` readable bytes at `ptr`,
                // valid for the duration of this call.
                f(unsafe { std::slice::from_raw_parts(ptr.as_ptr().cast::<u8>(), len) })
            };
            *out.borrow_mut() = Some(r);
        }
    };
    if objc2::available!(
        macos = 12.3,
        ios = 15.4,
        tvos = 15.4,
        watchos = 8.5,
        visionos = 1.0
    ) {
        let block = StackBlock::new(|ptr: NonNull<c_void>, len: NSInteger| {
            run(ptr, usize::try_from(len).unwrap_or(0))
        });
        // SAFETY: the handler only reads within the `len` bytes it is given
        // and Core ML calls it synchronously, before returning.
        unsafe { a.getBytesWithHandler(&block) };
    } else {
        // SAFETY: before macOS 12.3 dataPointer is the documented access;
        // the array is live and spans `need` bytes by its own shape/strides.
        #[allow(deprecated)]
        let ptr = unsafe { a.dataPointer() };
        run(ptr, need);
    }
    out.into_inner()
        .unwrap_or_else(|| Err(Error::native("MLMultiArray handler was not called")))
}

/// Copies `a` into a new CPU tensor, honouring its strides.
pub(super) fn read_array(a: &MLMultiArray) -> Result<Tensor> {
    let (shape, strides, elem) = layout_of(a)?;
    let n = elem_count(&shape)?;
    let need = span(&shape, &strides)
        .and_then(|s| s.checked_mul(elem.size()))
        .ok_or_else(|| {
            Error::native(format!(
                "MLMultiArray shape {shape:?} strides {strides:?} overflow"
            ))
        })?;
    let mut buf = Buffer::zeros(elem, n);
    with_bytes(a, need, |src| {
        gather(src, &shape, &strides, elem.size(), buf.bytes_mut());
        Ok(())
    })?;
    buf.into_tensor(&shape)
}

/// Writes the row-major bytes `src` (of `elem`) into `a`, honouring its
/// strides. Shape and element type must match.
pub(super) fn write_array(a: &MLMultiArray, shape: &[usize], elem: Elem, src: &[u8]) -> Result<()> {
    let (got_shape, _, got_elem) = layout_of(a)?;
    if got_shape != ml_shape(shape) || got_elem != elem {
        return Err(Error::native(format!(
            "buffer is {got_elem:?} {got_shape:?}, value is {elem:?} {shape:?}"
        )));
    }
    let result = RefCell::new(None);
    let block = StackBlock::new(
        |ptr: NonNull<c_void>, len: NSInteger, strides: NonNull<NSArray<NSNumber>>| {
            // SAFETY: Core ML passes the array's live strides for the duration of the call.
            let strides: Vec<isize> = unsafe { strides.as_ref() }
                .iter()
                .map(|s| s.as_isize())
                .collect();
            let r = scatter_checked(
                ptr,
                usize::try_from(len).unwrap_or(0),
                &got_shape,
                &strides,
                elem.size(),
                src,
            );
            *result.borrow_mut() = Some(r);
        },
    );
    // SAFETY: the handler writes only within the `len` bytes it is given
    // (checked against the strides it is given) and is called synchronously.
    unsafe { a.getMutableBytesWithHandler(&block) };
    result
        .into_inner()
        .unwrap_or_else(|| Err(Error::native("MLMultiArray handler was not called")))
}

fn scatter_checked(
    ptr: NonNull<c_void>,
    len: usize,
    shape: &[usize],
    strides: &[isize],
    elem_size: usize,
    src: &[u8],
) -> Result<()> {
    let strides: Vec<usize> = strides
        .iter()
        .map(|&s| usize::try_from(s))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::native("MLMultiArray with negative strides"))?;
    let need = span(shape, &strides).and_then(|s| s.checked_mul(elem_size));
    let n = elem_count(shape)?;
    if strides.len() != shape.len()
        || need.is_none_or(|need| need > len)
        || src.len() != n * elem_size
    {
        return Err(Error::native(format!(
            "cannot write {} bytes into an MLMultiArray of {len} bytes, shape {shape:?}, strides {strides:?}",
            src.len()
        )));
    }
    // SAFETY: Core ML hands out `len` writable bytes at `ptr` for the
    // duration of the handler; nothing else accesses them meanwhile.
    let dst = unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr().cast::<u8>(), len) };
    scatter(src, shape, &strides, elem_size, dst);
    Ok(())
}

/// Visits every innermost row of `shape`/`strides`: calls `f(strided_offset,
/// contiguous_offset)` in elements, for the start of each row.
fn for_each_row(shape: &[usize], strides: &[usize], mut f: impl FnMut(usize, usize)) {
    let rank = shape.len();
    if rank == 0 {
        f(0, 0);
        return;
    }
    if shape.contains(&0) {
        return;
    }
    let inner = shape[rank - 1];
    let mut index = vec![0usize; rank - 1];
    let mut dense = 0;
    loop {
        let offset: usize = index.iter().zip(strides).map(|(i, s)| i * s).sum();
        f(offset, dense);
        dense += inner;
        // Odometer over the outer dimensions.
        let mut d = rank - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
}

/// Strided `src` -> row-major `dst`. Bounds were checked by the caller
/// (`span`); slicing still checks, so a bad stride cannot read out of bounds.
fn gather(src: &[u8], shape: &[usize], strides: &[usize], size: usize, dst: &mut [u8]) {
    copy_rows(shape, strides, size, |strided, dense, len| {
        if let (Some(from), Some(to)) = (
            src.get(strided..strided + len),
            dst.get_mut(dense..dense + len),
        ) {
            to.copy_from_slice(from);
        }
    });
}

/// Row-major `src` -> strided `dst`.
fn scatter(src: &[u8], shape: &[usize], strides: &[usize], size: usize, dst: &mut [u8]) {
    copy_rows(shape, strides, size, |strided, dense, len| {
        if let (Some(from), Some(to)) = (
            src.get(dense..dense + len),
            dst.get_mut(strided..strided + len),
        ) {
            to.copy_from_slice(from);
        }
    });
}

/// Calls `copy(strided_byte, dense_byte, byte_len)` for runs of elements
/// that are contiguous on both sides: the whole array when the strides are
/// row-major, one innermost row at a time when that row is contiguous (Core
/// ML pads rows for the Neural Engine), else element by element.
fn copy_rows(
    shape: &[usize],
    strides: &[usize],
    size: usize,
    mut copy: impl FnMut(usize, usize, usize),
) {
    if strides == contiguous_strides(shape).as_slice() {
        if let Ok(n) = elem_count(shape) {
            copy(0, 0, n * size);
        }
        return;
    }
    let inner = shape.last().copied().unwrap_or(1);
    let inner_stride = strides.last().copied().unwrap_or(1);
    for_each_row(shape, strides, |off, dense| {
        if inner_stride == 1 {
            copy(off * size, dense * size, inner * size);
        } else {
            for i in 0..inner {
                copy((off + i * inner_stride) * size, (dense + i) * size, size);
            }
        }
    });
}
