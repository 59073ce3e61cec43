//! Stateful and multifunction figures of the portable backend:
//!
//! 1. Decode-step time of a 32 MiB KV-cache update at cache position 1 and
//!    at ctx-1 (their ratio should be near 1: the cache is updated in place),
//!    next to the time of one copy of the whole cache (what a copying update
//!    would pay per step).
//! 2. Resident memory of a two-function model (shared 8 MiB weight) loaded
//!    with one function, then with both.
//!
//! The models come from `tools/gen_bench_models.py` (not committed):
//!
//! ```sh
//! tools/.venv/bin/python tools/gen_bench_models.py target/bench-models
//! cargo bench -p candle-coreml --bench state_and_functions
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use candle_coreml::{Backend, Model};

fn models_dir() -> PathBuf {
    std::env::var_os("BENCH_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-models")
        })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

fn decode_steps(dir: &Path) -> candle_coreml::Result<()> {
    let model = Model::builder()
        .backend(Backend::Portable)
        .load(dir.join("kv_update.mlpackage"))?;
    let cache = &model.states()[0];
    let shape = cache.ty.shape().unwrap_or_default();
    let ctx = shape[2];
    let mut state = model.make_state()?;
    let x = Tensor::ones((16, 8, 1, 64), DType::F16, &Device::Cpu)?;
    let mut time_at = |pos: i32| -> candle_coreml::Result<Duration> {
        let p = Tensor::new(&[pos], &Device::Cpu)?;
        let mut times = Vec::new();
        for i in 0..60 {
            let t0 = Instant::now();
            let out = model.predict_with_state([("x", &x), ("pos", &p)], &mut state)?;
            let el = t0.elapsed();
            assert_eq!(out["row"].dims(), &[16, 8, 1, 64]);
            if i >= 10 {
                times.push(el);
            }
        }
        Ok(median(times))
    };
    let first = time_at(1)?;
    let last = time_at(ctx as i32 - 1)?;
    let buf = state.read(&cache.name)?;
    let mut copies = Vec::new();
    for _ in 0..20 {
        let t0 = Instant::now();
        let c = buf.copy()?;
        copies.push(t0.elapsed());
        drop(c);
    }
    let copy = median(copies);
    println!(
        "kv_update: cache {shape:?} fp16 ({:.0} MiB as stored here in f32)",
        buf.elem_count() as f64 * 4.0 / 1048576.0
    );
    println!(
        "  decode step at pos 1:       {:>9.1} us (median of 50)",
        first.as_secs_f64() * 1e6
    );
    println!(
        "  decode step at pos {}:    {:>9.1} us",
        ctx - 1,
        last.as_secs_f64() * 1e6
    );
    println!(
        "  ratio ctx-1 / 1:            {:>9.2}",
        last.as_secs_f64() / first.as_secs_f64()
    );
    println!(
        "  one copy of the whole cache:{:>9.1} us (what a copying update would add per step)",
        copy.as_secs_f64() * 1e6
    );
    Ok(())
}

fn shared_weights(dir: &Path) -> candle_coreml::Result<()> {
    let before = rss_mib();
    let infer = Model::builder()
        .backend(Backend::Portable)
        .load(dir.join("shared_weights.mlpackage"))?;
    let one = rss_mib();
    let prefill = infer.with_function("prefill")?;
    let two = rss_mib();
    let x = Tensor::zeros((1, 64, 2048), DType::F16, &Device::Cpu)?;
    prefill.predict([("x", &x)])?;
    println!("shared_weights: 2048x2048 fp16 weight (8 MiB in the file, 16 MiB as f32)");
    println!("  RSS before load:            {before:>8.1} MiB");
    println!(
        "  after loading `infer`:      {one:>8.1} MiB (+{:.1})",
        one - before
    );
    println!(
        "  after adding `prefill`:     {two:>8.1} MiB (+{:.1})",
        two - one
    );
    Ok(())
}

fn main() {
    let dir = models_dir();
    if !dir.join("kv_update.mlpackage").exists() {
        eprintln!(
            "bench models not found in {}: run tools/.venv/bin/python tools/gen_bench_models.py target/bench-models",
            dir.display()
        );
        return;
    }
    if let Err(e) = shared_weights(&dir).and_then(|()| decode_steps(&dir)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
