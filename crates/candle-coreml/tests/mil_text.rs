//! The MIL text parser on hand-written snippets of every construct FORMATS.md
//! §4 lists, on the Apple-compiled samples, and on corrupted input.

use std::path::{Path, PathBuf};

use candle_coreml::format::blob::BlobResolver;
use candle_coreml::format::mil_text::{self, MAX_DEPTH};
use candle_coreml::mil::{
    Binding, DataType, Dim, Program, TensorData, TensorType, Value, ValueType,
};
use candle_coreml::Error;

fn parse(text: &str) -> candle_coreml::Result<Program> {
    let mut blobs = BlobResolver::new(Path::new(env!("CARGO_MANIFEST_DIR")));
    mil_text::parse(text, Path::new("model.mil"), &mut blobs)
}

/// `body` wrapped in a program(1.3) `main` taking `x: fp32[2]`, returning `outs`.
fn program13(body: &str, outs: &str) -> String {
    format!("program(1.3)\n{{\n    func main<ios18>(tensor<fp32, [2]> x) {{\n{body}\n    }} -> ({outs});\n}}\n")
}

/// The `val` attribute of the first op of `main`.
fn first_val(p: &Program) -> &Value {
    p.functions[0].block.operations[0].attribute("val").unwrap()
}

fn f64s(v: &Value) -> (Vec<usize>, Vec<f64>) {
    let t = v.as_tensor().unwrap();
    match &t.data {
        TensorData::F64(d) => (t.shape.clone(), d.clone()),
        other => panic!("expected F64 data, got {other:?}"),
    }
}

fn i64s(v: &Value) -> (Vec<usize>, Vec<i64>) {
    let t = v.as_tensor().unwrap();
    match &t.data {
        TensorData::I64(d) => (t.shape.clone(), d.clone()),
        other => panic!("expected I64 data, got {other:?}"),
    }
}

fn syntax_position(e: Error) -> (u32, u32, String) {
    match e {
        Error::MilSyntax {
            line,
            column,
            message,
            ..
        } => (line, column, message),
        other => panic!("expected a MIL syntax error, got {other}"),
    }
}

#[test]
fn hex_float_literals() {
    let text = program13(
        "        tensor<fp32, [6]> c = const()[name = string(\"c\"), val = tensor<fp32, [6]>([0x1p-1, -0x1.8p+3, 0x1.ffcp+15, 1.5e-3, -2, 0x0p+0])];",
        "c",
    );
    let p = parse(&text).unwrap();
    let (shape, data) = f64s(first_val(&p));
    assert_eq!(shape, vec![6]);
    assert_eq!(data, vec![0.5, -12.0, 65504.0, 1.5e-3, -2.0, 0.0]);
    assert_eq!(first_val(&p).as_tensor().unwrap().dtype, DataType::Fp32);
}

#[test]
fn inf_and_nan_spellings() {
    let text = program13(
        "        tensor<fp16, [4]> c = const()[name = string(\"c\"), val = tensor<fp16, [4]>([inf, -inf, nan, -nan])];",
        "c",
    );
    let p = parse(&text).unwrap();
    let (_, d) = f64s(first_val(&p));
    assert_eq!(d[0], f64::INFINITY);
    assert_eq!(d[1], f64::NEG_INFINITY);
    assert!(d[2].is_nan() && d[3].is_nan());
}

#[test]
fn program_1_0_dialect() {
    let text = std::fs::read_to_string(fixture("test_linear.mlmodelc/model.mil")).unwrap();
    let p = parse(&text).unwrap();
    assert_eq!(p.version, "1.0");
    let build = p.attributes.get("buildInfo").unwrap();
    let Value::Dict(pairs) = build else {
        panic!("buildInfo is not a dict: {build:?}")
    };
    assert_eq!(pairs.len(), 5);
    assert_eq!(pairs[1].0.as_str(), Some("coremlc-version"));
    assert_eq!(pairs[1].1.as_str(), Some("3500.32.1"));
    let ops = &p.functions[0].block.operations;
    assert_eq!(ops[0].name(), Some("op_2_to_fp16"));
    let (shape, v) = f64s(ops[0].attribute("val").unwrap());
    assert_eq!((shape, v), (vec![], vec![2.0]));
    assert_eq!(ops[0].location.map(|l| (l.line, l.column)), Some((5, 13)));
}

