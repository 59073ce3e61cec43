//! `candle-coreml chat --prompt ... --json` on an ANEMLL fixture bundle of
//! candle-coreml-llm, checked against its transformers reference.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../candle-coreml-llm/tests/fixtures")
}

/// The first reference with a chat case made of a system and a user message.
fn chat_case() -> (String, serde_json::Value) {
    let dir = fixtures().join("references");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    for p in paths {
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        for c in r["cases"].as_array().unwrap() {
            let m = c["messages"].as_array();
            let roles: Vec<&str> = m
                .map(|m| m.iter().map(|x| x["role"].as_str().unwrap()).collect())
                .unwrap_or_default();
            if roles == ["system", "user"]
                && c["template_kwargs"]["enable_thinking"] == serde_json::Value::Bool(false)
            {
                return (r["bundle"].as_str().unwrap().to_string(), c.clone());
            }
        }
    }
    panic!(
        "no system+user chat case without thinking in {}",
        dir.display()
    );
}

#[test]
fn one_shot_json_matches_the_reference() {
    let (bundle, case) = chat_case();
    let m = case["messages"].as_array().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_candle-coreml"))
        .arg("chat")
        .arg(fixtures().join("bundles").join(&bundle))
        .args([
            "--backend",
            "portable",
            "--temperature",
            "0",
            "--max-tokens",
            "8",
            "--no-think",
        ])
        .args(["--system", m[0]["content"].as_str().unwrap()])
        .args(["--prompt", m[1]["content"].as_str().unwrap()])
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    for key in [
        "prompt_ids",
        "generated_ids",
        "text",
        "ttft_ms",
        "prefill_tokens_per_s",
        "decode_tokens_per_s",
        "stop_reason",
    ] {
        assert!(j.get(key).is_some(), "missing {key}: {j}");
    }
    assert_eq!(j["prompt_ids"], case["prompt_ids"]);
    let greedy = case["greedy_ids"].as_array().unwrap();
    assert_eq!(j["generated_ids"].as_array().unwrap(), &greedy[..8]);
    assert_eq!(j["stop_reason"], "max_tokens");
    assert!(j["ttft_ms"].as_f64().unwrap() > 0.0);
    assert!(j["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_missing_bundle_is_an_error_not_a_panic() {
    let out = Command::new(env!("CARGO_BIN_EXE_candle-coreml"))
        .args(["chat", "no/such/bundle/here", "--prompt", "hi"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no/such/bundle/here") && !err.contains("panicked"),
        "{err}"
    );
}
