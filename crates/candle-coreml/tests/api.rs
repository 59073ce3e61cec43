//! The public API's contract, independent of any model's numbers: the
//! native backend off Apple platforms, error printing, typed errors.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_coreml::{Backend, Error, Model};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(name)
}

/// Off Apple platforms, `Backend::Native` is a typed error, never a panic,
/// and `Auto` picks the portable backend.
#[cfg(not(target_vendor = "apple"))]
#[test]
fn native_backend_off_apple_is_unavailable() {
    const { assert!(!candle_coreml::native::AVAILABLE) };
    let path = fixture("mlp_fp32.mlpackage");
    match Model::builder().backend(Backend::Native).load(&path) {
        Err(Error::BackendUnavailable { backend, reason }) => {
            assert_eq!(backend, "native");
            assert!(reason.contains("Apple"), "{reason}");
        }
        other => panic!("expected BackendUnavailable, got {other:?}"),
    }
    let auto = Model::load(&path).unwrap();
    assert_eq!(auto.backend(), Backend::Portable);
}

/// An I/O error prints its cause once, through the source chain.
#[test]
fn io_error_prints_its_cause_once() {
    let path = "/nonexistent/model.mlpackage";
    let os = std::fs::metadata(path).unwrap_err().to_string();
    let err = Model::load(path).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains(path), "{err}");
    assert!(!err.to_string().contains(&os), "{err}");
    for printed in [err.report(), format!("{:#}", anyhow::Error::from(err))] {
        assert!(printed.contains(path), "{printed}");
        assert_eq!(printed.matches(&os).count(), 1, "{printed}");
    }
}

/// An error without a cause reports just its own message.
#[test]
fn error_without_cause_reports_itself() {
    let model = Model::builder()
        .backend(Backend::Portable)
        .load(fixture("mlp_fp32.mlpackage"))
        .unwrap();
    let name = model.inputs()[0].name.clone();
    let bad = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    let err = model.predict([(name.as_str(), &bad)]).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err:?}");
    assert_eq!(err.report(), err.to_string());
}

/// `MissingInput` names the function; `predict_one` on a model without one
/// input and one output is a typed error.
#[test]
fn missing_input_and_predict_one_are_typed() {
    let model = Model::builder()
        .backend(Backend::Portable)
        .load(fixture("multifunction.mlpackage"))
        .unwrap();
    let err = model.predict(Vec::<(&str, Tensor)>::new()).unwrap_err();
    match &err {
        Error::MissingInput { function, .. } => assert_eq!(function, model.function_name()),
        other => panic!("expected MissingInput, got {other:?}"),
    }
    let kv = Model::builder()
        .backend(Backend::Portable)
        .load(fixture("stateful_kv_cache.mlpackage"))
        .unwrap();
    assert_ne!(kv.inputs().len(), 1, "the fixture takes x and pos");
    let x = Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        kv.predict_one(&x),
        Err(Error::NotSingleInputOutput { .. })
    ));
}
