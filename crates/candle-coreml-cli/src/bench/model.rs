//! `bench MODEL`: load time, latency and peak memory of one model.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_coreml::description::{FeatureDescription, FeatureType};
use candle_coreml::mil::DataType;
use candle_coreml::Model;
use serde_json::{json, Value};

use super::report::{bytes_json, mib, Latency};
use super::{sys, Args};
use crate::run::{parse_device, read_npz_inputs};

pub(super) fn main(args: &Args, path: &Path) -> Result<()> {
    let device = parse_device(&args.device)?;
    let mut builder = Model::builder()
        .backend(args.backend.into())
        .device(device.clone())
        .precision(args.precision.into());
    if let Some(f) = &args.function {
        builder = builder.function(f);
    }
    let rss_before_load = sys::current_rss();
    let t0 = Instant::now();
    let model = builder
        .load(path)
        .with_context(|| format!("loading {}", path.display()))?;
    let load = t0.elapsed();
    let inputs = match &args.inputs_npz {
        Some(p) => {
            let got = read_npz_inputs(p, &model)?;
            let missing: Vec<&str> = model
                .inputs()
                .iter()
                .filter(|i| !i.optional && !got.iter().any(|(n, _)| n == &i.name))
                .map(|i| i.name.as_str())
                .collect();
            if !missing.is_empty() {
                bail!("{}: no array for input(s) {missing:?}", p.display());
            }
            got
        }
        None => random_inputs(model.inputs(), &device)?,
    };
    let iters = args.iters.unwrap_or(20);
    let mut state = if model.states().is_empty() {
        None
    } else {
        Some(model.make_state()?)
    };
    let mut predict = || -> Result<()> {
        let named = inputs.iter().map(|(n, t)| (n.as_str(), t));
        match state.as_mut() {
            Some(s) => model.predict_with_state(named, s)?,
            None => model.predict(named)?,
        };
        Ok(())
    };
    let bar = sys::progress((args.warmup + iters) as u64, "bench", args.json);
    for _ in 0..args.warmup {
        predict()?;
        bar.inc(1);
    }
    let rss_start = sys::current_rss();
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        predict()?;
        times.push(t.elapsed());
        bar.inc(1);
    }
    bar.finish_and_clear();
    let report = ModelReport {
        model: path.display().to_string(),
        function: model.function_name().to_string(),
        backend: model.backend().name().to_string(),
        load,
        latency: Latency::of(&times),
        iters,
        warmup: args.warmup,
        rss_before_load,
        rss_start,
        rss_end: sys::current_rss(),
        peak_rss: sys::peak_rss(),
    };
    if args.json {
        println!("{}", report.json());
    } else {
        report.print();
    }
    Ok(())
}

/// What one model benchmark found.
struct ModelReport {
    model: String,
    function: String,
    backend: String,
    load: Duration,
    latency: Latency,
    iters: usize,
    warmup: usize,
    rss_before_load: Option<u64>,
    rss_start: Option<u64>,
    rss_end: Option<u64>,
    peak_rss: Option<u64>,
}

impl ModelReport {
    fn json(&self) -> Value {
        let mut obj = json!({
            "model": self.model,
            "function": self.function,
            "backend": self.backend,
            "threads": sys::threads(),
            "load_ms": self.load.as_secs_f64() * 1e3,
            "iters": self.iters,
            "warmup": self.warmup,
            "peak_rss_bytes": bytes_json(self.peak_rss),
            "rss_before_load_bytes": bytes_json(self.rss_before_load),
            "rss_start_bytes": bytes_json(self.rss_start),
            "rss_end_bytes": bytes_json(self.rss_end),
        });
        if let Some(m) = obj.as_object_mut() {
            self.latency.insert(m);
        }
        obj
    }

    fn print(&self) {
        let l = &self.latency;
        println!(
            "{} ({} backend, function {}, {} threads)",
            self.model,
            self.backend,
            self.function,
            sys::threads()
        );
        println!("  load        {:.1} ms", self.load.as_secs_f64() * 1e3);
        println!(
            "  latency     min {:.2} ms, median {:.2} ms, p90 {:.2} ms, mean {:.2} ms ({} runs after {} warm-up)",
            l.min_ms, l.median_ms, l.p90_ms, l.mean_ms, self.iters, self.warmup
        );
        println!(
            "  memory      peak RSS {}; RSS {} before load, {} after warm-up, {} at the end",
            mib(self.peak_rss),
            mib(self.rss_before_load),
            mib(self.rss_start),
            mib(self.rss_end)
        );
    }
}

/// Seeded pseudo-random inputs of each input's default shape: normal-ish
/// floats, small non-negative integers (valid as indices), image pixels in 0..=255.
fn random_inputs(
    features: &[FeatureDescription],
    device: &Device,
) -> Result<Vec<(String, Tensor)>> {
    let mut rng = SplitMix(0x5eed);
    let mut out = Vec::new();
    for f in features {
        let shape =
            f.ty.shape()
                .with_context(|| format!("input {:?}: a {} has no shape", f.name, f.ty.kind()))?;
        let n: usize = shape.iter().product();
        let t = match (&f.ty, f.ty.dtype()) {
            (FeatureType::Image(_), _) => {
                let v: Vec<f32> = (0..n).map(|_| (rng.next() % 256) as f32).collect();
                Tensor::from_vec(v, shape, device)?.to_dtype(DType::U8)?
            }
            (_, Some(DataType::Fp32 | DataType::Fp16 | DataType::Fp64 | DataType::Bf16)) => {
                let v: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
                Tensor::from_vec(v, shape, device)?
            }
            (_, Some(DataType::Int32 | DataType::Int64 | DataType::Int16 | DataType::Int8)) => {
                let v: Vec<i64> = (0..n).map(|_| (rng.next() % 8) as i64).collect();
                Tensor::from_vec(v, shape, device)?
            }
            (_, Some(DataType::Bool)) => {
                let v: Vec<u8> = (0..n).map(|_| (rng.next() % 2) as u8).collect();
                Tensor::from_vec(v, shape, device)?
            }
            (_, d) => bail!(
                "input {:?} ({} of {d:?}): no random values for it; pass --inputs-npz",
                f.name,
                f.ty.kind()
            ),
        };
        out.push((f.name.clone(), t));
    }
    Ok(out)
}

/// SplitMix64, for reproducible inputs without a dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Approximately standard normal (sum of four uniforms, rescaled).
    fn normal(&mut self) -> f32 {
        let u: f64 = (0..4)
            .map(|_| (self.next() >> 11) as f64 / (1u64 << 53) as f64)
            .sum();
        ((u - 2.0) * 3f64.sqrt()) as f32
    }
}
