//! Running one generation on a blocking thread and handing its events to
//! the request: collected into one answer, or streamed as server-sent events.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use candle_coreml_llm::{GenerateParams, Session, Stats, StopHandle, StopReason, TokenEvent};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::pool::Admission;
use crate::response::{Kind, Reply};
use crate::App;

/// What the generating thread reports.
#[derive(Debug)]
pub enum Event {
    /// A token and the text it releases.
    Token(TokenEvent),
    /// The end, with the figures (the session is back in the pool by then).
    Done(Stats),
    /// The generation failed.
    Failed(ApiError),
}

/// One generation to run.
pub struct Job {
    /// The whole context.
    pub ids: Vec<u32>,
    /// Settings, `max_tokens` set.
    pub params: GenerateParams,
    /// The request field of the prompt, for errors.
    pub prompt_param: &'static str,
    /// The endpoint, for the log.
    pub kind: Kind,
}

/// A generation in progress. Dropping it (the client went away) stops the
/// generation before its next token.
pub struct Running {
    rx: mpsc::Receiver<Event>,
    stop: StopHandle,
}

impl Running {
    /// The next event; `None` once the thread is gone.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

/// Waits for a session (429/503 when there is none to be had) and starts
/// the generation on a blocking thread.
pub async fn start(app: &Arc<App>, job: Job) -> Result<Running, ApiError> {
    let t = Instant::now();
    let admission = app.pool.admit().await.inspect_err(|e| {
        if let Some(code) = e.code {
            app.metrics.rejected(code);
        }
    })?;
    app.metrics.queued(t.elapsed());
    let stop = StopHandle::new();
    // A few tokens of slack; a slow reader holds the generation back.
    let (tx, rx) = mpsc::channel(32);
    let (app2, stop2) = (app.clone(), stop.clone());
    tokio::task::spawn_blocking(move || run(&app2, admission, job, stop2, tx));
    Ok(Running { rx, stop })
}

fn run(app: &App, admission: Admission, job: Job, stop: StopHandle, tx: mpsc::Sender<Event>) {
    let mut params = job.params;
    params.stop = Some(stop.clone());
    let mut lease = match app.pool.checkout(admission, &job.ids, stop.clone()) {
        Ok(l) => l,
        Err(e) => {
            let _ = tx.blocking_send(Event::Failed(e));
            return;
        }
    };
    let (stats, failed) = generate(
        lease.session(),
        job.ids,
        &params,
        &stop,
        &tx,
        job.prompt_param,
    );
    if failed {
        lease.fail();
    }
    // The session goes back before the client hears of the end, so that a
    // follow-up request finds it.
    drop(lease);
    app.metrics.generation(&stats);
    if app.config.log {
        eprintln!(
            "{}: {} prompt tokens ({} cached), {} generated, ttft {:.0} ms, {:.1} tokens/s, {}",
            job.kind.route(),
            stats.prompt_tokens,
            stats.cached_tokens,
            stats.generated_tokens,
            stats.ttft.as_secs_f64() * 1e3,
            stats.decode_tokens_per_s(),
            stats.stop_reason.as_ref().map_or("-", |r| r.as_str()),
        );
    }
    let _ = tx.blocking_send(Event::Done(stats));
}

/// Runs the generation, sending each token; returns the figures and
/// whether it failed.
fn generate(
    session: &mut Session,
    ids: Vec<u32>,
    params: &GenerateParams,
    stop: &StopHandle,
    tx: &mpsc::Sender<Event>,
    prompt_param: &'static str,
) -> (Stats, bool) {
    let mut g = match session.generate(ids, params) {
        Ok(g) => g,
        Err(e) => {
            let _ = tx.blocking_send(Event::Failed(ApiError::from_llm(e, prompt_param)));
            let stats = Stats {
                stop_reason: Some(StopReason::Error),
                ..Stats::default()
            };
            return (stats, true);
        }
    };
    let mut failed = false;
    for ev in g.by_ref() {
        match ev {
            Ok(t) => {
                if tx.blocking_send(Event::Token(t)).is_err() {
                    // Nobody listens: stop before the next token.
                    stop.stop();
                }
            }
            Err(e) => {
                failed = true;
                let _ = tx.blocking_send(Event::Failed(ApiError::from_llm(e, prompt_param)));
                break;
            }
        }
    }
    (g.stats().clone(), failed)
}

/// Collects a whole answer.
pub async fn collect(mut running: Running, reply: Reply) -> Result<Response, ApiError> {
    let mut text = String::new();
    let mut ids = vec![];
    while let Some(ev) = running.next().await {
        match ev {
            Event::Token(t) => {
                text.push_str(&t.text);
                ids.push(t.id);
            }
            Event::Failed(e) => return Err(e),
            // With the client still here, only a shutdown cancels.
            Event::Done(s) if s.stop_reason == Some(StopReason::Cancelled) => {
                return Err(ApiError::shutting_down())
            }
            Event::Done(s) => return Ok(axum::Json(reply.full(&text, &ids, &s)).into_response()),
        }
    }
    Err(ApiError::internal("the generation ended without an answer"))
}

/// Streams the answer as server-sent events ending in `data: [DONE]`. An
/// error before the first token is an ordinary error response.
pub async fn stream(
    mut running: Running,
    reply: Reply,
    include_usage: bool,
) -> Result<Response, ApiError> {
    let first = match running.next().await {
        Some(Event::Failed(e)) => return Err(e),
        Some(ev) => ev,
        None => return Err(ApiError::internal("the generation ended without an answer")),
    };
    let mut feed = Feed {
        running,
        queue: VecDeque::new(),
        done: false,
        reply,
        include_usage,
    };
    feed.queue.push_back(json_event(&feed.reply.first_chunk()));
    feed.push(Some(first));
    let events = futures_util::stream::unfold(feed, |mut feed| async move {
        loop {
            if let Some(e) = feed.queue.pop_front() {
                return Some((Ok::<_, Infallible>(e), feed));
            }
            if feed.done {
                return None;
            }
            let ev = feed.running.next().await;
            feed.push(ev);
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn json_event(v: &serde_json::Value) -> SseEvent {
    SseEvent::default().data(v.to_string())
}

/// Turns generation events into server-sent events.
struct Feed {
    running: Running,
    queue: VecDeque<SseEvent>,
    done: bool,
    reply: Reply,
    include_usage: bool,
}

impl Feed {
    fn push(&mut self, ev: Option<Event>) {
        match ev {
            Some(Event::Token(t)) => {
                // Tokens without text (an end token, a character still
                // incomplete) are sent only to clients that want the ids.
                if !t.text.is_empty() || self.reply.wants_ids() {
                    self.queue
                        .push_back(json_event(&self.reply.chunk(&t.text, t.id)));
                }
            }
            Some(Event::Done(s)) if s.stop_reason == Some(StopReason::Cancelled) => {
                self.fail(ApiError::shutting_down());
            }
            Some(Event::Done(s)) => {
                self.queue.push_back(json_event(&self.reply.last_chunk(&s)));
                if self.include_usage {
                    self.queue
                        .push_back(json_event(&self.reply.usage_chunk(&s)));
                }
                self.end();
            }
            Some(Event::Failed(e)) => self.fail(e),
            None => self.fail(ApiError::internal("the generation ended without an answer")),
        }
    }

    /// OpenAI streams a failure as an `error` object.
    fn fail(&mut self, e: ApiError) {
        self.queue.push_back(json_event(&e.body()));
        self.end();
    }

    fn end(&mut self) {
        self.queue.push_back(SseEvent::default().data("[DONE]"));
        self.done = true;
    }
}
