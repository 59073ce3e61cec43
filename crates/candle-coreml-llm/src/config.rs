//! What the engine needs to know about a bundle, derived from meta.yaml and
//! checked against every part's declared interface.

use candle_coreml::description::{FeatureDescription, FeatureType, FunctionDescription};

use crate::error::{Error, Result};
use crate::meta::Meta;
use crate::parts::{Part, PartRef, Parts};

/// How a prompt is fed before generation (ANEMLL's loops differ by version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefillMode {
    /// ANEMLL 0.3.4: windows of `batch_size` through `prefill`, the last one
    /// zero-padded.
    PaddedWindows,
    /// ANEMLL 0.3.5 with `prefill_dynamic_slice` or `update_mask_prefill`:
    /// windows through `prefill`, the last one zero-padded (ANEMLL's own
    /// runner sends the tokens after the last full window one at a time
    /// through `infer`; the results are the same, one call instead of up to
    /// `batch_size - 1`). With a sliding window (Gemma 3) the tokens after
    /// the last full window go through `infer`, as ANEMLL does.
    FullWindows,
    /// ANEMLL 0.3.5 without either flag: every prompt token through `infer`.
    TokenByToken,
}

impl PrefillMode {
    /// The mode a bundle's meta.yaml asks for.
    pub fn for_meta(meta: &Meta) -> PrefillMode {
        match meta.version_tuple() {
            Some(v) if v < (0, 3, 5) => PrefillMode::PaddedWindows,
            _ if meta.update_mask_prefill || meta.prefill_dynamic_slice => PrefillMode::FullWindows,
            _ => PrefillMode::TokenByToken,
        }
    }
}

/// What the LM head returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// Logits in one or more outputs, joined on the last axis in this order.
    Logits {
        /// Output names with their vocabulary slice sizes (0 when the model
        /// leaves the size open: read at run time).
        outputs: Vec<(String, usize)>,
    },
    /// Per-split `argmax_idx`/`argmax_val`: the token is the local index of
    /// the split with the largest value plus that split's offset.
    Argmax {
        /// The index output.
        idx: String,
        /// The value output.
        val: String,
        /// Start of each split in the vocabulary (empty: derive at run time).
        offsets: Vec<usize>,
        /// The vocabulary size, when known.
        vocab_size: Option<usize>,
    },
}

/// The checked facts the engine runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Positions available: tokens of prompt and answer together.
    pub context_length: usize,
    /// The prefill window.
    pub batch_size: usize,
    /// Width of the causal mask the FFN functions take.
    pub mask_width: usize,
    /// Hidden size between parts (0 for monolithic bundles).
    pub hidden_size: usize,
    /// How prompts are fed.
    pub prefill_mode: PrefillMode,
    /// What the head returns.
    pub head: Head,
    /// The `update_mask` shape `infer` takes, when it takes one.
    pub infer_update_mask: Option<Vec<usize>>,
    /// The `update_mask` shape `prefill` takes, when it takes one.
    pub prefill_update_mask: Option<Vec<usize>>,
    /// Names of the shared state's buffers.
    pub state_names: Vec<String>,
    /// Sliding-window bundles (Gemma 3) whose context exceeds the window:
    /// from this position on, the `*_rotate` functions run (the local cache
    /// then wraps).
    pub sliding_window: Option<usize>,
    /// Past the sliding window, prefill whole windows through
    /// `prefill_rotate` as ANEMLL's chat.py does (faster; on sliding layers
    /// each token then also sees the later tokens of its window). `false`
    /// (the default) feeds those tokens one at a time through
    /// `infer_rotate`: exactly the model's attention.
    pub rotate_windows: bool,
}

fn find<'a>(f: &'a FunctionDescription, name: &str) -> Option<&'a FeatureDescription> {
    f.inputs.iter().chain(&f.outputs).find(|i| i.name == name)
}

