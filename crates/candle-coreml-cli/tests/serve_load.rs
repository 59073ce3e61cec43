//! `candle-coreml serve` under load: many clients over few sessions, a full
//! queue, a client that goes away, shutdown with a stream in flight.

mod server;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use server::{case, get, ids, joined, post, Server, Stream, BUNDLE};

/// Reference prompts (token ids) and their greedy answers.
fn prompts() -> Vec<(Vec<u32>, Vec<u32>)> {
    [
        "chat",
        "chat_thinking",
        "raw",
        "raw_window_aligned",
        "multi_turn",
        "multi_turn_continued",
    ]
    .iter()
    .map(|n| {
        let c = case(BUNDLE, n);
        (ids(&c["prompt_ids"]), ids(&c["greedy_ids"]))
    })
    .collect()
}

const TOKENS: usize = 16;

fn body(prompt: &[u32]) -> Value {
    json!({"model": BUNDLE, "prompt": prompt, "max_tokens": TOKENS, "temperature": 0,
        "return_token_ids": true})
}

struct Outcome {
    ids: Vec<u32>,
    text: String,
    ttft: Duration,
    rejected: usize,
}

/// One client: streams its request, retrying after a 429 or 503 as told by
/// `Retry-After` (which must be there, with an OpenAI error body).
fn client(url: &str, prompt: &[u32]) -> Outcome {
    let mut rejected = 0;
    loop {
        let mut b = body(prompt);
        b["stream"] = json!(true);
        let started = Instant::now();
        let r = ureq::AgentBuilder::new().build().post(url).send_json(&b);
        match r {
            Ok(r) => {
                assert_eq!(r.status(), 200);
                let mut st = Stream::from_response(r, started);
                let first = st.next_event().expect("a first chunk");
                let ttft = st.started.elapsed();
                let mut events = vec![first];
                events.extend(st.rest());
                let (text, ids) = joined(&events);
                return Outcome {
                    ids,
                    text,
                    ttft,
                    rejected,
                };
            }
            Err(ureq::Error::Status(code, r)) => {
                assert!(code == 429 || code == 503, "status {code}");
                let wait: u64 = r
                    .header("Retry-After")
                    .expect("Retry-After")
                    .parse()
                    .unwrap();
                let e: Value = r.into_json().unwrap();
                assert!(e["error"]["message"].is_string(), "{e}");
                rejected += 1;
                std::thread::sleep(Duration::from_secs(wait));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn thirty_two_clients_over_four_sessions_get_single_client_answers() {
    let s = Server::start(
        BUNDLE,
        &["--max-sessions", "4", "--max-queue", "12", "--quiet"],
    );
    let url = s.url("/v1/completions");
    let prompts = prompts();
    // Single-client runs, one after the other.
    let single: Vec<(String, Vec<u32>)> = prompts
        .iter()
        .map(|(p, greedy)| {
            let a = post(&url, &body(p));
            assert_eq!(a.status, 200, "{}", a.body);
            let got = ids(&a.body["choices"][0]["token_ids"]);
            assert_eq!(got, greedy[..TOKENS], "single client vs the reference");
            (
                a.body["choices"][0]["text"].as_str().unwrap().to_string(),
                got,
            )
        })
        .collect();
    let started = Instant::now();
    let n = prompts.len();
    let outcomes: Vec<(usize, Outcome)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..32)
            .map(|i| {
                let (url, p) = (&url, &prompts[i % n].0);
                scope.spawn(move || (i % n, client(url, p)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wall = started.elapsed();
    for (k, o) in &outcomes {
        assert_eq!(
            (&o.text, &o.ids),
            (&single[*k].0, &single[*k].1),
            "prompt {k}"
        );
    }
    let rejected: usize = outcomes.iter().map(|(_, o)| o.rejected).sum();
    let mut ttft: Vec<f64> = outcomes
        .iter()
        .map(|(_, o)| o.ttft.as_secs_f64() * 1e3)
        .collect();
    ttft.sort_by(f64::total_cmp);
    eprintln!(
        "load: 32 clients, 4 sessions: {:.1} requests/s ({:.0} tokens/s) over {:.2} s; \
         time to first token (client side, the admitted attempt with its queue wait) median {:.0} ms, \
         p90 {:.0} ms; {rejected} attempts got 429/503 first; server mean ttft {:.1} ms",
        32.0 / wall.as_secs_f64(),
        (32 * TOKENS) as f64 / wall.as_secs_f64(),
        wall.as_secs_f64(),
        ttft[16],
        ttft[28],
        1e3 * s.metric(None, "candle_coreml_time_to_first_token_seconds_sum")
            / s.metric(None, "candle_coreml_time_to_first_token_seconds_count"),
    );
    let done = s.metric(
        None,
        "candle_coreml_generations_total{reason=\"max_tokens\"}",
    );
    assert_eq!(done as usize, 32 + prompts.len());
    assert_eq!(s.metric(None, "candle_coreml_sessions_created"), 4.0);
    assert_eq!(s.metric(None, "candle_coreml_sessions_busy"), 0.0);
}

/// The longest stream the context allows (end tokens ignored).
fn long_stream(s: &Server) -> Stream {
    // max_tokens: the whole context, capped by the room the prompt leaves.
    let body = json!({"model": BUNDLE, "prompt": "Once", "ignore_eos": true, "temperature": 0,
        "max_tokens": 256});
    let mut st = Stream::open(&s.url("/v1/completions"), &body);
    assert!(st.next_event().is_some());
    st
}

#[test]
fn a_full_queue_gets_429_and_a_long_wait_503() {
    let s = Server::start(
        BUNDLE,
        &[
            "--max-sessions",
            "1",
            "--max-queue",
            "1",
            "--queue-timeout",
            "0.1",
            "--quiet",
        ],
    );
    let url = s.url("/v1/chat/completions");
    let short =
        json!({"model": BUNDLE, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2});
    // Holds the only session for a few hundred tokens.
    let stream = long_stream(&s);
    std::thread::scope(|scope| {
        // Waits in the queue, then times out.
        let waiting = scope.spawn(|| post(&url, &short));
        let t = Instant::now();
        while get(&s.url("/health"), None).body["queue"]["waiting"] != 1 {
            assert!(t.elapsed() < Duration::from_secs(5), "nobody queued");
            std::thread::sleep(Duration::from_millis(2));
        }
        let full = post(&url, &short);
        assert_eq!(full.status, 429, "{}", full.body);
        assert_eq!(full.retry_after.as_deref(), Some("1"));
        assert_eq!(full.body["error"]["code"], "queue_full");
        let timed_out = waiting.join().unwrap();
        assert_eq!(timed_out.status, 503, "{}", timed_out.body);
        assert_eq!(timed_out.retry_after.as_deref(), Some("1"));
        assert_eq!(timed_out.body["error"]["code"], "queue_timeout");
    });
    drop(stream);
    // Still serving.
    let after = post(&url, &short);
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(
        s.metric(None, "candle_coreml_rejected_total{reason=\"queue_full\"}"),
        1.0
    );
    assert_eq!(
        s.metric(
            None,
            "candle_coreml_rejected_total{reason=\"queue_timeout\"}"
        ),
        1.0
    );
}

#[test]
fn a_client_gone_mid_stream_stops_its_generation_and_frees_the_session() {
    let s = Server::start(BUNDLE, &["--max-sessions", "1", "--quiet"]);
    let mut stream = long_stream(&s);
    assert!(stream.next_event().is_some());
    drop(stream);
    let t = Instant::now();
    while s.metric(
        None,
        "candle_coreml_generations_total{reason=\"cancelled\"}",
    ) != 1.0
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "not cancelled:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let generated = s.metric(None, "candle_coreml_generated_tokens_total");
    assert!(
        generated < 200.0,
        "{generated} tokens: the generation ran on"
    );
    let short =
        json!({"model": BUNDLE, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2});
    let after = post(&s.url("/v1/chat/completions"), &short);
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(s.metric(None, "candle_coreml_sessions_created"), 1.0);
}

/// SIGTERM while `stream` runs; returns the exit status and the events
/// the stream still got (read meanwhile, so that the server never waits
/// on the client).
fn terminate_during(s: &mut Server, mut stream: Stream) -> (std::process::ExitStatus, Vec<Value>) {
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || stream.rest());
        let status = s.terminate(Duration::from_secs(60));
        (status, reader.join().unwrap())
    })
}

#[test]
fn sigterm_finishes_or_cancels_streams_then_exits_0() {
    // Idle: exits at once.
    let mut s = Server::start(BUNDLE, &["--quiet"]);
    assert!(s.terminate(Duration::from_secs(10)).success());

    // A stream in flight with time to finish: it ends normally.
    let mut s = Server::start(BUNDLE, &["--quiet", "--shutdown-timeout", "60"]);
    let st = long_stream(&s);
    let (status, events) = terminate_during(&mut s, st);
    assert!(status.success(), "{status}");
    let last = events.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "length", "{last}");

    // No time to finish: cancelled, the stream ends with an error event.
    let mut s = Server::start(BUNDLE, &["--quiet", "--shutdown-timeout", "0"]);
    let st = long_stream(&s);
    let (status, events) = terminate_during(&mut s, st);
    assert!(status.success(), "{status}");
    let last = events.last().unwrap();
    assert_eq!(last["error"]["code"], "shutting_down", "{last}");
    assert!(events.len() < 200, "{} events", events.len());
}
