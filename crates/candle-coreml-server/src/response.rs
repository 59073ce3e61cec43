//! Response bodies in OpenAI's schema: `chat.completion` and
//! `text_completion` objects, their streaming chunks, `usage`; plus
//! llama.cpp-style `timings` and vLLM-style token ids where asked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use candle_coreml_llm::{Stats, StopReason};
use serde_json::{json, Map, Value};

/// Which endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Completion,
}

impl Kind {
    /// The route, for logs.
    pub fn route(self) -> &'static str {
        match self {
            Kind::Chat => "/v1/chat/completions",
            Kind::Completion => "/v1/completions",
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What every object of one answer shares.
#[derive(Debug, Clone)]
pub struct Reply {
    kind: Kind,
    id: String,
    created: u64,
    model: String,
    /// Set when the client asked for token ids.
    prompt_ids: Option<Vec<u32>>,
}

/// `finish_reason`: `stop` for an end token or stop string, `length` for
/// the token limit or a full context.
pub fn finish_reason(r: Option<&StopReason>) -> Option<&'static str> {
    match r? {
        StopReason::Eos | StopReason::StopString => Some("stop"),
        StopReason::MaxTokens | StopReason::ContextFull => Some("length"),
        _ => None,
    }
}

/// OpenAI's `usage`, with the prompt tokens found in the session's state
/// as `prompt_tokens_details.cached_tokens`.
pub fn usage(s: &Stats) -> Value {
    json!({
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.generated_tokens,
        "total_tokens": s.prompt_tokens + s.generated_tokens,
        "prompt_tokens_details": {"cached_tokens": s.cached_tokens},
    })
}

/// llama.cpp-style `timings`: `cache_n` prompt tokens reused, `prompt_n`
/// evaluated, `predicted_n` generated.
pub fn timings(s: &Stats) -> Value {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    json!({
        "cache_n": s.cached_tokens,
        "prompt_n": s.prompt_tokens - s.cached_tokens,
        "prompt_ms": ms(s.prefill_time),
        "prompt_per_second": s.prefill_tokens_per_s(),
        "predicted_n": s.generated_tokens,
        "predicted_ms": ms(s.decode_time),
        "predicted_per_second": s.decode_tokens_per_s(),
        "ttft_ms": ms(s.ttft),
    })
}

impl Reply {
    /// A new answer's id and time.
    pub fn new(kind: Kind, model: &str, prompt_ids: Option<Vec<u32>>) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let prefix = match kind {
            Kind::Chat => "chatcmpl",
            Kind::Completion => "cmpl",
        };
        Self {
            kind,
            id: format!("{prefix}-{:x}{nanos:08x}{n:06x}", unix_now()),
            created: unix_now(),
            model: model.to_string(),
            prompt_ids,
        }
    }

    /// True when the client asked for token ids.
    pub fn wants_ids(&self) -> bool {
        self.prompt_ids.is_some()
    }

