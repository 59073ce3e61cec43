//! Small builders of `coreml-proto` messages and package folders for tests.

use std::path::{Path, PathBuf};

use coreml_proto::proto as pb;
use coreml_proto::proto::mil_spec as mil;
use mil::value::immediate_value::Value as Imm;
use prost::Message;

/// The weight file reference coremltools writes.
pub const WEIGHT_REF: &str = "@model_path/weights/weight.bin";

/// A tensor value type of `dtype` (a `mil::DataType` or raw code) and shape.
pub fn ttype(dtype: impl Into<i32>, shape: &[u64]) -> mil::ValueType {
    mil::ValueType {
        r#type: Some(mil::value_type::Type::TensorType(mil::TensorType {
            data_type: dtype.into(),
            rank: shape.len() as i64,
            dimensions: shape
                .iter()
                .map(|&size| mil::Dimension {
                    dimension: Some(mil::dimension::Dimension::Constant(
                        mil::dimension::ConstantDimension { size },
                    )),
                })
                .collect(),
            attributes: Default::default(),
        })),
    }
}

/// `tensor<fp32, [1, ?]>`.
pub fn unknown_dim_type() -> mil::ValueType {
    let mut t = ttype(mil::DataType::Float32, &[1, 1]);
    if let Some(mil::value_type::Type::TensorType(tt)) = t.r#type.as_mut() {
        tt.dimensions[1].dimension = Some(mil::dimension::Dimension::Unknown(
            mil::dimension::UnknownDimension { variadic: false },
        ));
    }
    t
}

/// A tensor type whose rank disagrees with its dimension list.
pub fn rank_mismatch_type() -> mil::ValueType {
    let mut t = ttype(mil::DataType::Float32, &[1]);
    if let Some(mil::value_type::Type::TensorType(tt)) = t.r#type.as_mut() {
        tt.rank = 2;
    }
    t
}

/// `state<inner>`.
pub fn state_type(inner: mil::ValueType) -> mil::ValueType {
    mil::ValueType {
        r#type: Some(mil::value_type::Type::StateType(Box::new(mil::StateType {
            wrapped_type: Some(Box::new(inner)),
        }))),
    }
}

/// A named value type.
pub fn named(name: &str, ty: mil::ValueType) -> mil::NamedValueType {
    mil::NamedValueType {
        name: name.into(),
        r#type: Some(ty),
    }
}

fn tensor(v: mil::tensor_value::Value) -> Imm {
    Imm::Tensor(mil::TensorValue { value: Some(v) })
}

/// Packed `floats`.
pub fn floats(v: Vec<f32>) -> Imm {
    tensor(mil::tensor_value::Value::Floats(
        mil::tensor_value::RepeatedFloats { values: v },
    ))
}

/// Packed `ints`.
pub fn ints(v: Vec<i32>) -> Imm {
    tensor(mil::tensor_value::Value::Ints(
        mil::tensor_value::RepeatedInts { values: v },
    ))
}

/// `bytes`.
pub fn bytes(v: Vec<u8>) -> Imm {
    tensor(mil::tensor_value::Value::Bytes(
        mil::tensor_value::RepeatedBytes { values: v },
    ))
}

/// `strings`.
pub fn strings(v: Vec<&str>) -> Imm {
    tensor(mil::tensor_value::Value::Strings(
        mil::tensor_value::RepeatedStrings {
            values: v.into_iter().map(String::from).collect(),
        },
    ))
}

/// An immediate value of type `ty`.
pub fn imm(ty: mil::ValueType, v: Imm) -> mil::Value {
    mil::Value {
        doc_string: String::new(),
        r#type: Some(ty),
        value: Some(mil::value::Value::ImmediateValue(
            mil::value::ImmediateValue { value: Some(v) },
        )),
    }
}

/// A blob-backed value of type `ty`.
pub fn blob_value(ty: mil::ValueType, file: &str, offset: u64) -> mil::Value {
    mil::Value {
        doc_string: String::new(),
        r#type: Some(ty),
        value: Some(mil::value::Value::BlobFileValue(
            mil::value::BlobFileValue {
                file_name: file.into(),
                offset,
            },
        )),
    }
}

/// A binding to a name.
pub fn name(n: &str) -> mil::argument::Binding {
    mil::argument::Binding {
        binding: Some(mil::argument::binding::Binding::Name(n.into())),
    }
}

/// A binding to a literal.
pub fn lit(v: mil::Value) -> mil::argument::Binding {
    mil::argument::Binding {
        binding: Some(mil::argument::binding::Binding::Value(v)),
    }
}

/// An operation.
pub fn op(
    ty: &str,
    inputs: Vec<(&str, Vec<mil::argument::Binding>)>,
    outputs: Vec<mil::NamedValueType>,
) -> mil::Operation {
    mil::Operation {
        r#type: ty.into(),
        inputs: inputs
            .into_iter()
            .map(|(k, b)| (k.to_string(), mil::Argument { arguments: b }))
            .collect(),
        outputs,
        blocks: vec![],
        attributes: Default::default(),
    }
}

/// A `const` op named `name` whose `val` attribute is `value`.
pub fn const_op(out: &str, value: mil::Value) -> mil::Operation {
    let ty = value.r#type.clone().unwrap_or_default();
    let mut o = op("const", vec![], vec![named(out, ty)]);
    o.attributes.insert(
        "name".into(),
        imm(ttype(mil::DataType::String, &[]), strings(vec![out])),
    );
    o.attributes.insert("val".into(), value);
    o
}

/// A block.
pub fn block(operations: Vec<mil::Operation>, outputs: &[&str]) -> mil::Block {
    mil::Block {
        inputs: vec![],
        outputs: outputs.iter().map(|s| s.to_string()).collect(),
        operations,
        attributes: Default::default(),
    }
}

