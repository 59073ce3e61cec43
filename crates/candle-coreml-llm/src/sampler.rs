//! Sampling: a pipeline of pure functions over logits (repetition penalty,
//! frequency and presence penalties, temperature, top-k, top-p, min-p, then a
//! seeded draw), each as defined by Hugging Face transformers' logits
//! processors (the frequency and presence penalties as OpenAI's API defines
//! them).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::meta::RecommendedSampling;

/// Sampling settings. `temperature == 0` is greedy.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SamplingParams {
    /// Softmax temperature; 0 picks the most likely token (greedy).
    pub temperature: f32,
    /// Keep the k most likely tokens (0: off).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1: off).
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely (0: off).
    pub min_p: f32,
    /// Divide positive (multiply negative) logits of recent tokens (1: off).
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    /// Subtracted from a token's logit once per time the answer so far holds
    /// it (OpenAI's `frequency_penalty`; 0: off).
    #[serde(default)]
    pub frequency_penalty: f32,
    /// Subtracted from the logit of every token the answer so far holds
    /// (OpenAI's `presence_penalty`; 0: off).
    #[serde(default)]
    pub presence_penalty: f32,
    /// Seed of the draw; `None` seeds from the clock.
    pub seed: Option<u64>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self::greedy()
    }
}

impl SamplingParams {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: None,
        }
    }

    /// The bundle author's `recommended_sampling` (greedy when `do_sample`
    /// is false).
    pub fn from_recommended(r: &RecommendedSampling) -> Self {
        let mut p = Self::greedy();
        if r.do_sample {
            p.temperature = r.temperature.unwrap_or(1.0);
            p.top_p = r.top_p.unwrap_or(1.0);
            p.top_k = r.top_k.unwrap_or(0);
        }
        p
    }

    /// True when no randomness is involved.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        let bad = |name, message: String| Err(Error::InvalidParameter { name, message });
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad(
                "temperature",
                format!("{} is not a number >= 0", self.temperature),
            );
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", format!("{} is not in (0, 1]", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min_p", format!("{} is not in [0, 1]", self.min_p));
        }
        if !(self.repeat_penalty > 0.0 && self.repeat_penalty.is_finite()) {
            return bad(
                "repeat_penalty",
                format!("{} is not > 0", self.repeat_penalty),
            );
        }
        for (name, v) in [
            ("frequency_penalty", self.frequency_penalty),
            ("presence_penalty", self.presence_penalty),
        ] {
            if !v.is_finite() {
                return bad(name, format!("{v} is not a finite number"));
            }
        }
        Ok(())
    }
}

/// Penalises tokens in `recent`: a positive logit is divided by `penalty`,
/// a negative one multiplied (each token once, however often it occurs).
pub fn apply_repetition_penalty(logits: &mut [f32], recent: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = std::collections::HashSet::new();
    for &t in recent {
        let i = t as usize;
        if i < logits.len() && seen.insert(t) {
            let l = logits[i];
            logits[i] = if l < 0.0 { l * penalty } else { l / penalty };
        }
    }
}

/// OpenAI's frequency and presence penalties: the logit of a token that
/// occurs `c > 0` times in `answer` loses `c * frequency + presence`.
pub fn apply_frequency_presence(logits: &mut [f32], answer: &[u32], frequency: f32, presence: f32) {
    if frequency == 0.0 && presence == 0.0 {
        return;
    }
    let mut counts = std::collections::HashMap::<u32, u32>::new();
    for &t in answer {
        *counts.entry(t).or_default() += 1;
    }
    for (t, c) in counts {
        if let Some(l) = logits.get_mut(t as usize) {
            *l -= c as f32 * frequency + presence;
        }
    }
}

/// Divides every logit by `t` (> 0).
pub fn apply_temperature(logits: &mut [f32], t: f32) {
    if t != 1.0 {
        logits.iter_mut().for_each(|l| *l /= t);
    }
}

/// Keeps the `k` largest logits (and any tied with the k-th); the rest
/// become -inf. `k == 0` or `k >= len` keeps all.
pub fn top_k(logits: &mut [f32], k: usize) {
    if k == 0 || k >= logits.len() {
        return;
    }
    let mut sorted: Vec<f32> = logits.to_vec();
    sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    let kth = sorted[k - 1];
    logits
        .iter_mut()
        .filter(|l| **l < kth)
        .for_each(|l| *l = f32::NEG_INFINITY);
}