#[test]
fn program_1_3_dialect() {
    let text = "program(1.3)\n[buildInfo = dict<string, string>({{\"coremlc-version\", \"3505.4.1\"}, {\"coremltools-version\", \"9.0\"}})]\n{\n    func main<ios18>(tensor<fp16, [1, 4, 1, 4]> x) {\n        string pad_type = const()[name = string(\"pad_type\"), val = string(\"valid\")];\n        int32 groups = const()[name=string(\"groups\"), val=int32(1)];\n        tensor<int32, [2]> strides = const()[name = string(\"strides\"), val = tensor<int32, [2]>([1, 1])];\n        bool tx = const()[name = string(\"tx\"), val = bool(false)];\n        fp16 s = const()[name = string(\"s\"), val = fp16(0x1p-1)];\n        tensor<fp16, [1,4,1,4]> out = identity(x=x)[name=string(\"out\")];\n    } -> (out);\n}\n";
    let p = parse(text).unwrap();
    assert_eq!(p.version, "1.3");
    let f = &p.functions[0];
    assert_eq!(f.opset, "ios18");
    assert_eq!(f.ios_version(), Some(18));
    let ops = &f.block.operations;
    assert_eq!(ops[0].attribute("val").unwrap().as_str(), Some("valid"));
    assert_eq!(i64s(ops[1].attribute("val").unwrap()), (vec![], vec![1]));
    assert_eq!(
        ops[1].outputs[0].ty,
        ValueType::Tensor(TensorType::scalar(DataType::Int32))
    );
    assert_eq!(
        i64s(ops[2].attribute("val").unwrap()),
        (vec![2], vec![1, 1])
    );
    let b = ops[3].attribute("val").unwrap().as_tensor().unwrap();
    assert!(matches!(&b.data, TensorData::Bool(v) if v == &[false]));
    assert_eq!(f64s(ops[4].attribute("val").unwrap()).1, vec![0.5]);
    assert_eq!(ops[5].input("x").and_then(|a| a.as_name()), Some("x"));
    assert_eq!(f.block.outputs, vec!["out".to_string()]);
}

#[test]
fn several_outputs_and_unknown_dims() {
    let text = "program(1.0)\n{\n    func main<ios17>(tensor<fp32, [1, ?]> x) {\n        tensor<fp32, [1, ?]> a, tensor<fp32, [1, ?]> b = split(axis = tensor<int32, []>(1), num_splits = tensor<int32, []>(2), x = x)[name = tensor<string, []>(\"split_0\")];\n    } -> (a, b);\n}\n";
    let p = parse(text).unwrap();
    let f = &p.functions[0];
    let unknown = ValueType::Tensor(TensorType {
        dtype: DataType::Fp32,
        shape: Some(vec![Dim::Fixed(1), Dim::Unknown]),
    });
    assert_eq!(f.inputs[0].ty, unknown);
    let op = &f.block.operations[0];
    assert_eq!(op.outputs.len(), 2);
    assert_eq!(op.outputs[1].name, "b");
    assert_eq!(op.outputs[1].ty, unknown);
    let axis = op.input("axis").unwrap();
    assert!(matches!(&axis.bindings[..], [Binding::Value(v)] if i64s(v) == (vec![], vec![1])));
    assert_eq!(f.block.outputs, vec!["a".to_string(), "b".to_string()]);
}

#[test]
fn tuple_arguments() {
    let text = program13(
        "        tensor<fp32, [6]> c = concat(axis = int32(0), interleave = bool(false), values = (x, x, tensor<fp32, [2]>([1, 2])))[name = string(\"c\")];",
        "c",
    );
    let p = parse(&text).unwrap();
    let values = p.functions[0].block.operations[0].input("values").unwrap();
    assert_eq!(values.bindings.len(), 3);
    assert!(matches!(&values.bindings[0], Binding::Name(n) if n == "x"));
    assert!(
        matches!(&values.bindings[2], Binding::Value(v) if f64s(v) == (vec![2], vec![1.0, 2.0]))
    );
    assert!(values.as_name().is_none());
}

