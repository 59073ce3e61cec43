//! Tests of constexpr decompression (`mil::constexpr`); element decoding has
//! its unit tests in `src/mil/elements_tests.rs`.
//!
//! Expected values come from elsewhere: the worked examples in coremltools' op docstrings (`ops/defs/iOS16/constexpr_ops.py`,
//! `ops/defs/iOS18/compression.py`), hand computation of the documented
//! formulas, and, for the fixtures under `tests/fixtures/compression/`, the
//! dense weights that coremltools' own decompression (`decompress_weights`'
//! graph pass) wrote next to each compressed .mlpackage.

use std::collections::BTreeMap;
use std::path::Path;

use candle_coreml::mil::constexpr::{decompress, decompress_all};
use candle_coreml::mil::{
    Argument, Binding, ByteView, DataType, NamedValueType, Operation, TensorData, TensorType,
    TensorValue, Value, ValueType,
};
use half::f16;

/// `format::open` followed by `map_weights`: the whole model as a backend
/// loads it (weights mapped and checked).
fn open_mapped(
    path: impl AsRef<std::path::Path>,
) -> candle_coreml::Result<candle_coreml::format::ModelFile> {
    let mut m = candle_coreml::format::open(path)?;
    m.map_weights()?;
    Ok(m)
}

// ---------------------------------------------------------------- helpers

fn tensor(dtype: DataType, shape: &[usize], data: TensorData) -> TensorValue {
    TensorValue::new(dtype, shape.to_vec(), data)
}

fn bytes(dtype: DataType, shape: &[usize], b: &[u8]) -> TensorValue {
    tensor(
        dtype,
        shape,
        TensorData::Bytes(ByteView::from_vec(b.to_vec())),
    )
}

fn ints(dtype: DataType, shape: &[usize], v: &[i64]) -> TensorValue {
    tensor(dtype, shape, TensorData::I64(v.to_vec()))
}

fn floats(dtype: DataType, shape: &[usize], v: &[f32]) -> TensorValue {
    tensor(dtype, shape, TensorData::F32(v.to_vec()))
}

fn fp16_bytes(shape: &[usize], v: &[f32]) -> TensorValue {
    let b: Vec<u8> = v
        .iter()
        .flat_map(|x| f16::from_f32(*x).to_le_bytes())
        .collect();
    bytes(DataType::Fp16, shape, &b)
}

/// An op of the iOS16 form: every parameter an attribute.
fn attr_op(op_type: &str, params: Vec<(&str, TensorValue)>) -> Operation {
    Operation {
        op_type: op_type.into(),
        inputs: BTreeMap::new(),
        outputs: vec![],
        blocks: vec![],
        attributes: params
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::Tensor(v)))
            .collect(),
        location: None,
    }
}

/// An op of the iOS18 form: every parameter an input bound to a literal.
fn input_op(op_type: &str, params: Vec<(&str, TensorValue)>) -> Operation {
    Operation {
        op_type: op_type.into(),
        inputs: params
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Argument::single(Binding::Value(Value::Tensor(v))),
                )
            })
            .collect(),
        outputs: vec![],
        blocks: vec![],
        attributes: BTreeMap::new(),
        location: None,
    }
}

fn no_lookup(_: &str) -> Option<&'static Value> {
    None
}

fn run(op: &Operation) -> TensorValue {
    decompress(op, &no_lookup).unwrap_or_else(|e| panic!("{}: {e}", op.op_type))
}

fn run_err(op: &Operation) -> String {
    match decompress_all(op, &no_lookup) {
        Ok(v) => panic!("{}: expected an error, got {v:?}", op.op_type),
        Err(e) => e,
    }
}

fn f32s(t: &TensorValue) -> Vec<f32> {
    t.to_f32_vec().unwrap()
}

// ---------------------------------------------------------------- constexpr ops