/// A function named `name` (the name is the program map key).
pub fn function(
    name: &str,
    opset: &str,
    inputs: Vec<mil::NamedValueType>,
    body: mil::Block,
) -> (String, mil::Function) {
    (
        name.to_string(),
        mil::Function {
            inputs,
            opset: opset.into(),
            block_specializations: [(opset.to_string(), body)].into_iter().collect(),
            attributes: Default::default(),
        },
    )
}

/// A program of these functions.
pub fn program(functions: Vec<(String, mil::Function)>) -> mil::Program {
    mil::Program {
        version: 1,
        functions: functions.into_iter().collect(),
        doc_string: String::new(),
        attributes: Default::default(),
    }
}

/// A multi-array feature.
pub fn array_feature(name: &str, code: i32, shape: &[i64]) -> pb::FeatureDescription {
    pb::FeatureDescription {
        name: name.into(),
        short_description: String::new(),
        r#type: Some(pb::FeatureType {
            is_optional: false,
            r#type: Some(pb::feature_type::Type::MultiArrayType(
                pb::ArrayFeatureType {
                    shape: shape.to_vec(),
                    data_type: code,
                    ..Default::default()
                },
            )),
        }),
    }
}

/// Gives an array feature a shape range (`upper < 0`: unbounded).
pub fn set_shape_range(f: &mut pb::FeatureDescription, ranges: &[(u64, i64)]) {
    if let Some(pb::feature_type::Type::MultiArrayType(a)) =
        f.r#type.as_mut().and_then(|t| t.r#type.as_mut())
    {
        a.shape_flexibility = Some(pb::array_feature_type::ShapeFlexibility::ShapeRange(
            pb::array_feature_type::ShapeRange {
                size_ranges: ranges
                    .iter()
                    .map(|&(lower_bound, upper_bound)| pb::SizeRange {
                        lower_bound,
                        upper_bound,
                    })
                    .collect(),
            },
        ));
    }
}

/// A state feature.
pub fn state_feature(name: &str, code: i32, shape: &[i64]) -> pb::FeatureDescription {
    let mut f = array_feature(name, code, shape);
    if let Some(t) = f.r#type.as_mut() {
        if let Some(pb::feature_type::Type::MultiArrayType(a)) = t.r#type.take() {
            t.r#type = Some(pb::feature_type::Type::StateType(pb::StateFeatureType {
                r#type: Some(pb::state_feature_type::Type::ArrayType(a)),
            }));
        }
    }
    f
}

/// A BGR 224x112 image input with two enumerated sizes.
pub fn image_feature() -> pb::FeatureDescription {
    use pb::image_feature_type as it;
    pb::FeatureDescription {
        name: "image".into(),
        short_description: "a picture".into(),
        r#type: Some(pb::FeatureType {
            is_optional: false,
            r#type: Some(pb::feature_type::Type::ImageType(pb::ImageFeatureType {
                width: 224,
                height: 112,
                color_space: it::ColorSpace::Bgr as i32,
                size_flexibility: Some(it::SizeFlexibility::EnumeratedSizes(
                    it::EnumeratedImageSizes {
                        sizes: vec![
                            it::ImageSize {
                                width: 224,
                                height: 112,
                            },
                            it::ImageSize {
                                width: 64,
                                height: 32,
                            },
                        ],
                    },
                )),
            })),
        }),
    }
}

/// A single-function description with metadata.
pub fn model_description(
    input: Vec<pb::FeatureDescription>,
    output: Vec<pb::FeatureDescription>,
) -> pb::ModelDescription {
    pb::ModelDescription {
        input,
        output,
        metadata: Some(pb::Metadata {
            author: "tests".into(),
            user_defined: [("k".to_string(), "v".to_string())].into_iter().collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An ML Program model.
pub fn ml_program(spec: i32, description: pb::ModelDescription, p: mil::Program) -> pb::Model {
    pb::Model {
        specification_version: spec,
        description: Some(description),
        is_updatable: false,
        r#type: Some(pb::model::Type::MlProgram(p)),
    }
}

/// A weight.bin image with `count` copies of one fp16 blob of `data`
/// (records at 64, 64 + 64 + padded data, ...).
pub fn weight_bin(count: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&2u32.to_le_bytes());
    out.resize(64, 0);
    for _ in 0..count {
        let record = out.len() as u64;
        out.extend_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        out.extend_from_slice(&(record + 64).to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.resize(record as usize + 64, 0);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(64) * 64, 0);
    }
    out
}

/// Writes `model` as a package `name` in `dir` (with `weights` as
/// weights/weight.bin when given) and returns its path.
pub fn write_package(dir: &Path, name: &str, model: &pb::Model, weights: Option<&[u8]>) -> PathBuf {
    let pkg = dir.join(name);
    let data = pkg.join("Data/com.apple.CoreML");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("model.mlmodel"), model.encode_to_vec()).unwrap();
    if let Some(w) = weights {
        std::fs::create_dir_all(data.join("weights")).unwrap();
        std::fs::write(data.join("weights/weight.bin"), w).unwrap();
    }
    let manifest = r#"{
    "fileFormatVersion": "1.0.0",
    "itemInfoEntries": {
        "0C8A7B1E-0000-4000-8000-000000000001": {
            "author": "com.apple.CoreML",
            "description": "CoreML Model Specification",
            "name": "model.mlmodel",
            "path": "com.apple.CoreML/model.mlmodel"
        }
    },
    "rootModelIdentifier": "0C8A7B1E-0000-4000-8000-000000000001"
}"#;
    std::fs::write(pkg.join("Manifest.json"), manifest).unwrap();
    pkg
}
