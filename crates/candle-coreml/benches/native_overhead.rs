//! Host overhead of the native backend: the time our code spends around Core
//! ML's prediction call, per predict. macOS only (elsewhere it says so and
//! exits).
//!
//! ```sh
//! cargo bench -p candle-coreml --bench native_overhead
//! NATIVE_BENCH_ITERS=1000 cargo bench -p candle-coreml --bench native_overhead
//! ```
//!
//! For each committed fixture below and each compute-unit choice it prints
//! the wall time of `Model::predict` / `predict_with_state` (median and mean
//! over the iterations), and from an instrumented run of the same prediction
//! path: Core ML's own call, and our time before it (checks, binding inputs,
//! output buffers) and after it (outputs into tensors). Plain
//! `std::time::Instant`; no criterion.

#[cfg(not(target_vendor = "apple"))]
fn main() {
    eprintln!("native_overhead: the native (Core ML) backend exists on Apple platforms only; nothing to measure here");
}

#[cfg(target_vendor = "apple")]
fn main() {
    if let Err(e) = apple::run() {
        eprintln!("native_overhead: {e}");
        std::process::exit(1);
    }
}

#[cfg(target_vendor = "apple")]
mod apple {
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use candle_core::Tensor;
    use candle_coreml::{native, Backend, ComputeUnits, Model, ModelOptions};

    type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

    /// (fixture, npz key prefix of the inputs).
    const CASES: &[(&str, &str)] = &[
        ("models/mlp_fp32.mlpackage", ""),
        ("models/mlp_fp16.mlpackage", ""),
        ("torch/resnet_fp32.mlpackage", ""),
        ("torch/bert_fp32.mlpackage", ""),
        ("torch/kv_decoder.mlpackage", "step1/"),
    ];

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
    }

    fn inputs(model: &Path, prefix: &str) -> Result<HashMap<String, Tensor>> {
        let npz = model.with_extension("npz");
        let head = format!("{prefix}input:");
        Ok(Tensor::read_npz(&npz)?
            .into_iter()
            .filter_map(|(k, v)| k.strip_prefix(&head).map(|n| (n.to_string(), v)))
            .collect())
    }

    fn stats(mut samples: Vec<Duration>) -> (Duration, Duration) {
        samples.sort();
        let median = samples.get(samples.len() / 2).copied().unwrap_or_default();
        let mean =
            samples.iter().sum::<Duration>() / u32::try_from(samples.len().max(1)).unwrap_or(1);
        (median, mean)
    }

    fn us(d: Duration) -> f64 {
        d.as_secs_f64() * 1e6
    }

    pub fn run() -> Result<()> {
        let iters: u32 = std::env::var("NATIVE_BENCH_ITERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200);
        let warmup = 10;
        println!(
            "{:<32} {:<20} {:>12} {:>12} {:>12} {:>12} {:>12}",
            "model",
            "compute units",
            "predict med",
            "predict mean",
            "core ml",
            "ours before",
            "ours after"
        );
        for (rel, prefix) in CASES {
            let path = fixtures().join(rel);
            let x = inputs(&path, prefix)?;
            for units in [ComputeUnits::CpuOnly, ComputeUnits::All] {
                let options = ModelOptions {
                    backend: Backend::Native,
                    compute_units: units,
                    ..ModelOptions::default()
                };
                let model = Model::load_with(&path, options.clone())?;
                let mut state = model.make_state()?;
                let stateful = !model.states().is_empty();
                let mut call = || -> Result<()> {
                    if stateful {
                        model.predict_with_state(&x, &mut state)?;
                    } else {
                        model.predict(&x)?;
                    }
                    Ok(())
                };
                for _ in 0..warmup {
                    call()?;
                }
                let mut samples = Vec::with_capacity(iters as usize);
                for _ in 0..iters {
                    let t = Instant::now();
                    call()?;
                    samples.push(t.elapsed());
                }
                let (median, mean) = stats(samples);
                native::overhead_probe(&path, &options, &x, warmup)?;
                let t = native::overhead_probe(&path, &options, &x, iters)?;
                let n = t.calls.max(1);
                println!(
                    "{:<32} {:<20} {:>10.1}us {:>10.1}us {:>10.1}us {:>10.1}us {:>10.1}us",
                    rel,
                    format!("{units:?}"),
                    us(median),
                    us(mean),
                    us(t.core_ml / n),
                    us(t.bind / n),
                    us(t.read / n),
                );
            }
        }
        println!("\n'ours before' + 'ours after' is the host overhead of the native backend per predict;");
        println!("'predict' also includes the public API's input checks and dtype conversions.");
        Ok(())
    }
}
