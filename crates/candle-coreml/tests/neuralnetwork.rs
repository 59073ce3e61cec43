//! Whole NeuralNetwork models converted from torch (`tests/fixtures/neuralnetwork`,
//! made by tools/gen_nn_models.py) against torch's own outputs: a CNN, stacked
//! LSTMs, a GRU (a `loop` layer), a transformer encoder block, flexible input
//! shapes, an image input with preprocessing, classifiers and a pipeline
//! classifier, in `.mlmodel` and `.mlpackage` containers.

mod torch_common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use candle_coreml::neuralnetwork::ClassLabels;
use candle_coreml::{Backend, Error, Model};
use torch_common::{assert_close, Tolerance};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/neuralnetwork")
}

fn meta(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir().join(format!("{name}.json"))).expect("fixture json");
    serde_json::from_str(&text).expect("fixture json")
}

fn arrays(name: &str) -> BTreeMap<String, Tensor> {
    Tensor::read_npz(dir().join(format!("{name}.npz")))
        .expect("fixture npz")
        .into_iter()
        .collect()
}

fn load(file: &str) -> Model {
    Model::builder()
        .backend(Backend::Portable)
        .load(dir().join(file))
        .unwrap_or_else(|e| panic!("load {file}: {e}"))
}

/// Runs `model` on the arrays under `prefix` and compares every output.
fn check(model: &Model, data: &BTreeMap<String, Tensor>, prefix: &str, tol: Tolerance) {
    let pick = |kind: &str| -> Vec<(String, Tensor)> {
        let head = format!("{prefix}{kind}:");
        data.iter()
            .filter_map(|(k, v)| k.strip_prefix(&head).map(|n| (n.to_string(), v.clone())))
            .collect()
    };
    let out = model
        .predict(pick("input"))
        .unwrap_or_else(|e| panic!("{prefix}: {e}"));
    let want = pick("output");
    assert!(!want.is_empty());
    for (name, w) in want {
        let got = out
            .get(&name)
            .unwrap_or_else(|| panic!("{prefix}output {name} missing"));
        assert_close(&format!("{prefix}{name}"), got, &w, tol);
    }
}

fn run_fixture(name: &str) {
    let m = meta(name);
    let tol = Tolerance {
        rtol: m["rtol"].as_f64().expect("rtol"),
        atol: m["atol"].as_f64().expect("atol"),
    };
    let data = arrays(name);
    let file = m["file"].as_str().expect("file");
    let mut files = vec![file.to_string()];
    let package = format!("{name}.mlpackage");
    if dir().join(&package).exists() {
        files.push(package);
    }
    for f in files {
        let model = load(&f);
        match m["cases"].as_u64().unwrap_or(0) {
            0 => check(&model, &data, "", tol),
            n => (0..n).for_each(|k| check(&model, &data, &format!("case{k}/"), tol)),
        }
    }
}

#[test]
fn cnn_in_both_containers() {
    run_fixture("cnn");
}

#[test]
fn stacked_lstms() {
    run_fixture("lstm");
}

#[test]
fn gru_as_a_loop_layer() {
    run_fixture("gru");
}

#[test]
fn transformer_encoder_block() {
    run_fixture("transformer");
}

#[test]
fn flexible_inputs_and_runtime_reshape_targets() {
    run_fixture("flexible_range");
    run_fixture("flexible_enumerated");
}

#[test]
fn image_input_with_preprocessing() {
    run_fixture("image_input");
}

#[test]
fn classifiers_give_label_and_probabilities() {
    run_fixture("classifier");
    run_fixture("classifier_int");
    let labels = |f: &str| load(f).file().and_then(|f| f.class_labels()).cloned();
    assert_eq!(
        labels("classifier.mlmodel"),
        Some(ClassLabels::Strings(
            ["cat", "dog", "owl", "bee", "ant"]
                .map(String::from)
                .to_vec()
        ))
    );
    assert_eq!(
        labels("classifier_int.mlmodel"),
        Some(ClassLabels::Ints(vec![3, 14, 15, 92, 65]))
    );
}

#[test]
fn pipeline_classifier_runs_its_stages_in_order() {
    run_fixture("pipeline_classifier");
    let m = load("pipeline_classifier.mlmodel");
    assert_eq!(
        m.file().and_then(|f| f.class_labels()).cloned(),
        Some(ClassLabels::Strings(
            ["low", "mid", "high"].map(String::from).to_vec()
        ))
    );
}

/// A layer the portable backend cannot run is named in a typed error at load.
#[test]
fn unsupported_layers_are_named_at_load() {
    use coreml_proto::proto as pb;
    use prost::Message;
    let array = |name: &str| pb::FeatureDescription {
        name: name.into(),
        r#type: Some(pb::FeatureType {
            r#type: Some(pb::feature_type::Type::MultiArrayType(
                pb::ArrayFeatureType {
                    shape: vec![4],
                    data_type: 65568,
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        ..Default::default()
    };
    let layer = pb::NeuralNetworkLayer {
        name: "mystery".into(),
        input: vec!["x".into()],
        output: vec!["y".into()],
        layer: Some(pb::neural_network_layer::Layer::Custom(
            pb::CustomLayerParams {
                class_name: "MyLayer".into(),
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    let model = pb::Model {
        specification_version: 4,
        description: Some(pb::ModelDescription {
            input: vec![array("x")],
            output: vec![array("y")],
            ..Default::default()
        }),
        r#type: Some(pb::model::Type::NeuralNetwork(pb::NeuralNetwork {
            layers: vec![layer],
            ..Default::default()
        })),
        ..Default::default()
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("custom.mlmodel");
    std::fs::write(&path, model.encode_to_vec()).expect("write");
    match Model::builder().backend(Backend::Portable).load(&path) {
        Err(Error::Unsupported { what, backend }) => {
            assert_eq!(backend, "portable");
            assert!(
                what.contains("custom") && what.contains("mystery") && what.contains("MyLayer"),
                "{what}"
            );
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}
