//! The protobuf readers (.mlpackage, .mlmodel): models built here with the
//! generated `coreml-proto` types, encoded with prost, written to a temp
//! folder and read back through `format::open`; plus the coremltools-made
//! fixtures under tests/fixtures (see `proto_readers/fixtures.rs`).

mod proto_readers {
    pub mod build;
    pub mod fixtures;
}

use std::path::{Path, PathBuf};

use candle_coreml::description::{ColorSpace, DimRange, FeatureType, ShapeFlexibility};
use candle_coreml::format::{ModelBody, ModelFormat};
use candle_coreml::mil::{Binding, DataType, Dim, TensorData, ValueType};
use candle_coreml::Error;
use coreml_proto::proto as pb;
use coreml_proto::proto::mil_spec as mil;
use prost::Message;

use proto_readers::build::*;

/// `format::open` followed by `map_weights`: the whole model as a backend
/// loads it (weights mapped and checked).
fn open_mapped(
    path: impl AsRef<std::path::Path>,
) -> candle_coreml::Result<candle_coreml::format::ModelFile> {
    let mut m = candle_coreml::format::open(path)?;
    m.map_weights()?;
    Ok(m)
}

fn fp16_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
        .collect()
}

/// The `mul` + `concat` program with a blob weight, an immediate fp32
/// scalar, packed int8 bytes and a variadic argument.
fn blob_program() -> mil::Program {
    let w = blob_value(ttype(mil::DataType::Float16, &[1, 4]), WEIGHT_REF, 64);
    let ops = vec![
        const_op("w", w),
        const_op(
            "s",
            imm(ttype(mil::DataType::Float32, &[]), floats(vec![2.0])),
        ),
        const_op(
            "q",
            imm(ttype(mil::DataType::Int8, &[3]), bytes(vec![0xff, 1, 0x80])),
        ),
        op(
            "mul",
            vec![("x", vec![name("x")]), ("y", vec![name("w")])],
            vec![named("m", ttype(mil::DataType::Float16, &[1, 4]))],
        ),
        op(
            "concat",
            vec![
                ("values", vec![name("m"), name("x")]),
                (
                    "axis",
                    vec![lit(imm(ttype(mil::DataType::Int32, &[]), ints(vec![1])))],
                ),
            ],
            vec![named("y", ttype(mil::DataType::Float16, &[1, 8]))],
        ),
    ];
    program(vec![function(
        "main",
        "CoreML7",
        vec![named("x", ttype(mil::DataType::Float16, &[1, 4]))],
        block(ops, &["y"]),
    )])
}

