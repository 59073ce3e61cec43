//! `candle-coreml inspect` on every committed model: it must succeed, and on
//! compiled models its op histogram must equal the one Apple's compiler (or
//! our synthetic renderer, for `mlmodelc_synth`) recorded in metadata.json.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../candle-coreml/tests/fixtures")
}

fn inspect_json(model: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_candle-coreml"))
        .args(["inspect", "--json"])
        .arg(model)
        .output()
        .expect("run candle-coreml");
    assert!(
        out.status.success(),
        "inspect {} failed: {}",
        model.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("inspect --json prints JSON")
}

/// Every model file or folder under `dir` (one level down from each category).
fn models_in(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let p = e.path();
        match p.extension().and_then(|x| x.to_str()) {
            Some("mlpackage" | "mlmodel" | "mlmodelc") => found.push(p),
            _ if p.is_dir() => found.extend(models_in(&p)),
            _ => {}
        }
    }
    found.sort();
    found
}

/// `Ios16.sliceByIndex` -> `slicebyindex`: opset prefix stripped, lower-cased,
/// underscores dropped so that both spellings compare equal.
fn normalise(key: &str) -> String {
    let op = key.rsplit('.').next().unwrap_or(key);
    op.to_lowercase().replace('_', "")
}

fn histogram(v: &Value) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for (k, n) in v.as_object().expect("histogram object") {
        *out.entry(normalise(k)).or_default() += n.as_u64().expect("count");
    }
    out
}

#[test]
fn inspect_succeeds_on_every_fixture() {
    let models: Vec<PathBuf> = models_in(&fixtures())
        .into_iter()
        .filter(|p| !p.components().any(|c| c.as_os_str() == "conformance"))
        .collect();
    assert!(
        models.len() >= 20,
        "expected the committed fixtures, found {}",
        models.len()
    );
    for m in &models {
        let v = inspect_json(m);
        for key in [
            "format",
            "spec_version",
            "functions",
            "default_function",
            "inputs",
            "outputs",
            "states",
            "metadata",
            "op_histogram",
        ] {
            assert!(v.get(key).is_some(), "{}: key {key} missing", m.display());
        }
    }
}

#[test]
fn op_histogram_equals_compiled_metadata() {
    let mut checked = 0;
    for dir in ["apple", "mlmodelc_synth"] {
        for m in models_in(&fixtures().join(dir)) {
            if m.extension().and_then(|x| x.to_str()) != Some("mlmodelc") {
                continue;
            }
            let meta: Value =
                serde_json::from_str(&std::fs::read_to_string(m.join("metadata.json")).unwrap())
                    .unwrap();
            let want = histogram(&meta[0]["mlProgramOperationTypeHistogram"]);
            let got = histogram(&inspect_json(&m)["op_histogram"]);
            assert_eq!(got, want, "{}", m.display());
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} compiled models checked");
}

#[test]
fn inspect_reports_a_missing_model_clearly() {
    let out = Command::new(env!("CARGO_BIN_EXE_candle-coreml"))
        .args(["inspect", "/nonexistent/model.mlpackage"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/model.mlpackage"), "{err}");
}
