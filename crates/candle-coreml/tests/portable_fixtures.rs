//! The coremltools-made fixtures of `tests/fixtures/{models,compression,mlmodelc_synth}`
//! run through the public `Model` API on the portable backend, compared with
//! the numpy/torch outputs stored beside them (see tools/README.md).
//!
//! Tolerances: fp32 programs compute exactly what numpy does up to summation
//! order, so 1e-4 relative plus 1e-5 absolute; fp16 programs round every
//! intermediate to fp16 in Core ML while the reference keeps fp32 after the
//! fp16-rounded weights, so 1e-2 relative plus 1e-2 absolute.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use candle_coreml::{Backend, Error, Model};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn npz(rel: &str) -> BTreeMap<String, Tensor> {
    Tensor::read_npz(fixture(rel))
        .expect("read npz")
        .into_iter()
        .collect()
}

fn load(rel: &str) -> Model {
    Model::builder()
        .backend(Backend::Portable)
        .load(fixture(rel))
        .unwrap_or_else(|e| panic!("load {rel}: {e}"))
}

/// The arrays of `data` under `prefix` whose key is `<prefix>kind:<name>`.
fn group(data: &BTreeMap<String, Tensor>, prefix: &str, kind: &str) -> Vec<(String, Tensor)> {
    let head = format!("{prefix}{kind}:");
    data.iter()
        .filter_map(|(k, v)| k.strip_prefix(&head).map(|n| (n.to_string(), v.clone())))
        .collect()
}

fn assert_close(what: &str, got: &Tensor, want: &Tensor, rtol: f64, atol: f64) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let g: Vec<f64> = got
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let w: Vec<f64> = want
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let mut worst = 0f64;
    for (a, b) in g.iter().zip(&w) {
        let err = (a - b).abs();
        assert!(
            err <= atol + rtol * b.abs(),
            "{what}: got {a}, want {b} (err {err})"
        );
        worst = worst.max(err);
    }
    eprintln!("{what}: max abs error {worst:.3e}");
}

/// Runs one stateless case: inputs and outputs under `prefix` in `data`.
fn check_case(model: &Model, data: &BTreeMap<String, Tensor>, prefix: &str, tol: (f64, f64)) {
    let inputs = group(data, prefix, "input");
    let out = model
        .predict(inputs)
        .unwrap_or_else(|e| panic!("{prefix}: {e}"));
    let want = group(data, prefix, "output");
    assert!(!want.is_empty());
    for (name, w) in want {
        let got = out
            .get(&name)
            .unwrap_or_else(|| panic!("output {name} missing"));
        assert_close(&format!("{prefix}{name}"), got, &w, tol.0, tol.1);
    }
}

const FP32: (f64, f64) = (1e-4, 1e-5);
const FP16: (f64, f64) = (1e-2, 1e-2);

#[test]
fn mlp_in_every_container() {
    for (model, data, tol) in [
        ("models/mlp_fp32.mlpackage", "models/mlp_fp32.npz", FP32),
        (
            "models/mlp_fp32_inline.mlmodel",
            "models/mlp_fp32_inline.npz",
            FP32,
        ),
        ("models/mlp_fp16.mlpackage", "models/mlp_fp16.npz", FP16),
        (
            "models/mlp_fp16_inline.mlmodel",
            "models/mlp_fp16_inline.npz",
            FP16,
        ),
        (
            "mlmodelc_synth/mlp_fp16.mlmodelc",
            "models/mlp_fp16.npz",
            FP16,
        ),
    ] {
        check_case(&load(model), &npz(data), "", tol);
    }
}

#[test]
fn control_flow_takes_both_branches() {
    let m = load("models/control_flow.mlpackage");
    let data = npz("models/control_flow.npz");
    check_case(&m, &data, "case0/", FP32);
    check_case(&m, &data, "case1/", FP32);
}