#[test]
fn package_with_blob_weights() {
    let weights = fp16_bytes(&[1.0, -2.0, 0.5, 4.0]);
    let dir = tempfile::tempdir().unwrap();
    let mut x = array_feature("x", 65552, &[1, 4]);
    set_shape_range(&mut x, &[(1, 1), (4, -1)]);
    let description = model_description(vec![x], vec![array_feature("y", 65552, &[1, 8])]);
    let model = ml_program(8, description, blob_program());
    let pkg = write_package(
        dir.path(),
        "m.mlpackage",
        &model,
        Some(&weight_bin(1, &weights)),
    );

    let mf = open_mapped(&pkg).unwrap();
    assert_eq!(mf.format, ModelFormat::MlPackage);
    assert_eq!(mf.path, pkg);
    assert_eq!(mf.spec_version, Some(8));
    assert!(mf.compiled_op_histogram.is_none());
    let p = mf.program().expect("an ML program");
    assert_eq!(p.version, "1");
    let f = p.function("main").unwrap();
    assert_eq!(f.opset, "CoreML7");
    assert_eq!(f.ios_version(), Some(17));
    assert_eq!(f.block.outputs, vec!["y".to_string()]);
    let types: Vec<_> = f
        .block
        .operations
        .iter()
        .map(|o| o.op_type.as_str())
        .collect();
    assert_eq!(types, ["const", "const", "const", "mul", "concat"]);

    let w = f.block.operations[0]
        .attribute("val")
        .unwrap()
        .as_tensor()
        .unwrap();
    assert_eq!((w.dtype, w.shape.clone()), (DataType::Fp16, vec![1, 4]));
    let blob = w.blob.as_ref().unwrap();
    assert_eq!((blob.file.as_str(), blob.offset), (WEIGHT_REF, 64));
    match &w.data {
        TensorData::Bytes(b) => assert_eq!(b.as_slice(), weights.as_slice()),
        other => panic!("{other:?}"),
    }
    let s = f.block.operations[1]
        .attribute("val")
        .unwrap()
        .as_tensor()
        .unwrap();
    assert!(s.shape.is_empty());
    assert!(matches!(&s.data, TensorData::F32(v) if v == &[2.0]));
    let q = f.block.operations[2]
        .attribute("val")
        .unwrap()
        .as_tensor()
        .unwrap();
    assert!(matches!(&q.data, TensorData::Bytes(b) if b.as_slice() == [0xff, 1, 0x80]));
    assert_eq!(f.block.operations[2].name(), Some("q"));

    let concat = &f.block.operations[4];
    let values = concat.input("values").unwrap();
    assert!(
        matches!(values.bindings.as_slice(), [Binding::Name(a), Binding::Name(b)] if a == "m" && b == "x")
    );
    assert!(matches!(
        concat.input("axis").unwrap().bindings.as_slice(),
        [Binding::Value(_)]
    ));
    assert_eq!(concat.outputs[0].ty.to_string(), "tensor<fp16, [1, 8]>");

    let d = &mf.description;
    assert_eq!(d.default_function, "main");
    let main = d.default().unwrap();
    assert_eq!(main.inputs[0].name, "x");
    match &main.inputs[0].ty {
        FeatureType::MultiArray(a) => {
            assert_eq!(a.dtype, Some(DataType::Fp16));
            assert_eq!(a.shape, vec![1, 4]);
            let ranges = vec![
                DimRange {
                    lower: 1,
                    upper: Some(1),
                },
                DimRange {
                    lower: 4,
                    upper: None,
                },
            ];
            assert_eq!(a.flexibility, Some(ShapeFlexibility::Ranges(ranges)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.metadata.author, "tests");
    assert_eq!(
        d.metadata.user_defined.get("k").map(String::as_str),
        Some("v")
    );
}

#[test]
fn multifunction_description_and_sorted_functions() {
    let mk = |n: &str| {
        function(
            n,
            "CoreML8",
            vec![
                named("x", ttype(mil::DataType::Float16, &[1, 4])),
                named("cache", state_type(ttype(mil::DataType::Float16, &[2, 4]))),
            ],
            block(vec![], &["x"]),
        )
    };
    let mut desc = model_description(vec![], vec![]);
    for n in ["prefill", "infer"] {
        desc.functions.push(pb::FunctionDescription {
            name: n.into(),
            input: vec![array_feature("x", 65552, &[1, 4])],
            output: vec![array_feature("x", 65552, &[1, 4])],
            state: vec![state_feature("cache", 65552, &[2, 4])],
            ..Default::default()
        });
    }
    desc.default_function_name = "infer".into();
    let model = ml_program(9, desc, program(vec![mk("prefill"), mk("infer")]));
    let dir = tempfile::tempdir().unwrap();
    let pkg = write_package(dir.path(), "mf.mlpackage", &model, None);
    let mf = open_mapped(&pkg).unwrap();
    let names: Vec<_> = mf
        .program()
        .unwrap()
        .functions
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, ["infer", "prefill"]);
    let cache = &mf.program().unwrap().functions[0].inputs[1];
    assert_eq!(cache.ty.state_tensor().unwrap().dtype, DataType::Fp16);
    let d = &mf.description;
    assert_eq!(d.default_function, "infer");
    let fnames: Vec<_> = d.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(fnames, ["prefill", "infer"]);
    let st = &d.function("prefill").unwrap().states[0];
    assert!(matches!(&st.ty, FeatureType::State(a) if a.shape == [2, 4]));

    // A default function that names nothing is refused.
    let mut model = model;
    if let Some(d) = model.description.as_mut() {
        d.default_function_name = "nope".into();
    }
    let pkg = write_package(dir.path(), "bad.mlpackage", &model, None);
    let err = open_mapped(&pkg).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn single_function_named_after_the_program() {
    let prog = program(vec![function("foo", "CoreML6", vec![], block(vec![], &[]))]);
    let model = ml_program(6, model_description(vec![], vec![]), prog);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.mlmodel");
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    let mf = open_mapped(&path).unwrap();
    assert_eq!(mf.format, ModelFormat::MlModel);
    assert_eq!(mf.description.default_function, "foo");
    assert_eq!(mf.description.functions.len(), 1);
}

#[test]
fn neural_network_pipeline_and_other_kinds() {
    let nn = pb::Model {
        specification_version: 4,
        description: Some(model_description(vec![image_feature()], vec![])),
        r#type: Some(pb::model::Type::NeuralNetwork(pb::NeuralNetwork {
            layers: vec![Default::default(); 3],
            ..Default::default()
        })),
        ..Default::default()
    };
    let identity = pb::Model {
        specification_version: 4,
        r#type: Some(pb::model::Type::Identity(Default::default())),
        ..Default::default()
    };
    let pipe = pb::Model {
        specification_version: 4,
        description: Some(model_description(vec![image_feature()], vec![])),
        r#type: Some(pb::model::Type::PipelineClassifier(
            pb::PipelineClassifier {
                pipeline: Some(pb::Pipeline {
                    models: vec![nn.clone(), identity],
                    names: vec![],
                }),
            },
        )),
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipe.mlmodel");
    std::fs::write(&path, pipe.encode_to_vec()).unwrap();
    let mf = open_mapped(&path).unwrap();
    let ModelBody::Pipeline(models) = &mf.body else {
        panic!("expected a pipeline, got {}", mf.body.kind());
    };
    assert_eq!(models.len(), 2);
    assert!(matches!(
        models[0].body,
        ModelBody::NeuralNetwork { layers: 3, .. }
    ));
    assert_eq!(models[1].body.kind(), "identity");
    assert_eq!(models[0].path, path);
    assert_eq!(models[0].format, ModelFormat::MlModel);
    let img = &mf.description.default().unwrap().inputs[0];
    match &img.ty {
        FeatureType::Image(i) => {
            assert_eq!(
                (i.width, i.height, i.color_space),
                (224, 112, ColorSpace::Bgr)
            );
            assert_eq!(i.enumerated_sizes, vec![(224, 112), (64, 32)]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(img.ty.shape(), Some(vec![1, 3, 112, 224]));
}

/// Writes a one-const program whose value is `value` and returns the error.
fn const_error(value: mil::Value) -> Error {
    let prog = program(vec![function(
        "main",
        "CoreML7",
        vec![],
        block(vec![const_op("c", value)], &["c"]),
    )]);
    let model = ml_program(8, model_description(vec![], vec![]), prog);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.mlmodel");
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    let err = open_mapped(&path).unwrap_err();
    match &err {
        Error::Format { path: p, message } => {
            assert_eq!(p, &path);
            assert!(message.contains("function \"main\""), "{message}");
            assert!(message.contains("op \"c\" (const)"), "{message}");
        }
        other => panic!("expected a format error, got {other:?}"),
    }
    err
}

#[test]
fn immediate_values_must_fit_their_type() {
    let f32t = |s: &[u64]| ttype(mil::DataType::Float32, s);
    let cases = [
        (
            imm(f32t(&[3]), floats(vec![1.0, 2.0])),
            "holds 2 values, expected 3",
        ),
        (
            imm(f32t(&[1]), floats(vec![1.0, 2.0])),
            "holds 2 values, expected 1",
        ),
        (
            imm(ttype(mil::DataType::Float16, &[2]), bytes(vec![0, 0, 0])),
            "needs 4 bytes, has 3",
        ),
        (imm(f32t(&[1]), strings(vec!["a"])), "wrong protobuf field"),
        (
            imm(
                f32t(&[4]),
                mil::value::immediate_value::Value::Tensor(Default::default()),
            ),
            "no data",
        ),
        (
            imm(ttype(99, &[1]), floats(vec![1.0])),
            "unknown MIL data type code 99",
        ),
        (imm(unknown_dim_type(), floats(vec![1.0])), "not known"),
        (imm(rank_mismatch_type(), floats(vec![1.0])), "rank 2"),
        (
            imm(f32t(&[u64::MAX, u64::MAX]), floats(vec![])),
            "overflows",
        ),
        (
            mil::Value {
                r#type: Some(f32t(&[1])),
                ..Default::default()
            },
            "neither",
        ),
    ];
    for (value, expect) in cases {
        let err = const_error(value);
        assert!(err.to_string().contains(expect), "{expect:?} not in {err}");
    }
    // A 4-bit tensor: 3 elements in 2 bytes.
    let dir = tempfile::tempdir().unwrap();
    let ok = imm(ttype(mil::DataType::Uint4, &[3]), bytes(vec![0x21, 0x03]));
    let prog = program(vec![function(
        "main",
        "CoreML7",
        vec![],
        block(vec![const_op("c", ok)], &["c"]),
    )]);
    let path = dir.path().join("ok.mlmodel");
    std::fs::write(
        &path,
        ml_program(8, model_description(vec![], vec![]), prog).encode_to_vec(),
    )
    .unwrap();
    open_mapped(&path).unwrap();
}

#[test]
fn blob_errors_pass_through() {
    let dir = tempfile::tempdir().unwrap();
    let w = blob_value(ttype(mil::DataType::Float32, &[1, 4]), WEIGHT_REF, 64);
    let prog = program(vec![function(
        "main",
        "CoreML7",
        vec![],
        block(vec![const_op("w", w)], &["w"]),
    )]);
    let model = ml_program(8, model_description(vec![], vec![]), prog);
    let weights = fp16_bytes(&[1.0, 2.0, 3.0, 4.0]);
    let pkg = write_package(
        dir.path(),
        "b.mlpackage",
        &model,
        Some(&weight_bin(1, &weights)),
    );
    match open_mapped(&pkg) {
        Err(Error::Blob {
            path,
            offset,
            message,
        }) => {
            assert!(path.ends_with("Data/com.apple.CoreML/weights/weight.bin"));
            assert_eq!(offset, 64);
            assert!(message.contains("dtype mismatch"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // A blob reference escaping the package.
    let w = blob_value(
        ttype(mil::DataType::Float16, &[1, 4]),
        "@model_path/../../../x.bin",
        64,
    );
    let prog = program(vec![function(
        "main",
        "CoreML7",
        vec![],
        block(vec![const_op("w", w)], &["w"]),
    )]);
    let model = ml_program(8, model_description(vec![], vec![]), prog);
    let pkg = write_package(
        dir.path(),
        "e.mlpackage",
        &model,
        Some(&weight_bin(1, &weights)),
    );
    assert!(matches!(open_mapped(&pkg), Err(Error::PathEscape { .. })));
}

#[test]
fn missing_block_specialization() {
    let mut f = function("main", "CoreML7", vec![], block(vec![], &[]));
    f.1.opset = "CoreML8".into();
    let model = ml_program(8, model_description(vec![], vec![]), program(vec![f]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.mlmodel");
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    let err = open_mapped(&path).unwrap_err().to_string();
    assert!(
        err.contains("CoreML8") && err.contains("block specialization"),
        "{err}"
    );
}

fn protobuf_error_path(path: &Path) -> PathBuf {
    match open_mapped(path) {
        Err(Error::Protobuf { path, .. }) => path,
        other => panic!("expected a protobuf error, got {other:?}"),
    }
}

#[test]
fn corrupt_protobuf_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let encoded = ml_program(8, model_description(vec![], vec![]), blob_program()).encode_to_vec();
    let path = dir.path().join("t.mlmodel");
    std::fs::write(&path, &encoded[..encoded.len() - 3]).unwrap();
    assert_eq!(protobuf_error_path(&path), path);
    std::fs::write(&path, [0xff; 16]).unwrap();
    assert_eq!(protobuf_error_path(&path), path);

    let pkg = write_package(
        dir.path(),
        "c.mlpackage",
        &ml_program(8, Default::default(), blob_program()),
        None,
    );
    let inner = pkg.join("Data/com.apple.CoreML/model.mlmodel");
    std::fs::write(&inner, [0x0a, 0xff, 0xff]).unwrap();
    assert!(protobuf_error_path(&pkg).ends_with("Data/com.apple.CoreML/model.mlmodel"));
}

#[test]
fn manifest_errors() {
    let dir = tempfile::tempdir().unwrap();
    let model = ml_program(8, model_description(vec![], vec![]), blob_program());
    let pkg = write_package(dir.path(), "p.mlpackage", &model, None);
    let manifest = pkg.join("Manifest.json");
    let write = |root: &str, path: &str| {
        let text = format!(
            r#"{{"fileFormatVersion": "1.0.0", "itemInfoEntries": {{"A": {{"path": "{path}", "name": "model.mlmodel"}}}}, "rootModelIdentifier": "{root}"}}"#
        );
        std::fs::write(&manifest, text).unwrap();
    };
    write("B", "com.apple.CoreML/model.mlmodel");
    let err = open_mapped(&pkg).unwrap_err();
    assert!(
        matches!(&err, Error::Format { path, .. } if path == &manifest),
        "{err:?}"
    );
    write("A", "com.apple.CoreML/nothing.mlmodel");
    assert!(matches!(open_mapped(&pkg), Err(Error::Io { .. })));
    for escaping in [
        "../outside.mlmodel",
        "/etc/passwd",
        "com.apple.CoreML/../../Manifest.json",
    ] {
        write("A", escaping);
        assert!(
            matches!(open_mapped(&pkg), Err(Error::PathEscape { reference, .. }) if reference == escaping),
            "{escaping}"
        );
    }
    #[cfg(unix)]
    {
        std::fs::write(dir.path().join("outside.mlmodel"), model.encode_to_vec()).unwrap();
        let link = pkg.join("Data/com.apple.CoreML/link.mlmodel");
        std::os::unix::fs::symlink(dir.path().join("outside.mlmodel"), &link).unwrap();
        write("A", "com.apple.CoreML/link.mlmodel");
        assert!(matches!(open_mapped(&pkg), Err(Error::PathEscape { .. })));
    }
    std::fs::write(&manifest, "{ not json").unwrap();
    assert!(matches!(open_mapped(&pkg), Err(Error::Json { path, .. }) if path == manifest));
    std::fs::remove_file(&manifest).unwrap();
    assert!(open_mapped(&pkg).is_err());
}

/// A tiny deterministic generator (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_models_never_panic() {
    let weights = fp16_bytes(&[1.0, -2.0, 0.5, 4.0]);
    let wb = weight_bin(1, &weights);
    let mut x = array_feature("x", 65552, &[1, 4]);
    set_shape_range(&mut x, &[(1, 1), (4, -1)]);
    let desc = model_description(
        vec![x, image_feature()],
        vec![array_feature("y", 65552, &[1, 8])],
    );
    let encoded = ml_program(8, desc, blob_program()).encode_to_vec();
    let dir = tempfile::tempdir().unwrap();
    let pkg = write_package(
        dir.path(),
        "f.mlpackage",
        &ml_program(8, Default::default(), blob_program()),
        Some(&wb),
    );
    let inner = pkg.join("Data/com.apple.CoreML/model.mlmodel");
    let weight_path = pkg.join("Data/com.apple.CoreML/weights/weight.bin");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut ok, mut err) = (0, 0);
    for i in 0..400 {
        let mut bytes = encoded.clone();
        match i % 4 {
            0 => bytes.truncate(rng.below(bytes.len())),
            1 | 2 => {
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(bytes.len());
                    bytes[at] ^= 1 << rng.below(8);
                }
            }
            _ => {
                let at = rng.below(bytes.len());
                bytes[at] = rng.next() as u8;
            }
        }
        std::fs::write(&inner, &bytes).unwrap();
        let mut w = wb.clone();
        if i % 5 == 0 {
            let at = rng.below(w.len().min(192));
            w[at] ^= 1 << rng.below(8);
        }
        std::fs::write(&weight_path, &w).unwrap();
        match open_mapped(&pkg) {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
    }
    assert_eq!(ok + err, 400);
    assert!(err > 0, "some mutations must be refused");
}

/// Copies a folder tree (files and folders only).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Bit flips in a coremltools-made package (protobuf and weight.bin).
#[test]
fn mutated_fixture_package_never_panics() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/mlp_fp16.mlpackage");
    if !fixture.is_dir() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("mlp.mlpackage");
    copy_tree(&fixture, &pkg);
    open_mapped(&pkg).unwrap();
    let inner = pkg.join("Data/com.apple.CoreML/model.mlmodel");
    let weights = pkg.join("Data/com.apple.CoreML/weights/weight.bin");
    let (model, wb) = (
        std::fs::read(&inner).unwrap(),
        std::fs::read(&weights).unwrap(),
    );
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for i in 0..200 {
        let (mut m, mut w) = (model.clone(), wb.clone());
        if i % 2 == 0 {
            let at = rng.below(m.len());
            m[at] ^= 1 << rng.below(8);
        } else {
            // Flip a bit in the header or a metadata record.
            let records = 1 + rng.below(w.len() / 64);
            let at = 64 * rng.below(records.min(8)) + rng.below(32);
            w[at] ^= 1 << rng.below(8);
        }
        std::fs::write(&inner, &m).unwrap();
        std::fs::write(&weights, &w).unwrap();
        let _ = open_mapped(&pkg);
    }
}

#[test]
fn deep_pipelines_are_refused_not_overflowed() {
    let leaf = pb::Model {
        specification_version: 4,
        r#type: Some(pb::model::Type::Identity(Default::default())),
        ..Default::default()
    };
    let nest = |depth: usize| {
        let mut m = leaf.clone();
        for _ in 0..depth {
            m = pb::Model {
                specification_version: 4,
                r#type: Some(pb::model::Type::Pipeline(pb::Pipeline {
                    models: vec![m],
                    names: vec![],
                })),
                ..Default::default()
            };
        }
        m.encode_to_vec()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.mlmodel");
    std::fs::write(&path, nest(10)).unwrap();
    let mut mf = open_mapped(&path).unwrap();
    for _ in 0..10 {
        let ModelBody::Pipeline(mut models) = mf.body else {
            panic!("expected a pipeline");
        };
        mf = models.remove(0);
    }
    assert_eq!(mf.body.kind(), "identity");
    std::fs::write(&path, nest(500)).unwrap();
    assert!(open_mapped(&path).is_err());
}

#[test]
fn value_types_convert() {
    let list = mil::ValueType {
        r#type: Some(mil::value_type::Type::ListType(Box::new(mil::ListType {
            r#type: Some(Box::new(ttype(mil::DataType::Int32, &[2]))),
            length: Some(mil::Dimension {
                dimension: Some(mil::dimension::Dimension::Constant(
                    mil::dimension::ConstantDimension { size: 3 },
                )),
            }),
        }))),
    };
    let prog = program(vec![function(
        "main",
        "CoreML7",
        vec![named("l", list), named("u", unknown_dim_type())],
        block(vec![], &["l"]),
    )]);
    let model = ml_program(8, model_description(vec![], vec![]), prog);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.mlmodel");
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    let mf = open_mapped(&path).unwrap();
    let f = &mf.program().unwrap().functions[0];
    assert_eq!(f.inputs[0].ty.to_string(), "list<tensor<int32, [2]>, 3>");
    match &f.inputs[1].ty {
        ValueType::Tensor(t) => assert_eq!(t.shape, Some(vec![Dim::Fixed(1), Dim::Unknown])),
        other => panic!("{other:?}"),
    }
}