fn shape_of(part: &dyn Part, name: &str) -> Result<Vec<usize>> {
    let f = part.function();
    let feature = find(f, name).ok_or_else(|| {
        let mut names: Vec<&str> = f.inputs.iter().map(|i| i.name.as_str()).collect();
        names.extend(f.outputs.iter().map(|i| i.name.as_str()));
        Error::mismatch(
            part.path(),
            format!(
                "function {:?} has no {name:?} (it has {names:?}); not an ANEMLL part of this kind",
                f.name
            ),
        )
    })?;
    Ok(feature.ty.shape().unwrap_or_default())
}

fn last_dim(part: &dyn Part, name: &str) -> Result<usize> {
    let s = shape_of(part, name)?;
    s.last()
        .copied()
        .ok_or_else(|| Error::mismatch(part.path(), format!("{name:?} has no shape")))
}

fn expect(part: &dyn Part, what: &str, expected: usize, got: usize) -> Result<()> {
    if expected == got {
        return Ok(());
    }
    Err(Error::mismatch(
        part.path(),
        format!("{what} is {got}, expected {expected}"),
    ))
}

fn update_mask(part: &dyn Part) -> Option<Vec<usize>> {
    part.function()
        .inputs
        .iter()
        .find(|i| i.name == "update_mask")
        .and_then(|i| i.ty.shape())
}

fn state_types(part: &dyn Part) -> Vec<(String, FeatureType)> {
    let mut v: Vec<_> = part
        .function()
        .states
        .iter()
        .map(|s| (s.name.clone(), s.ty.clone()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Checks a window function (`prefill`) or a one-token function (`infer`):
/// mask and hidden sizes; returns the mask width.
fn check_ffn(part: &dyn Part, rows: usize, hidden: Option<usize>) -> Result<usize> {
    let mask = shape_of(part, "causal_mask")?;
    if mask.len() != 4 || mask[2] != rows {
        return Err(Error::mismatch(
            part.path(),
            format!(
                "function {:?}: causal_mask shape {mask:?}, expected [1, 1, {rows}, width]",
                part.function().name
            ),
        ));
    }
    for name in ["position_ids", "current_pos"] {
        shape_of(part, name)?;
    }
    if let Some(h) = hidden {
        let what = format!("function {:?}: hidden size", part.function().name);
        expect(part, &what, h, last_dim(part, "hidden_states")?)?;
        if let Some(d) = declared_last_dim(part, "output_hidden_states")? {
            expect(part, &what, h, d)?;
        }
        let rows_in = shape_of(part, "hidden_states")?;
        if rows_in.len() != 3 || rows_in[1] != rows {
            return Err(Error::mismatch(
                part.path(),
                format!(
                    "function {:?}: hidden_states shape {rows_in:?}, expected [1, {rows}, {h}]",
                    part.function().name
                ),
            ));
        }
    }
    Ok(mask[3])
}

type Facts<'a> = (usize, usize, &'a PartRef, &'a PartRef, Vec<&'a PartRef>);

/// Hidden size, mask width, chunk 1's infer and prefill, and every FFN
/// function of a chunked bundle, checked to agree.
fn chunked_facts<'a>(
    batch: usize,
    embeddings: &'a PartRef,
    chunks: &'a [crate::parts::Chunk],
    lm_head: &'a PartRef,
) -> Result<Facts<'a>> {
    let Some(c0) = chunks.first() else {
        return Err(Error::mismatch(
            embeddings.path(),
            "the bundle has no FFN chunk",
        ));
    };
    let hidden = last_dim(c0.infer.as_ref(), "hidden_states")?;
    if let Some(d) = declared_last_dim(embeddings.as_ref(), "hidden_states")? {
        expect(embeddings.as_ref(), "embeddings hidden size", hidden, d)?;
    }
    let mut width = None;
    let mut fns = vec![];
    for c in chunks {
        let w1 = check_ffn(c.infer.as_ref(), 1, Some(hidden))?;
        let w2 = check_ffn(c.prefill.as_ref(), batch, Some(hidden))?;
        for (p, w) in [(&c.infer, w1), (&c.prefill, w2)] {
            let want = *width.get_or_insert(w);
            expect(p.as_ref(), "causal_mask width", want, w)?;
        }
        fns.push(&c.infer);
        fns.push(&c.prefill);
        fns.extend(c.extra.values());
    }
    let what = "LM head hidden size";
    expect(
        lm_head.as_ref(),
        what,
        hidden,
        last_dim(lm_head.as_ref(), "hidden_states")?,
    )?;
    Ok((hidden, width.unwrap_or(0), &c0.infer, &c0.prefill, fns))
}

