//! Per-op timing of portable predictions, switched on by the
//! `CANDLE_COREML_PROFILE` environment variable.

use std::collections::HashMap;

/// True when `CANDLE_COREML_PROFILE` is set: every run then prints its
/// slowest ops to stderr (`CANDLE_COREML_PROFILE=all`: every op).
pub(crate) fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("CANDLE_COREML_PROFILE").is_some())
}

fn every_op() -> bool {
    static ALL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ALL.get_or_init(|| std::env::var("CANDLE_COREML_PROFILE").as_deref() == Ok("all"))
}

pub(crate) fn report(function: &str, steps: &[(&str, &str, std::time::Duration)]) {
    let total: std::time::Duration = steps.iter().map(|s| s.2).sum();
    let mut by_type: HashMap<&str, std::time::Duration> = HashMap::new();
    for (t, _, d) in steps {
        *by_type.entry(t).or_default() += *d;
    }
    let mut v: Vec<_> = by_type.into_iter().collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    eprintln!(
        "profile {function}: {} steps, {:.3} ms",
        steps.len(),
        total.as_secs_f64() * 1e3
    );
    for (t, d) in v.iter().take(8) {
        eprintln!("  {:>9.3} ms  {t}", d.as_secs_f64() * 1e3);
    }
    if every_op() {
        for (t, l, d) in steps {
            eprintln!("    {:>9.3} ms  {t} {l:?}", d.as_secs_f64() * 1e3);
        }
    }
    if let Some((t, l, d)) = steps.iter().max_by_key(|s| s.2) {
        eprintln!("  slowest: {t} {l:?} {:.3} ms", d.as_secs_f64() * 1e3);
    }
}
