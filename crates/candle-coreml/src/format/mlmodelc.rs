//! Reader for compiled `.mlmodelc` models (folders written by Apple's
//! `coremlc`).
//!
//! What is read:
//! - `model.mil`, the ML Program as MIL text, parsed by [`mil_text`] with
//!   weights resolved against the folder (`@model_path`);
//! - `metadata.json`, a JSON array holding one object: input, output and
//!   state schemas, the specification version, author metadata, the model
//!   type and `mlProgramOperationTypeHistogram`, the op histogram Apple's
//!   compiler recorded;
//! - `model0/`, `model1/`... sub-folders of a compiled pipeline, read
//!   recursively.
//!
//! `coremldata.bin` is undocumented and never read. Where metadata.json
//! lacks something (per-function schemas of a multifunction model, shape
//! ranges), the description is completed from the parsed program's types.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value as Json};

use super::blob::BlobResolver;
use super::mil_text;
use super::model_file::{ModelBody, ModelFile, ModelFormat};
use crate::description::{
    ArrayFeature, ColorSpace, DimRange, FeatureDescription, FeatureType, FunctionDescription,
    ImageFeature, Metadata, ModelDescription, ShapeFlexibility,
};
use crate::error::{Error, Result};
use crate::mil::{DataType, Dim, Function, Program, ValueType};

/// How deeply pipelines may nest pipelines.
const MAX_PIPELINE_DEPTH: usize = 8;
/// The most sub-models one pipeline folder may hold.
const MAX_SUBMODELS: usize = 4096;

/// Reads a `.mlmodelc` folder.
///
/// ```no_run
/// let model = candle_coreml::format::mlmodelc::read("add_model.mlmodelc".as_ref())?;
/// println!("{:?}", model.description.default());
/// # Ok::<(), candle_coreml::Error>(())
/// ```
pub fn read(path: &Path) -> Result<ModelFile> {
    read_at(path, 0)
}

fn read_at(path: &Path, depth: usize) -> Result<ModelFile> {
    if !path.is_dir() {
        return Err(Error::format(path, "an .mlmodelc must be a directory"));
    }
    let meta = load_metadata(path)?;
    let mil_path = path.join("model.mil");
    let program = if mil_path.is_file() {
        let text = std::fs::read_to_string(&mil_path).map_err(|e| Error::io(&mil_path, e))?;
        let mut blobs = BlobResolver::deferred(path);
        Some(mil_text::parse(&text, &mil_path, &mut blobs)?)
    } else {
        None
    };
    let meta_path = path.join("metadata.json");
    let description = describe(&meta_path, meta.as_ref(), program.as_ref())?;
    let body = match program {
        Some(p) => ModelBody::Program(p),
        None => other_body(path, meta.as_ref(), depth)?,
    };
    let spec_version = meta
        .as_ref()
        .and_then(|m| m.get("specificationVersion"))
        .and_then(json_u64)
        .and_then(|v| u32::try_from(v).ok());
    let compiled_op_histogram = meta
        .as_ref()
        .and_then(|m| m.get("mlProgramOperationTypeHistogram"))
        .and_then(Json::as_object)
        .map(compiled_histogram);
    Ok(ModelFile {
        path: path.to_path_buf(),
        format: ModelFormat::MlModelc,
        spec_version,
        description,
        body,
        compiled_op_histogram,
        weights_root: path.to_path_buf(),
    })
}

/// The object inside `metadata.json` (an array of one object; a bare
/// object is accepted too). `None` when the file is absent.
fn load_metadata(dir: &Path) -> Result<Option<Map<String, Json>>> {
    let path = dir.join("metadata.json");
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    parse_metadata(&bytes, &path).map(Some)
}

/// The object of a `metadata.json` held in `bytes` (read from `path`).
fn parse_metadata(bytes: &[u8], path: &Path) -> Result<Map<String, Json>> {
    let json: Json = serde_json::from_slice(bytes).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    match json {
        Json::Array(items) => match items.into_iter().next() {
            Some(Json::Object(m)) => Ok(m),
            _ => Err(Error::format(path, "expected an array holding one object")),
        },
        Json::Object(m) => Ok(m),
        _ => Err(Error::format(path, "expected an array holding one object")),
    }
}

