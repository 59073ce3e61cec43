//! The native backend (Apple's Core ML runtime), on Apple platforms only.
//!
//! Every committed fixture with reference outputs is run by Core ML and
//! compared with those references (computed by numpy or torch, in the `.npz`
//! beside each model) and with the portable backend's output (parity).
//! Plus states, functions, compute units, the compile cache, description,
//! input layouts and concurrent use. Run on macOS 15+ (states and functions
//! need it); CI runs them on a macos-15 runner (.github/workflows/macos.yml).
#![cfg(target_vendor = "apple")]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_coreml::description::FeatureType;
use candle_coreml::{Backend, ComputeUnits, Error, Model};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Tolerance of one fixture: from its JSON (`rtol`/`atol`) or by precision.
#[derive(Debug, Clone, Copy)]
struct Tol {
    rtol: f32,
    atol: f32,
}

fn tolerance(json: &serde_json::Value, model: &Model) -> Tol {
    let get = |k: &str| json.get(k).and_then(|v| v.as_f64()).map(|v| v as f32);
    let fp16 = model
        .inputs()
        .iter()
        .chain(model.outputs())
        .chain(model.states())
        .any(|f| f.ty.dtype() == Some(candle_coreml::mil::DataType::Fp16));
    let (r, a) = if fp16 { (2e-2, 2e-2) } else { (1e-3, 1e-3) };
    Tol {
        rtol: get("rtol").unwrap_or(r).max(r),
        atol: get("atol").unwrap_or(a).max(a),
    }
}

/// `|got - want| <= atol + rtol * |want|` everywhere, same shape.
fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: Tol) -> Result<()> {
    let g = got.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let w = want.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    if got.elem_count() != want.elem_count() {
        bail!("{what}: shape {:?}, expected {:?}", got.dims(), want.dims());
    }
    let mut worst = (0usize, 0f32);
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let excess = (a - b).abs() - (tol.atol + tol.rtol * b.abs());
        if excess > worst.1 || a.is_nan() != b.is_nan() {
            worst = (i, excess.max(f32::MIN_POSITIVE));
        }
    }
    if worst.1 > 0.0 {
        let i = worst.0;
        bail!(
            "{what}: element {i}: got {}, expected {} ({tol:?})",
            g[i],
            w[i]
        );
    }
    Ok(())
}

/// A fixture: model path, its JSON, and its reference arrays by key.
struct Fixture {
    name: String,
    model: PathBuf,
    json: serde_json::Value,
    arrays: BTreeMap<String, Tensor>,
}