#[test]
fn affine_dequantize_per_channel_and_per_tensor() {
    let q = ints(DataType::Int8, &[2, 3], &[-1, 0, 3, 5, 127, -128]);
    // Per channel along axis 0: (q - zp[c]) * scale[c].
    let op = attr_op(
        "constexpr_affine_dequantize",
        vec![
            ("quantized_data", q.clone()),
            ("zero_point", ints(DataType::Int8, &[2], &[-1, 2])),
            ("scale", floats(DataType::Fp32, &[2], &[0.5, 0.25])),
            ("axis", ints(DataType::Int32, &[], &[0])),
        ],
    );
    let out = run(&op);
    assert_eq!((out.dtype, out.shape.clone()), (DataType::Fp32, vec![2, 3]));
    assert_eq!(f32s(&out), vec![0.0, 0.5, 2.0, 0.75, 31.25, -32.5]);
    // Along axis -1 (= 1), fp16 scale: output fp16.
    let op = attr_op(
        "constexpr_affine_dequantize",
        vec![
            ("quantized_data", q.clone()),
            ("zero_point", ints(DataType::UInt8, &[], &[0])),
            ("scale", fp16_bytes(&[3], &[1.0, 2.0, 0.5])),
            ("axis", ints(DataType::Int32, &[], &[-1])),
        ],
    );
    let out = run(&op);
    assert_eq!(out.dtype, DataType::Fp16);
    assert_eq!(f32s(&out), vec![-1.0, 0.0, 1.5, 5.0, 254.0, -64.0]);
    // A vector of the wrong length and an axis out of range are errors.
    let bad = |zp: TensorValue, axis: i64| {
        attr_op(
            "constexpr_affine_dequantize",
            vec![
                ("quantized_data", q.clone()),
                ("zero_point", zp),
                ("scale", floats(DataType::Fp32, &[], &[1.0])),
                ("axis", ints(DataType::Int32, &[], &[axis])),
            ],
        )
    };
    assert!(run_err(&bad(ints(DataType::Int8, &[4], &[0; 4]), 0)).contains("zero_point"));
    assert!(run_err(&bad(ints(DataType::Int8, &[], &[0]), 2)).contains("axis"));
}

#[test]
fn blockwise_shift_scale_int4_blocks() {
    // data int4 [2, 4] = [[1, -2, 3, -8], [7, 0, -1, 5]] packed LSB-first,
    // blocks of [1, 2]: scale [[0.5, 2], [0.25, 1]], offset [[1, 0], [-1, 2]].
    let op = input_op(
        "constexpr_blockwise_shift_scale",
        vec![
            (
                "data",
                bytes(DataType::Int4, &[2, 4], &[0xE1, 0x83, 0x07, 0x5F]),
            ),
            ("scale", fp16_bytes(&[2, 2], &[0.5, 2.0, 0.25, 1.0])),
            ("offset", bytes(DataType::Int4, &[2, 2], &[0x01, 0x2F])),
        ],
    );
    let out = run(&op);
    assert_eq!((out.dtype, out.shape.clone()), (DataType::Fp16, vec![2, 4]));
    assert_eq!(
        f32s(&out),
        vec![0.0, -1.5, 6.0, -16.0, 2.0, 0.25, -3.0, 3.0]
    );
    // Without offset, with an fp16 scale that is not a power of two: the
    // product is rounded to fp16 as numpy does for fp16 arrays.
    let op = input_op(
        "constexpr_blockwise_shift_scale",
        vec![
            ("data", ints(DataType::Int8, &[3, 1], &[3, -7, 100])),
            ("scale", fp16_bytes(&[1, 1], &[0.1])),
        ],
    );
    let s = f16::from_f32(0.1).to_f32();
    let want: Vec<f32> = [3.0f32, -7.0, 100.0]
        .iter()
        .map(|q| f16::from_f32(q * s).to_f32())
        .collect();
    assert_eq!(f32s(&run(&op)), want);
    // A scale shape that does not divide the data shape is an error.
    let op = input_op(
        "constexpr_blockwise_shift_scale",
        vec![
            ("data", ints(DataType::Int8, &[3, 2], &[0; 6])),
            ("scale", floats(DataType::Fp32, &[2, 1], &[1.0, 1.0])),
        ],
    );
    assert!(run_err(&op).contains("scale"));
}

#[test]
fn cast_fp16_to_fp32() {
    let op = input_op(
        "constexpr_cast",
        vec![
            ("source_val", fp16_bytes(&[3], &[1.5, -2.0, 65504.0])),
            (
                "output_dtype",
                tensor(DataType::String, &[], TensorData::Str(vec!["fp32".into()])),
            ),
        ],
    );
    let out = run(&op);
    assert_eq!(out.dtype, DataType::Fp32);
    assert_eq!(f32s(&out), vec![1.5, -2.0, 65504.0]);
}