/// The description a `metadata.json` (its bytes, read from `path`) gives on
/// its own, with no program to complete it: what the reader makes of a
/// compiled model's metadata. For fuzzing and tools.
pub fn describe_metadata(bytes: &[u8], path: &Path) -> Result<ModelDescription> {
    let meta = parse_metadata(bytes, path)?;
    describe(path, Some(&meta), None)
}

/// The body of a model without `model.mil`: a pipeline of `modelN/`
/// sub-folders, a NeuralNetwork, or another kind named by metadata.json.
fn other_body(path: &Path, meta: Option<&Map<String, Json>>, depth: usize) -> Result<ModelBody> {
    if path.join("model0").is_dir() {
        if depth >= MAX_PIPELINE_DEPTH {
            return Err(Error::format(
                path,
                format!("pipelines nested deeper than {MAX_PIPELINE_DEPTH} levels"),
            ));
        }
        let mut models = Vec::new();
        for i in 0..MAX_SUBMODELS {
            let sub = path.join(format!("model{i}"));
            if !sub.is_dir() {
                break;
            }
            models.push(read_at(&sub, depth + 1)?);
        }
        return Ok(ModelBody::Pipeline(models));
    }
    let kind = meta
        .and_then(|m| m.get("modelType"))
        .and_then(|t| t.get("name"))
        .and_then(Json::as_str)
        .unwrap_or("unknown");
    let short = kind.strip_prefix("MLModelType_").unwrap_or(kind);
    if short.to_ascii_lowercase().contains("neuralnetwork") {
        Ok(ModelBody::NeuralNetwork {
            layers: 0,
            network: None,
        })
    } else {
        Ok(ModelBody::Other(short.to_string()))
    }
}

/// `Ios16.mul` -> `mul`, `Ios17.sliceByIndex` -> `slice_by_index`; counts
/// of the same op under several opsets are summed.
pub(crate) fn compiled_histogram(map: &Map<String, Json>) -> BTreeMap<String, usize> {
    let mut hist = BTreeMap::new();
    for (key, count) in map {
        let op = key.split_once('.').map_or(key.as_str(), |(_, op)| op);
        let n = json_u64(count)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0);
        *hist.entry(snake_case(op)).or_default() += n;
    }
    hist
}

/// camelCase to snake_case, lower-cased.
fn snake_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    let mut prev_lower = false;
    for c in s.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push('_');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// A JSON number, or a string holding one.
