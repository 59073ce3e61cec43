//! A `candle-coreml serve` process on a loopback port, an HTTP client for
//! it, and the fixture bundles' transformers references.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The smallest fixture bundle with clear greedy margins.
pub const BUNDLE: &str = "qwen3_035_1chunk_lut";

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../candle-coreml-llm/tests/fixtures")
}

/// A reference case of `bundle` (made by transformers; see
/// candle-coreml-llm/tests/common).
pub fn case(bundle: &str, name: &str) -> Value {
    let path = fixtures().join("references").join(format!("{bundle}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let r: Value = serde_json::from_str(&text).unwrap();
    let c = r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{}: no case {name}", path.display()))
        .clone();
    // Greedy ids are comparable only where no step is a near tie (the
    // tolerance of candle-coreml-llm's tests: 3x the fp16 drift).
    let fp16 = c["fp16_max_abs_logit_diff"]
        .as_f64()
        .or(r["fp16_max_abs_logit_diff"].as_f64())
        .unwrap();
    let margin = c["min_top2_margin"].as_f64().unwrap();
    assert!(
        margin >= 6.0 * fp16,
        "{bundle}/{name}: near tie in the reference"
    );
    c
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// `candle-coreml serve BUNDLE --port 0 ARGS...`, once it listens.
    pub fn start(bundle: &str, args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_candle-coreml"))
            .arg("serve")
            .arg(fixtures().join("bundles").join(bundle))
            .args(["--port", "0", "--backend", "portable"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let log2 = log.clone();
        // Reads stderr to the end, so that the server never blocks on it.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listening on http://") {
                    let _ = tx.send(line[i + "listening on ".len()..].trim().to_string());
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                panic!("the server did not start:\n{}", log.lock().unwrap());
            }
        };
        Server { child, base, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, then the exit status (within `wait`).
    pub fn terminate(&mut self, wait: Duration) -> ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                t.elapsed() < wait,
                "the server did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One value of /metrics (0 when absent).
    pub fn metric(&self, key: Option<&str>, name: &str) -> f64 {
        let mut req = ureq::get(&self.url("/metrics"));
        if let Some(k) = key {
            req = req.set("Authorization", &format!("Bearer {k}"));
        }
        let text = req.call().unwrap().into_string().unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status, `Retry-After` and JSON body of a POST.
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Value,
}

fn answer(r: ureq::Response) -> Answer {
    let status = r.status();
    let retry_after = r.header("Retry-After").map(str::to_string);
    let text = r.into_string().unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    Answer {
        status,
        retry_after,
        body,
    }
}

fn result(r: Result<ureq::Response, ureq::Error>) -> Answer {
    match r {
        Ok(r) => answer(r),
        Err(ureq::Error::Status(_, r)) => answer(r),
        Err(e) => panic!("{e}"),
    }
}

/// POSTs `body` (raw text) to `url`.
pub fn post_raw(url: &str, body: &str, key: Option<&str>) -> Answer {
    let mut req = ureq::post(url).set("Content-Type", "application/json");
    if let Some(k) = key {
        req = req.set("Authorization", &format!("Bearer {k}"));
    }
    result(req.send_string(body))
}

pub fn post(url: &str, body: &Value) -> Answer {
    post_raw(url, &body.to_string(), None)
}

/// GETs `url`.
pub fn get(url: &str, key: Option<&str>) -> Answer {
    let mut req = ureq::get(url);
    if let Some(k) = key {
        req = req.set("Authorization", &format!("Bearer {k}"));
    }
    result(req.call())
}

/// A streamed answer: the JSON of every `data:` line before `[DONE]`.
pub struct Stream {
    lines: std::io::Lines<BufReader<Box<dyn Read + Send + Sync>>>,
    pub started: Instant,
}

impl Stream {
    /// POSTs `body` with `"stream": true`; panics unless the status is 200.
    pub fn open(url: &str, body: &Value) -> Stream {
        let mut body = body.clone();
        body["stream"] = json!(true);
        let started = Instant::now();
        // A fresh agent: its own connection, closed when the stream is dropped.
        let r = ureq::AgentBuilder::new()
            .build()
            .post(url)
            .send_json(body)
            .unwrap_or_else(|e| panic!("{e}"));
        Self::from_response(r, started)
    }

    /// The events of a response.
    pub fn from_response(r: ureq::Response, started: Instant) -> Stream {
        assert_eq!(r.header("Content-Type"), Some("text/event-stream"));
        Stream {
            lines: BufReader::new(r.into_reader()).lines(),
            started,
        }
    }

    /// The next event's JSON; `None` after `data: [DONE]`.
    pub fn next_event(&mut self) -> Option<Value> {
        loop {
            let line = self.lines.next()?.unwrap();
            let Some(data) = line.strip_prefix("data: ") else {
                continue;
            };
            if data == "[DONE]" {
                return None;
            }
            return Some(serde_json::from_str(data).unwrap());
        }
    }

    /// Every remaining event.
    pub fn rest(&mut self) -> Vec<Value> {
        std::iter::from_fn(|| self.next_event()).collect()
    }
}

/// Text and token ids of streamed chunks (chat deltas or completion text).
pub fn joined(events: &[Value]) -> (String, Vec<u32>) {
    let mut text = String::new();
    let mut ids = vec![];
    for e in events {
        if let Some(c) = e["choices"].get(0) {
            let t = c["delta"]["content"].as_str().or(c["text"].as_str());
            text.push_str(t.unwrap_or(""));
            if let Some(i) = c.get("token_ids") {
                ids.extend(self::ids(i));
            }
        }
    }
    (text, ids)
}