fn load_fixtures(dir: &str) -> Result<Vec<Fixture>> {
    let dir = fixtures().join(dir);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "npz") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let json_path = dir.join(format!("{name}.json"));
        let json: serde_json::Value = match std::fs::read_to_string(&json_path) {
            Ok(t) => serde_json::from_str(&t)?,
            Err(_) => continue,
        };
        let file = json
            .get("file")
            .and_then(|f| f.as_str())
            .map(str::to_string);
        let model = match file {
            Some(f) => dir.join(f),
            None => dir.join(format!("{name}.mlpackage")),
        };
        let arrays = Tensor::read_npz(&path)?.into_iter().collect();
        out.push(Fixture {
            name,
            model,
            json,
            arrays,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The fixture `name` of folder `dir`.
fn fixture(dir: &str, name: &str) -> Result<Fixture> {
    let all = load_fixtures(dir)?;
    all.into_iter()
        .find(|f| f.name == name)
        .with_context(|| format!("fixture {dir}/{name}"))
}

/// Arrays under `prefix` whose key starts with `kind:` (`input`, `output`...).
fn group(arrays: &BTreeMap<String, Tensor>, prefix: &str, kind: &str) -> HashMap<String, Tensor> {
    let head = format!("{prefix}{kind}:");
    arrays
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(&head).map(|n| (n.to_string(), v.clone())))
        .collect()
}

/// Case prefixes (`""`, `case0/`, `seq4/`...) of a feed-forward fixture.
fn cases(arrays: &BTreeMap<String, Tensor>) -> Vec<String> {
    let mut prefixes: Vec<String> = arrays
        .keys()
        .filter_map(|k| k.find("input:").map(|i| k[..i].to_string()))
        .collect();
    prefixes.sort();
    prefixes.dedup();
    prefixes
}

fn native(path: &Path) -> Result<Model> {
    Ok(Model::builder()
        .backend(Backend::Native)
        .compute_units(ComputeUnits::CpuOnly)
        .load(path)?)
}

fn portable(path: &Path) -> Option<Model> {
    Model::builder().backend(Backend::Portable).load(path).ok()
}

/// Fixtures Core ML is allowed to refuse, and why.
fn expected_refusal(f: &Fixture, e: &Error) -> bool {
    // `_inline.mlmodel`: ML Programs with every weight inline, made for the
    // reader; Apple's compiler may refuse them (tools/README.md).
    // Image inputs: the native backend does not build CVPixelBuffers.
    f.name.ends_with("_inline") || matches!(e, Error::Unsupported { .. })
}

fn is_feedforward(f: &Fixture) -> bool {
    !f.arrays
        .keys()
        .any(|k| k.contains("state") || k.starts_with("step"))
        && f.json
            .get("kind")
            .and_then(|k| k.as_str())
            .is_none_or(|k| k == "feedforward")
        && f.json
            .get("functions")
            .and_then(|v| v.as_array())
            .is_none_or(|v| v.len() <= 1)
}

fn run_feedforward(f: &Fixture) -> Result<usize> {
    let model = native(&f.model).with_context(|| format!("{}: native load", f.name))?;
    let port = portable(&f.model);
    let tol = tolerance(&f.json, &model);
    let mut compared = 0;
    for case in cases(&f.arrays) {
        let inputs = group(&f.arrays, &case, "input");
        let want = group(&f.arrays, &case, "output");
        let got = match model.predict(&inputs) {
            Ok(o) => o,
            Err(e) if expected_refusal(f, &e) => {
                eprintln!("{}: refused as expected: {e}", f.name);
                return Ok(0);
            }
            Err(e) => bail!("{}{case}: native predict: {e}", f.name),
        };
        let parity = port
            .as_ref()
            .map(|p| p.predict(&inputs))
            .transpose()
            .ok()
            .flatten();
        for (name, w) in &want {
            let g = got
                .get(name)
                .with_context(|| format!("{}: no output {name}", f.name))?;
            assert_close(&format!("{}{case} {name} vs reference", f.name), g, w, tol)?;
            if let Some(p) = parity.as_ref().and_then(|p| p.get(name)) {
                assert_close(
                    &format!("{}{case} {name} native vs portable", f.name),
                    g,
                    p,
                    tol,
                )?;
            }
            compared += 1;
        }
    }
    Ok(compared)
}

#[test]
fn feedforward_fixtures_match_references_and_portable() -> Result<()> {
    let mut compared = 0;
    let mut failures = Vec::new();
    for dir in ["models", "torch", "compression"] {
        for f in load_fixtures(dir)?.iter().filter(|f| is_feedforward(f)) {
            match run_feedforward(f) {
                Ok(n) => compared += n,
                Err(e) => match e.downcast_ref::<Error>() {
                    Some(err) if expected_refusal(f, err) => {
                        eprintln!("{}: refused as expected: {err}", f.name)
                    }
                    _ => failures.push(format!("{e:#}")),
                },
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(compared >= 10, "only {compared} outputs compared");
    Ok(())
}

/// Deterministic inputs for every input of `model` (for parity-only fixtures).
fn synthetic_inputs(model: &Model) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for (k, f) in model.inputs().iter().enumerate() {
        let FeatureType::MultiArray(a) = &f.ty else {
            continue;
        };
        let n: usize = a.shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| ((i * 7 + k * 3) % 11) as f32 / 11.0 - 0.5)
            .collect();
        let t = Tensor::from_vec(v, a.shape.as_slice(), &Device::Cpu)?;
        out.insert(f.name.clone(), t);
    }
    Ok(out)
}

/// Apple-compiled `.mlmodelc` samples: loaded directly (no compile step) and
/// compared with the portable backend. Samples whose weights were not
/// committed are skipped.
#[test]
fn apple_mlmodelc_match_portable() -> Result<()> {
    let dir = fixtures().join("apple");
    let mut compared = 0;
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "mlmodelc") {
            continue;
        }
        let mil = std::fs::read_to_string(path.join("model.mil")).unwrap_or_default();
        if mil.contains("BLOBFILE") && !path.join("weights/weight.bin").is_file() {
            eprintln!("{}: weights not committed, skipped", path.display());
            continue;
        }
        let model = native(&path)?;
        let Some(port) = portable(&path) else {
            continue;
        };
        let inputs = synthetic_inputs(&model)?;
        let got = model.predict(&inputs)?;
        let want = port.predict(&inputs)?;
        let tol = Tol {
            rtol: 2e-2,
            atol: 2e-2,
        };
        for (name, w) in want.iter() {
            let g = got
                .get(name)
                .with_context(|| format!("{}: no output {name}", path.display()))?;
            assert_close(&format!("{} {name}", path.display()), g, w, tol)?;
            compared += 1;
        }
    }
    eprintln!("{compared} outputs compared");
    Ok(())
}

