//! Load options shared by the public API and both backends: which backend,
//! which device and function, and the knobs each backend reads.
//!
//! This module imports nothing of the crate, so `model.rs` (the public
//! facade), `engine/` (the backend interface) and both backends can use it
//! without depending on one another.

use std::path::PathBuf;

use candle_core::Device;

/// Which runtime executes a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Native Core ML on Apple platforms, portable elsewhere.
    #[default]
    Auto,
    /// Apple's Core ML runtime (Apple platforms only).
    Native,
    /// Our MIL evaluator on candle (every platform).
    Portable,
}

impl Backend {
    /// Lower-case name (`auto`, `native`, `portable`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Native => "native",
            Backend::Portable => "portable",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Hardware Core ML may use (native backend only), as in `MLComputeUnits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComputeUnits {
    /// CPU only.
    CpuOnly,
    /// CPU and GPU.
    CpuAndGpu,
    /// CPU and Neural Engine.
    CpuAndNeuralEngine,
    /// Everything available.
    #[default]
    All,
}

/// The precision the portable backend computes fp16 programs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ComputePrecision {
    /// Every float value is computed in f32 (fp64 stays f64). The default:
    /// candle's CPU kernels are fastest and most complete in f32, and it keeps
    /// fp16 programs closer to their fp32 source than Core ML itself.
    #[default]
    Float32,
    /// Floats are computed in the program's own types (fp16 stays f16): half
    /// the memory for weights, and the natural choice on CUDA.
    Program,
}

/// Options for loading a model; see `ModelBuilder`.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// Backend choice.
    pub backend: Backend,
    /// Device for the portable backend.
    pub device: Device,
    /// Function to run; the model's default when `None`.
    pub function: Option<String>,
    /// Compute units for the native backend.
    pub compute_units: ComputeUnits,
    /// Float precision of the portable backend.
    pub precision: ComputePrecision,
    /// Where the native backend caches compiled models (default: the system temp dir).
    pub cache_dir: Option<PathBuf>,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            backend: Backend::Auto,
            device: Device::Cpu,
            function: None,
            compute_units: ComputeUnits::All,
            precision: ComputePrecision::default(),
            cache_dir: None,
        }
    }
}
