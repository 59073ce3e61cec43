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

/// Copies the folder `from` to `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dst = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dst);
        } else {
            std::fs::copy(entry.path(), &dst).unwrap();
        }
    }
}

/// A package without its weight.bin (a clone without Git LFS, a partial
/// download) is still described; loading it names the missing file.
#[test]
fn missing_weights_are_described_and_named_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("mlp.mlpackage");
    copy_dir(&fixture("mlp_fp32.mlpackage"), &pkg);
    let weights = pkg.join("Data/com.apple.CoreML/weights/weight.bin");
    std::fs::remove_file(&weights).unwrap();

    let described = candle_coreml::format::describe(&pkg).unwrap();
    let original = candle_coreml::format::describe(fixture("mlp_fp32.mlpackage")).unwrap();
    assert_eq!(described, original);
    let file = candle_coreml::format::open(&pkg).unwrap();
    assert!(file.program().is_some());

    let err = Model::builder()
        .backend(Backend::Portable)
        .load(&pkg)
        .unwrap_err();
    match &err {
        Error::MissingWeights { path, reference } => {
            assert!(path.ends_with("weights/weight.bin"), "{path:?}");
            assert_eq!(reference, "@model_path/weights/weight.bin");
        }
        other => panic!("expected MissingWeights, got {other:?}"),
    }
    assert!(err.report().contains("weight.bin"), "{}", err.report());
}

/// The stages of a pipeline keep their weights unmapped too: the package is
/// described without them, and loading it names the stage's missing file.
#[test]
fn missing_pipeline_stage_weights_are_named_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("pipeline.mlpackage");
    copy_dir(&fixture("pipeline.mlpackage"), &pkg);
    std::fs::remove_file(pkg.join("Data/com.apple.CoreML/weights/0-weight.bin")).unwrap();

    let file = candle_coreml::format::open(&pkg).unwrap();
    assert_eq!(file.body.kind(), "pipeline");
    let err = Model::builder()
        .backend(Backend::Portable)
        .load(&pkg)
        .unwrap_err();
    match &err {
        Error::MissingWeights { path, .. } => {
            assert!(path.ends_with("weights/0-weight.bin"), "{path:?}")
        }
        other => panic!("expected MissingWeights, got {other:?}"),
    }
}
