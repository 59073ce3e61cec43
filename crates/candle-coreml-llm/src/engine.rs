//! The decoder loop's building blocks: feed tokens into the shared state
//! (prefill) and take one decoding step (one embeddings call, one `infer`
//! per chunk, one LM-head call). Sampling, stopping and text live elsewhere:
//! a different loop (speculative decoding, a server's batch) reuses these.

use candle_core::{CpuStorage, DType, Device, Storage, Tensor};
use candle_coreml::{Outputs, State};
use half::f16;

use crate::config::{EngineConfig, Head, PrefillMode};
use crate::error::{Error, Result};
use crate::parts::{Part, PartRef, Parts};

/// Calls made to the parts, for figures and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Calls {
    /// Embeddings calls.
    pub embeddings: usize,
    /// FFN `infer` calls, all chunks together (monolithic: `infer` calls of
    /// the whole model).
    pub ffn_infer: usize,
    /// FFN `prefill` calls, all chunks together (monolithic: `prefill` calls
    /// of the whole model).
    pub ffn_prefill: usize,
    /// LM-head calls.
    pub lm_head: usize,
}

/// What one decoding step produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Logits were written to the caller's buffer.
    Logits,
    /// The head picked the token itself (`argmax_in_model`).
    Token(u32),
}

/// Runs a bundle's parts. `Engine` is `Send + Sync`; each conversation
/// brings its own [`State`].
pub struct Engine {
    parts: Parts,
    config: EngineConfig,
    /// fp16 `[1, 1, rows, width]`: 0 where column <= row, -inf elsewhere.
    /// Rows past the width (padded windows near the end) are all zeros.
    mask: Tensor,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish()
    }
}

/// Builds the causal mask once: `[1, 1, rows, width]` fp16.
pub fn causal_mask(rows: usize, width: usize) -> Result<Tensor> {
    let mut data = vec![f16::ZERO; rows * width];
    for (r, row) in data.chunks_mut(width.max(1)).enumerate() {
        for v in row.iter_mut().skip(r + 1) {
            *v = f16::NEG_INFINITY;
        }
    }
    Ok(Tensor::from_vec(data, (1, 1, rows, width), &Device::Cpu)?)
}

/// `[1, 1, len, n]` with a one at (pos + i, i) for each i.
pub fn update_mask(shape: &[usize], pos: usize, n: usize) -> Result<Tensor> {
    let (len, cols) = match shape {
        [1, 1, len, cols] => (*len, *cols),
        other => {
            return Err(Error::Msg(format!(
                "update_mask shape {other:?} is not [1, 1, length, window]"
            )))
        }
    };
    let mut data = vec![f16::ZERO; len * cols];
    for i in 0..n.min(cols) {
        if pos + i < len {
            data[(pos + i) * cols + i] = f16::ONE;
        }
    }
    Ok(Tensor::from_vec(data, (1, 1, len, cols), &Device::Cpu)?)
}

fn ids_tensor(ids: &[u32], len: usize) -> Result<Tensor> {
    let mut v: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
    v.resize(len, 0);
    Ok(Tensor::from_vec(v, (1, len), &Device::Cpu)?)
}

fn positions(pos: usize, n: usize) -> Result<Tensor> {
    let v: Vec<i32> = (pos..pos + n).map(|p| p as i32).collect();
    Ok(Tensor::from_vec(v, n, &Device::Cpu)?)
}

fn call(part: &PartRef, inputs: &[(&str, &Tensor)], state: Option<&mut State>) -> Result<Outputs> {
    part.predict(inputs, state).map_err(|e| Error::Model {
        part: part.label().to_string(),
        source: e,
    })
}

fn take(part: &dyn Part, mut out: Outputs, name: &str) -> Result<Tensor> {
    let names: Vec<String> = out.iter().map(|(n, _)| n.to_string()).collect();
    out.remove(name).ok_or_else(|| Error::Model {
        part: part.label().to_string(),
        source: candle_coreml::Error::msg(format!("no output {name:?}; outputs are {names:?}")),
    })
}

/// The inputs every FFN call of one step shares (positions, causal-mask
/// rows, write position, the bundle's update mask if it has one); the first
/// input, ids or hidden states, differs by part.
struct StepInputs {
    position_ids: Tensor,
    mask: Tensor,
    current_pos: Tensor,
    update_mask: Option<Tensor>,
}

impl StepInputs {
    /// Calls `part` on `first` and these inputs, with the shared state.
    fn run(&self, part: &PartRef, first: (&str, &Tensor), state: &mut State) -> Result<Outputs> {
        let mut inputs = vec![
            first,
            ("position_ids", &self.position_ids),
            ("causal_mask", &self.mask),
            ("current_pos", &self.current_pos),
        ];
        if let Some(u) = &self.update_mask {
            inputs.push(("update_mask", u));
        }
        call(part, &inputs, Some(state))
    }
}

