//! `candle-coreml chat`: talk to an ANEMLL bundle, interactively or once.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use candle_coreml_llm::{
    ContextPolicy, Error as LlmError, GenerateParams, Llm, LoadOptions, Message, Prompt, Session,
    Stats, StopHandle,
};
use rustyline::error::ReadlineError;

use crate::run::parse_device;
use crate::BackendArg;

/// What to do when the context fills up.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum ContextFullArg {
    /// End the answer.
    Stop,
    /// Drop the oldest tokens (whole prefill windows) and go on.
    Slide,
}

/// Arguments of `chat`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The bundle: a folder with meta.yaml (or, with the hf-hub feature, a
    /// Hugging Face repo id such as anemll/anemll-Qwen-Qwen3-0.6B-LUT888-ctx512_0.3.4).
    bundle: String,
    /// Answer this prompt once and exit (no interactive session).
    #[arg(long)]
    prompt: Option<String>,
    /// Most tokens per answer (default: until an end token or a full context).
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Sampling temperature; 0 is greedy (default: the bundle's
    /// recommended_sampling, else greedy).
    #[arg(long)]
    temperature: Option<f32>,
    /// Keep the k most likely tokens (0: off).
    #[arg(long)]
    top_k: Option<usize>,
    /// Nucleus sampling mass (1: off).
    #[arg(long)]
    top_p: Option<f32>,
    /// Drop tokens less likely than this times the most likely (0: off).
    #[arg(long)]
    min_p: Option<f32>,
    /// Repetition penalty over the last 64 tokens (1: off).
    #[arg(long)]
    repeat_penalty: Option<f32>,
    /// Seed of the sampler.
    #[arg(long)]
    seed: Option<u64>,
    /// System prompt.
    #[arg(long)]
    system: Option<String>,
    /// Turn thinking off (enable_thinking=false in the chat template, Qwen 3).
    #[arg(long)]
    no_think: bool,
    /// Tokenize prompts as given, without the chat template.
    #[arg(long)]
    raw: bool,
    /// A stop string (repeat for several).
    #[arg(long = "stop", value_name = "TEXT")]
    stop: Vec<String>,
    /// What to do when the context is full.
    #[arg(long, value_enum, default_value = "stop")]
    context_full: ContextFullArg,
    /// Go on past end-of-sequence tokens (for benchmarks with --max-tokens).
    #[arg(long)]
    ignore_eos: bool,
    /// Sliding-window bundles (Gemma 3): past the window, prefill whole
    /// windows through prefill_rotate as ANEMLL does (faster, not exact)
    /// instead of one token at a time.
    #[arg(long)]
    rotate_windows: bool,
    /// Backend.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendArg,
    /// Device of the portable backend: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// With --prompt: print one JSON object (prompt_ids, generated_ids, text,
    /// ttft_ms, prefill_tokens_per_s, decode_tokens_per_s, stop_reason).
    #[arg(long, requires = "prompt")]
    json: bool,
}

/// The bundle folder: a local path, or a Hugging Face repo downloaded into
/// the hub cache.
pub(crate) fn bundle_dir(spec: &str) -> Result<PathBuf> {
    let p = Path::new(spec);
    if p.exists() {
        return Ok(p.to_path_buf());
    }
    let looks_like_repo = spec.split('/').count() == 2 && !spec.starts_with('.');
    if looks_like_repo {
        return download(spec);
    }
    bail!("{spec}: no such bundle folder")
}

/// Loads the bundle in `dir`, naming the folder in the error.
pub(crate) fn load_llm(dir: &Path, opts: &LoadOptions) -> Result<Arc<Llm>> {
    let llm = Llm::load(dir, opts).with_context(|| format!("loading {}", dir.display()))?;
    Ok(Arc::new(llm))
}

/// The bundle `spec` (a folder or a Hugging Face repo id) loaded as `chat`
/// and `serve` take it; also returns its folder.
pub(crate) fn open_bundle(
    spec: &str,
    backend: BackendArg,
    device: &str,
    rotate_windows: bool,
) -> Result<(PathBuf, Arc<Llm>)> {
    let dir = bundle_dir(spec)?;
    let opts = LoadOptions {
        backend: backend.into(),
        device: parse_device(device)?,
        rotate_windows,
        ..Default::default()
    };
    let llm = load_llm(&dir, &opts)?;
    Ok((dir, llm))
}