/// Derives and checks the engine configuration of `parts` against `meta`.
pub fn check(meta: &Meta, parts: &Parts) -> Result<EngineConfig> {
    let batch = meta.batch_size;
    let (hidden, mask_width, infer_ref, prefill_ref, functions): (_, _, _, _, Vec<&PartRef>) =
        match parts {
            Parts::Chunked {
                embeddings,
                chunks,
                lm_head,
            } => chunked_facts(batch, embeddings, chunks, lm_head)?,
            Parts::Monolithic {
                infer,
                prefill,
                extra,
            } => {
                let w1 = check_ffn(infer.as_ref(), 1, None)?;
                let w2 = check_ffn(prefill.as_ref(), batch, None)?;
                expect(prefill.as_ref(), "causal_mask width", w1, w2)?;
                let mut fns = vec![infer, prefill];
                fns.extend(extra.values());
                (0, w1, infer, prefill, fns)
            }
        };
    check_states_agree(&functions)?;
    let state_names: Vec<String> = state_types(functions[0].as_ref())
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    if mask_width != meta.attention_size {
        return Err(Error::mismatch(
            infer_ref.path(),
            format!(
                "causal_mask width is {mask_width}, but meta.yaml says attention_size/context_length {}",
                meta.attention_size
            ),
        ));
    }
    let state_len = check_state_length(meta, functions[0].as_ref())?;
    let sliding_window = check_rotation(meta, parts)?;
    let head_part = match parts {
        Parts::Chunked { lm_head, .. } => lm_head,
        Parts::Monolithic { infer, .. } => infer,
    };
    let head = check_head(meta, head_part.as_ref())?;
    let context_length = meta
        .context_length
        .min(mask_width)
        .min(state_len.unwrap_or(usize::MAX));
    Ok(EngineConfig {
        context_length,
        batch_size: batch,
        mask_width,
        hidden_size: hidden,
        prefill_mode: PrefillMode::for_meta(meta),
        head,
        infer_update_mask: update_mask(infer_ref.as_ref()),
        prefill_update_mask: update_mask(prefill_ref.as_ref()),
        state_names,
        sliding_window,
        rotate_windows: false,
    })
}

/// The window from which the rotate functions run, when the bundle needs
/// them; every FFN part must then have `infer_rotate` and `prefill_rotate`.
fn check_rotation(meta: &Meta, parts: &Parts) -> Result<Option<usize>> {
    let Some(w) = meta.sliding_window else {
        return Ok(None);
    };
    if w >= meta.context_length {
        return Ok(None);
    }
    let sets: Vec<(&PartRef, &std::collections::BTreeMap<String, PartRef>)> = match parts {
        Parts::Chunked { chunks, .. } => chunks.iter().map(|c| (&c.infer, &c.extra)).collect(),
        Parts::Monolithic { infer, extra, .. } => vec![(infer, extra)],
    };
    for (infer, extra) in sets {
        for name in ["infer_rotate", "prefill_rotate"] {
            if !extra.contains_key(name) {
                return Err(Error::mismatch(
                    infer.path(),
                    format!(
                        "meta.yaml says sliding_window: {w} below context_length {}, but the file has no function {name:?}",
                        meta.context_length
                    ),
                ));
            }
        }
        let rows = [("infer_rotate", 1), ("prefill_rotate", meta.batch_size)];
        for (name, n) in rows {
            let part = &extra[name];
            check_ffn(part.as_ref(), n, None)?;
        }
    }
    if w == 0 {
        return Err(Error::meta(&meta.path, "sliding_window must be positive"));
    }
    Ok(Some(w))
}