    fn object(&self, chunk: bool) -> Map<String, Value> {
        let object = match (self.kind, chunk) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Completion, _) => "text_completion",
        };
        let mut m = Map::new();
        m.insert("id".into(), self.id.clone().into());
        m.insert("object".into(), object.into());
        m.insert("created".into(), self.created.into());
        m.insert("model".into(), self.model.clone().into());
        m
    }

    fn choice(
        &self,
        text: Option<&str>,
        ids: Option<&[u32]>,
        finish: Option<&str>,
        chunk: bool,
    ) -> Value {
        let mut c = json!({"index": 0, "logprobs": null, "finish_reason": finish});
        match (self.kind, chunk) {
            (Kind::Chat, false) => {
                c["message"] = json!({"role": "assistant", "content": text.unwrap_or("")})
            }
            (Kind::Chat, true) => c["delta"] = text.map_or(json!({}), |t| json!({"content": t})),
            (Kind::Completion, _) => c["text"] = text.unwrap_or("").into(),
        }
        if let (Some(ids), true) = (ids, self.prompt_ids.is_some()) {
            c["token_ids"] = json!(ids);
        }
        c
    }

    /// A whole (non-streamed) answer.
    pub fn full(&self, text: &str, ids: &[u32], s: &Stats) -> Value {
        let mut m = self.object(false);
        let finish = finish_reason(s.stop_reason.as_ref());
        m.insert(
            "choices".into(),
            json!([self.choice(Some(text), Some(ids), finish, false)]),
        );
        m.insert("usage".into(), usage(s));
        m.insert("timings".into(), timings(s));
        if let Some(p) = &self.prompt_ids {
            m.insert("prompt_token_ids".into(), json!(p));
        }
        Value::Object(m)
    }

    /// The first chunk of a stream: the assistant role (chat) and the
    /// prompt ids when asked for.
    pub fn first_chunk(&self) -> Value {
        let mut m = self.object(true);
        let mut c = self.choice(Some(""), None, None, true);
        if self.kind == Kind::Chat {
            c["delta"] = json!({"role": "assistant", "content": ""});
        }
        m.insert("choices".into(), json!([c]));
        if let Some(p) = &self.prompt_ids {
            m.insert("prompt_token_ids".into(), json!(p));
        }
        Value::Object(m)
    }

    /// A chunk with new text (and its token when asked for).
    pub fn chunk(&self, text: &str, id: u32) -> Value {
        let mut m = self.object(true);
        m.insert(
            "choices".into(),
            json!([self.choice(Some(text), Some(&[id]), None, true)]),
        );
        Value::Object(m)
    }

    /// The chunk that ends the choice, with the figures.
    pub fn last_chunk(&self, s: &Stats) -> Value {
        let mut m = self.object(true);
        let finish = finish_reason(s.stop_reason.as_ref());
        let text = (self.kind == Kind::Completion).then_some("");
        m.insert(
            "choices".into(),
            json!([self.choice(text, None, finish, true)]),
        );
        m.insert("timings".into(), timings(s));
        Value::Object(m)
    }

    /// `stream_options.include_usage`: no choices, the usage.
    pub fn usage_chunk(&self, s: &Stats) -> Value {
        let mut m = self.object(true);
        m.insert("choices".into(), json!([]));
        m.insert("usage".into(), usage(s));
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let s = Stats {
            prompt_tokens: 10,
            cached_tokens: 4,
            generated_tokens: 3,
            stop_reason: Some(StopReason::Eos),
            ..Default::default()
        };
        let r = Reply::new(Kind::Chat, "m", None);
        let v = r.full("hi", &[1, 2, 3], &s);
        assert_eq!(v["object"], "chat.completion");
        assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_eq!(
            v["choices"][0]["message"],
            json!({"role": "assistant", "content": "hi"})
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert!(v["choices"][0].get("token_ids").is_none());
        assert_eq!(v["usage"]["total_tokens"], 13);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
        assert_eq!(v["timings"]["prompt_n"], 6);
        assert_eq!(r.first_chunk()["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(r.chunk("a", 5)["choices"][0]["delta"]["content"], "a");
        assert_eq!(r.last_chunk(&s)["choices"][0]["delta"], json!({}));
        let r = Reply::new(Kind::Completion, "m", Some(vec![7, 8]));
        let v = r.full("hi", &[1], &s);
        assert_eq!(v["object"], "text_completion");
        assert_eq!(v["choices"][0]["text"], "hi");
        assert_eq!(v["choices"][0]["token_ids"], json!([1]));
        assert_eq!(v["prompt_token_ids"], json!([7, 8]));
        assert_eq!(r.chunk("x", 9)["choices"][0]["token_ids"], json!([9]));
        assert_eq!(r.last_chunk(&s)["choices"][0]["finish_reason"], "stop");
        let mut l = s.clone();
        l.stop_reason = Some(StopReason::ContextFull);
        assert_eq!(finish_reason(l.stop_reason.as_ref()), Some("length"));
    }
}