#[test]
fn states_and_state_ops() {
    let text = "program(1.3)\n{\n    func main<ios18>(tensor<fp16, [1, 1, 4, 64]> v, state<tensor<fp16, [1, 1, 4, 64]>> k_cache) {\n        write_state(data = v, input = k_cache)[name = string(\"w\")];\n        tensor<fp16, [1, 1, 4, 64]> k = read_state(input = k_cache)[name = string(\"r\")];\n    } -> (k);\n}\n";
    let p = parse(text).unwrap();
    let f = &p.functions[0];
    let st = f.inputs[1].ty.state_tensor().unwrap();
    assert_eq!(st, &TensorType::new(DataType::Fp16, &[1, 1, 4, 64]));
    assert!(f.block.operations[0].outputs.is_empty());
    let hist = f.op_histogram();
    assert_eq!(hist.get("write_state"), Some(&1));
    assert_eq!(hist.get("read_state"), Some(&1));
}

#[test]
fn multifunction_text() {
    let text = "program(1.3)\n{\n    func infer<ios18>(tensor<fp16, [1, 1, 8]> h) {\n        tensor<fp16, [1, 1, 8]> o = relu(x = h)[name = string(\"o\")];\n    } -> (o);\n    func prefill<ios18>(tensor<fp16, [1, 64, 8]> h, tensor<int32, [64]> position_ids) {\n        tensor<fp16, [1, 64, 8]> o = sigmoid(x = h)[name = string(\"o\")];\n    } -> (o);\n}\n";
    let p = parse(text).unwrap();
    let names: Vec<&str> = p.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, vec!["infer", "prefill"]);
    assert_eq!(p.function("prefill").unwrap().inputs.len(), 2);
    assert_eq!(
        p.function("infer").unwrap().op_histogram().get("relu"),
        Some(&1)
    );
    let dup = text.replace("func prefill", "func infer");
    let (line, _, msg) = syntax_position(parse(&dup).unwrap_err());
    assert_eq!(line, 6);
    assert!(msg.contains("twice"), "{msg}");
}

#[test]
fn flexible_shape_attribute() {
    let spelled = "tuple<tuple<tensor<string, []>, dict<tensor<string, []>, tensor<int32, [?]>>>, tuple<tensor<string, []>, dict<tensor<string, []>, list<tensor<int32, [2]>, ?>>>>";
    for ty in [spelled, "tuple<...>"] {
        let text = format!("program(1.0)\n{{\n    func main<ios17>(tensor<int32, [?]> input) [FlexibleShapeInformation = {ty}(((\"DefaultShapes\", {{{{\"input\", [4]}}}}), (\"RangeDims\", {{{{\"input\", [[0, 4]]}}}})))] {{\n        tensor<int32, [?]> y = relu(x = input)[name = tensor<string, []>(\"y\")];\n    }} -> (y);\n}}\n");
        let p = parse(&text).unwrap_or_else(|e| panic!("{ty}: {e}"));
        let info = p.functions[0]
            .attributes
            .get("FlexibleShapeInformation")
            .unwrap();
        let Value::Tuple(items) = info else {
            panic!("not a tuple: {info:?}")
        };
        assert_eq!(items.len(), 2);
        let Value::Tuple(range) = &items[1] else {
            panic!("not a tuple: {:?}", items[1])
        };
        assert_eq!(range[0].as_str(), Some("RangeDims"));
        let Value::Dict(pairs) = &range[1] else {
            panic!("not a dict: {:?}", range[1])
        };
        assert_eq!(pairs[0].0.as_str(), Some("input"));
        let bounds: Vec<i64> = match &pairs[0].1 {
            Value::List(l) => l.iter().flat_map(|v| i64s(v).1).collect(),
            Value::Tensor(_) => i64s(&pairs[0].1).1,
            other => panic!("unexpected range value {other:?}"),
        };
        assert_eq!(bounds, vec![0, 4]);
    }
}

#[test]
fn literal_forms() {
    let text = program13(
        "        tensor<int32, [2, 2]> a = const()[name = string(\"a\"), val = tensor<int32, [2, 2]>([[1, 2], [3, 4]])];\n        tensor<string, [2]> s = const()[name = string(\"s\\\"q\\\\\\n\"), val = tensor<string, [2]>([\"a\\tb\", \"\\u00e9\"])];\n        tensor<bool, [2]> b = const()[name = string(\"b\"), val = tensor<bool, [2]>([true, false])];\n        tensor<uint8, []> u = const()[name = string(\"u\"), val = uint8(255)];",
        "a",
    );
    let p = parse(&text).unwrap();
    let ops = &p.functions[0].block.operations;
    assert_eq!(
        i64s(ops[0].attribute("val").unwrap()),
        (vec![2, 2], vec![1, 2, 3, 4])
    );
    assert_eq!(ops[1].name(), Some("s\"q\\\n"));
    let s = ops[1].attribute("val").unwrap().as_tensor().unwrap();
    assert!(matches!(&s.data, TensorData::Str(v) if v == &["a\tb".to_string(), "é".to_string()]));
    let b = ops[2].attribute("val").unwrap().as_tensor().unwrap();
    assert!(matches!(&b.data, TensorData::Bool(v) if v == &[true, false]));
    assert_eq!(i64s(ops[3].attribute("val").unwrap()).1, vec![255]);
}