#[test]
fn lut_to_dense_ios16_docstring_example() {
    // n_bits = 2, shape (5,): indices 0, 3, 2, 1, 3.
    let op = attr_op(
        "constexpr_lut_to_dense",
        vec![
            (
                "indices",
                bytes(DataType::UInt8, &[2], &[0b0110_1100, 0b11]),
            ),
            ("lut", fp16_bytes(&[4], &[10.0, 20.0, 30.0, 40.0])),
            ("shape", ints(DataType::UInt32, &[1], &[5])),
        ],
    );
    let out = run(&op);
    assert_eq!((out.dtype, out.shape.clone()), (DataType::Fp16, vec![5]));
    assert_eq!(f32s(&out), vec![10.0, 40.0, 30.0, 20.0, 40.0]);
    // M must be ceil(n_bits * 5 / 8) = 2 bytes.
    let op = attr_op(
        "constexpr_lut_to_dense",
        vec![
            ("indices", bytes(DataType::UInt8, &[3], &[0, 0, 0])),
            ("lut", fp16_bytes(&[4], &[10.0, 20.0, 30.0, 40.0])),
            ("shape", ints(DataType::UInt32, &[1], &[5])),
        ],
    );
    assert!(run_err(&op).contains("indices"));
}

#[test]
fn lut_to_dense_ios18_grouped_docstring_case_1() {
    // indices uint2 [6, 2] = [2,3, 3,0, 1,0, 3,0, 2,1, 0,3]; lut fp16 [2, 1, 4, 1].
    let lut = floats(
        DataType::Fp16,
        &[2, 1, 4, 1],
        &[1.0, 5.0, 9.0, 13.0, 2.0, 10.0, 18.0, 26.0],
    );
    let want = vec![
        9.0, 13.0, 13.0, 1.0, 5.0, 1.0, 26.0, 2.0, 18.0, 10.0, 2.0, 26.0,
    ];
    let packed = bytes(DataType::UInt2, &[6, 2], &[62, 49, 198]);
    let literal = ints(
        DataType::UInt2,
        &[6, 2],
        &[2, 3, 3, 0, 1, 0, 3, 0, 2, 1, 0, 3],
    );
    for indices in [packed, literal] {
        let op = input_op(
            "constexpr_lut_to_dense",
            vec![("indices", indices), ("lut", lut.clone())],
        );
        let out = run(&op);
        assert_eq!((out.dtype, out.shape.clone()), (DataType::Fp16, vec![6, 2]));
        assert_eq!(f32s(&out), want);
    }
}

#[test]
fn lut_to_dense_ios18_vector_docstring_case_2() {
    // indices uint1 [2, 2, 2] = [[[0, 0], [1, 0]], [[1, 1], [0, 0]]];
    // lut int8 [1, 1, 1, 2, 3] = [a0, a1, a2, b0, b1, b2].
    let (a0, a1, a2, b0, b1, b2) = (1, 2, 3, -1, -2, -3);
    let indices = bytes(DataType::UInt1, &[2, 2, 2], &[0b0011_0100]);
    let lut = ints(DataType::Int8, &[1, 1, 1, 2, 3], &[a0, a1, a2, b0, b1, b2]);
    let case = |axis: i64| {
        let op = input_op(
            "constexpr_lut_to_dense",
            vec![
                ("indices", indices.clone()),
                ("lut", lut.clone()),
                ("vector_axis", ints(DataType::Int32, &[], &[axis])),
            ],
        );
        let out = run(&op);
        assert_eq!(out.dtype, DataType::Int8);
        (out.shape.clone(), out.to_i64_vec().unwrap())
    };
    let (shape, v) = case(1);
    assert_eq!(shape, vec![2, 6, 2]);
    #[rustfmt::skip]
    assert_eq!(v, vec![
        a0, a0, a1, a1, a2, a2, b0, a0, b1, a1, b2, a2,
        b0, b0, b1, b1, b2, b2, a0, a0, a1, a1, a2, a2,
    ]);
    let (shape, v) = case(2);
    assert_eq!(shape, vec![2, 2, 6]);
    #[rustfmt::skip]
    assert_eq!(v, vec![
        a0, a1, a2, a0, a1, a2, b0, b1, b2, a0, a1, a2,
        b0, b1, b2, b0, b1, b2, a0, a1, a2, a0, a1, a2,
    ]);
    // vector_axis is required when VECTOR_SIZE > 1.
    let op = input_op(
        "constexpr_lut_to_dense",
        vec![("indices", indices), ("lut", lut)],
    );
    assert!(run_err(&op).contains("vector_axis"));
}

