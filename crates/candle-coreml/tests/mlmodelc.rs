//! The `.mlmodelc` reader on Apple-compiled samples (checked against the
//! files' own metadata.json, which Apple's compiler wrote) and on small
//! hand-made folders for multifunction, stateful, flexible, pipeline and
//! NeuralNetwork layouts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_coreml::description::{DimRange, FeatureType, ShapeFlexibility};
use candle_coreml::format::{ModelBody, ModelFormat};
use candle_coreml::mil::DataType;
use candle_coreml::Error;

/// `mlmodelc::read` followed by `map_weights` (weights mapped and checked).
fn read_mapped(path: &std::path::Path) -> candle_coreml::Result<candle_coreml::format::ModelFile> {
    let mut m = candle_coreml::format::mlmodelc::read(path)?;
    m.map_weights()?;
    Ok(m)
}

/// `format::open` followed by `map_weights`.
fn open_mapped(
    path: impl AsRef<std::path::Path>,
) -> candle_coreml::Result<candle_coreml::format::ModelFile> {
    let mut m = candle_coreml::format::open(path)?;
    m.map_weights()?;
    Ok(m)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/apple")
        .join(format!("{name}.mlmodelc"))
}

/// (name, dtype, shape) of every feature.
fn features(
    fs: &[candle_coreml::description::FeatureDescription],
) -> Vec<(String, Option<DataType>, Vec<usize>)> {
    fs.iter()
        .map(|f| {
            (
                f.name.clone(),
                f.ty.dtype(),
                f.ty.shape().unwrap_or_default(),
            )
        })
        .collect()
}

fn feat(name: &str, dtype: DataType, shape: &[usize]) -> (String, Option<DataType>, Vec<usize>) {
    (name.to_string(), Some(dtype), shape.to_vec())
}

#[test]
fn apple_samples_describe_as_their_metadata_says() {
    use DataType::{Fp16, Fp32};
    let cases = [
        (
            "add_model",
            vec![feat("x", Fp16, &[1, 10]), feat("y", Fp16, &[1, 10])],
            vec![feat("var_3", Fp16, &[1, 10])],
        ),
        (
            "test_linear",
            vec![feat("input", Fp16, &[1, 4])],
            vec![feat("output", Fp16, &[1, 4])],
        ),
        (
            "test_multi_io",
            vec![
                feat("float_input", Fp32, &[1, 4]),
                feat("int_input", Fp32, &[1, 2]),
            ],
            vec![
                feat("sum_output", Fp16, &[1, 4]),
                feat("count_output", Fp16, &[1, 2]),
            ],
        ),
    ];
    for (name, inputs, outputs) in cases {
        let m = read_mapped(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.format, ModelFormat::MlModelc);
        assert_eq!(m.spec_version, Some(7));
        assert_eq!(m.body.kind(), "mlProgram");
        let d = &m.description;
        assert_eq!(d.functions.len(), 1);
        assert_eq!(d.default_function, "main");
        let f = d.default().unwrap();
        assert_eq!(features(&f.inputs), inputs, "{name}");
        assert_eq!(features(&f.outputs), outputs, "{name}");
        assert!(f.states.is_empty());
        assert!(f
            .inputs
            .iter()
            .all(|i| !i.optional && i.ty.flexibility().is_none()));
        assert!(d
            .metadata
            .user_defined
            .contains_key("com.github.apple.coremltools.version"));

        // The program agrees with the schema.
        let p = m.program().unwrap();
        let main = p.function("main").unwrap();
        let prog_inputs: Vec<(String, Option<DataType>, Vec<usize>)> = main
            .inputs
            .iter()
            .map(|i| {
                let t = i.ty.as_tensor().unwrap();
                (i.name.clone(), Some(t.dtype), t.fixed_shape().unwrap())
            })
            .collect();
        assert_eq!(prog_inputs, inputs, "{name}");
        let out_names: Vec<String> = outputs.iter().map(|o| o.0.clone()).collect();
        assert_eq!(main.block.outputs, out_names);
    }
}

