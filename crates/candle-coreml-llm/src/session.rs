//! A conversation's state and token history, and the streaming generator.
//!
//! A [`Session`] keeps the KV state and the tokens it holds. Generating from
//! a new context reuses the longest prefix already in the state and feeds
//! only the rest, so a new chat turn prefills only its own tokens (and a
//! server can reuse a conversation's cache for a request that extends it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_coreml::State;

use crate::engine::{Calls, Next};
use crate::error::{Error, Result};
use crate::llm::{GenerateParams, Llm};
use crate::sampler::Sampler;
use crate::tokenizer::StreamDecoder;

/// What to do when the context is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextPolicy {
    /// Stop with [`StopReason::ContextFull`].
    #[default]
    Stop,
    /// Keep the most recent tokens (whole prefill windows, as ANEMLL's
    /// chat_full.py does), re-prefill them from position 0 and go on.
    Slide,
}

/// Why generation ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// An end-of-sequence or end-of-turn token.
    Eos,
    /// A stop string appeared; the text ends before it.
    StopString,
    /// The token limit was reached.
    MaxTokens,
    /// The context holds no more tokens.
    ContextFull,
    /// Stopped through a [`StopHandle`].
    Cancelled,
    /// An error ended it.
    Error,
}

impl StopReason {
    /// The snake_case name (`eos`, `max_tokens`...).
    pub fn as_str(&self) -> &'static str {
        match self {
            StopReason::Eos => "eos",
            StopReason::StopString => "stop_string",
            StopReason::MaxTokens => "max_tokens",
            StopReason::ContextFull => "context_full",
            StopReason::Cancelled => "cancelled",
            StopReason::Error => "error",
        }
    }
}

/// Stops a running generation from another thread (or a signal handler).
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// A handle, not stopped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the generation to stop before its next token.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once [`StopHandle::stop`] was called (and not reset).
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Clears the request, for the next generation.
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Figures of one generation.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Stats {
    /// Tokens of the context given (prompt, or whole conversation).
    pub prompt_tokens: usize,
    /// Of those, tokens already in the state and not fed again.
    pub cached_tokens: usize,
    /// Tokens fed by prefill (the context's last token goes through the
    /// first decoding step instead).
    pub prefill_tokens: usize,
    /// Tokens generated (an end token included).
    pub generated_tokens: usize,
    /// From the call to the first generated token.
    pub ttft: Duration,
    /// Time spent in prefill.
    pub prefill_time: Duration,
    /// Time spent in decoding steps.
    pub decode_time: Duration,
    /// How often the context slid.
    pub slides: usize,
    /// Calls to the parts.
    pub calls: Calls,
    /// Why it ended (`None` while running).
    pub stop_reason: Option<StopReason>,
}

impl Stats {
    /// Prefill throughput (0 when nothing was prefilled).
    pub fn prefill_tokens_per_s(&self) -> f64 {
        rate(self.prefill_tokens, self.prefill_time)
    }

    /// Decode throughput.
    pub fn decode_tokens_per_s(&self) -> f64 {
        rate(self.generated_tokens, self.decode_time)
    }
}

fn rate(n: usize, t: Duration) -> f64 {
    if n == 0 || t.is_zero() {
        0.0
    } else {
        n as f64 / t.as_secs_f64()
    }
}

/// One conversation: its state and the tokens the state holds.
pub struct Session {
    llm: Arc<Llm>,
    state: State,
    tokens: Vec<u32>,
    /// Tokens of `tokens` whose keys and values are in `state`.
    fed: usize,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("tokens", &self.tokens.len())
            .field("fed", &self.fed)
            .finish()
    }
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl Session {
    /// A new session with a fresh state.
    pub fn new(llm: Arc<Llm>) -> Result<Session> {
        let state = llm.engine().new_state()?;
        Ok(Session {
            llm,
            state,
            tokens: vec![],
            fed: 0,
        })
    }

    /// The model.
    pub fn llm(&self) -> &Arc<Llm> {
        &self.llm
    }

    /// The conversation's tokens (context and generated answers).
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// How many of [`Session::tokens`] are in the state.
    pub fn fed(&self) -> usize {
        self.fed
    }

    /// Forgets the conversation (the state's stale entries are never read:
    /// the causal mask hides positions not yet written again).
    pub fn reset(&mut self) {
        self.tokens.clear();
        self.fed = 0;
    }

    /// Generates after `context`, the whole conversation so far. The longest
    /// prefix of it already in the state is reused; only the rest is fed.
    pub fn generate(
        &mut self,
        context: Vec<u32>,
        params: &GenerateParams,
    ) -> Result<Generation<'_>> {
        if context.is_empty() {
            return Err(Error::Msg("empty prompt: nothing to generate after".into()));
        }
        let ctx = self.llm.engine().config().context_length;
        if context.len() > ctx {
            return Err(Error::PromptTooLong {
                tokens: context.len(),
                limit: ctx,
            });
        }
        let mut keep = common_prefix(&self.tokens[..self.fed], &context).min(context.len() - 1);
        if !self.llm.engine().can_rewind(self.fed, keep) {
            keep = 0;
        }
        self.tokens = context;
        self.fed = keep;
        Generation::new(self, params, keep)
    }

    /// Generates after the conversation so far plus `new` tokens.
    pub fn extend(&mut self, new: &[u32], params: &GenerateParams) -> Result<Generation<'_>> {
        let mut context = self.tokens.clone();
        context.extend_from_slice(new);
        self.generate(context, params)
    }
}