#[test]
fn lut_to_dense_rejects_inconsistent_parameters() {
    let idx = ints(DataType::UInt2, &[4], &[0, 1, 2, 3]);
    let cases = [
        // LUT rank must be indices rank + 2.
        (idx.clone(), floats(DataType::Fp32, &[4, 1, 1], &[0.0; 4])),
        // Groups must divide the indices shape.
        (idx.clone(), floats(DataType::Fp32, &[3, 4, 1], &[0.0; 12])),
        // Index 3 is out of range for a 2-entry LUT.
        (idx.clone(), floats(DataType::Fp32, &[1, 2, 1], &[0.0; 2])),
        // LUT storage shorter than its shape.
        (idx, floats(DataType::Fp32, &[1, 4, 1], &[0.0; 3])),
    ];
    for (indices, lut) in cases {
        let op = input_op(
            "constexpr_lut_to_dense",
            vec![("indices", indices), ("lut", lut)],
        );
        run_err(&op);
    }
}

#[test]
fn sparse_to_dense_both_forms() {
    // iOS16 docstring: shape (5,), mask byte x x x 0 1 1 0 0 -> i2, i3 set.
    let op = attr_op(
        "constexpr_sparse_to_dense",
        vec![
            ("nonzero_data", floats(DataType::Fp32, &[2], &[7.0, 8.0])),
            ("mask", bytes(DataType::UInt8, &[1], &[0b0000_1100])),
            ("shape", ints(DataType::UInt32, &[1], &[5])),
        ],
    );
    assert_eq!(f32s(&run(&op)), vec![0.0, 0.0, 7.0, 8.0, 0.0]);
    // iOS18: uint1 mask of the dense shape; fp16 data stays fp16.
    let op = input_op(
        "constexpr_sparse_to_dense",
        vec![
            ("nonzero_data", fp16_bytes(&[3], &[1.0, -2.0, 3.0])),
            ("mask", bytes(DataType::UInt1, &[2, 3], &[0b0010_0011])),
        ],
    );
    let out = run(&op);
    assert_eq!((out.dtype, out.shape.clone()), (DataType::Fp16, vec![2, 3]));
    assert_eq!(f32s(&out), vec![1.0, -2.0, 0.0, 0.0, 0.0, 3.0]);
    // int4 data stays packed int4.
    let op = input_op(
        "constexpr_sparse_to_dense",
        vec![
            ("nonzero_data", ints(DataType::Int4, &[2], &[-3, 5])),
            ("mask", ints(DataType::UInt1, &[3], &[0, 1, 1])),
        ],
    );
    let out = run(&op);
    assert_eq!(out.dtype, DataType::Int4);
    assert_eq!(out.to_i64_vec().unwrap(), vec![0, -3, 5]);
    // Set bits must match the number of values.
    let op = input_op(
        "constexpr_sparse_to_dense",
        vec![
            ("nonzero_data", floats(DataType::Fp32, &[1], &[1.0])),
            ("mask", ints(DataType::UInt1, &[3], &[0, 1, 1])),
        ],
    );
    assert!(run_err(&op).contains("set bits"));
}