fn check_states_agree(functions: &[&PartRef]) -> Result<()> {
    let first = state_types(functions[0].as_ref());
    if first.is_empty() {
        return Err(Error::mismatch(
            functions[0].path(),
            "the FFN function declares no state (KV cache); not an ANEMLL stateful bundle",
        ));
    }
    for f in &functions[1..] {
        let s = state_types(f.as_ref());
        if s != first {
            return Err(Error::mismatch(
                f.path(),
                format!(
                    "function {:?} declares states {:?}, but {} declares {:?}: the parts cannot share one state",
                    f.function().name,
                    describe_states(&s),
                    functions[0].label(),
                    describe_states(&first)
                ),
            ));
        }
    }
    Ok(())
}

fn describe_states(s: &[(String, FeatureType)]) -> Vec<String> {
    s.iter()
        .map(|(n, t)| format!("{n} {:?}", t.shape().unwrap_or_default()))
        .collect()
}

/// The KV length of a single-cache bundle (dim 2 of `(2*layers, heads, len, dim)`),
/// checked to hold the context.
fn check_state_length(meta: &Meta, part: &dyn Part) -> Result<Option<usize>> {
    let states = state_types(part);
    if states.len() != 1 {
        return Ok(None);
    }
    let shape = states[0].1.shape().unwrap_or_default();
    if shape.len() != 4 {
        return Ok(None);
    }
    // ANEMLL's LLaMA converter may make the cache longer than the context;
    // shorter cannot hold every position.
    if shape[2] < meta.state_length.min(meta.context_length) {
        return Err(Error::mismatch(
            part.path(),
            format!(
                "state {:?} holds {} positions ({shape:?}), but meta.yaml says state_length/context_length {}",
                states[0].0, shape[2], meta.state_length.min(meta.context_length)
            ),
        ));
    }
    Ok(Some(shape[2]))
}

fn check_head(meta: &Meta, head: &dyn Part) -> Result<Head> {
    let outputs = &head.function().outputs;
    let names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
    let has = |n: &str| names.contains(&n);
    if meta.argmax_in_model || (has("argmax_idx") && has("argmax_val")) {
        if !(has("argmax_idx") && has("argmax_val")) {
            return Err(Error::mismatch(
                head.path(),
                format!("meta.yaml says argmax_in_model, but the head's outputs are {names:?}"),
            ));
        }
        let offsets = match &meta.lm_head_chunk_sizes {
            Some(sizes) => sizes
                .iter()
                .scan(0, |acc, s| {
                    let o = *acc;
                    *acc += s;
                    Some(o)
                })
                .collect(),
            None => vec![],
        };
        return Ok(Head::Argmax {
            idx: "argmax_idx".into(),
            val: "argmax_val".into(),
            offsets,
            vocab_size: meta.vocab_size,
        });
    }
    let mut split: Vec<(String, usize)> = (1..)
        .map(|i| format!("logits{i}"))
        .take_while(|n| has(n))
        .map(|n| {
            let size = outputs
                .iter()
                .find(|o| o.name == n)
                .and_then(|o| o.ty.shape())
                .and_then(|s| s.last().copied())
                .unwrap_or(0);
            (n, size)
        })
        .collect();
    if split.is_empty() {
        for n in ["logits", "output_logits"] {
            if has(n) {
                split.push((n.to_string(), 0));
                break;
            }
        }
    }
    if split.is_empty() {
        return Err(Error::mismatch(
            head.path(),
            format!("the LM head has no logits outputs (logits1..N or logits); its outputs are {names:?}"),
        ));
    }
    if let Some(n) = meta.split_lm_head {
        if split.len() != n && split[0].0.starts_with("logits1") {
            return Err(Error::mismatch(
                head.path(),
                format!(
                    "meta.yaml says split_lm_head: {n}, the head has {} logits outputs",
                    split.len()
                ),
            ));
        }
    }
    Ok(Head::Logits { outputs: split })
}

/// The last dimension when the model declares a shape (outputs often
/// leave it open).
fn declared_last_dim(part: &dyn Part, name: &str) -> Result<Option<usize>> {
    Ok(shape_of(part, name)?.last().copied().filter(|&d| d > 0))
}