/// Softmax probabilities (f64 for stable sums).
pub fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut p: Vec<f64> = logits.iter().map(|&l| ((l as f64) - max).exp()).collect();
    let sum: f64 = p.iter().sum();
    p.iter_mut().for_each(|x| *x /= sum);
    p
}

/// Nucleus filtering: sorted by probability ascending, drops the tokens whose
/// cumulative probability stays at or below `1 - p`; the most likely token
/// always stays.
pub fn top_p(logits: &mut [f32], p: f32) {
    if p >= 1.0 {
        return;
    }
    let probs = softmax(logits);
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[a].total_cmp(&logits[b]));
    let mut cum = 0.0;
    let limit = 1.0 - p as f64;
    for &i in &order[..order.len() - 1] {
        cum += probs[i];
        if cum <= limit {
            logits[i] = f32::NEG_INFINITY;
        } else {
            break;
        }
    }
}

/// Drops tokens whose probability is below `min_p` times the largest.
pub fn min_p(logits: &mut [f32], min_p: f32) {
    if min_p <= 0.0 {
        return;
    }
    let probs = softmax(logits);
    let top = probs.iter().copied().fold(0.0, f64::max);
    let threshold = min_p as f64 * top;
    for (l, p) in logits.iter_mut().zip(probs) {
        if p < threshold {
            *l = f32::NEG_INFINITY;
        }
    }
}

/// Index of the largest logit (the first on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Draws from softmax(logits) with `u` uniform in [0, 1): the first token
/// whose cumulative probability exceeds `u`.
pub fn draw(logits: &[f32], u: f64) -> u32 {
    let probs = softmax(logits);
    let mut cum = 0.0;
    let mut last = 0;
    for (i, p) in probs.iter().enumerate() {
        if *p > 0.0 {
            last = i;
            cum += p;
            if cum > u {
                return i as u32;
            }
        }
    }
    last as u32
}

/// The pipeline with its random generator.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha8Rng,
}

