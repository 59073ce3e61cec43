//! Counters and gauges, rendered in Prometheus' text exposition format
//! (version 0.0.4) for `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use candle_coreml_llm::Stats;

use crate::pool::PoolStatus;

/// Everything `/metrics` reports besides the pool's gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    finished: Mutex<BTreeMap<&'static str, u64>>,
    prompt_tokens: AtomicU64,
    cached_tokens: AtomicU64,
    prefill_tokens: AtomicU64,
    generated_tokens: AtomicU64,
    ttft_us: AtomicU64,
    ttft_count: AtomicU64,
    prefill_us: AtomicU64,
    decode_us: AtomicU64,
    queue_us: AtomicU64,
    queue_count: AtomicU64,
}

fn bump<K: Ord>(m: &Mutex<BTreeMap<K, u64>>, k: K) {
    *m.lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(k)
        .or_default() += 1;
}

fn add(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Metrics {
    /// One answered HTTP request.
    pub fn request(&self, route: &str, status: u16) {
        bump(&self.requests, (route.to_string(), status));
    }

    /// A request refused for want of a session (`queue_full`,
    /// `queue_timeout`, `shutting_down`).
    pub fn rejected(&self, reason: &'static str) {
        bump(&self.rejected, reason);
    }

    /// Time a request waited for a session.
    pub fn queued(&self, waited: Duration) {
        add(&self.queue_us, micros(waited));
        add(&self.queue_count, 1);
    }

    /// A finished generation.
    pub fn generation(&self, s: &Stats) {
        let reason = s.stop_reason.as_ref().map_or("unknown", |r| r.as_str());
        bump(&self.finished, reason);
        add(&self.prompt_tokens, s.prompt_tokens as u64);
        add(&self.cached_tokens, s.cached_tokens as u64);
        add(&self.prefill_tokens, s.prefill_tokens as u64);
        add(&self.generated_tokens, s.generated_tokens as u64);
        if s.generated_tokens > 0 {
            add(&self.ttft_us, micros(s.ttft));
            add(&self.ttft_count, 1);
        }
        add(&self.prefill_us, micros(s.prefill_time));
        add(&self.decode_us, micros(s.decode_time));
    }

    /// The text exposition.
    pub fn render(&self, pool: PoolStatus, model: &str) -> String {
        let mut o = Out(String::new());
        o.head("info", "gauge", "The served model (always 1).");
        o.line("info", &[("model", model)], 1.0);
        self.labelled(&mut o);
        self.totals(&mut o);
        let gauges = [
            (
                "sessions_max",
                "Requests that may generate at once (--max-sessions).",
                pool.max_sessions,
            ),
            (
                "sessions_created",
                "Sessions (KV states) made so far.",
                pool.created,
            ),
            ("sessions_busy", "Sessions generating now.", pool.busy),
            (
                "queue_waiting",
                "Requests waiting for a session.",
                pool.waiting,
            ),
        ];
        for (name, help, v) in gauges {
            o.head(name, "gauge", help);
            o.line(name, &[], v as f64);
        }
        o.0
    }

    /// The counters with labels.
    fn labelled(&self, o: &mut Out) {
        let help = "HTTP requests answered, by route and status.";
        o.head("requests_total", "counter", help);
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        for ((route, status), n) in requests.iter() {
            let labels = [("route", route.as_str()), ("status", &status.to_string())];
            o.line("requests_total", &labels, *n as f64);
        }
        drop(requests);
        let help = "Requests refused for want of a session, by reason.";
        o.map("rejected_total", help, "reason", &self.rejected);
        let help = "Finished generations, by stop reason.";
        o.map("generations_total", help, "reason", &self.finished);
    }

    /// Token and time totals.
    fn totals(&self, o: &mut Out) {
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let s = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e6;
        let counters = [
            (
                "prompt_tokens_total",
                "Prompt tokens of finished generations.",
                c(&self.prompt_tokens),
            ),
            (
                "cached_prompt_tokens_total",
                "Prompt tokens found in a session's state (not fed again).",
                c(&self.cached_tokens),
            ),
            (
                "prefill_tokens_total",
                "Tokens fed by prefill.",
                c(&self.prefill_tokens),
            ),
            (
                "generated_tokens_total",
                "Generated tokens.",
                c(&self.generated_tokens),
            ),
            (
                "prefill_seconds_total",
                "Time spent in prefill.",
                s(&self.prefill_us),
            ),
            (
                "decode_seconds_total",
                "Time spent in decoding steps.",
                s(&self.decode_us),
            ),
        ];
        for (name, help, v) in counters {
            o.head(name, "counter", help);
            o.line(name, &[], v);
        }
        let help = "From the start of a generation to its first token.";
        o.summary(
            "time_to_first_token_seconds",
            help,
            s(&self.ttft_us),
            c(&self.ttft_count),
        );
        let help = "Time requests waited for a session.";
        o.summary(
            "queue_wait_seconds",
            help,
            s(&self.queue_us),
            c(&self.queue_count),
        );
    }
}

/// Prometheus text lines, every name prefixed with `candle_coreml_`.
struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP candle_coreml_{name} {help}");
        let _ = writeln!(self.0, "# TYPE candle_coreml_{name} {kind}");
    }

    fn line(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        let _ = write!(self.0, "candle_coreml_{name}");
        if !labels.is_empty() {
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", l.join(","));
        }
        let _ = writeln!(self.0, " {v}");
    }

    fn map(&mut self, name: &str, help: &str, label: &str, m: &Mutex<BTreeMap<&'static str, u64>>) {
        self.head(name, "counter", help);
        for (k, n) in m.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            self.line(name, &[(label, k)], *n as f64);
        }
    }

    fn summary(&mut self, name: &str, help: &str, sum: f64, count: f64) {
        self.head(name, "summary", help);
        self.line(&format!("{name}_sum"), &[], sum);
        self.line(&format!("{name}_count"), &[], count);
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format() {
        let m = Metrics::default();
        m.request("/v1/completions", 200);
        m.request("/v1/completions", 200);
        m.rejected("queue_full");
        m.generation(&Stats {
            prompt_tokens: 10,
            cached_tokens: 4,
            prefill_tokens: 5,
            generated_tokens: 3,
            ttft: Duration::from_millis(250),
            stop_reason: Some(candle_coreml_llm::StopReason::MaxTokens),
            ..Default::default()
        });
        let t = m.render(
            PoolStatus {
                max_sessions: 4,
                created: 1,
                busy: 0,
                waiting: 0,
            },
            "a\"b",
        );
        for want in [
            "# TYPE candle_coreml_requests_total counter\n",
            "candle_coreml_requests_total{route=\"/v1/completions\",status=\"200\"} 2\n",
            "candle_coreml_rejected_total{reason=\"queue_full\"} 1\n",
            "candle_coreml_generations_total{reason=\"max_tokens\"} 1\n",
            "candle_coreml_cached_prompt_tokens_total 4\n",
            "candle_coreml_time_to_first_token_seconds_sum 0.25\n",
            "candle_coreml_time_to_first_token_seconds_count 1\n",
            "candle_coreml_sessions_max 4\n",
            "candle_coreml_info{model=\"a\\\"b\"} 1\n",
        ] {
            assert!(t.contains(want), "{want:?} not in\n{t}");
        }
    }
}
