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
        .device(torch_common::test_device())
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

/// A NeuralNetwork model file of one layer `x -> y` (inputs and outputs `[4]`).
fn one_layer_model(dir: &Path, layer: coreml_proto::proto::neural_network_layer::Layer) -> PathBuf {
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
        layer: Some(layer),
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
            array_input_shape_mapping: 1,
            ..Default::default()
        })),
        ..Default::default()
    };
    let path = dir.join("one_layer.mlmodel");
    std::fs::write(&path, model.encode_to_vec()).expect("write model");
    path
}

/// A layer the portable backend cannot run is named in a typed error at load.
#[test]
fn unsupported_layers_are_named_at_load() {
    use coreml_proto::proto as pb;
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = one_layer_model(
        tmp.path(),
        pb::neural_network_layer::Layer::Custom(pb::CustomLayerParams {
            class_name: "MyLayer".into(),
            ..Default::default()
        }),
    );
    let err = Model::builder()
        .backend(Backend::Portable)
        .device(torch_common::test_device())
        .load(&path)
        .expect_err("a custom layer cannot run");
    // Printed once: the whole story is in the message, nothing in source().
    assert_eq!(err.report(), err.to_string());
    match err {
        Error::UnsupportedLayers { path: p, layers } => {
            assert_eq!(p, path);
            assert_eq!(layers.len(), 1, "{layers:?}");
            assert_eq!(
                (layers[0].layer_type, layers[0].layer.as_str()),
                ("custom", "mystery")
            );
            assert!(layers[0].what.contains("MyLayer"), "{layers:?}");
        }
        other => panic!("expected UnsupportedLayers, got {other:?}"),
    }
}

/// Sizes read from the file that the file's data does not back are typed
/// errors naming the layer, not panics or huge allocations.
#[test]
fn hostile_sizes_are_errors() {
    use coreml_proto::proto as pb;
    use pb::neural_network_layer::Layer as L;
    let tmp = tempfile::tempdir().expect("tempdir");
    let few = || {
        Some(pb::WeightParams {
            float_value: vec![1.0; 4],
            ..Default::default()
        })
    };
    let layers = [
        L::InnerProduct(pb::InnerProductLayerParams {
            input_channels: u64::MAX / 2,
            output_channels: 3,
            weights: few(),
            ..Default::default()
        }),
        L::EmbeddingNd(pb::EmbeddingNdLayerParams {
            vocab_size: 1 << 40,
            embedding_size: 1 << 40,
            weights: few(),
            ..Default::default()
        }),
        L::Convolution(pb::ConvolutionLayerParams {
            output_channels: 1 << 20,
            kernel_channels: 1 << 20,
            kernel_size: vec![1 << 20, 1 << 20],
            weights: few(),
            ..Default::default()
        }),
        L::InnerProduct(pb::InnerProductLayerParams {
            input_channels: 4,
            output_channels: 4,
            weights: Some(pb::WeightParams {
                raw_value: vec![0; 3],
                quantization: Some(pb::QuantizationParams {
                    number_of_bits: 8,
                    quantization_type: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    ];
    for layer in layers {
        let path = one_layer_model(tmp.path(), layer);
        match Model::builder().backend(Backend::Portable).load(&path) {
            Err(Error::InvalidLayer { layer, message, .. }) => {
                assert_eq!(layer, "mystery", "{message}");
            }
            other => panic!("expected InvalidLayer, got {other:?}"),
        }
    }
}
