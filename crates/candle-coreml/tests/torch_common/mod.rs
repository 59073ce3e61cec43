//! Helpers shared by the tests over the torch fixtures
//! (`tests/fixtures/torch`, made by tools/gen_model_fixtures.py).
// Each test binary uses a different subset.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;

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