impl Sampler {
    /// A sampler; seeded from `params.seed` or the clock.
    pub fn new(params: SamplingParams) -> Result<Self> {
        params.validate()?;
        let seed = params.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
        Ok(Self {
            params,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    /// The settings.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Picks the next token from `logits` (modified in place); `history` is
    /// the context so far, for the repetition penalty, and its last
    /// `answer_len` tokens the answer so far, for the frequency and presence
    /// penalties.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32], answer_len: usize) -> u32 {
        let p = &self.params;
        let window = &history[history.len().saturating_sub(p.repeat_last_n)..];
        apply_repetition_penalty(logits, window, p.repeat_penalty);
        let answer = &history[history.len().saturating_sub(answer_len)..];
        apply_frequency_presence(logits, answer, p.frequency_penalty, p.presence_penalty);
        if p.is_greedy() {
            return argmax(logits);
        }
        apply_temperature(logits, p.temperature);
        top_k(logits, p.top_k);
        top_p(logits, p.top_p);
        min_p(logits, p.min_p);
        let u: f64 = self.rng.random();
        draw(logits, u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEG: f32 = f32::NEG_INFINITY;

    #[test]
    fn repetition_penalty_divides_positive_multiplies_negative() {
        let mut l = vec![2.0, -1.0, 4.0, 1.0];
        apply_repetition_penalty(&mut l, &[0, 1, 0, 9], 2.0);
        assert_eq!(l, vec![1.0, -2.0, 4.0, 1.0]);
    }

    #[test]
    fn frequency_and_presence_penalties_hand_computed() {
        // token 0 twice, token 2 once, token 9 (out of range) ignored:
        // 2.0 - (2 * 0.5 + 0.25) = 0.75; 4.0 - (0.5 + 0.25) = 3.25.
        let mut l = vec![2.0, -1.0, 4.0, 1.0];
        apply_frequency_presence(&mut l, &[0, 2, 0, 9], 0.5, 0.25);
        assert_eq!(l, vec![0.75, -1.0, 3.25, 1.0]);
        // negative values reward repetition
        let mut l = vec![0.0, 0.0];
        apply_frequency_presence(&mut l, &[1], -1.0, 0.0);
        assert_eq!(l, vec![0.0, 1.0]);
    }

    #[test]
    fn penalties_look_only_at_the_answer() {
        // the prompt [2, 2] is not penalised; the answer [1] is (3 - 2.5 < 1).
        let p = SamplingParams {
            frequency_penalty: 2.5,
            ..SamplingParams::greedy()
        };
        let mut s = Sampler::new(p).unwrap();
        assert_eq!(s.sample(&mut [0.0, 3.0, 2.9], &[2, 2, 1], 1), 2);
        assert_eq!(s.sample(&mut [0.0, 3.0, 2.9], &[2, 2, 1], 0), 1);
    }

    #[test]
    fn top_k_keeps_ties() {
        let mut l = vec![1.0, 3.0, 2.0, 3.0, 0.5];
        top_k(&mut l, 2);
        assert_eq!(l, vec![NEG, 3.0, NEG, 3.0, NEG]);
        let mut l = vec![1.0, 3.0, 2.0];
        top_k(&mut l, 2);
        assert_eq!(l, vec![NEG, 3.0, 2.0]);
    }

    #[test]
    fn top_p_hand_computed() {
        // probabilities 0.5, 0.25, 0.125, 0.125 (logits = ln p).
        let p = [0.5f32, 0.25, 0.125, 0.125];
        let base: Vec<f32> = p.iter().map(|x| x.ln()).collect();
        // p = 0.7: ascending cumulative 0.125, 0.25, 0.5, 1.0; drop while
        // <= 0.3: both 0.125 tokens go; 0.25 stays (cum 0.5 > 0.3).
        let mut l = base.clone();
        top_p(&mut l, 0.7);
        assert_eq!(&l[2..], &[NEG, NEG]);
        assert!(l[0].is_finite() && l[1].is_finite());
        // p = 0.5: drop while <= 0.5: everything but the top token.
        let mut l = base.clone();
        top_p(&mut l, 0.5);
        assert!(l[0].is_finite());
        assert!(l[1..].iter().all(|x| *x == NEG));
    }

    #[test]
    fn min_p_hand_computed() {
        let p = [0.5f32, 0.25, 0.15, 0.1];
        let mut l: Vec<f32> = p.iter().map(|x| x.ln()).collect();
        // threshold 0.4 * 0.5 = 0.2: 0.15 and 0.1 go.
        min_p(&mut l, 0.4);
        assert!(l[0].is_finite() && l[1].is_finite());
        assert_eq!(&l[2..], &[NEG, NEG]);
    }

    #[test]
    fn temperature_and_draw() {
        let mut l = vec![2.0, 4.0];
        apply_temperature(&mut l, 2.0);
        assert_eq!(l, vec![1.0, 2.0]);
        // probabilities 0.25, 0.75 for logits ln(1), ln(3).
        let l = vec![0.0f32, 3.0f32.ln()];
        assert_eq!(draw(&l, 0.0), 0);
        assert_eq!(draw(&l, 0.2499), 0);
        assert_eq!(draw(&l, 0.2501), 1);
        assert_eq!(draw(&l, 0.9999), 1);
        // filtered tokens are never drawn
        assert_eq!(draw(&[NEG, 1.0, NEG], 0.99), 1);
    }

    #[test]
    fn greedy_is_argmax_first_on_ties() {
        assert_eq!(argmax(&[1.0, 5.0, 5.0, 2.0]), 1);
        let mut s = Sampler::new(SamplingParams::greedy()).unwrap();
        assert_eq!(s.sample(&mut [0.0, 1.0, 3.0], &[], 0), 2);
        // the penalty can change the greedy choice: 3/4 < 1
        let mut p = SamplingParams::greedy();
        p.repeat_penalty = 4.0;
        let mut s = Sampler::new(p).unwrap();
        assert_eq!(s.sample(&mut [0.0, 1.0, 3.0], &[2], 0), 1);
    }

    #[test]
    fn seeded_draws_repeat_and_follow_the_distribution() {
        let p = SamplingParams {
            temperature: 1.0,
            seed: Some(7),
            ..SamplingParams::greedy()
        };
        let logits = vec![0.0f32, 3.0f32.ln()];
        let run = || {
            let mut s = Sampler::new(p.clone()).unwrap();
            (0..4000)
                .map(|_| s.sample(&mut logits.clone(), &[], 0))
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let ones = a.iter().filter(|&&t| t == 1).count() as f64 / a.len() as f64;
        // 0.75 expected; 4000 draws: sd ~0.007
        assert!((ones - 0.75).abs() < 0.03, "{ones}");
    }

    #[test]
    fn validation_names_the_parameter() {
        let p = SamplingParams {
            top_p: 0.0,
            ..SamplingParams::greedy()
        };
        assert!(Sampler::new(p).unwrap_err().to_string().contains("top_p"));
    }
}
