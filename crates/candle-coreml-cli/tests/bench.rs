//! `candle-coreml bench` end to end: the JSON keys the issue promises, and
//! errors for bad targets. Timings are not checked (speed is never asserted
//! in tests); only that they are sensible numbers.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_candle-coreml"))
        .arg("bench")
        .args(args)
        .current_dir(root())
        .output()
        .expect("run candle-coreml")
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

fn positive(v: &serde_json::Value, key: &str) -> f64 {
    let x = v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {key:?} in {v}"));
    assert!(x.is_finite() && x > 0.0, "{key} = {x}");
    x
}

#[test]
fn model_json_has_latency_and_memory() {
    let out = bench(&[
        "crates/candle-coreml/tests/fixtures/models/mlp_fp32.mlpackage",
        "--iters",
        "5",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--json",
    ]);
    let v = json_of(&out);
    let (min, median, p90) = (
        positive(&v, "min_ms"),
        positive(&v, "median_ms"),
        positive(&v, "p90_ms"),
    );
    assert!(min <= median && median <= p90, "{v}");
    positive(&v, "load_ms");
    positive(&v, "peak_rss_bytes");
    assert_eq!(v["iters"], 5);
    assert_eq!(v["threads"], 1);
}

#[test]
fn bundle_json_has_token_rates() {
    let out = bench(&[
        "assets/demo-chat",
        "--prompt-tokens",
        "12",
        "--gen-tokens",
        "6",
        "--iters",
        "1",
        "--warmup",
        "0",
        "--json",
    ]);
    let v = json_of(&out);
    for key in [
        "load_ms",
        "peak_rss_bytes",
        "ttft_ms",
        "prefill_tokens_per_s",
        "decode_tokens_per_s",
        "min_ms",
        "median_ms",
        "p90_ms",
    ] {
        positive(&v, key);
    }
    assert_eq!(v["prompt_tokens"], 12);
    assert_eq!(v["generated_tokens"], 6);
}

#[test]
fn bad_targets_are_clear_errors() {
    let out = bench(&["no/such/model.mlpackage"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no/such/model.mlpackage"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let out = bench(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bandwidth"));
}