impl Engine {
    /// An engine over checked parts (see [`crate::config::check`]).
    pub fn new(parts: Parts, config: EngineConfig) -> Result<Engine> {
        let rows = config.mask_width.max(config.context_length) + config.batch_size;
        let mask = causal_mask(rows, config.mask_width)?;
        Ok(Engine {
            parts,
            config,
            mask,
        })
    }

    /// `plain`, or its rotate sibling once `pos` has reached the sliding
    /// window (checked present at load).
    fn function<'a>(
        &self,
        plain: &'a PartRef,
        extra: &'a std::collections::BTreeMap<String, PartRef>,
        rotate: &str,
        pos: usize,
    ) -> &'a PartRef {
        match self.config.sliding_window {
            Some(w) if pos >= w => extra.get(rotate).unwrap_or(plain),
            _ => plain,
        }
    }

    /// True when a state that holds positions `..fed` can be cut back to
    /// `..keep` and extended from there. A sliding-window cache that has
    /// rotated no longer holds the earlier positions: only extending it is
    /// possible then.
    pub fn can_rewind(&self, fed: usize, keep: usize) -> bool {
        match self.config.sliding_window {
            Some(w) => keep == fed || fed <= w,
            None => true,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The parts.
    pub fn parts(&self) -> &Parts {
        &self.parts
    }

    /// A fresh (zeroed) state shared by every part.
    pub fn new_state(&self) -> Result<State> {
        let owner = self
            .parts
            .state_owner()
            .ok_or_else(|| Error::Msg("the bundle has no FFN chunk to make a state".into()))?;
        owner.make_state().map_err(|e| Error::Model {
            part: owner.label().to_string(),
            source: e,
        })
    }

    /// Feeds `tokens` at positions `pos..` into `state` without running the
    /// head, in the bundle's prefill mode.
    pub fn prefill(
        &self,
        state: &mut State,
        tokens: &[u32],
        pos: usize,
        calls: &mut Calls,
    ) -> Result<()> {
        self.check_room(pos, tokens.len())?;
        let batch = self.config.batch_size;
        let ctx = self.config.context_length;
        let mut done = 0;
        while done < tokens.len() {
            let p = pos + done;
            let rest = &tokens[done..];
            // Below a sliding window, a window must end by it (the local
            // cache holds the window's positions until rotation starts);
            // past it, windows go through `prefill_rotate` only when asked.
            let fits = match self.config.sliding_window {
                Some(w) if p < w => p + batch <= w,
                Some(_) => self.config.rotate_windows,
                None => true,
            };
            let window = fits
                && match self.config.prefill_mode {
                    PrefillMode::PaddedWindows => p + batch <= ctx,
                    // A last partial window is padded as well (its padding
                    // writes cache rows past the prompt, which each later
                    // token overwrites before attending to them), except
                    // under a sliding window, as ANEMLL does.
                    PrefillMode::FullWindows => {
                        (rest.len() >= batch || self.config.sliding_window.is_none())
                            && p + batch <= ctx
                    }
                    PrefillMode::TokenByToken => false,
                };
            if window {
                let n = rest.len().min(batch);
                self.window(state, &rest[..n], p, calls)?;
                done += n;
            } else {
                self.feed(state, rest[0], p, calls)?;
                done += 1;
            }
        }
        Ok(())
    }

    /// The shared inputs of `rows` tokens written from `pos`.
    fn step_inputs(&self, pos: usize, rows: usize, update: Option<&[usize]>) -> Result<StepInputs> {
        let position_ids = positions(pos, rows)?;
        let current_pos = if rows == 1 {
            position_ids.clone()
        } else {
            positions(pos, 1)?
        };
        Ok(StepInputs {
            position_ids,
            mask: self.mask.narrow(2, pos, rows)?,
            current_pos,
            update_mask: update
                .map(|shape| update_mask(shape, pos, rows))
                .transpose()?,
        })
    }

    fn check_room(&self, pos: usize, n: usize) -> Result<()> {
        let ctx = self.config.context_length;
        if pos + n > ctx {
            return Err(Error::PromptTooLong {
                tokens: pos + n,
                limit: ctx,
            });
        }
        Ok(())
    }

    /// One prefill window: up to `batch_size` tokens, zero-padded.
    fn window(
        &self,
        state: &mut State,
        tokens: &[u32],
        pos: usize,
        calls: &mut Calls,
    ) -> Result<()> {
        let batch = self.config.batch_size;
        let ids = ids_tensor(tokens, batch)?;
        let step = self.step_inputs(pos, batch, self.config.prefill_update_mask.as_deref())?;
        match &self.parts {
            Parts::Chunked {
                embeddings, chunks, ..
            } => {
                calls.embeddings += 1;
                let out = call(embeddings, &[("input_ids", &ids)], None)?;
                let mut hidden = take(embeddings.as_ref(), out, "hidden_states")?;
                for c in chunks {
                    calls.ffn_prefill += 1;
                    let f = self.function(&c.prefill, &c.extra, "prefill_rotate", pos);
                    let out = step.run(f, ("hidden_states", &hidden), state)?;
                    hidden = take(f.as_ref(), out, "output_hidden_states")?;
                }
            }
            Parts::Monolithic { prefill, extra, .. } => {
                calls.ffn_prefill += 1;
                let f = self.function(prefill, extra, "prefill_rotate", pos);
                step.run(f, ("input_ids", &ids), state)?;
            }
        }
        Ok(())
    }

    /// Runs one token through embeddings and every chunk's `infer`; returns
    /// the last hidden state (monolithic: the model's outputs).
    fn infer(
        &self,
        state: &mut State,
        token: u32,
        pos: usize,
        calls: &mut Calls,
    ) -> Result<Outputs> {
        self.check_room(pos, 1)?;
        let ids = ids_tensor(&[token], 1)?;
        let step = self.step_inputs(pos, 1, self.config.infer_update_mask.as_deref())?;
        match &self.parts {
            Parts::Chunked {
                embeddings, chunks, ..
            } => {
                calls.embeddings += 1;
                let out = call(embeddings, &[("input_ids", &ids)], None)?;
                let mut hidden = take(embeddings.as_ref(), out, "hidden_states")?;
                let mut last = Outputs::default();
                for c in chunks {
                    calls.ffn_infer += 1;
                    let f = self.function(&c.infer, &c.extra, "infer_rotate", pos);
                    last = step.run(f, ("hidden_states", &hidden), state)?;
                    hidden =
                        last.get("output_hidden_states")
                            .cloned()
                            .ok_or_else(|| Error::Model {
                                part: f.label().to_string(),
                                source: candle_coreml::Error::msg(
                                    "no output \"output_hidden_states\"",
                                ),
                            })?;
                }
                Ok(last)
            }
            Parts::Monolithic { infer, extra, .. } => {
                calls.ffn_infer += 1;
                let f = self.function(infer, extra, "infer_rotate", pos);
                step.run(f, ("input_ids", &ids), state)
            }
        }
    }

    /// Feeds one token without running the head.
    pub fn feed(&self, state: &mut State, token: u32, pos: usize, calls: &mut Calls) -> Result<()> {
        self.infer(state, token, pos, calls).map(|_| ())
    }

    /// One decoding step: feeds `token` at `pos` and runs the head. Logits
    /// go to `logits` (resized to the vocabulary), unless the head picks the
    /// token itself.
    pub fn step(
        &self,
        state: &mut State,
        token: u32,
        pos: usize,
        logits: &mut Vec<f32>,
        calls: &mut Calls,
    ) -> Result<Next> {
        let out = self.infer(state, token, pos, calls)?;
        let (head, out) = match &self.parts {
            Parts::Chunked { lm_head, .. } => {
                let hidden = take(lm_head.as_ref(), out, "output_hidden_states")?;
                calls.lm_head += 1;
                (lm_head, call(lm_head, &[("hidden_states", &hidden)], None)?)
            }
            Parts::Monolithic { infer, .. } => (infer, out),
        };
        read_head(&self.config.head, head.as_ref(), out, logits)
    }
}

/// Joins split logits into `logits` (one copy per split) or resolves an
/// in-model argmax.
pub fn read_head(
    head: &Head,
    part: &dyn Part,
    out: Outputs,
    logits: &mut Vec<f32>,
) -> Result<Next> {
    match head {
        Head::Logits { outputs } => {
            logits.clear();
            for (name, _) in outputs {
                let t = out.get(name).ok_or_else(|| Error::Model {
                    part: part.label().to_string(),
                    source: candle_coreml::Error::msg(format!("no output {name:?}")),
                })?;
                append_f32(t, logits)?;
            }
            Ok(Next::Logits)
        }
        Head::Argmax {
            idx,
            val,
            offsets,
            vocab_size,
        } => {
            let i = take(part, out.clone(), idx)?
                .flatten_all()?
                .to_dtype(DType::I64)?
                .to_vec1::<i64>()?;
            let v = take(part, out, val)?
                .flatten_all()?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?;
            argmax_token(&i, &v, offsets, *vocab_size)
                .map(Next::Token)
                .map_err(|m| Error::Model {
                    part: part.label().to_string(),
                    source: candle_coreml::Error::msg(m),
                })
        }
    }
}

/// Picks the token from per-split argmax pairs: the split with the largest
/// value (the first on ties), its local index plus the split's offset.
pub fn argmax_token(
    idx: &[i64],
    val: &[f32],
    offsets: &[usize],
    vocab_size: Option<usize>,
) -> std::result::Result<u32, String> {
    if idx.len() != val.len() || idx.is_empty() {
        return Err(format!(
            "argmax_idx has {} entries and argmax_val {}",
            idx.len(),
            val.len()
        ));
    }
    let n = idx.len();
    let offsets: Vec<usize> = if offsets.is_empty() {
        let v = vocab_size.ok_or(
            "an argmax_in_model head needs vocab_size or lm_head_chunk_sizes in meta.yaml",
        )?;
        let (base, rem) = (v / n, v % n);
        (0..n).map(|i| i * base + i.min(rem)).collect()
    } else if offsets.len() != n {
        return Err(format!(
            "the head returns {n} argmax splits, meta.yaml's lm_head_chunk_sizes has {}",
            offsets.len()
        ));
    } else {
        offsets.to_vec()
    };
    let mut best = 0;
    for (i, &v) in val.iter().enumerate() {
        if v > val[best] {
            best = i;
        }
    }
    let local = idx[best];
    if local < 0 {
        return Err(format!("negative argmax index {local}"));
    }
    Ok((offsets[best] + local as usize) as u32)
}

/// Appends `t`'s elements as f32: one pass over the output's own memory.
pub fn append_f32(t: &Tensor, out: &mut Vec<f32>) -> Result<()> {
    let cpu;
    let t = if t.device().is_cpu() {
        t
    } else {
        cpu = t.to_device(&Device::Cpu)?;
        &cpu
    };
    let (storage, layout) = t.storage_and_layout();
    if let (Storage::Cpu(s), Some((a, b))) = (&*storage, layout.contiguous_offsets()) {
        match s {
            CpuStorage::F32(v) => out.extend_from_slice(&v[a..b]),
            CpuStorage::F16(v) => out.extend(v[a..b].iter().map(|x| x.to_f32())),
            CpuStorage::BF16(v) => out.extend(v[a..b].iter().map(|x| x.to_f32())),
            _ => {
                drop(storage);
                out.extend(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?);
            }
        }
        return Ok(());
    }
    drop(storage);
    out.extend(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causal_mask_rows() {
        // rows past the width (padded windows at the end) see everything
        let m = causal_mask(5, 3).unwrap();
        let v: Vec<Vec<f32>> = m
            .squeeze(0)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec2()
            .unwrap();
        let n = f32::NEG_INFINITY;
        assert_eq!(
            v,
            vec![
                vec![0.0, n, n],
                vec![0.0, 0.0, n],
                vec![0.0, 0.0, 0.0],
                vec![0.0, 0.0, 0.0],
                vec![0.0, 0.0, 0.0]
            ]
        );
    }

    #[test]
    fn update_mask_marks_each_written_position() {
        let m = update_mask(&[1, 1, 4, 2], 2, 2).unwrap();
        let v: Vec<f32> = m
            .flatten_all()
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1()
            .unwrap();
        // rows = positions, columns = window slots: (2,0) and (3,1)
        assert_eq!(v, vec![0., 0., 0., 0., 1., 0., 0., 1.]);
        // a window running past the end writes nothing there
        let m = update_mask(&[1, 1, 4, 2], 3, 2).unwrap();
        let v: Vec<f32> = m
            .flatten_all()
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(v, vec![0., 0., 0., 0., 0., 0., 1., 0.]);
        assert!(update_mask(&[4, 2], 0, 1).is_err());
    }

    #[test]
    fn argmax_pairs() {
        // sizes from lm_head_chunk_sizes: offsets 0, 3, 6
        assert_eq!(
            argmax_token(&[2, 1, 0], &[0.5, 2.0, 1.0], &[0, 3, 6], None),
            Ok(4)
        );
        // even split of vocab 10 over 3: sizes 4, 3, 3 -> offsets 0, 4, 7
        assert_eq!(
            argmax_token(&[2, 1, 0], &[0.5, 1.0, 2.0], &[], Some(10)),
            Ok(7)
        );
        // first on ties
        assert_eq!(argmax_token(&[1, 1], &[1.0, 1.0], &[], Some(4)), Ok(1));
        assert!(argmax_token(&[1, 1], &[1.0, 1.0], &[], None).is_err());
        assert!(argmax_token(&[1], &[1.0, 1.0], &[], Some(4)).is_err());
    }

    #[test]
    fn append_f32_reads_f16_views() {
        let t = Tensor::new(&[[1.0f32, 2.0, 3.0, 4.0]], &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F16)
            .unwrap();
        let mut out = vec![9.0];
        append_f32(&t.narrow(1, 1, 2).unwrap(), &mut out).unwrap();
        append_f32(&t.t().unwrap(), &mut out).unwrap();
        assert_eq!(out, vec![9.0, 2.0, 3.0, 1.0, 2.0, 3.0, 4.0]);
    }
}