fn json_u64(v: &Json) -> Option<u64> {
    match v {
        Json::Number(n) => n.as_u64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A JSON field as text (strings as they are, other scalars printed).
fn text(obj: &Map<String, Json>, key: &str) -> Option<String> {
    match obj.get(key)? {
        Json::String(s) => Some(s.clone()),
        Json::Null => None,
        v => Some(v.to_string()),
    }
}

/// A field holding JSON either directly or inside a string (`"[1, 10]"`).
fn embedded_json(obj: &Map<String, Json>, key: &str) -> Option<Json> {
    match obj.get(key)? {
        Json::String(s) => serde_json::from_str(s).ok(),
        v => Some(v.clone()),
    }
}

// ---- description -------------------------------------------------------

fn describe(
    meta_path: &Path,
    meta: Option<&Map<String, Json>>,
    program: Option<&Program>,
) -> Result<ModelDescription> {
    let metadata = meta.map(author_metadata).unwrap_or_default();
    let explicit_default = meta.and_then(|m| text(m, "defaultFunctionName"));
    let listed = meta
        .and_then(|m| m.get("functions"))
        .and_then(Json::as_array);
    let mut functions = Vec::new();
    if let Some(listed) = listed {
        for item in listed {
            let obj = item
                .as_object()
                .ok_or_else(|| Error::format(meta_path, "`functions` entries must be objects"))?;
            let name = text(obj, "name")
                .ok_or_else(|| Error::format(meta_path, "a `functions` entry has no `name`"))?;
            let f = program.and_then(|p| p.function(&name));
            functions.push(function_from_schemas(meta_path, name, obj, f)?);
        }
    } else {
        let names: Vec<String> = match program {
            Some(p) if !p.functions.is_empty() => {
                p.functions.iter().map(|f| f.name.clone()).collect()
            }
            _ => vec!["main".to_string()],
        };
        let default = pick_default(&names, explicit_default.as_deref());
        for name in names {
            let f = program.and_then(|p| p.function(&name));
            let described = match (meta, f) {
                (Some(m), _) if name == default => function_from_schemas(meta_path, name, m, f)?,
                (_, Some(f)) => function_from_program(f),
                (None, None) => FunctionDescription {
                    name,
                    inputs: vec![],
                    outputs: vec![],
                    states: vec![],
                },
                (Some(m), None) => function_from_schemas(meta_path, name, m, None)?,
            };
            functions.push(described);
        }
    }
    let names: Vec<String> = functions.iter().map(|f| f.name.clone()).collect();
    let default_function = pick_default(&names, explicit_default.as_deref());
    Ok(ModelDescription {
        functions,
        default_function,
        metadata,
    })
}

/// The named default if it exists, else `main`, else the first function.
fn pick_default(names: &[String], explicit: Option<&str>) -> String {
    if let Some(e) = explicit.filter(|e| names.iter().any(|n| n == e)) {
        return e.to_string();
    }
    if names.iter().any(|n| n == "main") {
        return "main".to_string();
    }
    names.first().cloned().unwrap_or_else(|| "main".to_string())
}

fn author_metadata(m: &Map<String, Json>) -> Metadata {
    let user_defined = m
        .get("userDefinedMetadata")
        .and_then(Json::as_object)
        .map(|u| {
            u.iter()
                .map(|(k, v)| {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default();
    Metadata {
        short_description: text(m, "shortDescription").unwrap_or_default(),
        version: text(m, "version").unwrap_or_default(),
        author: text(m, "author").unwrap_or_default(),
        license: text(m, "license").unwrap_or_default(),
        user_defined,
    }
}

/// A function from `inputSchema`/`outputSchema`/`stateSchema` of `obj`,
/// completed from the program's function `f` where the schema is vague.
fn function_from_schemas(
    meta_path: &Path,
    name: String,
    obj: &Map<String, Json>,
    f: Option<&Function>,
) -> Result<FunctionDescription> {
    let schema = |key: &str, states: bool| -> Result<Vec<FeatureDescription>> {
        let Some(items) = obj.get(key) else {
            return Ok(Vec::new());
        };
        let items = items
            .as_array()
            .ok_or_else(|| Error::format(meta_path, format!("`{key}` must be an array")))?;
        items
            .iter()
            .map(|item| {
                let o = item.as_object().ok_or_else(|| {
                    Error::format(meta_path, format!("`{key}` entries must be objects"))
                })?;
                let fname = text(o, "name").unwrap_or_default();
                let program_ty = f
                    .and_then(|f| f.inputs.iter().find(|i| i.name == fname))
                    .map(|i| &i.ty);
                feature(meta_path, o, program_ty, states)
            })
            .collect()
    };
    Ok(FunctionDescription {
        name,
        inputs: schema("inputSchema", false)?,
        outputs: schema("outputSchema", false)?,
        states: schema("stateSchema", true)?,
    })
}

/// One feature of a schema.
fn feature(
    meta_path: &Path,
    o: &Map<String, Json>,
    program_ty: Option<&ValueType>,
    state: bool,
) -> Result<FeatureDescription> {
    let name =
        text(o, "name").ok_or_else(|| Error::format(meta_path, "a schema entry has no `name`"))?;
    let kind = text(o, "type").unwrap_or_else(|| "MultiArray".to_string());
    let ty = match kind.as_str() {
        "MultiArray" if !state => FeatureType::MultiArray(array_feature(o, program_ty)),
        "State" | "MultiArray" => FeatureType::State(array_feature(o, program_ty)),
        "Image" => FeatureType::Image(image_feature(o)),
        "Int64" => FeatureType::Int64,
        "Double" => FeatureType::Double,
        "String" => FeatureType::String,
        "Dictionary" => FeatureType::Dictionary,
        "Sequence" => FeatureType::Sequence,
        other => {
            return Err(Error::format(
                meta_path,
                format!("feature `{name}` has unknown type `{other}`"),
            ))
        }
    };
    Ok(FeatureDescription {
        name,
        ty,
        short_description: text(o, "shortDescription").unwrap_or_default(),
        optional: text(o, "isOptional").is_some_and(|v| v == "1" || v == "true"),
    })
}

/// metadata.json's `dataType` spelling to a MIL dtype.
fn schema_dtype(s: &str) -> Option<DataType> {
    Some(match s {
        "Float16" => DataType::Fp16,
        "Float32" | "Float" => DataType::Fp32,
        "Double" | "Float64" => DataType::Fp64,
        "Int32" => DataType::Int32,
        "Int8" => DataType::Int8,
        "Int16" => DataType::Int16,
        "Int64" => DataType::Int64,
        "UInt8" => DataType::UInt8,
        _ => return None,
    })
}

fn array_feature(o: &Map<String, Json>, program_ty: Option<&ValueType>) -> ArrayFeature {
    let program_tensor = program_ty.and_then(|t| t.as_tensor().or_else(|| t.state_tensor()));
    let dtype = text(o, "dataType")
        .and_then(|d| schema_dtype(&d))
        .or_else(|| program_tensor.map(|t| t.dtype));
    let shape = embedded_json(o, "shape")
        .and_then(|j| shape_list(&j))
        .or_else(|| {
            program_tensor
                .and_then(|t| t.shape.as_ref())
                .map(|d| default_shape(d))
        })
        .unwrap_or_default();
    let flexible = text(o, "hasShapeFlexibility").is_some_and(|v| v == "1" || v == "true");
    let flexibility = if flexible {
        schema_flexibility(o).or_else(|| {
            program_tensor
                .and_then(|t| t.shape.as_deref())
                .and_then(dims_flexibility)
        })
    } else {
        None
    };
    ArrayFeature {
        dtype,
        shape,
        flexibility,
    }
}

/// `[1, 10]` as sizes.
fn shape_list(j: &Json) -> Option<Vec<usize>> {
    j.as_array()?
        .iter()
        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
        .collect()
}

/// A default shape from program dims: unknown dims taken as 1.
fn default_shape(dims: &[Dim]) -> Vec<usize> {
    dims.iter().map(|d| d.fixed().unwrap_or(1)).collect()
}

/// Ranges from program dims: fixed dims exact, `?` dims 1 and up.
fn dims_flexibility(dims: &[Dim]) -> Option<ShapeFlexibility> {
    if dims.iter().all(|d| d.fixed().is_some()) {
        return None;
    }
    Some(ShapeFlexibility::Ranges(
        dims.iter()
            .map(|d| match d.fixed() {
                Some(n) => DimRange {
                    lower: n,
                    upper: Some(n),
                },
                None => DimRange {
                    lower: 1,
                    upper: None,
                },
            })
            .collect(),
    ))
}

/// Flexibility from `shapeRange` (`[[lo, hi], ...]`, negative hi =
/// unbounded), `enumeratedShapes` (`[[...], ...]`) or the human-readable
/// `shapeFlexibility` (`1 × 1...512` or `1 × 1 | 1 × 64`).
fn schema_flexibility(o: &Map<String, Json>) -> Option<ShapeFlexibility> {
    if let Some(ranges) = embedded_json(o, "shapeRange").and_then(|j| ranges_list(&j)) {
        return Some(ShapeFlexibility::Ranges(ranges));
    }
    if let Some(shapes) = embedded_json(o, "enumeratedShapes").and_then(|j| {
        j.as_array()
            .and_then(|a| a.iter().map(shape_list).collect::<Option<Vec<_>>>())
    }) {
        return Some(ShapeFlexibility::Enumerated(shapes));
    }
    text(o, "shapeFlexibility").and_then(|s| readable_flexibility(&s))
}

fn ranges_list(j: &Json) -> Option<Vec<DimRange>> {
    j.as_array()?
        .iter()
        .map(|r| {
            let r = r.as_array()?;
            let lower = usize::try_from(r.first()?.as_i64()?).ok()?;
            let upper = r.get(1)?.as_i64()?;
            Some(DimRange {
                lower,
                upper: usize::try_from(upper).ok(),
            })
        })
        .collect()
}

/// `1 × 1...512` (ranges) or `1 × 1 | 1 × 64` (enumerated).
fn readable_flexibility(s: &str) -> Option<ShapeFlexibility> {
    let dims =
        |shape: &str| -> Vec<String> { shape.split('×').map(|d| d.trim().to_string()).collect() };
    if s.contains('|') {
        let shapes = s
            .split('|')
            .map(|shape| {
                dims(shape)
                    .iter()
                    .map(|d| d.parse::<usize>().ok())
                    .collect::<Option<Vec<_>>>()
            })
            .collect::<Option<Vec<_>>>()?;
        return Some(ShapeFlexibility::Enumerated(shapes));
    }
    let ranges = dims(s)
        .iter()
        .map(|d| match d.split_once("...") {
            Some((lo, hi)) => Some(DimRange {
                lower: lo.trim().parse().ok()?,
                upper: hi.trim().parse::<usize>().ok(),
            }),
            None => d.parse().ok().map(|n| DimRange {
                lower: n,
                upper: Some(n),
            }),
        })
        .collect::<Option<Vec<_>>>()?;
    Some(ShapeFlexibility::Ranges(ranges))
}

fn image_feature(o: &Map<String, Json>) -> ImageFeature {
    let num = |k: &str| {
        text(o, k)
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0)
    };
    let color = text(o, "colorspace")
        .or_else(|| text(o, "colorSpace"))
        .unwrap_or_default();
    let color_space = match color.to_ascii_lowercase().as_str() {
        "rgb" => ColorSpace::Rgb,
        "bgr" => ColorSpace::Bgr,
        "grayscalefloat16" => ColorSpace::GrayscaleFloat16,
        "grayscale" => ColorSpace::Grayscale,
        _ if text(o, "isColor").is_some_and(|v| v == "1") => ColorSpace::Rgb,
        _ => ColorSpace::Grayscale,
    };
    ImageFeature {
        width: num("width"),
        height: num("height"),
        color_space,
        enumerated_sizes: Vec::new(),
        size_range: None,
    }
}

/// A function's interface from its MIL signature alone.
fn function_from_program(f: &Function) -> FunctionDescription {
    let from_type = |name: &str, ty: &ValueType| -> FeatureDescription {
        let ty = match ty {
            ValueType::State(inner) => FeatureType::State(array_from_type(inner)),
            ValueType::Tensor(_) => FeatureType::MultiArray(array_from_type(ty)),
            ValueType::Dict { .. } => FeatureType::Dictionary,
            ValueType::List { .. } | ValueType::Tuple(_) => FeatureType::Sequence,
        };
        FeatureDescription {
            name: name.to_string(),
            ty,
            short_description: String::new(),
            optional: false,
        }
    };
    let (states, inputs): (Vec<_>, Vec<_>) = f
        .inputs
        .iter()
        .partition(|i| matches!(i.ty, ValueType::State(_)));
    let outputs = f
        .block
        .outputs
        .iter()
        .filter_map(|name| {
            let ty = f
                .block
                .operations
                .iter()
                .flat_map(|op| op.outputs.iter())
                .chain(f.inputs.iter())
                .find(|o| &o.name == name)?;
            Some(from_type(name, &ty.ty))
        })
        .collect();
    FunctionDescription {
        name: f.name.clone(),
        inputs: inputs.iter().map(|i| from_type(&i.name, &i.ty)).collect(),
        outputs,
        states: states.iter().map(|i| from_type(&i.name, &i.ty)).collect(),
    }
}

fn array_from_type(ty: &ValueType) -> ArrayFeature {
    let t = ty.as_tensor();
    let dims = t.and_then(|t| t.shape.as_deref());
    ArrayFeature {
        dtype: t.map(|t| t.dtype),
        shape: dims.map(default_shape).unwrap_or_default(),
        flexibility: dims.and_then(dims_flexibility),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_keys() {
        let j: Json = serde_json::from_str(
            r#"{"Ios16.mul": 2, "Ios17.mul": 1, "Ios18.sliceByIndex": 3, "Ios16.constexprLutToDense": "4"}"#,
        )
        .unwrap();
        let h = compiled_histogram(j.as_object().unwrap());
        assert_eq!(h.get("mul"), Some(&3));
        assert_eq!(h.get("slice_by_index"), Some(&3));
        assert_eq!(h.get("constexpr_lut_to_dense"), Some(&4));
    }

    #[test]
    fn readable_flexibility_forms() {
        assert_eq!(
            readable_flexibility("1 × 1...512"),
            Some(ShapeFlexibility::Ranges(vec![
                DimRange {
                    lower: 1,
                    upper: Some(1)
                },
                DimRange {
                    lower: 1,
                    upper: Some(512)
                },
            ]))
        );
        assert_eq!(
            readable_flexibility("1 × 1 | 1 × 64"),
            Some(ShapeFlexibility::Enumerated(vec![vec![1, 1], vec![1, 64]]))
        );
        assert_eq!(readable_flexibility("a × b"), None);
    }
}
