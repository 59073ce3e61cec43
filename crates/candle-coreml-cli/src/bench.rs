//! `candle-coreml bench`: load time, latency, peak memory of a model; time to
//! first token, prefill and decode speed of an ANEMLL bundle; the machine's
//! memory bandwidth.

mod bandwidth;
mod bundle;
mod model;
mod report;
mod sys;

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::BackendArg;

/// Float precision of the portable backend.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum PrecisionArg {
    /// Compute fp16 programs in f32 (the default).
    Float32,
    /// Keep the program's own precision (fp16 stays fp16).
    Program,
}

impl From<PrecisionArg> for candle_coreml::ComputePrecision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::Float32 => candle_coreml::ComputePrecision::Float32,
            PrecisionArg::Program => candle_coreml::ComputePrecision::Program,
        }
    }
}

/// Arguments of `bench`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// A model (.mlpackage, .mlmodel, .mlmodelc) or an ANEMLL bundle (a
    /// folder with meta.yaml). Leave out with --bandwidth.
    target: Option<PathBuf>,
    /// Function of a multifunction model (default: the model's default).
    #[arg(long)]
    function: Option<String>,
    /// Inputs from an .npz archive (arrays named NAME or `input:NAME`).
    #[arg(long, value_name = "PATH", conflicts_with = "random_inputs")]
    inputs_npz: Option<PathBuf>,
    /// Random inputs of each input's default shape (the default without --inputs-npz).
    #[arg(long)]
    random_inputs: bool,
    /// Untimed runs before measuring (for a bundle: untimed generations).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed runs (default 20; for a bundle, generations, default 3).
    #[arg(long)]
    iters: Option<usize>,
    /// CPU threads for candle and our kernels (sets RAYON_NUM_THREADS and
    /// CANDLE_NUM_THREADS; default: candle's, the physical core count).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON object on stdout instead of a summary.
    #[arg(long)]
    json: bool,
    /// Backend.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendArg,
    /// Device of the portable backend: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Float precision of the portable backend.
    #[arg(long, value_enum, default_value = "float32")]
    precision: PrecisionArg,
    /// Bundle: prompt length in tokens.
    #[arg(long, default_value_t = 128)]
    prompt_tokens: usize,
    /// Bundle: tokens generated per run.
    #[arg(long, default_value_t = 64)]
    gen_tokens: usize,
    /// Measure the memory read bandwidth instead (alone, or with a bundle
    /// to add the decode floor it implies, which bundles always report).
    #[arg(long)]
    bandwidth: bool,
    /// Size of the buffer the bandwidth probe reads.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    bandwidth_mib: usize,
}

pub(crate) fn main(args: Args) -> Result<()> {
    if let Some(n) = args.threads {
        sys::set_threads(n)?;
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build of candle-coreml: our own code (and the \
             bandwidth probe) runs unoptimized; build with --release for figures to report"
        );
    }
    let Some(target) = args.target.clone() else {
        if args.bandwidth {
            return bandwidth::main(&args);
        }
        bail!("bench needs a MODEL or BUNDLE (or --bandwidth)");
    };
    if !target.exists() {
        bail!("{}: no such model or bundle", target.display());
    }
    if target.is_dir() && target.join("meta.yaml").is_file() {
        bundle::main(&args, &target)
    } else {
        model::main(&args, &target)
    }
}
