//! The coremltools-made fixtures: every `<name>.json` under tests/fixtures
//! (schema `candle-coreml-fixture-description/1`, written by
//! tools/fixture_io.py from coremltools' own reading of the protobuf) whose
//! container is an `.mlpackage` or `.mlmodel` is compared with what our
//! reader makes of the model beside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_coreml::description::{FeatureDescription, FeatureType, ShapeFlexibility};
use candle_coreml::format::{self, ModelBody, ModelFile};
use candle_coreml::mil::{Binding, Block, Value, ValueType};
use serde_json::{json, Value as Json};

const SCHEMA: &str = "candle-coreml-fixture-description/1";

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every description JSON of a protobuf-container fixture, sorted.
fn fixture_jsons() -> Vec<(PathBuf, Json)> {
    let mut out = Vec::new();
    let mut stack = vec![fixtures_root()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if !matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("mlpackage" | "mlmodelc")
                ) {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|e| e == "json") {
                let Ok(text) = std::fs::read_to_string(&p) else {
                    continue;
                };
                let Ok(j) = serde_json::from_str::<Json>(&text) else {
                    continue;
                };
                let container = j["container"].as_str().unwrap_or("");
                if j["schema"] == SCHEMA && matches!(container, "mlpackage" | "mlmodel") {
                    out.push((p, j));
                }
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn range_json(r: &candle_coreml::description::DimRange) -> Json {
    json!({"lower": r.lower, "upper": r.upper})
}

fn flexibility_json(f: Option<&ShapeFlexibility>) -> Json {
    match f {
        None => Json::Null,
        Some(ShapeFlexibility::Enumerated(s)) => json!({ "enumerated": s }),
        Some(ShapeFlexibility::Ranges(r)) => {
            json!({"ranges": r.iter().map(range_json).collect::<Vec<_>>()})
        }
    }
}

/// Our feature in the fixture JSON's schema.
fn feature_json(f: &FeatureDescription) -> Json {
    let kind = match &f.ty {
        FeatureType::MultiArray(_) => "multi_array",
        FeatureType::Image(_) => "image",
        FeatureType::State(_) => "state",
        FeatureType::Int64 => "int64",
        FeatureType::Double => "double",
        FeatureType::String => "string",
        FeatureType::Dictionary => "dictionary",
        FeatureType::Sequence => "sequence",
    };
    let image = match &f.ty {
        FeatureType::Image(i) => json!({
            "width": i.width,
            "height": i.height,
            "color_space": serde_json::to_value(i.color_space).unwrap(),
            "enumerated_sizes": i.enumerated_sizes.iter().map(|&(w, h)| json!([w, h])).collect::<Vec<_>>(),
            "size_range": i.size_range.as_ref().map(|(w, h)| json!([range_json(w), range_json(h)])),
        }),
        _ => Json::Null,
    };
    json!({
        "name": f.name,
        "short_description": f.short_description,
        "optional": f.optional,
        "type": kind,
        "dtype": f.ty.dtype().map(|d| d.mil_name()),
        "shape": f.ty.shape(),
        "flexibility": flexibility_json(f.ty.flexibility()),
        "image": image,
    })
}

fn value_type_json(name: &str, t: &ValueType) -> Json {
    let (kind, inner) = match t {
        ValueType::State(inner) => ("state", inner.as_ref()),
        other => ("tensor", other),
    };
    match inner {
        ValueType::Tensor(tt) => json!({
            "name": name,
            "kind": kind,
            "dtype": tt.dtype.mil_name(),
            "shape": tt.shape.as_ref().map(|s| s.iter().map(|d| d.fixed()).collect::<Vec<_>>()).unwrap_or_default(),
        }),
        ValueType::List { .. } => {
            json!({"name": name, "kind": "listType", "dtype": null, "shape": null})
        }
        ValueType::Tuple(_) => {
            json!({"name": name, "kind": "tupleType", "dtype": null, "shape": null})
        }
        ValueType::Dict { .. } => {
            json!({"name": name, "kind": "dictionaryType", "dtype": null, "shape": null})
        }
        ValueType::State(_) => json!({"name": name, "kind": "state", "dtype": null, "shape": null}),
    }
}

#[derive(Default)]
struct Counts {
    consts: usize,
    blobs: usize,
    nested: usize,
}

fn is_blob(v: &Value) -> bool {
    v.as_tensor().is_some_and(|t| t.blob.is_some())
}

fn count(block: &Block, c: &mut Counts) {
    for op in &block.operations {
        if op.op_type == "const" {
            c.consts += 1;
        }
        c.blobs += op.attributes.values().filter(|v| is_blob(v)).count();
        for arg in op.inputs.values() {
            c.blobs += arg
                .bindings
                .iter()
                .filter(|b| matches!(b, Binding::Value(v) if is_blob(v)))
                .count();
        }
        for b in &op.blocks {
            c.nested += 1;
            count(b, c);
        }
    }
}

/// Our model in the fixture JSON's schema (the fields we keep).
fn model_json(mf: &ModelFile) -> Json {
    let d = &mf.description;
    let functions: Vec<Json> = d
        .functions
        .iter()
        .map(|f| {
            json!({
                "name": f.name,
                "inputs": f.inputs.iter().map(feature_json).collect::<Vec<_>>(),
                "outputs": f.outputs.iter().map(feature_json).collect::<Vec<_>>(),
                "states": f.states.iter().map(feature_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    let program = mf.program().map(|p| {
        let funcs: BTreeMap<_, _> = p
            .functions
            .iter()
            .map(|f| {
                let mut c = Counts::default();
                count(&f.block, &mut c);
                let hist = f.op_histogram();
                let j = json!({
                    "opset": f.opset,
                    "inputs": f.inputs.iter().map(|i| value_type_json(&i.name, &i.ty)).collect::<Vec<_>>(),
                    "outputs": f.block.outputs,
                    "op_count": hist.values().sum::<usize>(),
                    "op_histogram": hist,
                    "const_count": c.consts,
                    "blob_value_count": c.blobs,
                    "nested_block_count": c.nested,
                });
                (f.name.clone(), j)
            })
            .collect();
        json!({"version": p.version.parse::<i64>().unwrap(), "functions": funcs})
    });
    let pipeline = match &mf.body {
        ModelBody::Pipeline(models) => {
            Some(json!({"models": models.iter().map(model_json).collect::<Vec<_>>()}))
        }
        _ => None,
    };
    let layer_count = match &mf.body {
        ModelBody::NeuralNetwork { layers, .. } => Some(*layers),
        _ => None,
    };
    json!({
        "model_type": mf.body.kind(),
        "specification_version": mf.spec_version,
        "default_function": d.default_function,
        "functions": functions,
        "metadata": serde_json::to_value(&d.metadata).unwrap(),
        "program": program,
        "layer_count": layer_count,
        "pipeline": pipeline,
    })
}

/// The fixture JSON reduced to the fields `model_json` produces.
fn expected_json(j: &Json) -> Json {
    let mut e = json!({
        "model_type": j["model_type"],
        "specification_version": j["specification_version"],
        "default_function": j["default_function"],
        "functions": j["functions"],
        "metadata": j["metadata"],
        "program": j["program"],
        "layer_count": j["neural_network"]["layer_count"],
        "pipeline": Json::Null,
    });
    // Our ModelBody folds classifier/regressor variants into one kind.
    if let Some(t) = e["model_type"].as_str() {
        let folded = match t {
            "neuralNetworkClassifier" | "neuralNetworkRegressor" => "neuralNetwork",
            "pipelineClassifier" | "pipelineRegressor" => "pipeline",
            other => other,
        };
        e["model_type"] = json!(folded);
    }
    if let Some(models) = j["pipeline"]["models"].as_array() {
        e["pipeline"] = json!({"models": models.iter().map(expected_json).collect::<Vec<_>>()});
    }
    e
}

/// Single-function models: our description names the function after the
/// program's only function; coremltools' JSON always says `main`.
fn align_single_function_name(ours: &mut Json, expected: &mut Json) {
    if let (Some(o), Some(e)) = (
        ours["functions"].as_array(),
        expected["functions"].as_array(),
    ) {
        if o.len() == 1 && e.len() == 1 && e[0]["name"] == "main" {
            let name = o[0]["name"].clone();
            expected["functions"][0]["name"] = name.clone();
            expected["default_function"] = name;
        }
    }
    if let (Some(o), Some(e)) = (
        ours["pipeline"]["models"].as_array_mut(),
        expected["pipeline"]["models"].as_array_mut(),
    ) {
        for (o, e) in o.iter_mut().zip(e.iter_mut()) {
            align_single_function_name(o, e);
        }
    }
}

#[test]
fn fixtures_match_coremltools_description() {
    let fixtures = fixture_jsons();
    let mut failures = Vec::new();
    for (json_path, j) in &fixtures {
        let Some(file) = j["file"].as_str() else {
            continue;
        };
        let model_path = json_path.with_file_name(file);
        let mf = match format::open(&model_path) {
            Ok(mf) => mf,
            Err(e) => {
                failures.push(format!("{}: {e}", model_path.display()));
                continue;
            }
        };
        let mut ours = model_json(&mf);
        let mut expected = expected_json(j);
        align_single_function_name(&mut ours, &mut expected);
        if ours != expected {
            failures.push(format!(
                "{}:\n ours:     {}\n expected: {}",
                model_path.display(),
                ours,
                expected
            ));
        }
    }
    eprintln!("{} protobuf fixtures compared", fixtures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The dtype and shape of a constant tensor, or of a declared op output.
type Typed = (String, Vec<usize>);

fn typed_tensor(t: &candle_coreml::mil::TensorValue) -> Typed {
    (t.dtype.mil_name().to_string(), t.shape.clone())
}

/// The compression fixtures list each constexpr op's parameters and
/// outputs with dtype and shape as coremltools reads them; the constants we
/// load for them (blob-backed, sub-byte included) must agree.
#[test]
fn compression_fixture_blob_constants() {
    let mut checked = 0;
    for (json_path, j) in fixture_jsons() {
        let Some(ops) = j["compression"]["constexpr_ops"].as_array() else {
            continue;
        };
        let model_path = json_path.with_file_name(j["file"].as_str().unwrap());
        let mf = format::open(&model_path).unwrap();
        let program = mf.program().unwrap();
        let all_ops = || {
            program
                .functions
                .iter()
                .flat_map(|f| f.block.operations.iter())
        };
        // Every named value: const values as loaded, other outputs as declared.
        let mut named: BTreeMap<String, Typed> = BTreeMap::new();
        for op in all_ops() {
            for out in &op.outputs {
                if let Some(tt) = out.ty.as_tensor() {
                    let shape = tt.fixed_shape().unwrap_or_default();
                    named.insert(out.name.clone(), (tt.dtype.mil_name().to_string(), shape));
                }
            }
            if let (Some(out), Some(Value::Tensor(t))) = (op.outputs.first(), op.attribute("val")) {
                named.insert(out.name.clone(), typed_tensor(t));
            }
        }
        for op_json in ops {
            let name = op_json["name"].as_str().unwrap();
            let op = all_ops()
                .find(|o| {
                    o.outputs.first().is_some_and(|out| out.name == name) || o.name() == Some(name)
                })
                .unwrap_or_else(|| panic!("{}: no op {name}", model_path.display()));
            assert_eq!(op.op_type, op_json["type"].as_str().unwrap());
            let params = op_json.get("params").or_else(|| op_json.get("inputs"));
            for (param, spec) in params.and_then(Json::as_object).into_iter().flatten() {
                let got = match op.input(param).map(|a| a.bindings.as_slice()) {
                    Some([Binding::Name(n)]) => named.get(n).cloned(),
                    Some([Binding::Value(Value::Tensor(t))]) => Some(typed_tensor(t)),
                    _ => op
                        .attribute(param)
                        .and_then(Value::as_tensor)
                        .map(typed_tensor),
                }
                .unwrap_or_else(|| panic!("{name}: parameter {param} not found"));
                let shape: Vec<usize> = serde_json::from_value(spec["shape"].clone()).unwrap();
                let want = (spec["dtype"].as_str().unwrap().to_string(), shape);
                assert_eq!(got, want, "{}: {name}.{param}", model_path.display());
                checked += 1;
            }
            for (out, spec) in op
                .outputs
                .iter()
                .zip(op_json["outputs"].as_array().unwrap())
            {
                assert_eq!(out.name, spec["name"].as_str().unwrap());
                let tt = out.ty.as_tensor().unwrap();
                assert_eq!(
                    tt.dtype.mil_name(),
                    spec["dtype"].as_str().unwrap(),
                    "{name}"
                );
            }
        }
    }
    eprintln!("{checked} constexpr parameters compared");
    assert!(
        checked > 0
            || fixture_jsons()
                .iter()
                .all(|(_, j)| j["compression"].is_null())
    );
}
