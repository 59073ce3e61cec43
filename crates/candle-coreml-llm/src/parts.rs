//! The model parts of a bundle, behind a small trait so that a caller (or a
//! test) can wrap each part, e.g. to count calls.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Tensor;
use candle_coreml::description::FunctionDescription;
use candle_coreml::{Model, Outputs, State};

/// One function of one model file: what the engine calls.
pub trait Part: Send + Sync {
    /// A short label for errors and figures, e.g. `qwen_lm_head.mlmodelc`
    /// or `qwen_FFN_PF_chunk_01of02.mlpackage:prefill`.
    fn label(&self) -> &str;
    /// The file it came from.
    fn path(&self) -> &Path;
    /// Inputs, outputs and states of the function.
    fn function(&self) -> &FunctionDescription;
    /// Runs the function; `state` for stateful functions.
    fn predict(
        &self,
        inputs: &[(&str, &Tensor)],
        state: Option<&mut State>,
    ) -> candle_coreml::Result<Outputs>;
    /// A fresh state for the function's states.
    fn make_state(&self) -> candle_coreml::Result<State>;
}

/// A [`Part`] backed by a loaded [`Model`].
pub struct ModelPart {
    model: Model,
    label: String,
    path: PathBuf,
}

impl ModelPart {
    /// Wraps `model`, loaded from `path`.
    pub fn new(model: Model, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default();
        let multi = model.description().functions.len() > 1;
        let label = if multi {
            format!("{file}:{}", model.function_name())
        } else {
            file
        };
        Self { model, label, path }
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }
}

impl fmt::Debug for ModelPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

impl Part for ModelPart {
    fn label(&self) -> &str {
        &self.label
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn function(&self) -> &FunctionDescription {
        self.model.function()
    }

    fn predict(
        &self,
        inputs: &[(&str, &Tensor)],
        state: Option<&mut State>,
    ) -> candle_coreml::Result<Outputs> {
        match state {
            Some(s) if !self.model.states().is_empty() => {
                self.model.predict_with_state(inputs.iter().copied(), s)
            }
            _ => self.model.predict(inputs.iter().copied()),
        }
    }

    fn make_state(&self) -> candle_coreml::Result<State> {
        self.model.make_state()
    }
}

/// A shared part.
pub type PartRef = Arc<dyn Part>;

/// The functions of one FFN chunk. Every function shares the chunk's
/// weights and the bundle's one state.
#[derive(Clone)]
pub struct Chunk {
    /// One token at a time (`infer`).
    pub infer: PartRef,
    /// A window of `batch_size` tokens (`prefill`).
    pub prefill: PartRef,
    /// Further functions by name (`infer_rotate`, `prefill_rotate` of
    /// sliding-window bundles), when the file has them.
    pub extra: BTreeMap<String, PartRef>,
}

/// What kind of part a [`PartRef`] is, for [`Parts::map`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The embeddings.
    Embeddings,
    /// Function `function` of FFN chunk `index` (from 0).
    Chunk {
        /// Chunk index, from 0.
        index: usize,
        /// Function name.
        function: String,
    },
    /// The LM head.
    LmHead,
    /// Function `function` of a monolithic model.
    Monolithic {
        /// Function name.
        function: String,
    },
}

/// The parts of a bundle, as the engine calls them.
#[derive(Clone)]
pub enum Parts {
    /// Embeddings, FFN chunks, LM head.
    Chunked {
        /// Token ids to hidden states.
        embeddings: PartRef,
        /// The transformer layers, in order.
        chunks: Vec<Chunk>,
        /// Hidden state to logits (or argmax pairs).
        lm_head: PartRef,
    },
    /// One model from token ids to logits.
    Monolithic {
        /// One token at a time.
        infer: PartRef,
        /// A window of tokens.
        prefill: PartRef,
        /// Further functions by name.
        extra: BTreeMap<String, PartRef>,
    },
}

impl Parts {
    /// Replaces every part by `f(role, part)`: wrap parts to observe calls.
    pub fn map(self, mut f: impl FnMut(Role, PartRef) -> PartRef) -> Parts {
        let extra_map = |f: &mut dyn FnMut(Role, PartRef) -> PartRef,
                         extra: BTreeMap<String, PartRef>,
                         role: &dyn Fn(String) -> Role| {
            extra
                .into_iter()
                .map(|(k, v)| {
                    let r = role(k.clone());
                    (k, f(r, v))
                })
                .collect()
        };
        match self {
            Parts::Chunked {
                embeddings,
                chunks,
                lm_head,
            } => Parts::Chunked {
                embeddings: f(Role::Embeddings, embeddings),
                chunks: chunks
                    .into_iter()
                    .enumerate()
                    .map(|(index, c)| {
                        let role = |function: String| Role::Chunk { index, function };
                        Chunk {
                            infer: f(role("infer".into()), c.infer),
                            prefill: f(role("prefill".into()), c.prefill),
                            extra: extra_map(&mut f, c.extra, &role),
                        }
                    })
                    .collect(),
                lm_head: f(Role::LmHead, lm_head),
            },
            Parts::Monolithic {
                infer,
                prefill,
                extra,
            } => {
                let role = |function: String| Role::Monolithic { function };
                Parts::Monolithic {
                    infer: f(role("infer".into()), infer),
                    prefill: f(role("prefill".into()), prefill),
                    extra: extra_map(&mut f, extra, &role),
                }
            }
        }
    }

    /// The part whose state every call shares (the first FFN function, or
    /// the monolithic model's prefill).
    pub fn state_owner(&self) -> Option<&PartRef> {
        match self {
            Parts::Chunked { chunks, .. } => chunks.first().map(|c| &c.prefill),
            Parts::Monolithic { prefill, .. } => Some(prefill),
        }
    }
}
