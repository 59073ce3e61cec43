//! `candle-coreml serve`: an OpenAI-compatible HTTP server for a bundle.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use candle_coreml_server::Config;

use crate::chat::open_bundle;
use crate::BackendArg;

/// Arguments of `serve`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The bundle: a folder with meta.yaml (or, with the hf-hub feature, a
    /// Hugging Face repo id).
    bundle: String,
    /// Address to listen on (127.0.0.1: this machine only).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on (0: any free port; the bound address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Require `Authorization: Bearer KEY` on /v1 and /metrics.
    #[arg(long, env = "CANDLE_COREML_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Requests generating at once, each with its own KV state.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    max_sessions: u32,
    /// Requests that may wait for a session; more get 429.
    #[arg(long, default_value_t = 64)]
    max_queue: usize,
    /// Seconds a request may wait for a session; then 503.
    #[arg(long, default_value_t = 60.0)]
    queue_timeout: f64,
    /// The name clients give as `model` (default: the bundle folder's name,
    /// or the repo id).
    #[arg(long)]
    model_name: Option<String>,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 2 << 20)]
    body_limit: usize,
    /// On Ctrl-C or SIGTERM, seconds running answers may go on before they
    /// are cancelled.
    #[arg(long, default_value_t = 10.0)]
    shutdown_timeout: f64,
    /// No line per answer on stderr.
    #[arg(long)]
    quiet: bool,
    /// Sliding-window bundles (Gemma 3): prefill whole windows through
    /// prefill_rotate as ANEMLL does (faster, not exact).
    #[arg(long)]
    rotate_windows: bool,
    /// Backend.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendArg,
    /// Device of the portable backend: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn seconds(name: &str, s: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("--{name} {s}: not a number of seconds"))
}

pub(crate) fn main(args: Args) -> Result<()> {
    let (dir, llm) = open_bundle(
        &args.bundle,
        args.backend,
        &args.device,
        args.rotate_windows,
    )?;
    let model_name = args.model_name.clone().unwrap_or_else(|| {
        if Path::new(&args.bundle).exists() {
            dir.canonicalize()
                .ok()
                .and_then(|d| d.file_name().map(|f| f.to_string_lossy().into_owned()))
                .unwrap_or_else(|| args.bundle.clone())
        } else {
            args.bundle.clone()
        }
    });
    let config = Config {
        model_name: model_name.clone(),
        api_key: args.api_key.clone().filter(|k| !k.is_empty()),
        max_sessions: args.max_sessions as usize,
        max_queue: args.max_queue,
        queue_timeout: seconds("queue-timeout", args.queue_timeout)?,
        body_limit: args.body_limit,
        shutdown_timeout: seconds("shutdown-timeout", args.shutdown_timeout)?,
        log: !args.quiet,
        ..Config::default()
    };
    let sessions = config.max_sessions;
    let keyed = config.api_key.is_some();
    let ctx = llm.context_length();
    let addr = SocketAddr::new(args.host, args.port);
    candle_coreml_server::run(llm, config, addr, |bound| {
        eprintln!(
            "serving '{model_name}' ({ctx}-token context, {sessions} sessions{}); listening on http://{bound}",
            if keyed { ", API key required" } else { "" }
        );
    })
    .with_context(|| format!("serving on {addr}"))?;
    eprintln!("server stopped");
    Ok(())
}