#[cfg(feature = "hf-hub")]
fn download(repo_id: &str) -> Result<PathBuf> {
    use hf_hub::api::sync::ApiBuilder;
    let api = ApiBuilder::new()
        .with_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .build()
        .context("Hugging Face hub client")?;
    let repo = api.model(repo_id.to_string());
    let info = repo.info().with_context(|| {
        format!("{repo_id}: not a local folder, and the Hugging Face repo cannot be listed")
    })?;
    let mut meta = None;
    for s in &info.siblings {
        let path = repo
            .get(&s.rfilename)
            .with_context(|| format!("{repo_id}: downloading {}", s.rfilename))?;
        if s.rfilename == "meta.yaml" {
            meta = Some(path);
        }
    }
    let meta = meta.with_context(|| format!("{repo_id}: the repo has no meta.yaml at its root"))?;
    Ok(meta.parent().map(Path::to_path_buf).unwrap_or_default())
}

#[cfg(not(feature = "hf-hub"))]
fn download(repo_id: &str) -> Result<PathBuf> {
    bail!("{repo_id}: no such folder (downloading from Hugging Face needs the hf-hub feature)")
}

fn params(args: &Args, llm: &Llm, stop: &StopHandle) -> GenerateParams {
    let mut s = llm.default_sampling();
    if let Some(t) = args.temperature {
        s.temperature = t;
    }
    if let Some(k) = args.top_k {
        s.top_k = k;
    }
    if let Some(p) = args.top_p {
        s.top_p = p;
    }
    if let Some(p) = args.min_p {
        s.min_p = p;
    }
    if let Some(r) = args.repeat_penalty {
        s.repeat_penalty = r;
    }
    s.seed = args.seed;
    let mut p = GenerateParams {
        sampling: s,
        max_tokens: args.max_tokens,
        stop_strings: args.stop.clone(),
        context_policy: match args.context_full {
            ContextFullArg::Stop => ContextPolicy::Stop,
            ContextFullArg::Slide => ContextPolicy::Slide,
        },
        system: args.system.clone(),
        stop: Some(stop.clone()),
        ignore_eos: args.ignore_eos,
        ..Default::default()
    };
    if args.no_think {
        p.template.enable_thinking = Some(false);
    }
    p
}

fn figures(s: &Stats) -> String {
    format!(
        "[{} prompt tokens ({} cached), {} generated | ttft {:.0} ms | prefill {:.1} tok/s | decode {:.1} tok/s | stop: {}]",
        s.prompt_tokens,
        s.cached_tokens,
        s.generated_tokens,
        s.ttft.as_secs_f64() * 1e3,
        s.prefill_tokens_per_s(),
        s.decode_tokens_per_s(),
        s.stop_reason.as_ref().map_or("-", |r| r.as_str()),
    )
}

/// Streams one answer to stdout; returns its text and figures.
fn answer(
    session: &mut Session,
    ids: Vec<u32>,
    params: &GenerateParams,
) -> Result<(String, Stats)> {
    let mut generation = session.generate(ids, params)?;
    let mut out = std::io::stdout().lock();
    let mut text = String::new();
    for ev in generation.by_ref() {
        let ev = ev?;
        text.push_str(&ev.text);
        out.write_all(ev.text.as_bytes())?;
        out.flush()?;
    }
    writeln!(out)?;
    Ok((text, generation.stats().clone()))
}

pub(crate) fn main(args: Args) -> Result<()> {
    let (_, llm) = open_bundle(
        &args.bundle,
        args.backend,
        &args.device,
        args.rotate_windows,
    )?;
    let stop = StopHandle::new();
    let params = params(&args, &llm, &stop);
    let handler_stop = stop.clone();
    ctrlc::set_handler(move || handler_stop.stop()).context("installing the Ctrl-C handler")?;
    match &args.prompt {
        Some(p) => one_shot(&args, &llm, p, &params),
        None => interactive(&args, &llm, &params, &stop),
    }
}

