//! The native backend: Apple's Core ML runtime through objc2.
//!
//! Compiled only on Apple targets; elsewhere `load` is a stub answering
//! [`crate::Error::BackendUnavailable`] (candle-core's real-or-stub
//! pattern), so user code needs no `cfg`.

#[cfg(target_vendor = "apple")]
mod apple;
#[cfg(target_vendor = "apple")]
pub(crate) use apple::load;
/// Per-phase timing of native predictions, for `benches/native_overhead.rs`
/// (Apple platforms only; not a supported API).
#[cfg(target_vendor = "apple")]
#[doc(hidden)]
pub use apple::probe::{overhead_probe, Timing};

#[cfg(not(target_vendor = "apple"))]
mod stub;
#[cfg(not(target_vendor = "apple"))]
pub(crate) use stub::load;

/// True where the native backend is compiled in (Apple platforms).
pub const AVAILABLE: bool = cfg!(target_vendor = "apple");