#[test]
fn lut_to_sparse_docstring_examples() {
    #[rustfmt::skip]
    let mask = ints(DataType::UInt1, &[4, 6], &[
        1, 1, 0, 0, 0, 0,
        1, 1, 0, 0, 0, 1,
        0, 1, 1, 0, 1, 0,
        0, 0, 0, 1, 0, 0,
    ]);
    let nz = ints(DataType::UInt1, &[9], &[0, 1, 1, 0, 1, 1, 0, 0, 1]);
    // Scalar palettization.
    let op = input_op(
        "constexpr_lut_to_sparse",
        vec![
            ("indices_mask", mask.clone()),
            ("indices_nonzero_data", nz.clone()),
            ("lut", fp16_bytes(&[1, 1, 2, 1], &[2.0, 3.0])),
        ],
    );
    let outs = decompress_all(&op, &no_lookup).unwrap();
    assert_eq!(outs.len(), 2);
    assert_eq!(outs[0].to_i64_vec().unwrap(), mask.to_i64_vec().unwrap());
    assert_eq!(
        f32s(&outs[1]),
        vec![2.0, 3.0, 3.0, 2.0, 3.0, 3.0, 2.0, 2.0, 3.0]
    );
    assert!(
        decompress(&op, &no_lookup).is_err(),
        "two outputs need decompress_all"
    );
    // Vector palettization along axis 0: the mask rows are doubled.
    let op = input_op(
        "constexpr_lut_to_sparse",
        vec![
            ("indices_mask", mask.clone()),
            ("indices_nonzero_data", nz),
            ("lut", fp16_bytes(&[1, 1, 2, 2], &[2.0, 2.0, 3.0, 3.0])),
            ("vector_axis", ints(DataType::Int32, &[], &[0])),
        ],
    );
    let outs = decompress_all(&op, &no_lookup).unwrap();
    assert_eq!(
        (outs[0].dtype, outs[0].shape.clone()),
        (DataType::UInt1, vec![8, 6])
    );
    let m = mask.to_i64_vec().unwrap();
    let doubled: Vec<i64> = m
        .chunks(6)
        .flat_map(|r| r.iter().chain(r))
        .copied()
        .collect();
    assert_eq!(outs[0].to_i64_vec().unwrap(), doubled);
    #[rustfmt::skip]
    assert_eq!(f32s(&outs[1]), vec![
        2.0, 3.0, 2.0, 3.0, 3.0, 2.0, 3.0, 3.0, 2.0, 3.0,
        3.0, 2.0, 2.0, 3.0, 2.0, 2.0, 3.0, 3.0,
    ]);
}

#[test]
fn sparse_blockwise_shift_scale_docstring_example() {
    #[rustfmt::skip]
    let mask = ints(DataType::UInt1, &[4, 4], &[
        1, 1, 0, 0,
        1, 1, 1, 0,
        0, 0, 1, 1,
        1, 1, 0, 0,
    ]);
    let op = input_op(
        "constexpr_sparse_blockwise_shift_scale",
        vec![
            ("data_mask", mask.clone()),
            (
                "nonzero_data",
                ints(DataType::Int8, &[9], &[10, 11, 3, 4, 5, 6, 7, 8, 9]),
            ),
            (
                "scale",
                floats(DataType::Fp32, &[1, 4], &[0.1, 0.2, 0.3, 0.4]),
            ),
            ("offset", ints(DataType::Int8, &[1, 4], &[1, 2, 3, 4])),
        ],
    );
    let outs = decompress_all(&op, &no_lookup).unwrap();
    assert_eq!(outs[0].to_i64_vec().unwrap(), mask.to_i64_vec().unwrap());
    assert_eq!(
        (outs[1].dtype, outs[1].shape.clone()),
        (DataType::Fp32, vec![9])
    );
    let want = [0.9, 1.8, 0.2, 0.4, 0.6, 0.9, 1.2, 0.7, 1.4];
    for (g, w) in f32s(&outs[1]).iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{g} vs {w}");
    }
}

#[test]
fn parameters_bound_by_name_and_output_types() {
    let consts: BTreeMap<String, Value> = [
        ("q", ints(DataType::Int8, &[2], &[4, -4])),
        ("s", floats(DataType::Fp32, &[1], &[0.5])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Value::Tensor(v)))
    .collect();
    let mut op = input_op("constexpr_blockwise_shift_scale", vec![]);
    for (param, name) in [("data", "q"), ("scale", "s")] {
        op.inputs
            .insert(param.into(), Argument::single(Binding::Name(name.into())));
    }
    let lookup = |n: &str| consts.get(n);
    assert_eq!(f32s(&decompress(&op, &lookup).unwrap()), vec![2.0, -2.0]);
    // A declared output type is checked.
    op.outputs = vec![NamedValueType {
        name: "w".into(),
        ty: ValueType::Tensor(TensorType::new(DataType::Fp16, &[2])),
    }];
    assert!(decompress(&op, &lookup).unwrap_err().contains("declared"));
    op.outputs[0].ty = ValueType::Tensor(TensorType::new(DataType::Fp32, &[2]));
    assert!(decompress(&op, &lookup).is_ok());
    // An unknown name is an error.
    assert!(decompress(&op, &no_lookup).unwrap_err().contains("\"q\""));
    // So is an unknown op and a missing parameter.
    assert!(run_err(&input_op("constexpr_nope", vec![])).contains("not a constexpr op"));
    assert!(run_err(&input_op("constexpr_cast", vec![])).contains("source_val"));
}

