//! Threads, resident memory and the progress bar of `bench`.

use std::io::IsTerminal;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Makes candle (its rayon pools, its barrier pool, gemm) and our kernels use
/// `n` threads. candle 0.11 reads `RAYON_NUM_THREADS` for rayon and gemm and
/// `CANDLE_NUM_THREADS` (falling back to the former) for its barrier pool,
/// each when first used; this runs before any candle op.
pub(super) fn set_threads(n: usize) -> Result<()> {
    if n == 0 {
        bail!("--threads must be at least 1");
    }
    // No other thread exists yet: `bench` calls this first.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    Ok(())
}

/// The thread count candle uses.
pub(super) fn threads() -> usize {
    candle_core::utils::get_num_threads()
}

/// A `VmHWM:`/`VmRSS:` line of /proc/self/status, in bytes.
#[cfg(target_os = "linux")]
fn proc_status(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Peak resident memory of this process so far, in bytes.
#[cfg(target_os = "linux")]
pub(super) fn peak_rss() -> Option<u64> {
    proc_status("VmHWM:")
}

/// Resident memory now, in bytes.
#[cfg(target_os = "linux")]
pub(super) fn current_rss() -> Option<u64> {
    proc_status("VmRSS:")
}

/// Peak resident memory of this process so far, in bytes.
#[cfg(not(target_os = "linux"))]
pub(super) fn peak_rss() -> Option<u64> {
    // SAFETY: getrusage only writes the zeroed struct we pass it.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) != 0 {
            return None;
        }
        u
    };
    let max = u64::try_from(usage.ru_maxrss).ok()?;
    // macOS reports bytes, the BSDs kilobytes.
    Some(if cfg!(target_vendor = "apple") {
        max
    } else {
        max * 1024
    })
}

/// Resident memory now (not available here without platform APIs).
#[cfg(not(target_os = "linux"))]
pub(super) fn current_rss() -> Option<u64> {
    None
}

/// A progress bar on stderr, drawn only when stderr is a terminal and the
/// output is not JSON.
pub(super) fn progress(len: u64, what: &str, json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}
