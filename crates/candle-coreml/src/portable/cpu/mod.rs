//! CPU fast paths of the portable backend: kernels on contiguous f32 data
//! beside the candle-op paths (which stay the paths on CUDA and for other
//! dtypes).
//!
//! - [`gemm`]: candle's GEMM (the `gemm` crate, AVX-512 kernels where the CPU
//!   has them) on row-major slices;
//! - [`conv2d`]: 2-D convolution with packed weights: 1x1 as one GEMM,
//!   KxK as banded im2col + GEMM, depthwise and other one-channel-per-group
//!   convolutions directly, with a fused epilogue (bias, activations, a
//!   residual add);
//! - [`depthwise`]: depthwise conv and max pooling over phase-split planes;
//! - [`act`]: the activations of that epilogue on slices;
//! - [`lut`]: palettized (LUT) weight matrices multiplied in their stored
//!   form, the codes decoded in registers;
//! - [`simd`]: which instruction set the CPU has, picked once at run time.
//!
//! Work is split over candle's own thread pool (its barrier pool, sized by
//! `CANDLE_NUM_THREADS` / `RAYON_NUM_THREADS`), so candle's elementwise ops
//! and these kernels share the same threads.

pub(crate) mod act;
pub(crate) mod conv2d;
pub(crate) mod depthwise;
pub(crate) mod gemm;
pub(crate) mod geom;
pub(crate) mod lut;
pub(crate) mod simd;

use candle_core::{DType, Device, Storage, Tensor};

use crate::error::Result;

/// Runs `f` on the data of `t` when it is a contiguous f32 tensor on the CPU.
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    if t.dtype() != DType::F32 || !t.device().is_cpu() {
        return None;
    }
    let (storage, layout) = t.storage_and_layout();
    let (start, end) = layout.contiguous_offsets()?;
    match &*storage {
        Storage::Cpu(cpu) => Some(f(cpu.as_slice::<f32>().ok()?.get(start..end)?)),
        _ => None,
    }
}

/// [`with_f32`] for an optional tensor: `f(None)` without one.
pub(crate) fn with_opt_f32<R>(
    t: Option<&Tensor>,
    f: impl FnOnce(Option<&[f32]>) -> R,
) -> Option<R> {
    match t {
        Some(t) => with_f32(t, |s| f(Some(s))),
        None => Some(f(None)),
    }
}

/// A CPU f32 tensor of `shape` owning `data`.
pub(crate) fn tensor(data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
}

/// The number of threads candle's barrier pool (and so these kernels) use:
/// its workers and the calling thread. (Not `get_num_threads`, which reads
/// the environment, and without it the CPU topology, on every call.)
pub(crate) fn threads() -> usize {
    candle_core::utils::barrier_pool().n_workers() + 1
}

/// Runs `f(i)` for every `i` in `0..n` on candle's thread pool; each index is
/// claimed by exactly one thread.
pub(crate) fn par_for(n: usize, f: impl Fn(usize) + Sync) {
    if n <= 1 || threads() == 1 {
        (0..n).for_each(f);
        return;
    }
    candle_core::utils::barrier_pool().execute_chunked(n, |range| range.for_each(&f));
}

/// A mutable slice that several threads write disjoint parts of.
pub(crate) struct Shared<'a> {
    ptr: *mut f32,
    len: usize,
    _life: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: `Shared` only hands out sub-slices through `part`, whose callers
// guarantee that parts used at the same time do not overlap.
unsafe impl Send for Shared<'_> {}
// SAFETY: as above.
unsafe impl Sync for Shared<'_> {}

impl<'a> Shared<'a> {
    pub(crate) fn new(s: &'a mut [f32]) -> Self {
        Self {
            ptr: s.as_mut_ptr(),
            len: s.len(),
            _life: std::marker::PhantomData,
        }
    }

    /// The part `start..start + len`.
    ///
    /// # Safety
    /// No two parts in use at the same time may overlap.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn part(&self, start: usize, len: usize) -> &mut [f32] {
        assert!(
            start <= self.len && len <= self.len - start,
            "part out of range"
        );
        // SAFETY: in bounds (checked above); exclusive by the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer of at least `len` floats
/// (grown once, then reused: no allocation in the steady state).
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < len {
            s.resize(len, 0.0);
        }
        f(&mut s[..len])
    })
}
