//! Fixture access for the bundle tests: real ANEMLL bundles under
//! tests/fixtures/bundles and, for each, a reference made by Hugging Face
//! transformers running the bundle's dequantized weights
//! (tests/fixtures/references/NAME.json with per-case logits .npy).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Tensor;
use candle_coreml::Backend;
use candle_coreml_llm::{Llm, LoadOptions, Message, TemplateOptions};
use serde::Deserialize;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[derive(Debug, Clone, Deserialize)]
pub struct Reference {
    pub bundle: String,
    pub anemll_version: String,
    pub architecture: String,
    #[serde(default)]
    pub stop_token_ids: Vec<u32>,
    #[serde(default)]
    pub fp16_max_abs_logit_diff: Option<f64>,
    pub cases: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    pub name: String,
    #[serde(default)]
    pub messages: Option<Vec<Message>>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub add_special_tokens: Option<bool>,
    #[serde(default)]
    pub template_kwargs: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub history_case: Option<String>,
    #[serde(default)]
    pub append_ids: Option<Vec<u32>>,
    pub prompt_ids: Vec<u32>,
    pub greedy_ids: Vec<u32>,
    pub logits: String,
    #[serde(default)]
    pub min_top2_margin: Option<f64>,
    #[serde(default)]
    pub fp16_max_abs_logit_diff: Option<f64>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// `anemll_prefill_rotate`: the reference reproduces ANEMLL's own
    /// prefill through `prefill_rotate` windows past the sliding window.
    #[serde(default)]
    pub prefill_semantics: Option<String>,
}

impl Case {
    /// True for references of ANEMLL's window-at-once `prefill_rotate`.
    pub fn rotate_windows(&self) -> bool {
        self.prefill_semantics.as_deref() == Some("anemll_prefill_rotate")
    }

    /// The template options of a messages case.
    pub fn template_options(&self) -> TemplateOptions {
        let mut o = TemplateOptions::default();
        for (k, v) in &self.template_kwargs {
            match (k.as_str(), v) {
                ("add_generation_prompt", serde_json::Value::Bool(b)) => {
                    o.add_generation_prompt = *b
                }
                ("enable_thinking", serde_json::Value::Bool(b)) => o.enable_thinking = Some(*b),
                _ => {
                    o.extra.insert(k.clone(), v.clone());
                }
            }
        }
        o
    }

    /// Per-step reference logits `[steps, vocab]`.
    pub fn logits(&self) -> Vec<Vec<f32>> {
        let path = fixtures().join("references").join(&self.logits);
        let t = Tensor::read_npy(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        t.to_vec2::<f32>().unwrap()
    }
}

/// Every reference, by bundle name.
pub fn references() -> Vec<Reference> {
    let dir = fixtures().join("references");
    let mut out = vec![];
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (the fixtures are committed)", dir.display()));
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&p).unwrap();
            let r: Reference =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            out.push(r);
        }
    }
    assert!(!out.is_empty(), "no references under {}", dir.display());
    out
}

pub fn bundle_dir(name: &str) -> PathBuf {
    fixtures().join("bundles").join(name)
}

pub fn options() -> LoadOptions {
    LoadOptions {
        backend: Backend::Portable,
        progress: false,
        ..Default::default()
    }
}

pub fn load(name: &str) -> Arc<Llm> {
    load_with(name, false)
}

/// A bundle loaded for one prefill semantics (see [`Case::rotate_windows`]).
pub fn load_with(name: &str, rotate_windows: bool) -> Arc<Llm> {
    let dir = bundle_dir(name);
    let opts = LoadOptions {
        rotate_windows,
        ..options()
    };
    Arc::new(Llm::load(&dir, &opts).unwrap_or_else(|e| panic!("{}: {e}", dir.display())))
}

/// The bundle loaded both ways, picked per case.
pub struct Loaded {
    exact: Arc<Llm>,
    windows: Option<Arc<Llm>>,
}

impl Loaded {
    pub fn new(r: &Reference) -> Self {
        let windows = r
            .cases
            .iter()
            .any(Case::rotate_windows)
            .then(|| load_with(&r.bundle, true));
        Self {
            exact: load(&r.bundle),
            windows,
        }
    }

    /// The bundle as loaded by default (exact prefill).
    pub fn exact(&self) -> &Arc<Llm> {
        &self.exact
    }

    pub fn for_case(&self, c: &Case) -> &Arc<Llm> {
        match (&self.windows, c.rotate_windows()) {
            (Some(w), true) => w,
            _ => &self.exact,
        }
    }
}

/// A copy of a fixture bundle in a fresh folder, to break.
pub fn copy_bundle(name: &str, to: &Path) -> PathBuf {
    let dst = to.join(name);
    copy_dir(&bundle_dir(name), &dst);
    dst
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let d = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &d);
        } else {
            std::fs::copy(&p, &d).unwrap();
        }
    }
}
