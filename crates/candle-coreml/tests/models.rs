//! Whole models converted from torch by coremltools (`tests/fixtures/torch`,
//! made by `tools/gen_model_fixtures.py`), run through the portable backend
//! and compared with torch's own outputs.
//!
//! Tolerances come from each fixture's `<name>.json` and are checked as
//! `|got - want| <= atol + rtol * |want|`:
//!
//! - fp32 programs (`rtol = atol = 1e-4`): the program computes what torch
//!   computed, in the same precision, so only the order of float summations
//!   differs (conv/matmul accumulation, softmax and layer-norm reductions);
//!   after a few layers that stays well under 1e-4 relative.
//! - fp16 programs (`rtol = atol = 1e-2`): coremltools rounds every weight to
//!   fp16 (11-bit mantissa, about 5e-4 relative each) and the expected values
//!   are torch's fp32 outputs of the unrounded model, so a few layers of
//!   rounded weights add up to around 1e-3..1e-2; Core ML itself would also
//!   compute activations in fp16 (checked here with
//!   `ComputePrecision::Program`).

use candle_core::Tensor;
use candle_coreml::{Backend, ComputePrecision, Model};

mod torch_common;
use torch_common::{assert_close, fixture_json, fixtures, npz, tolerance};

/// Runs `<name>.mlpackage` on the npz inputs and compares every output.
fn run_feedforward(name: &str, precision: ComputePrecision) {
    let path = fixtures().join(format!("{name}.mlpackage"));
    let model = Model::builder()
        .backend(Backend::Portable)
        .device(torch_common::test_device())
        .precision(precision)
        .load(&path)
        .unwrap_or_else(|e| panic!("{name}: load: {e}"));
    let arrays = npz(name);
    let inputs: Vec<(&str, &Tensor)> = arrays
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("input:")?, v)))
        .collect();
    let expected: Vec<(&str, &Tensor)> = arrays
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("output:")?, v)))
        .collect();
    assert!(
        !inputs.is_empty() && !expected.is_empty(),
        "{name}.npz: no input:/output: arrays"
    );
    let outputs = model
        .predict(inputs)
        .unwrap_or_else(|e| panic!("{name}: predict: {e}"));
    assert_eq!(outputs.len(), expected.len(), "{name}: number of outputs");
    let tol = tolerance(name);
    for (out, want) in expected {
        let got = outputs
            .get(out)
            .unwrap_or_else(|| panic!("{name}: no output {out:?}"));
        assert_close(&format!("{name}: {out}"), got, want, tol);
    }
}

/// Feed-forward fixtures; each gets its own test so one failure (a missing
/// op, say) does not hide the others.
const FEEDFORWARD: &[&str] = &[
    "mlp_fp32",
    "mlp_fp16",
    "cnn_fp32",
    "cnn_fp16",
    "resnet_fp32",
    "mobilenet_fp32",
    "bert_fp32",
    "llama_fp32",
];

macro_rules! feedforward_tests {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                run_feedforward($name, ComputePrecision::Float32);
            }
        )*
    };
}

feedforward_tests! {
    mlp_fp32 => "mlp_fp32",
    mlp_fp16 => "mlp_fp16",
    cnn_fp32 => "cnn_fp32",
    cnn_fp16 => "cnn_fp16",
    resnet_fp32 => "resnet_fp32",
    mobilenet_fp32 => "mobilenet_fp32",
    bert_fp32 => "bert_fp32",
    llama_fp32 => "llama_fp32",
}

/// fp16 programs computed in fp16, as Core ML does (same fp16 tolerance).
#[test]
fn mlp_fp16_program_precision() {
    run_feedforward("mlp_fp16", ComputePrecision::Program);
}

/// fp16 conv net computed in fp16.
#[test]
fn cnn_fp16_program_precision() {
    run_feedforward("cnn_fp16", ComputePrecision::Program);
}

/// Every feed-forward fixture in the folder has a test above (stateful ones
/// are in `stateful.rs`), and every JSON names its precision.
#[test]
fn every_feedforward_fixture_is_tested() {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(fixtures()).expect("fixtures/torch") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name")
            .to_string();
        let j = fixture_json(&name);
        assert!(
            matches!(j["precision"].as_str(), Some("fp32" | "fp16")),
            "{name}.json: precision"
        );
        if j["kind"] == "feedforward" {
            found.push(name);
        }
    }
    found.sort();
    let mut listed: Vec<String> = FEEDFORWARD.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(found, listed);
}