#[test]
fn flexible_shapes_within_and_outside_their_ranges() {
    let m = load("models/flexible_range.mlpackage");
    let data = npz("models/flexible_range.npz");
    for p in ["seq1/", "seq4/", "seq16/"] {
        check_case(&m, &data, p, FP32);
    }
    let too_long = Tensor::zeros((1, 17, 16), DType::F32, &candle_core::Device::Cpu).unwrap();
    match m.predict([("x", too_long)]) {
        Err(Error::ShapeMismatch { input, got, .. }) => {
            assert_eq!(input, "x");
            assert_eq!(got, vec![1, 17, 16]);
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    let m = load("models/flexible_enumerated.mlpackage");
    let data = npz("models/flexible_enumerated.npz");
    for p in ["batch1/", "batch2/", "batch4/"] {
        check_case(&m, &data, p, FP32);
    }
    let three = Tensor::zeros((3, 16), DType::F32, &candle_core::Device::Cpu).unwrap();
    assert!(matches!(
        m.predict([("x", three)]),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn compressed_models_match_their_dense_references() {
    let dir = fixture("compression");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            n.strip_suffix(".mlpackage").map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 10, "compression fixtures: {names:?}");
    for n in names {
        let m = load(&format!("compression/{n}.mlpackage"));
        check_case(&m, &npz(&format!("compression/{n}.npz")), "", FP16);
    }
}

/// Runs the recorded steps of a stateful fixture through one `State`,
/// checking each step's outputs and the state after it.
fn check_steps(m: &Model, data: &BTreeMap<String, Tensor>) {
    let mut state = m.make_state().unwrap();
    for (name, t) in group(data, "", "state_in") {
        state.write(&name, &t).unwrap();
    }
    for step in 0.. {
        let prefix = format!("step{step}/");
        let inputs = group(data, &prefix, "input");
        if inputs.is_empty() {
            assert!(step >= 2, "too few steps");
            break;
        }
        let out = m.predict_with_state(inputs, &mut state).unwrap();
        for (name, w) in group(data, &prefix, "output") {
            assert_close(
                &format!("{prefix}{name}"),
                &out[name.as_str()],
                &w,
                FP16.0,
                FP16.1,
            );
        }
        for (name, w) in group(data, &prefix, "state_out") {
            assert_close(
                &format!("{prefix}state {name}"),
                &state.read(&name).unwrap(),
                &w,
                FP16.0,
                FP16.1,
            );
        }
    }
}

#[test]
fn stateful_models_step_through_one_state() {
    for (model, data) in [
        (
            "models/stateful_accumulator.mlpackage",
            "models/stateful_accumulator.npz",
        ),
        (
            "models/stateful_kv_cache.mlpackage",
            "models/stateful_kv_cache.npz",
        ),
        (
            "mlmodelc_synth/stateful_accumulator.mlmodelc",
            "models/stateful_accumulator.npz",
        ),
        (
            "mlmodelc_synth/stateful_kv_cache.mlmodelc",
            "models/stateful_kv_cache.npz",
        ),
    ] {
        check_steps(&load(model), &npz(data));
    }
}

#[test]
fn multifunction_functions_share_one_file() {
    for path in [
        "models/multifunction.mlpackage",
        "mlmodelc_synth/multifunction.mlmodelc",
    ] {
        let infer = load(path);
        assert_eq!(infer.function_name(), "infer", "default function");
        let data = npz("models/multifunction.npz");
        check_case(&infer, &data, "infer/", FP16);
        let prefill = infer.with_function("prefill").unwrap();
        check_case(&prefill, &data, "prefill/", FP16);
        match infer.with_function("decode") {
            Err(Error::UnknownFunction { name, available }) => {
                assert_eq!(name, "decode");
                assert!(available.contains(&"prefill".to_string()));
            }
            other => panic!("expected UnknownFunction, got {other:?}"),
        }
    }
}

/// A NeuralNetwork model and a pipeline of two ML Programs run on the
/// portable backend (translated to, and merged into, one MIL function).
#[test]
fn neural_network_and_pipeline_match_torch() {
    for name in ["neural_network", "pipeline"] {
        let ext = if name == "pipeline" {
            "mlpackage"
        } else {
            "mlmodel"
        };
        let model = load(&format!("models/{name}.{ext}"));
        check_case(&model, &npz(&format!("models/{name}.npz")), "", FP32);
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let m = load("models/mlp_fp32.mlpackage");
    let dev = candle_core::Device::Cpu;
    assert!(matches!(
        m.predict(Vec::<(String, Tensor)>::new()),
        Err(Error::MissingInput { .. })
    ));
    let x = Tensor::zeros((1, 16), DType::F32, &dev).unwrap();
    match m.predict([("x", x.clone()), ("y", x.clone())]) {
        Err(Error::UnexpectedInput { input, .. }) => assert_eq!(input, "y"),
        other => panic!("expected UnexpectedInput, got {other:?}"),
    }
    let wrong = Tensor::zeros((2, 16), DType::F32, &dev).unwrap();
    assert!(matches!(
        m.predict([("x", wrong)]),
        Err(Error::ShapeMismatch { .. })
    ));
    let ints = Tensor::zeros((1, 16), DType::U8, &dev).unwrap();
    assert!(matches!(
        m.predict([("x", ints)]),
        Err(Error::DtypeMismatch { .. })
    ));
    // f64 converts; NaN propagates as a value.
    let nan = Tensor::full(f64::NAN, (1, 16), &dev).unwrap();
    let out = m.predict([("x", nan)]).unwrap();
    let v: Vec<f32> = out["out"].flatten_all().unwrap().to_vec1().unwrap();
    assert!(v.iter().all(|x| x.is_nan()));
}

#[test]
fn model_serves_concurrent_predictions() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Model>();
    let m = load("models/mlp_fp32.mlpackage");
    let data = npz("models/mlp_fp32.npz");
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..20 {
                    check_case(&m, &data, "", FP32);
                }
            });
        }
    });
}