// ---------------------------------------------------------------- fixtures

/// Decodes every constexpr op of each compressed fixture model and compares
/// each output with the value coremltools' decompression wrote to
/// `<case>_dense.npz` (key = output name).
#[test]
fn compressed_fixtures_match_coremltools() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compression");
    if !dir.is_dir() {
        eprintln!(
            "skipping: {} is absent (generate it with tools/gen_format_fixtures.py)",
            dir.display()
        );
        return;
    }
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with("_dense.npz"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no *_dense.npz in {}", dir.display());
    let mut compared = 0;
    for npz in &cases {
        let name = npz
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace("_dense.npz", "");
        compared += check_fixture(&dir, &name, npz);
    }
    eprintln!(
        "compared {compared} constexpr outputs in {} models",
        cases.len()
    );
}

/// Checks one fixture model; returns the number of outputs compared.
fn check_fixture(dir: &Path, name: &str, npz: &Path) -> usize {
    let reference: BTreeMap<String, candle_core::Tensor> = candle_core::Tensor::read_npz(npz)
        .unwrap()
        .into_iter()
        .collect();
    let pkg = dir.join(format!("{name}.mlpackage"));
    let model = open_mapped(&pkg).unwrap_or_else(|e| panic!("{name}: {e}"));
    let program = model
        .program()
        .unwrap_or_else(|| panic!("{name}: not an ML program"));
    let mut compared = 0;
    for function in &program.functions {
        // Constants by name, then each decoded constexpr output as it comes.
        let mut env: BTreeMap<String, Value> = BTreeMap::new();
        for op in &function.block.operations {
            if op.op_type == "const" {
                if let (Some(out), Some(v)) = (op.outputs.first(), op.attribute("val")) {
                    env.insert(out.name.clone(), v.clone());
                }
                continue;
            }
            if !op.op_type.starts_with("constexpr_") {
                continue;
            }
            let lookup = |n: &str| env.get(n);
            let outs = decompress_all(op, &lookup)
                .unwrap_or_else(|e| panic!("{name}: {} ({}): {e}", op.label(), op.op_type));
            for (out, decl) in outs.into_iter().zip(&op.outputs) {
                if let Some(want) = reference.get(&decl.name) {
                    compare(name, &decl.name, &out, want);
                    compared += 1;
                }
                env.insert(decl.name.clone(), Value::Tensor(out));
            }
        }
    }
    assert!(compared > 0, "{name}: no constexpr output had a reference");
    compared
}

/// Exact comparison: same shape, same dtype family, same values.
fn compare(case: &str, output: &str, got: &TensorValue, want: &candle_core::Tensor) {
    use candle_core::DType;
    let what = format!("{case}: {output}");
    assert_eq!(got.shape, want.dims(), "{what}: shape");
    let expected_dtype = match want.dtype() {
        DType::F16 => vec![DataType::Fp16],
        DType::F32 => vec![DataType::Fp32],
        DType::U8 => vec![DataType::UInt1, DataType::UInt8, DataType::Bool],
        other => panic!("{what}: unexpected reference dtype {other:?}"),
    };
    assert!(
        expected_dtype.contains(&got.dtype),
        "{what}: dtype {} vs {:?}",
        got.dtype,
        want.dtype()
    );
    let want: Vec<f32> = want
        .to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .unwrap();
    let got = got.to_f32_vec().unwrap_or_else(|e| panic!("{what}: {e}"));
    let bad = got
        .iter()
        .zip(&want)
        .position(|(g, w)| g.to_bits() != w.to_bits());
    if let Some(i) = bad {
        panic!("{what}: element {i}: got {} want {}", got[i], want[i]);
    }
}