/// One generated token and the text it completes (may be empty: a
/// character or a possible stop string still incomplete, or an end token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEvent {
    /// The token id.
    pub id: u32,
    /// Text released with it.
    pub text: String,
}

/// The result of a whole generation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Completion {
    /// The context's token ids.
    pub prompt_ids: Vec<u32>,
    /// Generated ids, an end token included.
    pub generated_ids: Vec<u32>,
    /// Generated text (up to a stop string, end tokens excluded).
    pub text: String,
    /// Figures.
    pub stats: Stats,
}

/// A streaming generation: an iterator of [`TokenEvent`]s. Dropping it
/// leaves the session holding what was generated so far.
pub struct Generation<'s> {
    session: &'s mut Session,
    params: GenerateParams,
    sampler: Sampler,
    decoder: StreamDecoder,
    stop: StopHandle,
    stats: Stats,
    started: Instant,
    prompt_len: usize,
    prefilled: bool,
    logits: Vec<f32>,
    held: String,
    text: String,
}

impl<'s> Generation<'s> {
    fn new(session: &'s mut Session, params: &GenerateParams, cached: usize) -> Result<Self> {
        let mut sampling = params.sampling.clone();
        if session.llm.argmax_in_model() {
            sampling.temperature = 0.0;
        }
        let sampler = Sampler::new(sampling)?;
        let prompt_len = session.tokens.len();
        Ok(Generation {
            stats: Stats {
                prompt_tokens: prompt_len,
                cached_tokens: cached,
                ..Stats::default()
            },
            stop: params.stop.clone().unwrap_or_default(),
            session,
            params: params.clone(),
            sampler,
            decoder: StreamDecoder::new(true),
            started: Instant::now(),
            prompt_len,
            prefilled: false,
            logits: Vec::new(),
            held: String::new(),
            text: String::new(),
        })
    }

    /// A handle that stops this generation from elsewhere.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Figures so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Ids generated so far.
    pub fn generated(&self) -> &[u32] {
        &self.session.tokens[self.prompt_len.min(self.session.tokens.len())..]
    }

    /// Runs to the end and returns everything.
    pub fn finish(mut self) -> Result<Completion> {
        for ev in self.by_ref() {
            ev?;
        }
        Ok(Completion {
            prompt_ids: self.session.tokens[..self.prompt_len].to_vec(),
            generated_ids: self.generated().to_vec(),
            text: self.text.clone(),
            stats: self.stats.clone(),
        })
    }

    /// Feeds the pending context (all but its last token).
    fn prefill(&mut self) -> Result<()> {
        let t = Instant::now();
        let s = &mut *self.session;
        let end = s.tokens.len() - 1;
        if s.fed < end {
            s.llm.engine().prefill(
                &mut s.state,
                &s.tokens[s.fed..end],
                s.fed,
                &mut self.stats.calls,
            )?;
            self.stats.prefill_tokens += end - s.fed;
            s.fed = end;
        }
        self.stats.prefill_time += t.elapsed();
        Ok(())
    }

    /// Keeps the last whole prefill windows of the context and re-feeds them.
    fn slide(&mut self) -> Result<()> {
        let cfg = self.session.llm.engine().config();
        let (ctx, batch) = (cfg.context_length, cfg.batch_size);
        let keep = if ctx > 2 * batch {
            ((ctx / batch).saturating_sub(2).max(1) * batch).min(ctx - batch)
        } else {
            ctx / 2
        };
        let s = &mut *self.session;
        let drop = s.tokens.len() - keep;
        s.tokens.drain(..drop);
        self.prompt_len = self.prompt_len.saturating_sub(drop);
        s.fed = 0;
        self.stats.slides += 1;
        self.prefill()
    }

