//! The `candle-coreml` binary on the torch fixtures of the library
//! (`crates/candle-coreml/tests/fixtures/torch`, made by
//! `tools/gen_model_fixtures.py`): `run` with .npy inputs written here,
//! compared with torch's outputs; a `--state-dir` round trip on the stateful
//! decoder; `inspect --json` keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{DType, Tensor};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../candle-coreml/tests/fixtures/torch")
}

fn npz(name: &str) -> BTreeMap<String, Tensor> {
    let path = fixtures().join(format!("{name}.npz"));
    Tensor::read_npz(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .collect()
}

/// `(rtol, atol)` from the fixture's JSON.
fn tolerance(name: &str) -> (f64, f64) {
    let path = fixtures().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let j: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (
        j["rtol"].as_f64().expect("rtol"),
        j["atol"].as_f64().expect("atol"),
    )
}

/// A fresh, empty folder under cargo's per-target temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli_run")
        .join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("clear scratch dir");
    }
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn cli(args: &[&std::ffi::OsStr]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_candle-coreml"))
        .args(args)
        .output()
        .expect("spawn candle-coreml");
    assert!(
        out.status.success(),
        "candle-coreml {:?} failed: {}\n{}",
        args,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn assert_close(what: &str, got: &Tensor, want: &Tensor, (rtol, atol): (f64, f64)) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let f = |t: &Tensor| {
        t.to_dtype(DType::F64)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f64>())
            .expect("as f64")
    };
    for (i, (a, b)) in f(got).iter().zip(f(want)).enumerate() {
        assert!(
            (a - b).abs() <= atol + rtol * b.abs(),
            "{what}: element {i} is {a}, torch says {b}"
        );
    }
}

/// Runs `model` with the arrays under `prefix` (`input:` / `stepK/input:`)
/// written as .npy files, and returns the output folder.
fn run_with_inputs(
    model: &str,
    arrays: &BTreeMap<String, Tensor>,
    prefix: &str,
    dir: &Path,
    extra: &[&str],
) -> PathBuf {
    let out = dir.join("out");
    let mut args: Vec<std::ffi::OsString> = vec!["run".into(), fixtures().join(model).into()];
    args.extend([
        "--backend".into(),
        "portable".into(),
        "--out".into(),
        out.clone().into(),
    ]);
    for (key, t) in arrays {
        let Some(name) = key.strip_prefix(prefix) else {
            continue;
        };
        let path = dir.join(format!("{name}.npy"));
        t.write_npy(&path).expect("write input .npy");
        args.push("--input".into());
        args.push(format!("{name}={}", path.display()).into());
    }
    args.extend(extra.iter().map(Into::into));
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    cli(&refs);
    out
}