/// Runs the steps of a stateful fixture on one state, over the chain of
/// `models` (one per chunk, or one per step's function), comparing outputs
/// and states with the references and with the portable backend.
fn run_stateful(
    f: &Fixture,
    models: &[Model],
    step_models: &[usize],
    portable: Option<&[Model]>,
) -> Result<usize> {
    let tol = tolerance(&f.json, &models[0]);
    let mut state = models[0].make_state()?;
    let mut port_state = match portable {
        Some(p) => Some(p[0].make_state()?),
        None => None,
    };
    for (name, v) in group(&f.arrays, "", "state_in") {
        state.write(&name, &v)?;
        if let Some(s) = port_state.as_mut() {
            s.write(&name, &v)?;
        }
    }
    let mut compared = 0;
    for (k, &m) in step_models.iter().enumerate() {
        let prefix = format!("step{k}/");
        let mut values = group(&f.arrays, &prefix, "input");
        let chain: Vec<usize> = if models.len() > 1 && step_models.iter().all(|&i| i == 0) {
            (0..models.len()).collect()
        } else {
            vec![m]
        };
        for i in chain {
            let model = &models[i];
            let inputs: HashMap<_, _> = model
                .inputs()
                .iter()
                .filter_map(|d| values.get(&d.name).map(|t| (d.name.clone(), t.clone())))
                .collect();
            let out = model.predict_with_state(&inputs, &mut state)?;
            if let (Some(p), Some(s)) = (portable, port_state.as_mut()) {
                let pout = p[i].predict_with_state(&inputs, s)?;
                for (name, t) in out.iter() {
                    if let Some(pt) = pout.get(name) {
                        assert_close(
                            &format!("{} {prefix}{name} native vs portable", f.name),
                            t,
                            pt,
                            tol,
                        )?;
                    }
                }
            }
            values.extend(out);
        }
        for (name, w) in group(&f.arrays, &prefix, "output") {
            let g = values
                .get(&name)
                .with_context(|| format!("{}: no output {name}", f.name))?;
            assert_close(&format!("{} {prefix}{name}", f.name), g, &w, tol)?;
            compared += 1;
        }
        for (name, w) in group(&f.arrays, &prefix, "state_out") {
            assert_close(
                &format!("{} {prefix}state {name}", f.name),
                &state.read(&name)?,
                &w,
                tol,
            )?;
            compared += 1;
        }
    }
    for (name, w) in group(&f.arrays, "", "final_state") {
        assert_close(
            &format!("{} final state {name}", f.name),
            &state.read(&name)?,
            &w,
            tol,
        )?;
        compared += 1;
    }
    Ok(compared)
}

fn steps(f: &Fixture) -> usize {
    (0..)
        .take_while(|k| {
            f.arrays
                .keys()
                .any(|key| key.starts_with(&format!("step{k}/")))
        })
        .count()
}

