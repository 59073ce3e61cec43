//! An OpenAI-compatible HTTP server for ANEMLL LLM bundles loaded by
//! [`candle_coreml_llm`]: `POST /v1/chat/completions` and
//! `POST /v1/completions` (JSON or server-sent events), `GET /v1/models`,
//! `GET /health` and `GET /metrics` (Prometheus text format).
//!
//! The server is thin: it checks requests, turns them into generation jobs
//! and streams the events back. Each running request has its own
//! [`Session`](candle_coreml_llm::Session) (KV state) from a [`pool`] of at
//! most `max_sessions`; a request whose prompt extends a conversation a
//! session holds gets that session and prefills only the new tokens (as
//! llama.cpp's slots do). More requests wait in a bounded queue, then get
//! 429 or 503 with `Retry-After`. Apart from those sessions the server keeps
//! no state, so several can run behind a load balancer.
//!
//! ```no_run
//! use std::sync::Arc;
//! use candle_coreml_llm::{Llm, LoadOptions};
//! use candle_coreml_server::{run, Config};
//!
//! let llm = Arc::new(Llm::load("bundle-dir", &LoadOptions::default())?);
//! let config = Config { model_name: "my-model".into(), ..Config::default() };
//! let addr = "127.0.0.1:8080".parse()?;
//! run(llm, config, addr, |bound| eprintln!("listening on http://{bound}"))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod error;
pub mod metrics;
pub mod pool;
pub mod request;
pub mod response;
mod routes;
mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use candle_coreml_llm::Llm;
use tokio::net::TcpListener;

pub use error::ApiError;
use metrics::Metrics;
use pool::{Pool, PoolConfig};

/// Server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The name clients give as `model`.
    pub model_name: String,
    /// With a key, every `/v1` request and `/metrics` need
    /// `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
    /// Requests generating at once, each with its own session (KV state).
    pub max_sessions: usize,
    /// Requests that may wait for a session; more get 429.
    pub max_queue: usize,
    /// Longest wait for a session; then 503.
    pub queue_timeout: Duration,
    /// `Retry-After` seconds of a 429 or 503.
    pub retry_after: u64,
    /// Largest request body in bytes; larger ones get 413.
    pub body_limit: usize,
    /// On shutdown, how long running generations may go on before they are
    /// cancelled.
    pub shutdown_timeout: Duration,
    /// One line on stderr per finished generation.
    pub log: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            model_name: "model".into(),
            api_key: None,
            max_sessions: 4,
            max_queue: 64,
            queue_timeout: Duration::from_secs(60),
            retry_after: 1,
            body_limit: 2 << 20,
            shutdown_timeout: Duration::from_secs(10),
            log: true,
        }
    }
}

/// What every handler shares.
pub(crate) struct App {
    llm: Arc<Llm>,
    config: Config,
    pool: Arc<Pool>,
    metrics: Metrics,
    /// When the server started (Unix seconds), as the model's `created`.
    created: u64,
}

impl App {
    fn new(llm: Arc<Llm>, config: Config) -> Arc<App> {
        let pool = Pool::new(
            llm.clone(),
            PoolConfig {
                max_sessions: config.max_sessions.max(1),
                max_queue: config.max_queue,
                queue_timeout: config.queue_timeout,
                retry_after: config.retry_after,
            },
        );
        Arc::new(App {
            llm,
            config,
            pool,
            metrics: Metrics::default(),
            created: response::unix_now(),
        })
    }
}

/// The router (for serving it yourself or testing it in-process).
pub fn router(llm: Arc<Llm>, config: Config) -> axum::Router {
    routes::router(App::new(llm, config))
}

/// Serves on `listener` until `shutdown` resolves; then refuses new work,
/// lets running generations go on for `shutdown_timeout`, cancels the rest
/// (their streams end with an error event and `[DONE]`) and returns once
/// every connection is closed.
pub async fn serve(
    listener: TcpListener,
    llm: Arc<Llm>,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = App::new(llm, config);
    let router = routes::router(app.clone());
    let signal = async move {
        shutdown.await;
        app.pool.close();
        let busy = app.pool.status().busy;
        let grace = app.config.shutdown_timeout;
        eprintln!(
            "shutting down: {busy} generation(s) running; cancelling any left after {:.0} s",
            grace.as_secs_f64()
        );
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let n = app.pool.cancel_all();
            if n > 0 {
                eprintln!("shutting down: cancelled {n} generation(s)");
            }
        });
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(signal)
        .await
}

/// A future that resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM. The
/// handlers are installed when this is called (inside a Tokio runtime), so
/// a signal that comes before the future is first polled is not lost.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

/// Binds `addr` (port 0: any free port), installs the Ctrl-C and SIGTERM
/// handlers, calls `on_bound` with the bound address, and serves on a
/// runtime of its own until one of those signals.
pub fn run(
    llm: Arc<Llm>,
    config: Config,
    addr: SocketAddr,
    on_bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = TcpListener::bind(addr).await?;
        let signal = shutdown_signal()?;
        on_bound(listener.local_addr()?);
        serve(listener, llm, config, signal).await
    })?;
    // Generations were cancelled; their threads end at the next token.
    rt.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}
