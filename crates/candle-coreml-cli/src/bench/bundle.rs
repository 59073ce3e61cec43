//! `bench BUNDLE`: load time, peak memory, time to first token, prefill and
//! decode speed of an ANEMLL bundle, and the decode floor that the memory
//! bandwidth implies for the weights a decode step reads.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use candle_coreml_llm::files::{BundleFiles, PartFiles};
use candle_coreml_llm::{GenerateParams, Llm, LoadOptions, Stats};
use serde_json::{json, Value};

use super::report::{bytes_json, median, mib, Latency};
use super::{bandwidth, sys, Args};
use crate::chat::load_llm;
use crate::run::parse_device;

/// Text the prompt is cut from (repeated as needed).
const PROMPT_TEXT: &str = "The for statement is used to iterate over the elements of a \
    sequence (such as a string, tuple or list) or other iterable object. The expression list \
    is evaluated once; it should yield an iterable object. An iterator is created for the \
    result of the expression list. The suite is then executed once for each item provided by \
    the iterator, in the order returned by the iterator. ";

pub(super) fn main(args: &Args, dir: &Path) -> Result<()> {
    let files = BundleFiles::discover(dir).with_context(|| format!("reading {}", dir.display()))?;
    let sizes = BundleSizes::of(&files)?;
    let opts = LoadOptions {
        backend: args.backend.into(),
        device: parse_device(&args.device)?,
        precision: args.precision.into(),
        progress: !args.json,
        ..Default::default()
    };
    let rss_before_load = sys::current_rss();
    let t0 = Instant::now();
    let llm = load_llm(dir, &opts)?;
    let load = t0.elapsed();
    let ids = prompt_ids(&llm, args.prompt_tokens)?;
    if ids.len() + args.gen_tokens + 1 > llm.context_length() {
        bail!(
            "{} prompt + {} generated tokens do not fit the context of {}",
            ids.len(),
            args.gen_tokens,
            llm.context_length()
        );
    }
    let params = GenerateParams {
        max_tokens: Some(args.gen_tokens),
        ignore_eos: true,
        ..Default::default()
    };
    let iters = args.iters.unwrap_or(3);
    let bar = sys::progress((args.warmup + iters) as u64, "generate", args.json);
    let mut runs = Vec::new();
    let mut steps = Vec::new();
    let mut rss_start = None;
    for i in 0..args.warmup + iters {
        if i == args.warmup {
            rss_start = sys::current_rss();
        }
        let (stats, step_times) = generate(&llm, &ids, &params)?;
        if i >= args.warmup {
            runs.push(stats);
            steps.extend(step_times);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let rss_end = sys::current_rss();
    let peak_rss = sys::peak_rss();
    // Measured after the peak RSS is read: the probe allocates its own buffer.
    let bw = bandwidth::measure(sizes.per_token as usize, sys::threads(), 5);
    let r = BundleReport {
        dir: dir.display().to_string(),
        load,
        runs,
        steps: Latency::of(&steps),
        prompt_tokens: ids.len(),
        sizes,
        bandwidth: bw,
        rss: [rss_before_load, rss_start, rss_end, peak_rss],
    };
    if args.json {
        println!("{}", r.json());
    } else {
        r.print();
    }
    Ok(())
}

/// `n` token ids of English text.
fn prompt_ids(llm: &Llm, n: usize) -> Result<Vec<u32>> {
    let once = llm.tokenizer().encode(PROMPT_TEXT, false)?;
    if once.is_empty() {
        bail!("the bundle's tokenizer gives no tokens for the prompt text");
    }
    Ok(once.iter().copied().cycle().take(n.max(1)).collect())
}

/// One generation from a fresh session: its figures and the time of each
/// decoding step after the first token.
fn generate(
    llm: &Arc<Llm>,
    ids: &[u32],
    params: &GenerateParams,
) -> Result<(Stats, Vec<Duration>)> {
    let mut session = llm.session()?;
    let mut generation = session.generate(ids.to_vec(), params)?;
    let mut steps = Vec::new();
    let mut last: Option<Instant> = None;
    for ev in generation.by_ref() {
        ev?;
        let now = Instant::now();
        if let Some(t) = last {
            steps.push(now - t);
        }
        last = Some(now);
    }
    Ok((generation.stats().clone(), steps))
}

/// Bytes of a bundle on disk.
struct BundleSizes {
    /// Every model file.
    models: u64,
    /// What a decode step reads: the FFN chunks and the LM head (the
    /// embeddings give one row), or the whole monolithic model.
    per_token: u64,
}

impl BundleSizes {
    fn of(files: &BundleFiles) -> Result<Self> {
        let models = files
            .model_paths()
            .iter()
            .map(|p| du(p))
            .sum::<Result<u64>>()?;
        let per_token = match &files.parts {
            PartFiles::Chunked {
                chunks, lm_head, ..
            } => chunks.iter().map(|p| du(p)).sum::<Result<u64>>()? + du(lm_head)?,
            PartFiles::Monolithic { model } => du(model)?,
        };
        Ok(Self { models, per_token })
    }
}

/// Size of a file, or of every file under a folder.
fn du(p: &Path) -> Result<u64> {
    let meta = std::fs::metadata(p).with_context(|| format!("reading {}", p.display()))?;
    if meta.is_file() {
        return Ok(meta.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(p).with_context(|| format!("reading {}", p.display()))? {
        total += du(&entry?.path())?;
    }
    Ok(total)
}

struct BundleReport {
    dir: String,
    load: Duration,
    runs: Vec<Stats>,
    steps: Latency,
    prompt_tokens: usize,
    sizes: BundleSizes,
    /// Read bandwidth in bytes/s over a buffer of `sizes.per_token` bytes.
    bandwidth: f64,
    /// RSS before load, after warm-up, at the end; peak.
    rss: [Option<u64>; 4],
}

impl BundleReport {
    fn figure(&self, f: impl Fn(&Stats) -> f64) -> f64 {
        median(&self.runs.iter().map(f).collect::<Vec<_>>())
    }

    fn floor(&self) -> f64 {
        self.bandwidth / self.sizes.per_token.max(1) as f64
    }

    fn json(&self) -> Value {
        let decode = self.figure(Stats::decode_tokens_per_s);
        let mut obj = json!({
            "bundle": self.dir,
            "threads": sys::threads(),
            "load_ms": self.load.as_secs_f64() * 1e3,
            "runs": self.runs.len(),
            "prompt_tokens": self.prompt_tokens,
            "generated_tokens": self.runs.first().map_or(0, |s| s.generated_tokens),
            "ttft_ms": self.figure(|s| s.ttft.as_secs_f64() * 1e3),
            "prefill_tokens_per_s": self.figure(Stats::prefill_tokens_per_s),
            "decode_tokens_per_s": decode,
            "model_bytes": self.sizes.models,
            "weight_bytes_per_token": self.sizes.per_token,
            "bandwidth_gb_s": self.bandwidth / 1e9,
            "decode_floor_tokens_per_s": self.floor(),
            "decode_of_floor": decode / self.floor().max(f64::MIN_POSITIVE),
            "peak_rss_bytes": bytes_json(self.rss[3]),
            "rss_before_load_bytes": bytes_json(self.rss[0]),
            "rss_start_bytes": bytes_json(self.rss[1]),
            "rss_end_bytes": bytes_json(self.rss[2]),
        });
        if let Some(m) = obj.as_object_mut() {
            // Latency of one decoding step (one token).
            self.steps.insert(m);
        }
        obj
    }

    fn print(&self) {
        let decode = self.figure(Stats::decode_tokens_per_s);
        println!("{} ({} threads)", self.dir, sys::threads());
        println!("  load        {:.1} ms", self.load.as_secs_f64() * 1e3);
        println!(
            "  prompt      {} tokens: ttft {:.1} ms, prefill {:.1} tok/s",
            self.prompt_tokens,
            self.figure(|s| s.ttft.as_secs_f64() * 1e3),
            self.figure(Stats::prefill_tokens_per_s)
        );
        println!(
            "  decode      {decode:.2} tok/s; step min {:.2} ms, median {:.2} ms, p90 {:.2} ms (median of {} runs)",
            self.steps.min_ms,
            self.steps.median_ms,
            self.steps.p90_ms,
            self.runs.len()
        );
        println!(
            "  floor       {:.1} tok/s: {:.1} MB read per token at {:.1} GB/s ({:.0}% reached)",
            self.floor(),
            self.sizes.per_token as f64 / 1e6,
            self.bandwidth / 1e9,
            100.0 * decode / self.floor().max(f64::MIN_POSITIVE)
        );
        println!(
            "  memory      peak RSS {} for {} of model files; RSS {} before load, {} after warm-up, {} at the end",
            mib(self.rss[3]),
            mib(Some(self.sizes.models)),
            mib(self.rss[0]),
            mib(self.rss[1]),
            mib(self.rss[2])
        );
    }
}