#[test]
fn hostile_parameters_are_errors_not_panics() {
    let huge = u32::MAX as i64;
    let lut4 = floats(DataType::Fp32, &[4], &[0.0; 4]);
    let errors = [
        // iOS16 LUT: a huge shape backed by two bytes of indices.
        attr_op(
            "constexpr_lut_to_dense",
            vec![
                ("indices", bytes(DataType::UInt8, &[2], &[0, 0])),
                ("lut", lut4.clone()),
                ("shape", ints(DataType::UInt32, &[2], &[huge, huge])),
            ],
        ),
        // iOS16 sparse: a negative dimension.
        attr_op(
            "constexpr_sparse_to_dense",
            vec![
                ("nonzero_data", floats(DataType::Fp32, &[0], &[])),
                ("mask", bytes(DataType::UInt8, &[1], &[0])),
                ("shape", ints(DataType::UInt32, &[1], &[-3])),
            ],
        ),
        // iOS18 LUT: zero groups, and a vector axis out of range.
        input_op(
            "constexpr_lut_to_dense",
            vec![
                ("indices", ints(DataType::UInt2, &[4], &[0; 4])),
                ("lut", floats(DataType::Fp32, &[0, 4, 1], &[])),
            ],
        ),
        input_op(
            "constexpr_lut_to_dense",
            vec![
                ("indices", ints(DataType::UInt2, &[4], &[0; 4])),
                ("lut", floats(DataType::Fp32, &[1, 4, 2], &[0.0; 8])),
                ("vector_axis", ints(DataType::Int32, &[], &[3])),
            ],
        ),
        // Blockwise: scale of another rank; offset of another shape.
        input_op(
            "constexpr_blockwise_shift_scale",
            vec![
                ("data", ints(DataType::Int8, &[2, 2], &[0; 4])),
                ("scale", floats(DataType::Fp32, &[2], &[1.0; 2])),
            ],
        ),
        input_op(
            "constexpr_blockwise_shift_scale",
            vec![
                ("data", ints(DataType::Int8, &[2, 2], &[0; 4])),
                ("scale", floats(DataType::Fp32, &[2, 1], &[1.0; 2])),
                ("offset", ints(DataType::Int8, &[1, 2], &[0; 2])),
            ],
        ),
        // Sparse: nonzero data of rank 2; joint op with too few values.
        input_op(
            "constexpr_sparse_to_dense",
            vec![
                ("nonzero_data", floats(DataType::Fp32, &[1, 1], &[1.0])),
                ("mask", ints(DataType::UInt1, &[2], &[1, 0])),
            ],
        ),
        input_op(
            "constexpr_sparse_blockwise_shift_scale",
            vec![
                ("data_mask", ints(DataType::UInt1, &[2], &[1, 1])),
                ("nonzero_data", ints(DataType::Int8, &[1], &[1])),
                ("scale", floats(DataType::Fp32, &[1], &[1.0])),
            ],
        ),
        // Cast to an unknown dtype.
        input_op(
            "constexpr_cast",
            vec![
                ("source_val", fp16_bytes(&[1], &[1.0])),
                (
                    "output_dtype",
                    tensor(DataType::String, &[], TensorData::Str(vec!["fp7".into()])),
                ),
            ],
        ),
    ];
    for op in &errors {
        run_err(op);
    }
    // A parameter bound to two values.
    let mut op = input_op("constexpr_cast", vec![]);
    let v = Binding::Value(Value::Tensor(fp16_bytes(&[1], &[1.0])));
    op.inputs.insert(
        "source_val".into(),
        Argument {
            bindings: vec![v.clone(), v],
        },
    );
    assert!(run_err(&op).contains("bindings"));
    // An empty tensor with a huge other dimension decodes to nothing.
    let op = attr_op(
        "constexpr_affine_dequantize",
        vec![
            ("quantized_data", ints(DataType::Int8, &[0, 1 << 60], &[])),
            ("zero_point", ints(DataType::Int8, &[], &[0])),
            ("scale", floats(DataType::Fp32, &[], &[1.0])),
            ("axis", ints(DataType::Int32, &[], &[1])),
        ],
    );
    assert!(f32s(&run(&op)).is_empty());
}
