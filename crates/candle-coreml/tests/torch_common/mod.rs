//! Helpers shared by the tests over the torch fixtures
//! (`tests/fixtures/torch`, made by tools/gen_model_fixtures.py).
// Each test binary uses a different subset.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

/// The device the portable backend runs the tests on: the CPU, or the GPU
/// named by `CANDLE_COREML_TEST_DEVICE=cuda` / `cuda:N` / `metal` (the crate
/// must be built with that feature; scripts/check-cuda.sh does it).
pub fn test_device() -> Device {
    let spec = std::env::var("CANDLE_COREML_TEST_DEVICE").unwrap_or_default();
    let (kind, ordinal) = spec.split_once(':').unwrap_or((spec.as_str(), "0"));
    let ordinal: usize = ordinal
        .parse()
        .unwrap_or_else(|_| panic!("CANDLE_COREML_TEST_DEVICE={spec:?}: bad ordinal"));
    match kind {
        "" | "cpu" => Device::Cpu,
        "cuda" => Device::new_cuda(ordinal)
            .unwrap_or_else(|e| panic!("CANDLE_COREML_TEST_DEVICE={spec:?}: {e}")),
        "metal" => Device::new_metal(ordinal)
            .unwrap_or_else(|e| panic!("CANDLE_COREML_TEST_DEVICE={spec:?}: {e}")),
        _ => panic!("CANDLE_COREML_TEST_DEVICE={spec:?}: expected cpu, cuda[:N] or metal[:N]"),
    }
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch")
}

/// `|got - want| <= atol + rtol * |want|`, from the fixture's JSON.
#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    pub rtol: f64,
    pub atol: f64,
}

pub fn fixture_json(name: &str) -> serde_json::Value {
    let path = fixtures().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn tolerance(name: &str) -> Tolerance {
    let j = fixture_json(name);
    let get = |k: &str| {
        j[k].as_f64()
            .unwrap_or_else(|| panic!("{name}.json: no number {k:?}"))
    };
    Tolerance {
        rtol: get("rtol"),
        atol: get("atol"),
    }
}

pub fn npz(name: &str) -> BTreeMap<String, Tensor> {
    let path = fixtures().join(format!("{name}.npz"));
    Tensor::read_npz(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .collect()
}

/// A tensor's elements as f64.
pub fn to_f64(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f64>())
        .expect("tensor as f64")
}

/// Panics with the worst element when `got` is not within `tol` of `want`.
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: Tolerance) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let (g, w) = (to_f64(got), to_f64(want));
    let mut worst: Option<(usize, f64)> = None;
    let mut max_abs = 0f64;
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let err = (a - b).abs();
        max_abs = max_abs.max(err);
        let excess = err - (tol.atol + tol.rtol * b.abs());
        if (excess > 0.0 || excess.is_nan()) && worst.is_none_or(|(_, e)| excess > e) {
            worst = Some((i, excess));
        }
    }
    if let Some((i, _)) = worst {
        panic!(
            "{what}: element {i} is {} but torch says {} (max |err| {max_abs:.3e}, rtol {}, atol {})",
            g[i], w[i], tol.rtol, tol.atol
        );
    }
}
