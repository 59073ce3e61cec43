//! `candle-coreml inspect`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use candle_coreml::description::{FeatureDescription, FeatureType, ShapeFlexibility};
use candle_coreml::format::{self, ModelBody, ModelFile};
use serde_json::{json, Value};

/// Arguments of `inspect`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The model: .mlpackage, .mlmodel or .mlmodelc.
    model: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn main(args: Args) -> Result<()> {
    let file = format::open(&args.model)?;
    let report = report(&file);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&file, &report);
    }
    Ok(())
}

/// The JSON form of a feature: `{name, dtype, shape}`, a flexible dim as
/// `null` with a `ranges` field, enumerated shapes as `enumerated_shapes`.
fn feature_json(f: &FeatureDescription) -> Value {
    let dtype = f.ty.dtype().map(|d| d.mil_name().to_string());
    let mut obj = json!({ "name": f.name, "dtype": dtype, "kind": f.ty.kind() });
    let shape = f.ty.shape();
    match f.ty.flexibility() {
        Some(ShapeFlexibility::Ranges(ranges)) => {
            let dims: Vec<Value> = ranges
                .iter()
                .map(|r| {
                    if r.upper == Some(r.lower) {
                        json!(r.lower)
                    } else {
                        Value::Null
                    }
                })
                .collect();
            obj["shape"] = json!(dims);
            obj["ranges"] = json!(ranges
                .iter()
                .map(|r| json!([r.lower, r.upper]))
                .collect::<Vec<_>>());
            obj["default_shape"] = json!(shape);
        }
        Some(ShapeFlexibility::Enumerated(shapes)) => {
            obj["shape"] = json!(shape);
            obj["enumerated_shapes"] = json!(shapes);
        }
        None => obj["shape"] = json!(shape),
    }
    if let FeatureType::Image(img) = &f.ty {
        obj["image"] =
            json!({ "width": img.width, "height": img.height, "color_space": img.color_space });
    }
    if f.optional {
        obj["optional"] = json!(true);
    }
    obj
}

fn op_histogram(file: &ModelFile) -> BTreeMap<String, usize> {
    let default = &file.description.default_function;
    match file.program() {
        Some(p) => p
            .function(default)
            .or_else(|| p.functions.first())
            .map(|f| f.op_histogram())
            .unwrap_or_default(),
        None => BTreeMap::new(),
    }
}

pub(crate) fn report(file: &ModelFile) -> Value {
    let d = &file.description;
    let default = d.default();
    let list = |fs: Option<&Vec<FeatureDescription>>| -> Vec<Value> {
        fs.map(|v| v.iter().map(feature_json).collect())
            .unwrap_or_default()
    };
    let mut obj = json!({
        "path": file.path.display().to_string(),
        "format": file.format,
        "model_type": file.body.kind(),
        "spec_version": file.spec_version,
        "functions": d.functions.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
        "default_function": d.default_function,
        "inputs": list(default.map(|f| &f.inputs)),
        "outputs": list(default.map(|f| &f.outputs)),
        "states": list(default.map(|f| &f.states)),
        "metadata": d.metadata,
        "op_histogram": op_histogram(file),
    });
    if let Some(p) = file.program() {
        obj["program_version"] = json!(p.version);
        obj["opsets"] = json!(p
            .functions
            .iter()
            .map(|f| (f.name.clone(), f.opset.clone()))
            .collect::<BTreeMap<_, _>>());
    }
    if d.functions.len() > 1 {
        obj["function_details"] = json!(d
            .functions
            .iter()
            .map(|f| json!({
                "name": f.name,
                "inputs": f.inputs.iter().map(feature_json).collect::<Vec<_>>(),
                "outputs": f.outputs.iter().map(feature_json).collect::<Vec<_>>(),
                "states": f.states.iter().map(feature_json).collect::<Vec<_>>(),
            }))
            .collect::<Vec<_>>());
    }
    if let ModelBody::NeuralNetwork {
        network: Some(n), ..
    } = &file.body
    {
        obj["layer_histogram"] = json!(n.layer_histogram());
    }
    if let Some(labels) = file.class_labels() {
        obj["class_labels"] = json!(labels);
    }
    if let ModelBody::Pipeline(models) = &file.body {
        obj["pipeline"] = json!(models.iter().map(report).collect::<Vec<_>>());
    }
    obj
}