#[test]
fn literal_errors() {
    let cases = [
        ("tensor<int32, [3]>([1, 2])", "3 elements", 45),
        ("tensor<int32, [2, 2]>([[1, 2], [3]])", "rectangular", 45),
        ("uint8(256)", "out of range", 45),
        ("int32(1.5)", "non-integer", 45),
        ("tensor<fp32, [?, 2]>([1, 2, 3])", "does not fit", 45),
        ("bool(\"x\")", "non-boolean", 45),
        (
            "tensor<fp32, [2]>(BLOBFILE(path = string(\"@model_path/w.bin\")))",
            "offset",
            63,
        ),
    ];
    for (val, want, col) in cases {
        let text = program13(
            &format!("        tensor<fp32, [2]> c = const()[val = {val}];"),
            "c",
        );
        let (line, column, msg) = syntax_position(parse(&text).unwrap_err());
        assert!(msg.contains(want), "{val}: {msg}");
        assert_eq!((line, column), (4, col), "{val}: {msg}");
    }
}

#[test]
fn constexpr_with_attributes_only_and_blobfile() {
    let dir = temp_model_dir("constexpr");
    let text = "program(1.0)\n{\n    func main<ios16>(tensor<fp32, [4]> x) {\n            tensor<fp32, [4]> w = constexpr_affine_dequantize()[axis = tensor<int32, []>(0), name = tensor<string, []>(\"w\"), quantized_data = tensor<int8, [4]>(BLOBFILE(path = tensor<string, []>(\"@model_path/weights/weight.bin\"), offset = tensor<uint64, []>(64))), scale = tensor<fp32, []>(0x1p-1), zero_point = tensor<int8, []>(-1)];\n            tensor<fp32, [4]> y = add(x = x, y = w)[name = tensor<string, []>(\"y\")];\n        } -> (y);\n}\n";
    let mut blobs = BlobResolver::new(&dir);
    let p = mil_text::parse(text, &dir.join("model.mil"), &mut blobs).unwrap();
    let op = &p.functions[0].block.operations[0];
    assert!(op.inputs.is_empty());
    let q = op.attribute("quantized_data").unwrap().as_tensor().unwrap();
    assert_eq!((q.dtype, q.shape.clone()), (DataType::Int8, vec![4]));
    match &q.data {
        TensorData::Bytes(b) => assert_eq!(b.as_slice(), &[1u8, 2, 0xfd, 0x7f]),
        other => panic!("expected blob bytes, got {other:?}"),
    }
    let blob = q.blob.as_ref().map(|b| (b.file.as_str(), b.offset));
    assert_eq!(blob, Some(("@model_path/weights/weight.bin", 64)));
    assert_eq!(i64s(op.attribute("zero_point").unwrap()).1, vec![-1]);
    assert_eq!(
        p.functions[0]
            .op_histogram()
            .get("constexpr_affine_dequantize"),
        Some(&1)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A model folder with `weights/weight.bin` holding one int8 blob of
/// `[1, 2, -3, 127]`, laid out as FORMATS.md §3 describes.
fn temp_model_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("candle-coreml-mil-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("weights")).unwrap();
    let mut bin = vec![0u8; 192];
    bin[0..4].copy_from_slice(&1u32.to_le_bytes());
    bin[4..8].copy_from_slice(&2u32.to_le_bytes());
    bin[64..68].copy_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
    bin[68..72].copy_from_slice(&4u32.to_le_bytes()); // int8
    bin[72..80].copy_from_slice(&4u64.to_le_bytes());
    bin[80..88].copy_from_slice(&128u64.to_le_bytes());
    bin[128..132].copy_from_slice(&[1, 2, 0xfd, 0x7f]);
    std::fs::write(dir.join("weights/weight.bin"), bin).unwrap();
    dir
}

#[test]
fn syntax_errors_name_line_and_column() {
    let cases: [(&str, (u32, u32), &str); 6] = [
        ("program(1.0)\n{\n    func main<ios16>(tensor<fp16, [1]> x) {\n        tensor<fp16, [1]> y = relu(x = x)[name = tensor<string, []>(\"y\")]\n    } -> (y);\n}\n", (5, 5), "expected `;`"),
        ("program(1.0)\n{\n    func main<ios16>(tensor<fq16, [1]> x) {\n    } -> (x);\n}\n", (3, 29), "unknown dtype `fq16`"),
        ("program(1.0)\n{\n    func main<ios16>(tensor<fp16, [1]> x) {\n        tensor<fp16, [1]> y = relu(x = x, x = x);\n    } -> (y);\n}\n", (4, 43), "given twice"),
        ("program(1.0)\n{\n  func main<ios16>() {\n  } -> (y);\n}\n}", (6, 1), "end of file"),
        ("programme(1.0) {}", (1, 1), "expected `program`"),
        ("program(1.0)\n{\n    func main<ios16>() {\n        tensor<fp16, [1]> y = const()[val = string(\"abc)];\n", (4, 52), "unterminated string"),
    ];
    for (text, (line, column), want) in cases {
        let got = syntax_position(parse(text).unwrap_err());
        assert_eq!((got.0, got.1), (line, column), "{want}: {}", got.2);
        assert!(got.2.contains(want), "expected {want:?} in {:?}", got.2);
    }
    // The error message names the file and position.
    let e = parse("program(1.0) {").unwrap_err().to_string();
    assert!(e.starts_with("model.mil:1:15: "), "{e}");
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = 100_000;
    let val = format!("{}1{}", "[".repeat(deep), "]".repeat(deep));
    let text = program13(
        &format!("        tensor<int32, [1]> c = const()[val = {val}];"),
        "c",
    );
    let (_, _, msg) = syntax_position(parse(&text).unwrap_err());
    assert!(msg.contains(&format!("{MAX_DEPTH}")), "{msg}");

    let ty = format!(
        "{}tensor<fp32, [1]>{}",
        "list<".repeat(deep),
        ">".repeat(deep)
    );
    let text = format!("program(1.0) {{ func main<ios16>({ty} x) {{ }} -> (x); }}");
    assert!(parse(&text).is_err());

    let mut blocks = String::new();
    for _ in 0..deep / 10 {
        blocks.push_str("tensor<fp32, [1]> y = cond(pred = p) { ");
    }
    let text = format!("program(1.0) {{ func main<ios16>(bool p) {{ {blocks}");
    assert!(parse(&text).is_err());

    // Moderate nesting is fine.
    let val = format!("{}1{}", "[".repeat(10), "]".repeat(10));
    let text = program13(&format!("        tensor<int32, [1,1,1,1,1,1,1,1,1,1]> c = const()[val = tensor<int32, [1,1,1,1,1,1,1,1,1,1]>({val})];"), "c");
    parse(&text).unwrap();
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/apple")
        .join(rel)
}

const SAMPLES: [&str; 3] = ["add_model", "test_linear", "test_multi_io"];

#[test]
fn apple_samples_parse() {
    for name in SAMPLES {
        let text = std::fs::read_to_string(fixture(&format!("{name}.mlmodelc/model.mil"))).unwrap();
        let p = parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.functions.len(), 1);
        assert_eq!(p.functions[0].name, "main");
        assert_eq!(p.functions[0].opset, "ios16");
        for op in &p.functions[0].block.operations {
            assert!(op.location.is_some());
        }
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn truncations_and_byte_flips_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let interesting = b"()[]{}<>,;=?-\"\\.0123456789xpP ";
    let mut runs = 0;
    for name in SAMPLES {
        let bytes = std::fs::read(fixture(&format!("{name}.mlmodelc/model.mil"))).unwrap();
        for cut in 0..bytes.len() {
            let text = String::from_utf8_lossy(&bytes[..cut]);
            let r = parse(&text);
            assert!(cut == bytes.len() || r.is_err() || cut + 1 >= bytes.len());
            runs += 1;
        }
        for _ in 0..300 {
            let mut b = bytes.clone();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(b.len());
                b[i] = if rng.below(2) == 0 {
                    interesting[rng.below(interesting.len())]
                } else {
                    rng.next() as u8
                };
            }
            let _ = parse(&String::from_utf8_lossy(&b));
            runs += 1;
        }
    }
    assert!(runs > 900);
}