#[test]
fn stateful_fixtures_match_references_and_portable() -> Result<()> {
    let mut compared = 0;
    for dir in ["models", "torch"] {
        for f in load_fixtures(dir)? {
            if !f.arrays.keys().any(|k| k.starts_with("step")) {
                continue;
            }
            let kind = f
                .json
                .get("kind")
                .and_then(|k| k.as_str())
                .unwrap_or("stateful");
            let (paths, step_models): (Vec<PathBuf>, Vec<usize>) = match kind {
                "chunked" => {
                    let chunks = f.json["chunks"].as_array().context("chunks")?;
                    let paths = chunks
                        .iter()
                        .filter_map(|c| c.as_str())
                        .map(|c| fixtures().join(dir).join(c))
                        .collect();
                    (paths, vec![0; steps(&f)])
                }
                _ => (vec![f.model.clone()], vec![0; steps(&f)]),
            };
            let (models, step_models) = if kind == "multifunction" {
                let names: Vec<String> = f.json["steps"]
                    .as_array()
                    .context("steps")?
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect();
                let base = native(&f.model)?;
                let mut uniq: Vec<String> = names.clone();
                uniq.dedup();
                let models = uniq
                    .iter()
                    .map(|n| base.with_function(n))
                    .collect::<Result<Vec<_>, _>>()?;
                let idx = names
                    .iter()
                    .map(|n| uniq.iter().position(|u| u == n).unwrap_or(0))
                    .collect();
                (models, idx)
            } else {
                (
                    paths
                        .iter()
                        .map(|p| native(p))
                        .collect::<Result<Vec<_>>>()?,
                    step_models,
                )
            };
            let port: Option<Vec<Model>> = if kind == "multifunction" {
                models
                    .iter()
                    .map(|m| {
                        let b = Model::builder()
                            .backend(Backend::Portable)
                            .function(m.function_name());
                        b.load(&f.model).ok()
                    })
                    .collect()
            } else {
                paths.iter().map(|p| portable(p)).collect()
            };
            compared += run_stateful(&f, &models, &step_models, port.as_deref())
                .with_context(|| format!("fixture {}", f.name))?;
        }
    }
    assert!(compared >= 5, "only {compared} values compared");
    Ok(())
}

#[test]
fn multifunction_runs_each_function() -> Result<()> {
    let f = fixture("models", "multifunction")?;
    let default = native(&f.model)?;
    assert_eq!(default.function_name(), "infer");
    let names: Vec<_> = default
        .description()
        .functions
        .iter()
        .map(|f| f.name.clone())
        .collect();
    assert!(
        names.contains(&"prefill".to_string()) && names.contains(&"infer".to_string()),
        "{names:?}"
    );
    for function in ["prefill", "infer"] {
        let model = default.with_function(function)?;
        assert_eq!(model.function_name(), function);
        let inputs = group(&f.arrays, &format!("{function}/"), "input");
        let want = group(&f.arrays, &format!("{function}/"), "output");
        let got = model.predict(&inputs)?;
        let port = Model::builder()
            .backend(Backend::Portable)
            .function(function)
            .load(&f.model)?;
        let parity = port.predict(&inputs)?;
        for (name, w) in &want {
            let tol = Tol {
                rtol: 2e-2,
                atol: 2e-2,
            };
            assert_close(&format!("{function} {name}"), &got[name.as_str()], w, tol)?;
            assert_close(
                &format!("{function} {name} parity"),
                &got[name.as_str()],
                &parity[name.as_str()],
                tol,
            )?;
        }
    }
    match Model::builder()
        .backend(Backend::Native)
        .function("nope")
        .load(&f.model)
    {
        Err(Error::UnknownFunction { .. }) => Ok(()),
        other => bail!("expected UnknownFunction, got {other:?}"),
    }
}

#[test]
fn every_compute_unit_option_runs() -> Result<()> {
    let f = fixture("models", "mlp_fp32")?;
    let inputs = group(&f.arrays, "", "input");
    let want = group(&f.arrays, "", "output");
    for units in [
        ComputeUnits::CpuOnly,
        ComputeUnits::CpuAndGpu,
        ComputeUnits::CpuAndNeuralEngine,
        ComputeUnits::All,
    ] {
        let model = Model::builder()
            .backend(Backend::Native)
            .compute_units(units)
            .load(&f.model)?;
        let got = model.predict(&inputs)?;
        // GPU and Neural Engine may compute in fp16.
        let tol = Tol {
            rtol: 2e-2,
            atol: 2e-2,
        };
        for (name, w) in &want {
            assert_close(&format!("{units:?} {name}"), &got[name.as_str()], w, tol)?;
        }
    }
    Ok(())
}