fn read_npy(path: &Path) -> Tensor {
    Tensor::read_npy(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every feed-forward model-level fixture through `run`, each output
/// compared with torch within the fixture's tolerance.
#[test]
fn run_matches_torch_on_every_model_fixture() {
    let models = [
        "mlp_fp32",
        "mlp_fp16",
        "cnn_fp32",
        "cnn_fp16",
        "resnet_fp32",
        "mobilenet_fp32",
        "bert_fp32",
        "llama_fp32",
    ];
    for name in models {
        let arrays = npz(name);
        let dir = scratch(name);
        let out = run_with_inputs(&format!("{name}.mlpackage"), &arrays, "input:", &dir, &[]);
        let mut checked = 0;
        for (key, want) in &arrays {
            if let Some(output) = key.strip_prefix("output:") {
                let got = read_npy(&out.join(format!("{output}.npy")));
                assert_close(&format!("{name} {output}"), &got, want, tolerance(name));
                checked += 1;
            }
        }
        assert!(checked > 0, "{name}: no outputs checked");
    }
}

#[test]
fn run_mlp_writes_torch_outputs() {
    let arrays = npz("mlp_fp32");
    let dir = scratch("mlp");
    let out = run_with_inputs("mlp_fp32.mlpackage", &arrays, "input:", &dir, &[]);
    let got = read_npy(&out.join("y.npy"));
    assert_close(
        "mlp_fp32 y",
        &got,
        &arrays["output:y"],
        tolerance("mlp_fp32"),
    );
}

#[test]
fn run_with_state_dir_carries_the_kv_cache() {
    let arrays = npz("kv_decoder");
    let tol = tolerance("kv_decoder");
    let dir = scratch("kv_decoder");
    let states = dir.join("states");
    let states_arg = states.to_str().expect("utf-8 temp path");
    // Prefill from zero states (the folder does not exist yet), then one
    // step that only gives torch's logits if the cache came back from disk.
    for k in 0..2 {
        let step_dir = dir.join(format!("step{k}"));
        std::fs::create_dir_all(&step_dir).expect("step dir");
        let prefix = format!("step{k}/input:");
        let out = run_with_inputs(
            "kv_decoder.mlpackage",
            &arrays,
            &prefix,
            &step_dir,
            &["--state-dir", states_arg],
        );
        let got = read_npy(&out.join("logits.npy"));
        assert_close(
            &format!("step {k} logits"),
            &got,
            &arrays[&format!("step{k}/output:logits")],
            tol,
        );
        for name in ["k_cache", "v_cache"] {
            let t = read_npy(&states.join(format!("{name}.npy")));
            assert_eq!(t.dims(), &[2, 2, 16, 16], "{name}.npy after step {k}");
        }
    }
    // Without the saved states, step 1 sees an empty cache: other logits.
    let alone = dir.join("step1_alone");
    std::fs::create_dir_all(&alone).expect("step dir");
    let out = run_with_inputs("kv_decoder.mlpackage", &arrays, "step1/input:", &alone, &[]);
    let got = read_npy(&out.join("logits.npy"));
    let diff = (got - &arrays["step1/output:logits"])
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_dtype(DType::F64))
        .and_then(|d| d.to_scalar::<f64>())
        .expect("max |diff|");
    assert!(
        diff > 1e-2,
        "step 1 without the cache matched torch (max |diff| {diff})"
    );
}

#[test]
fn inspect_json_has_the_documented_keys() {
    for (file, functions, default, states) in [
        ("mlp_fp32.mlpackage", vec!["main"], "main", 0),
        ("kv_decoder.mlpackage", vec!["main"], "main", 2),
        (
            "kv_multifunction.mlpackage",
            vec!["prefill", "infer"],
            "infer",
            2,
        ),
    ] {
        let path = fixtures().join(file);
        let out = cli(&["inspect".as_ref(), "--json".as_ref(), path.as_os_str()]);
        let j: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{file}: inspect --json is not JSON: {e}"));
        for key in [
            "format",
            "spec_version",
            "functions",
            "default_function",
            "inputs",
            "outputs",
            "states",
            "metadata",
            "op_histogram",
        ] {
            assert!(j.get(key).is_some(), "{file}: no {key:?} in {j}");
        }
        let mut got: Vec<&str> = j["functions"]
            .as_array()
            .expect("functions")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        got.sort();
        let mut want = functions.clone();
        want.sort();
        assert_eq!(got, want, "{file}: functions");
        assert_eq!(j["default_function"], default, "{file}: default_function");
        assert_eq!(
            j["states"].as_array().map(Vec::len),
            Some(states),
            "{file}: states"
        );
        assert!(
            j["op_histogram"].as_object().is_some_and(|h| !h.is_empty()),
            "{file}: empty op_histogram"
        );
    }
}

/// NeuralNetwork models (`tests/fixtures/neuralnetwork`, made by
/// `tools/gen_nn_models.py`) through `run`, as .mlmodel and .mlpackage; a
/// classifier writes its label index and probabilities and prints the label.
#[test]
fn run_neural_network_models() {
    let dir_nn = fixtures().join("../neuralnetwork");
    let read = |name: &str| -> BTreeMap<String, Tensor> {
        Tensor::read_npz(dir_nn.join(name))
            .expect("read npz")
            .into_iter()
            .collect()
    };
    let cnn = read("cnn.npz");
    for file in ["cnn.mlmodel", "cnn.mlpackage"] {
        let dir = scratch(file);
        let out = run_with_inputs(
            &format!("../neuralnetwork/{file}"),
            &cnn,
            "input:",
            &dir,
            &[],
        );
        let got = read_npy(&out.join("y.npy"));
        assert_close(file, &got, &cnn["output:y"], (1e-4, 1e-4));
    }
    let cls = read("classifier.npz");
    let dir = scratch("classifier");
    let x = dir.join("x.npy");
    cls["input:x"].write_npy(&x).expect("write x");
    let out = dir.join("out");
    let stderr = cli(&[
        "run".as_ref(),
        dir_nn.join("classifier.mlmodel").as_os_str(),
        "--backend".as_ref(),
        "portable".as_ref(),
        "--input".as_ref(),
        format!("x={}", x.display()).as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
    ])
    .stderr;
    let index = cls["output:classLabel"]
        .to_vec1::<i64>()
        .expect("label index")[0];
    let label = ["cat", "dog", "owl", "bee", "ant"][index as usize];
    let text = String::from_utf8_lossy(&stderr);
    assert!(text.contains(&format!("classLabel = {label:?}")), "{text}");
    assert_eq!(
        read_npy(&out.join("classLabel.npy"))
            .to_vec1::<i64>()
            .unwrap(),
        vec![index]
    );
}