    fn step(&mut self) -> Result<u32> {
        let t = Instant::now();
        let s = &mut *self.session;
        let pos = s.tokens.len() - 1;
        let next = s.llm.engine().step(
            &mut s.state,
            s.tokens[pos],
            pos,
            &mut self.logits,
            &mut self.stats.calls,
        )?;
        s.fed = s.tokens.len();
        let id = match next {
            Next::Token(id) => id,
            Next::Logits => {
                let answer = s.tokens.len().saturating_sub(self.prompt_len);
                self.sampler.sample(&mut self.logits, &s.tokens, answer)
            }
        };
        s.tokens.push(id);
        self.stats.generated_tokens += 1;
        if self.stats.generated_tokens == 1 {
            self.stats.ttft = self.started.elapsed();
        }
        self.stats.decode_time += t.elapsed();
        Ok(id)
    }

    /// Releases text that cannot be the start of a stop string; ends at a
    /// complete stop string.
    fn release(&mut self, piece: String) -> (String, bool) {
        self.held.push_str(&piece);
        let stops = &self.params.stop_strings;
        if let Some(i) = stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
        {
            let out = self.held[..i].to_string();
            self.held.clear();
            return (out, true);
        }
        let mut hold = 0;
        for s in stops {
            for k in (1..s.len().min(self.held.len()) + 1).rev() {
                if self.held.is_char_boundary(self.held.len() - k)
                    && s.is_char_boundary(k)
                    && self.held.ends_with(&s[..k])
                {
                    hold = hold.max(k);
                    break;
                }
            }
        }
        let cut = self.held.len() - hold;
        let out = self.held[..cut].to_string();
        self.held.drain(..cut);
        (out, false)
    }

    fn advance(&mut self) -> Result<Option<TokenEvent>> {
        if !self.prefilled {
            self.prefilled = true;
            self.prefill()?;
        }
        let ctx = self.session.llm.engine().config().context_length;
        let full = |g: &Self| g.session.tokens.len() > ctx;
        let pre = if self.stop.is_stopped() {
            Some(StopReason::Cancelled)
        } else if self.params.max_tokens == Some(self.stats.generated_tokens) {
            Some(StopReason::MaxTokens)
        } else if full(self) && self.params.context_policy == ContextPolicy::Stop {
            Some(StopReason::ContextFull)
        } else {
            None
        };
        if let Some(r) = pre {
            // Nothing to attach held text to: it goes to the completion only.
            let rest = std::mem::take(&mut self.held);
            self.text.push_str(&rest);
            self.stats.stop_reason = Some(r);
            return Ok(None);
        }
        if full(self) {
            self.slide()?;
        }
        let id = self.step()?;
        let llm = self.session.llm.clone();
        let tok = llm.tokenizer();
        let mut reason = None;
        let piece = if !self.params.ignore_eos && tok.stop_ids().contains(&id) {
            reason = Some(StopReason::Eos);
            String::new()
        } else {
            self.decoder.push(tok, id)?
        };
        let (mut text, hit) = self.release(piece);
        if hit {
            reason = Some(StopReason::StopString);
        } else if reason.is_none() {
            reason = if self.params.max_tokens == Some(self.stats.generated_tokens) {
                Some(StopReason::MaxTokens)
            } else if full(self) && self.params.context_policy == ContextPolicy::Stop {
                Some(StopReason::ContextFull)
            } else if self.stop.is_stopped() {
                Some(StopReason::Cancelled)
            } else {
                None
            };
        }
        if reason.is_some() && !hit {
            let tail = self.decoder.flush(tok)?;
            let (rest, hit) = self.release(tail);
            text.push_str(&rest);
            if hit {
                reason = Some(StopReason::StopString);
            } else {
                text.push_str(&std::mem::take(&mut self.held));
            }
        }
        self.text.push_str(&text);
        self.stats.stop_reason = reason;
        Ok(Some(TokenEvent { id, text }))
    }
}

impl Iterator for Generation<'_> {
    type Item = Result<TokenEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.stats.stop_reason.is_some() {
            return None;
        }
        match self.advance() {
            Ok(ev) => ev.map(Ok),
            Err(e) => {
                self.stats.stop_reason = Some(StopReason::Error);
                Some(Err(e))
            }
        }
    }
}
