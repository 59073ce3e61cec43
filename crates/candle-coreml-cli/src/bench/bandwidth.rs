//! The memory-bandwidth probe: how fast this machine streams a buffer from
//! memory with the benchmark's thread count, the bound on a decode step that
//! must read every weight once.

use std::time::Instant;

use anyhow::Result;
use serde_json::json;

use super::{sys, Args};

/// Best read bandwidth (bytes/s) over `passes` full reads of a buffer of
/// `bytes`, each pass split evenly over `threads` threads.
pub(super) fn measure(bytes: usize, threads: usize, passes: usize) -> f64 {
    let words = (bytes / 8).max(1 << 16);
    // Filled by the threads that read it later, so its pages are theirs.
    let mut buf = vec![0u64; words];
    let threads = threads.max(1);
    let per = words.div_ceil(threads);
    std::thread::scope(|s| {
        for (i, part) in buf.chunks_mut(per).enumerate() {
            s.spawn(move || {
                for (j, w) in part.iter_mut().enumerate() {
                    *w = (i * per + j) as u64;
                }
            });
        }
    });
    let mut best = 0f64;
    let mut sink = 0u64;
    for _ in 0..passes.max(1) {
        let t = Instant::now();
        let sums: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = buf
                .chunks(per)
                .map(|part| s.spawn(move || sum(part)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
        });
        let secs = t.elapsed().as_secs_f64();
        sink = sink.wrapping_add(sums.iter().fold(0, |a, &b| a.wrapping_add(b)));
        best = best.max((words * 8) as f64 / secs);
    }
    std::hint::black_box(sink);
    best
}

/// Wrapping sum with eight independent lanes (vectorized by the compiler).
fn sum(v: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let mut chunks = v.chunks_exact(8);
    for c in chunks.by_ref() {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(x);
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(0u64, |a, &b| a.wrapping_add(b));
    acc.iter().fold(tail, |a, &b| a.wrapping_add(b))
}

/// `bench --bandwidth` on its own.
pub(super) fn main(args: &Args) -> Result<()> {
    let bytes = args.bandwidth_mib.max(1) << 20;
    let threads = sys::threads();
    let bw = measure(bytes, threads, 5);
    if args.json {
        println!(
            "{}",
            json!({
                "bandwidth_bytes": bytes,
                "threads": threads,
                "bandwidth_gb_s": bw / 1e9,
            })
        );
    } else {
        println!(
            "read bandwidth: {:.1} GB/s ({} MiB buffer, {threads} threads, best of 5 passes)",
            bw / 1e9,
            args.bandwidth_mib
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn wrapping_sum_matches_iterator_sum() {
        let v: Vec<u64> = (0..1003).map(|i| i * 7 + u64::MAX / 3).collect();
        let want = v.iter().fold(0u64, |a, &b| a.wrapping_add(b));
        assert_eq!(super::sum(&v), want);
    }
}