fn describe(v: &Value) -> String {
    let shape = match v["shape"].as_array() {
        Some(dims) => dims
            .iter()
            .map(|d| {
                if d.is_null() {
                    "?".to_string()
                } else {
                    d.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" x "),
        None => "-".into(),
    };
    let mut s = format!(
        "{:<24} {:<6} [{}]",
        v["name"].as_str().unwrap_or(""),
        v["dtype"].as_str().unwrap_or("-"),
        shape
    );
    if let Some(r) = v.get("ranges") {
        s.push_str(&format!("  ranges {r}"));
    }
    if let Some(e) = v.get("enumerated_shapes") {
        s.push_str(&format!("  one of {e}"));
    }
    if let Some(img) = v.get("image") {
        s.push_str(&format!("  image {img}"));
    }
    s
}

fn print_text(file: &ModelFile, r: &Value) {
    println!("{}", file.path.display());
    println!(
        "  format        {} ({})",
        file.format.extension(),
        file.body.kind()
    );
    if let Some(v) = file.spec_version {
        println!("  spec version  {v}");
    }
    if let Some(p) = file.program() {
        let opsets: Vec<String> = p
            .functions
            .iter()
            .map(|f| format!("{}<{}>", f.name, f.opset))
            .collect();
        println!("  program       {} ({})", p.version, opsets.join(", "));
    }
    for f in &file.description.functions {
        let mark = if f.name == file.description.default_function {
            " (default)"
        } else {
            ""
        };
        println!("function {}{mark}", f.name);
        for (title, list) in [
            ("inputs", &f.inputs),
            ("outputs", &f.outputs),
            ("states", &f.states),
        ] {
            if list.is_empty() {
                continue;
            }
            println!("  {title}");
            for x in list {
                println!("    {}", describe(&feature_json(x)));
            }
        }
    }
    let m = &file.description.metadata;
    let meta: Vec<(&str, &String)> = [
        ("description", &m.short_description),
        ("version", &m.version),
        ("author", &m.author),
        ("license", &m.license),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .collect();
    if !meta.is_empty() || !m.user_defined.is_empty() {
        println!("metadata");
        for (k, v) in meta {
            println!("  {k:<12} {v}");
        }
        for (k, v) in &m.user_defined {
            println!("  {k} = {v}");
        }
    }
    if let Some(hist) = r["op_histogram"].as_object() {
        if !hist.is_empty() {
            let total: u64 = hist.values().filter_map(Value::as_u64).sum();
            println!("ops ({total} in {})", file.description.default_function);
            let mut v: Vec<_> = hist.iter().collect();
            v.sort_by(|a, b| b.1.as_u64().cmp(&a.1.as_u64()).then(a.0.cmp(b.0)));
            for (k, n) in v {
                println!("  {n:>6}  {k}");
            }
        }
    }
    if let Some(hist) = r["layer_histogram"].as_object() {
        let total: u64 = hist.values().filter_map(Value::as_u64).sum();
        println!("layers ({total})");
        let mut v: Vec<_> = hist.iter().collect();
        v.sort_by(|a, b| b.1.as_u64().cmp(&a.1.as_u64()).then(a.0.cmp(b.0)));
        for (k, n) in v {
            println!("  {n:>6}  {k}");
        }
    }
    if let Some(labels) = file.class_labels() {
        println!("class labels  {}", json!(labels));
    }
    if let ModelBody::Pipeline(models) = &file.body {
        println!("pipeline of {} models:", models.len());
        for (i, m) in models.iter().enumerate() {
            println!("  [{i}] {}", m.body.kind());
        }
    }
}