fn one_shot(args: &Args, llm: &Arc<Llm>, text: &str, params: &GenerateParams) -> Result<()> {
    let prompt = if args.raw {
        Prompt::Raw(text.to_string())
    } else {
        Prompt::User(text.to_string())
    };
    let ids = llm.prompt_ids(&prompt, params)?;
    let mut session = llm.session()?;
    if args.json {
        let c = session.generate(ids, params)?.finish()?;
        let s = &c.stats;
        let j = serde_json::json!({
            "prompt_ids": c.prompt_ids,
            "generated_ids": c.generated_ids,
            "text": c.text,
            "ttft_ms": s.ttft.as_secs_f64() * 1e3,
            "prefill_tokens_per_s": s.prefill_tokens_per_s(),
            "decode_tokens_per_s": s.decode_tokens_per_s(),
            "stop_reason": s.stop_reason.as_ref().map(|r| r.as_str()),
        });
        println!("{j}");
        return Ok(());
    }
    let (_, stats) = answer(&mut session, ids, params)?;
    eprintln!("{}", figures(&stats));
    Ok(())
}

const HELP: &str = "commands: /reset (new conversation), /system TEXT (set the system prompt and reset), /quit; Ctrl-C stops an answer, Ctrl-D quits";

fn interactive(
    args: &Args,
    llm: &Arc<Llm>,
    params: &GenerateParams,
    stop: &StopHandle,
) -> Result<()> {
    let mut rl = rustyline::DefaultEditor::new().context("line editor")?;
    let mut session = llm.session()?;
    let mut system = args.system.clone();
    let mut messages: Vec<Message> = vec![];
    eprintln!(
        "{} (context {} tokens). {HELP}",
        llm.meta().name.as_deref().unwrap_or("bundle"),
        llm.context_length()
    );
    loop {
        let line = match rl.readline(">>> ") {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = rl.add_history_entry(line);
        if line == "/quit" || line == "/exit" {
            break;
        }
        if line == "/reset" {
            messages.clear();
            session.reset();
            eprintln!("(new conversation)");
            continue;
        }
        if let Some(rest) = line.strip_prefix("/system") {
            let rest = rest.trim();
            system = (!rest.is_empty()).then(|| rest.to_string());
            messages.clear();
            session.reset();
            eprintln!(
                "(system prompt {}; new conversation)",
                if system.is_some() { "set" } else { "cleared" }
            );
            continue;
        }
        if line.starts_with('/') {
            eprintln!("{HELP}");
            continue;
        }
        stop.reset();
        let result = if args.raw {
            let mut ids = session.tokens().to_vec();
            ids.extend(llm.tokenizer().encode(line, ids.is_empty())?);
            answer(&mut session, ids, params).map(|(_, s)| s)
        } else {
            chat_turn(
                llm,
                &mut session,
                &mut messages,
                system.as_deref(),
                line,
                params,
            )
        };
        match result {
            Ok(stats) => eprintln!("{}", figures(&stats)),
            Err(e) => eprintln!("error: {e:#}"),
        }
    }
    Ok(())
}

/// One chat turn: the whole conversation is rendered; the session reuses
/// what its state already holds. The oldest turns are dropped when the
/// conversation no longer fits the context.
fn chat_turn(
    llm: &Arc<Llm>,
    session: &mut Session,
    messages: &mut Vec<Message>,
    system: Option<&str>,
    line: &str,
    params: &GenerateParams,
) -> Result<Stats> {
    messages.push(Message::user(line));
    loop {
        let mut all = vec![];
        if let Some(s) = system {
            all.push(Message::system(s));
        }
        all.extend(messages.iter().cloned());
        let ids = llm.prompt_ids(&Prompt::Chat(all), params)?;
        match answer(session, ids, params) {
            Ok((text, stats)) => {
                messages.push(Message::assistant(text));
                return Ok(stats);
            }
            Err(e) => {
                match e.downcast_ref::<LlmError>() {
                    Some(LlmError::PromptTooLong { .. }) if messages.len() > 1 => {
                        let n = messages.len().min(2);
                        messages.drain(..n);
                        eprintln!("(the conversation no longer fits the context: dropped the oldest turn)");
                    }
                    _ => {
                        messages.pop();
                        return Err(e);
                    }
                }
            }
        }
    }
}