#[test]
fn parsed_op_histogram_matches_apples_compiled_histogram() {
    for name in ["add_model", "test_linear", "test_multi_io"] {
        let m = read_mapped(&fixture(name)).unwrap();
        let compiled = m.compiled_op_histogram.clone().unwrap();
        assert!(!compiled.is_empty());
        let f = m
            .program()
            .unwrap()
            .function(&m.description.default_function)
            .unwrap();
        assert_eq!(f.op_histogram(), compiled, "{name}");
    }
    let multi = read_mapped(&fixture("test_multi_io")).unwrap();
    let want: BTreeMap<String, usize> = [("add", 1), ("cast", 2), ("mul", 2)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(multi.compiled_op_histogram, Some(want));
}

#[test]
fn format_open_picks_this_reader() {
    let m = open_mapped(fixture("add_model")).unwrap();
    assert_eq!(m.format, ModelFormat::MlModelc);
    assert_eq!(m.program().unwrap().functions[0].name, "main");
}

/// A fresh folder under the temp dir holding `files` (relative path, contents).
fn model_dir(tag: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "candle-coreml-mlmodelc-{tag}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    for (rel, contents) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
    }
    dir
}

const MULTIFUNCTION_MIL: &str = "program(1.3)
{
    func infer<ios18>(tensor<fp16, [1, 1, 8]> hidden_states, state<tensor<fp16, [2, 1, 16, 8]>> kv_cache) {
            tensor<fp16, [2, 1, 16, 8]> k = read_state(input = kv_cache)[name = string(\"k\")];
            tensor<fp16, [1, 1, 8]> out = relu(x = hidden_states)[name = string(\"out\")];
        } -> (out);
    func prefill<ios18>(tensor<fp16, [1, 64, 8]> hidden_states, tensor<int32, [?]> position_ids, state<tensor<fp16, [2, 1, 16, 8]>> kv_cache) {
            tensor<fp16, [1, 64, 8]> out = sigmoid(x = hidden_states)[name = string(\"out\")];
        } -> (out);
}
";

const MULTIFUNCTION_META: &str = r#"[{
  "specificationVersion": 9,
  "modelType": {"name": "MLModelType_mlProgram"},
  "defaultFunctionName": "infer",
  "shortDescription": "test", "author": "someone", "license": "MIT", "version": "1.2",
  "mlProgramOperationTypeHistogram": {"Ios18.readState": 1, "Ios18.relu": 1, "Ios18.sigmoid": 1},
  "inputSchema": [{"name": "hidden_states", "type": "MultiArray", "dataType": "Float16", "shape": "[1, 1, 8]", "hasShapeFlexibility": "0", "isOptional": "0"}],
  "outputSchema": [{"name": "out", "type": "MultiArray", "dataType": "Float16", "shape": "[1, 1, 8]"}],
  "stateSchema": [{"name": "kv_cache", "type": "State", "dataType": "Float16", "shape": "[2, 1, 16, 8]"}]
}]"#;

#[test]
fn multifunction_model_without_function_list() {
    let dir = model_dir(
        "multi",
        &[
            ("model.mil", MULTIFUNCTION_MIL),
            ("metadata.json", MULTIFUNCTION_META),
        ],
    );
    let m = read_mapped(&dir).unwrap();
    let d = &m.description;
    assert_eq!(m.spec_version, Some(9));
    assert_eq!(d.default_function, "infer");
    assert_eq!(
        (
            d.metadata.author.as_str(),
            d.metadata.license.as_str(),
            d.metadata.version.as_str()
        ),
        ("someone", "MIT", "1.2")
    );
    let names: Vec<&str> = d.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, vec!["infer", "prefill"]);
    let infer = d.function("infer").unwrap();
    assert_eq!(
        features(&infer.inputs),
        vec![feat("hidden_states", DataType::Fp16, &[1, 1, 8])]
    );
    assert!(matches!(infer.states[0].ty, FeatureType::State(_)));
    assert_eq!(
        features(&infer.states),
        vec![feat("kv_cache", DataType::Fp16, &[2, 1, 16, 8])]
    );
    // prefill is described from its MIL signature.
    let prefill = d.function("prefill").unwrap();
    assert_eq!(prefill.inputs.len(), 2);
    assert_eq!(prefill.inputs[1].ty.dtype(), Some(DataType::Int32));
    assert_eq!(
        prefill.inputs[1].ty.flexibility(),
        Some(&ShapeFlexibility::Ranges(vec![DimRange {
            lower: 1,
            upper: None
        }]))
    );
    assert_eq!(
        features(&prefill.states),
        vec![feat("kv_cache", DataType::Fp16, &[2, 1, 16, 8])]
    );
    assert_eq!(
        features(&prefill.outputs),
        vec![feat("out", DataType::Fp16, &[1, 64, 8])]
    );
    let hist = m.compiled_op_histogram.clone().unwrap();
    assert_eq!(hist.get("read_state"), Some(&1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn multifunction_model_with_function_list() {
    let meta = r#"[{
      "specificationVersion": 9,
      "defaultFunctionName": "prefill",
      "functions": [
        {"name": "infer", "inputSchema": [{"name": "hidden_states", "type": "MultiArray", "dataType": "Float16", "shape": "[1, 1, 8]"}], "outputSchema": [], "stateSchema": [{"name": "kv_cache", "type": "State", "dataType": "Float16", "shape": "[2, 1, 16, 8]"}]},
        {"name": "prefill", "inputSchema": [{"name": "position_ids", "type": "MultiArray", "dataType": "Int32", "shape": "[64]", "hasShapeFlexibility": "1", "shapeRange": "[[1, 64]]"}]}
      ]
    }]"#;
    let dir = model_dir(
        "multilist",
        &[("model.mil", MULTIFUNCTION_MIL), ("metadata.json", meta)],
    );
    let d = read_mapped(&dir).unwrap().description;
    assert_eq!(d.default_function, "prefill");
    assert_eq!(d.functions.len(), 2);
    assert_eq!(
        features(&d.function("infer").unwrap().states),
        vec![feat("kv_cache", DataType::Fp16, &[2, 1, 16, 8])]
    );
    let pos = &d.function("prefill").unwrap().inputs[0];
    assert_eq!(
        pos.ty.flexibility(),
        Some(&ShapeFlexibility::Ranges(vec![DimRange {
            lower: 1,
            upper: Some(64)
        }]))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn flexible_shapes_from_metadata_or_program() {
    let mil = "program(1.0)\n{\n    func main<ios17>(tensor<int32, [1, ?]> input_ids, tensor<fp32, [?, 3]> e) {\n            tensor<int32, [1, ?]> y = relu(x = input_ids)[name = tensor<string, []>(\"y\")];\n        } -> (y);\n}\n";
    let meta = r#"[{"inputSchema": [
        {"name": "input_ids", "type": "MultiArray", "dataType": "Int32", "shape": "[1, 1]", "hasShapeFlexibility": "1", "shapeRange": "[[1, 1], [1, -1]]"},
        {"name": "e", "type": "MultiArray", "dataType": "Float32", "shape": "[2, 3]", "hasShapeFlexibility": "1", "enumeratedShapes": "[[2, 3], [4, 3]]"}
    ], "modelType": {"name": "MLModelType_mlProgram"}}]"#;
    let dir = model_dir("flex", &[("model.mil", mil), ("metadata.json", meta)]);
    let d = read_mapped(&dir).unwrap().description;
    let f = d.default().unwrap();
    let ids = &f.inputs[0].ty;
    assert_eq!(
        ids.flexibility(),
        Some(&ShapeFlexibility::Ranges(vec![
            DimRange {
                lower: 1,
                upper: Some(1)
            },
            DimRange {
                lower: 1,
                upper: None
            }
        ]))
    );
    assert_eq!(ids.shape(), Some(vec![1, 1]));
    assert_eq!(
        f.inputs[1].ty.flexibility(),
        Some(&ShapeFlexibility::Enumerated(vec![vec![2, 3], vec![4, 3]]))
    );
    let _ = std::fs::remove_dir_all(&dir);

    // No range in the metadata: the program's `?` dims give the range.
    let meta = r#"[{"inputSchema": [{"name": "input_ids", "type": "MultiArray", "dataType": "Int32", "shape": "[1, 1]", "hasShapeFlexibility": "1"}]}]"#;
    let dir = model_dir("flex2", &[("model.mil", mil), ("metadata.json", meta)]);
    let d = read_mapped(&dir).unwrap().description;
    assert_eq!(
        d.default().unwrap().inputs[0].ty.flexibility(),
        Some(&ShapeFlexibility::Ranges(vec![
            DimRange {
                lower: 1,
                upper: Some(1)
            },
            DimRange {
                lower: 1,
                upper: None
            }
        ]))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pipeline_and_neural_network_folders() {
    let add = std::fs::read_to_string(fixture("add_model").join("model.mil")).unwrap();
    let nn_meta = r#"[{"modelType": {"name": "MLModelType_neuralNetwork"}, "specificationVersion": 4,
        "inputSchema": [{"name": "x", "type": "MultiArray", "dataType": "Double", "shape": "[3]"}]}]"#;
    let dir = model_dir(
        "pipeline",
        &[
            (
                "metadata.json",
                r#"[{"modelType": {"name": "MLModelType_pipeline"}, "specificationVersion": 7}]"#,
            ),
            ("model0/model.mil", &add),
            ("model1/metadata.json", nn_meta),
            ("model1/coremldata.bin", ""),
        ],
    );
    let m = read_mapped(&dir).unwrap();
    let ModelBody::Pipeline(models) = &m.body else {
        panic!("not a pipeline: {}", m.body.kind())
    };
    assert_eq!(models.len(), 2);
    assert_eq!(models[0].body.kind(), "mlProgram");
    assert!(matches!(
        models[1].body,
        ModelBody::NeuralNetwork { layers: 0, .. }
    ));
    assert_eq!(models[1].spec_version, Some(4));
    assert_eq!(
        features(&models[1].description.default().unwrap().inputs),
        vec![feat("x", DataType::Fp64, &[3])]
    );
    let _ = std::fs::remove_dir_all(&dir);

    let dir = model_dir(
        "other",
        &[(
            "metadata.json",
            r#"[{"modelType": {"name": "MLModelType_treeEnsembleClassifier"}}]"#,
        )],
    );
    assert_eq!(
        read_mapped(&dir).unwrap().body.kind(),
        "treeEnsembleClassifier"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn errors_name_the_file() {
    let missing = Path::new("/nonexistent/model.mlmodelc");
    assert!(matches!(read_mapped(missing), Err(Error::Format { .. })));

    let dir = model_dir("badjson", &[("metadata.json", "[{\"inputSchema\": ")]);
    match read_mapped(&dir) {
        Err(Error::Json { path, .. }) => assert!(path.ends_with("metadata.json")),
        other => panic!("expected a JSON error, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);

    let dir = model_dir(
        "badschema",
        &[(
            "metadata.json",
            r#"[{"inputSchema": [{"name": "x", "type": "Hologram"}]}]"#,
        )],
    );
    let e = read_mapped(&dir).unwrap_err().to_string();
    assert!(e.contains("metadata.json") && e.contains("Hologram"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);

    let dir = model_dir(
        "badmil",
        &[("model.mil", "program(1.0)\n{\n  func main<ios16>( {\n}\n")],
    );
    match read_mapped(&dir) {
        Err(Error::MilSyntax {
            path, line, column, ..
        }) => {
            assert!(path.ends_with("model.mil"));
            assert_eq!((line, column), (3, 21));
        }
        other => panic!("expected a MIL syntax error, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