#[test]
fn description_matches_coremltools() -> Result<()> {
    for name in [
        "mlp_fp32",
        "mlp_fp16",
        "stateful_kv_cache",
        "flexible_range",
        "flexible_enumerated",
    ] {
        let f = fixture("models", name)?;
        let model = native(&f.model)?;
        let want = &f.json["functions"][0];
        for (kind, got) in [
            ("inputs", model.inputs()),
            ("outputs", model.outputs()),
            ("states", model.states()),
        ] {
            let want = want[kind].as_array().context("features")?;
            let got_names: Vec<_> = got.iter().map(|g| g.name.as_str()).collect();
            let want_names: Vec<_> = want.iter().filter_map(|w| w["name"].as_str()).collect();
            assert_eq!(got_names, want_names, "{name} {kind}");
            for (g, w) in got.iter().zip(want) {
                let shape: Vec<usize> = w["shape"]
                    .as_array()
                    .map(|s| {
                        s.iter()
                            .filter_map(|d| d.as_u64())
                            .map(|d| d as usize)
                            .collect()
                    })
                    .unwrap_or_default();
                if !shape.is_empty() {
                    assert_eq!(
                        g.ty.shape().unwrap_or_default(),
                        shape,
                        "{name} {kind} {} shape",
                        g.name
                    );
                }
                let dtype = g.ty.dtype().map(|d| d.to_string()).unwrap_or_default();
                assert_eq!(
                    Some(dtype.as_str()),
                    w["dtype"].as_str(),
                    "{name} {kind} {} dtype",
                    g.name
                );
                if kind == "inputs" {
                    assert_eq!(
                        g.ty.flexibility().is_some(),
                        !w["flexibility"].is_null(),
                        "{name} {kind} {} flexibility",
                        g.name
                    );
                }
            }
        }
        let author = f.json["metadata"]["author"].as_str().unwrap_or_default();
        assert_eq!(model.description().metadata.author, author, "{name} author");
    }
    Ok(())
}

#[test]
fn state_read_write_reset() -> Result<()> {
    let path = fixtures().join("models/stateful_accumulator.mlpackage");
    let model = native(&path)?;
    let mut state = model.make_state()?;
    assert_eq!(state.names(), vec!["acc".to_string()]);
    let zeros = state.read("acc")?;
    assert_eq!(zeros.dims(), &[1, 8]);
    assert_eq!(zeros.dtype(), DType::F16);
    assert_eq!(
        zeros
            .to_dtype(DType::F32)?
            .abs()?
            .sum_all()?
            .to_scalar::<f32>()?,
        0.0
    );
    let v = Tensor::arange(0f32, 8., &Device::Cpu)?.reshape((1, 8))?;
    state.write("acc", &v)?;
    assert_close(
        "written",
        &state.read("acc")?,
        &v,
        Tol {
            rtol: 0.0,
            atol: 0.0,
        },
    )?;
    state.reset()?;
    assert_close(
        "reset",
        &state.read("acc")?,
        &v.zeros_like()?,
        Tol {
            rtol: 0.0,
            atol: 0.0,
        },
    )?;
    assert!(matches!(state.read("nope"), Err(Error::State { .. })));
    assert!(matches!(
        state.write("acc", &Tensor::zeros((1, 7), DType::F32, &Device::Cpu)?),
        Err(Error::State { .. })
    ));
    Ok(())
}

#[test]
fn input_layouts_and_dtypes() -> Result<()> {
    let path = fixtures().join("models/mlp_fp32.mlpackage");
    let model = native(&path)?;
    let x = Tensor::arange(0f32, 16., &Device::Cpu)?
        .reshape((1, 16))?
        .affine(0.1, -0.8)?;
    let base = model.predict([("x", &x)])?;
    // A non-contiguous view (every other element of a (16, 2) buffer) and
    // an offset view (the second row of a (2, 16) buffer).
    let flat = x.flatten_all()?;
    let pairs = Tensor::stack(&[&flat, &flat.affine(2.0, 0.0)?], 1)?;
    let t = pairs.narrow(1, 0, 1)?.t()?;
    assert!(!t.is_contiguous() && t.dims() == [1, 16]);
    let wide = Tensor::cat(&[&x.affine(2.0, 0.0)?, &x], 0)?;
    let narrowed = wide.narrow(0, 1, 1)?;
    assert!(narrowed.is_contiguous());
    let tol = Tol {
        rtol: 0.0,
        atol: 0.0,
    };
    for (what, input) in [
        ("transposed", t),
        ("narrowed", narrowed),
        ("f16", x.to_dtype(DType::F16)?),
    ] {
        let out = model.predict([("x", &input)])?;
        let tol = if what == "f16" {
            Tol {
                rtol: 1e-2,
                atol: 1e-2,
            }
        } else {
            tol
        };
        assert_close(what, &out["out"], &base["out"], tol)?;
    }
    // The same tensor twice in a row: no state kept between calls.
    let again = model.predict([("x", &x)])?;
    assert_close("again", &again["out"], &base["out"], tol)?;
    Ok(())
}

#[test]
fn int64_inputs_are_narrowed_with_an_overflow_check() -> Result<()> {
    let f = fixture("torch", "bert_fp32")?;
    let model = native(&f.model)?;
    let mut inputs = group(&f.arrays, "", "input");
    let ids = inputs["input_ids"].clone();
    let got32 = model.predict(&inputs)?;
    inputs.insert("input_ids".into(), ids.to_dtype(DType::I64)?);
    let got64 = model.predict(&inputs)?;
    let name = model.outputs()[0].name.clone();
    assert_close(
        "i64 ids",
        &got64[name.as_str()],
        &got32[name.as_str()],
        Tol {
            rtol: 0.0,
            atol: 0.0,
        },
    )?;
    let huge = (ids.to_dtype(DType::I64)? + (i32::MAX as f64 + 10.0))?;
    inputs.insert("input_ids".into(), huge);
    assert!(matches!(
        model.predict(&inputs),
        Err(Error::DtypeMismatch { .. })
    ));
    Ok(())
}

#[test]
fn model_is_shared_between_threads() -> Result<()> {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Model>();
    fn send<T: Send>() {}
    send::<candle_coreml::State>();
    let f = fixture("models", "mlp_fp32")?;
    let model = native(&f.model)?;
    let inputs = group(&f.arrays, "", "input");
    let want = group(&f.arrays, "", "output");
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    for _ in 0..25 {
                        let got = model.predict(&inputs)?;
                        for (name, w) in &want {
                            assert_close(
                                name,
                                &got[name.as_str()],
                                w,
                                Tol {
                                    rtol: 1e-3,
                                    atol: 1e-3,
                                },
                            )?;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| anyhow::anyhow!("thread panicked"))?)
    })
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dst = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dst)?;
        } else {
            std::fs::copy(entry.path(), &dst)?;
        }
    }
    Ok(())
}

fn cache_entries(dir: &Path) -> Result<usize> {
    Ok(std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "mlmodelc"))
        .count())
}

#[test]
fn compiled_models_are_cached_by_path_size_and_mtime() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let package = tmp.path().join("mlp.mlpackage");
    copy_dir(&fixtures().join("models/mlp_fp32.mlpackage"), &package)?;
    let cache = tmp.path().join("cache");
    let load = || {
        Model::builder()
            .backend(Backend::Native)
            .cache_dir(&cache)
            .load(&package)
    };
    load()?;
    assert_eq!(cache_entries(&cache)?, 1);
    load()?;
    assert_eq!(
        cache_entries(&cache)?,
        1,
        "second load must reuse the cache"
    );
    // Touch the weights: a new compile.
    let weights = package.join("Data/com.apple.CoreML/weights/weight.bin");
    let file = std::fs::OpenOptions::new().write(true).open(&weights)?;
    file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))?;
    drop(file);
    load()?;
    assert_eq!(
        cache_entries(&cache)?,
        2,
        "a modified model must be compiled again"
    );
    Ok(())
}

#[test]
fn backend_is_native() -> Result<()> {
    let model = Model::load(fixtures().join("models/mlp_fp32.mlpackage"))?;
    assert_eq!(
        model.backend(),
        Backend::Native,
        "Auto picks native on Apple platforms"
    );
    Ok(())
}
