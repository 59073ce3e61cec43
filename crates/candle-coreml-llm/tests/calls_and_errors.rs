//! Calls per part per token, counted by wrappers around the parts (not by
//! the engine's own counters), and bad bundles: each an error naming the
//! file or limit, never a panic.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use candle_core::Tensor;
use candle_coreml::description::FunctionDescription;
use candle_coreml::{Outputs, State};
use candle_coreml_llm::bundle::load_parts;
use candle_coreml_llm::config::PrefillMode;
use candle_coreml_llm::files::BundleFiles;
use candle_coreml_llm::parts::{Part, PartRef, Role};
use candle_coreml_llm::{Bundle, Error, GenerateParams, Llm, Prompt};
use common::{copy_bundle, options, references};

/// Counts calls per role.
struct Counting {
    inner: PartRef,
    count: Arc<AtomicUsize>,
}

impl Part for Counting {
    fn label(&self) -> &str {
        self.inner.label()
    }
    fn path(&self) -> &Path {
        self.inner.path()
    }
    fn function(&self) -> &FunctionDescription {
        self.inner.function()
    }
    fn predict(
        &self,
        inputs: &[(&str, &Tensor)],
        state: Option<&mut State>,
    ) -> candle_coreml::Result<Outputs> {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.inner.predict(inputs, state)
    }
    fn make_state(&self) -> candle_coreml::Result<State> {
        self.inner.make_state()
    }
}

#[derive(Default, Clone)]
struct Counters {
    embeddings: Arc<AtomicUsize>,
    infer: Arc<AtomicUsize>,
    prefill: Arc<AtomicUsize>,
    head: Arc<AtomicUsize>,
}

impl Counters {
    fn get(&self) -> [usize; 4] {
        [&self.embeddings, &self.infer, &self.prefill, &self.head].map(|c| c.load(Ordering::SeqCst))
    }
}

#[test]
fn one_call_per_part_per_generated_token() {
    for r in references() {
        let files = BundleFiles::discover(common::bundle_dir(&r.bundle)).unwrap();
        let counters = Counters::default();
        let c = counters.clone();
        let parts = load_parts(&files, &options()).unwrap().map(|role, part| {
            let count = match &role {
                Role::Embeddings => c.embeddings.clone(),
                Role::LmHead => c.head.clone(),
                Role::Chunk { function, .. } | Role::Monolithic { function }
                    if function.starts_with("prefill") =>
                {
                    c.prefill.clone()
                }
                _ => c.infer.clone(),
            };
            Arc::new(Counting { inner: part, count }) as PartRef
        });
        let (chunks, monolithic) = match &parts {
            candle_coreml_llm::parts::Parts::Chunked { chunks, .. } => (chunks.len(), false),
            _ => (1, true),
        };
        let llm = Arc::new(Llm::new(Bundle::from_parts(files, parts).unwrap()).unwrap());
        let cfg = llm.engine().config().clone();
        let case = r
            .cases
            .iter()
            .find(|c| c.prompt_ids.len() > cfg.batch_size + 1)
            .expect("a prompt over one window");
        let n = case.prompt_ids.len();
        let mut session = llm.session().unwrap();
        let params = GenerateParams {
            max_tokens: Some(8),
            ..Default::default()
        };
        let mut gen = session.generate(case.prompt_ids.clone(), &params).unwrap();
        let mut before = counters.get();
        let mut first = true;
        for ev in gen.by_ref() {
            ev.unwrap();
            let now = counters.get();
            let d: Vec<usize> = now.iter().zip(before).map(|(a, b)| a - b).collect();
            if first {
                // Prefill of the first n-1 tokens, then one step.
                let fed = n - 1;
                let (windows, singles) = match cfg.prefill_mode {
                    // Exact sliding-window prefill: windows only below the window.
                    PrefillMode::FullWindows if cfg.sliding_window.is_some() => {
                        let w = fed.min(cfg.sliding_window.unwrap()) / cfg.batch_size;
                        (w, fed - w * cfg.batch_size)
                    }
                    PrefillMode::FullWindows | PrefillMode::PaddedWindows => {
                        (fed.div_ceil(cfg.batch_size), 0)
                    }
                    PrefillMode::TokenByToken => (0, fed),
                };
                // A monolithic model is one part: its calls count as FFN calls.
                let want = if monolithic {
                    vec![0, singles + 1, windows, 0]
                } else {
                    vec![
                        windows + singles + 1,
                        (singles + 1) * chunks,
                        windows * chunks,
                        1,
                    ]
                };
                assert_eq!(d, want, "{}: prefill + first token", r.bundle);
                first = false;
            } else {
                let want = if monolithic {
                    vec![0, 1, 0, 0]
                } else {
                    vec![1, chunks, 0, 1]
                };
                assert_eq!(d, want, "{}: calls for one token", r.bundle);
            }
            before = now;
        }
        assert_eq!(gen.stats().generated_tokens, 8);
        // The engine's own figures agree with the wrappers.
        let s = gen.stats().calls;
        assert_eq!(
            counters.get(),
            [s.embeddings, s.ffn_infer, s.ffn_prefill, s.lm_head]
        );
    }
}

fn bundle_name() -> String {
    references()[0].bundle.clone()
}

fn load_err(dir: &Path) -> String {
    match Llm::load(dir, &options()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

#[test]
fn missing_chunk_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_bundle(&bundle_name(), tmp.path());
    let files = BundleFiles::discover(&dir).unwrap();
    let ffn = files.model_paths()[1].to_path_buf();
    std::fs::remove_dir_all(&ffn).unwrap();
    let e = load_err(&dir);
    assert!(
        e.contains("FFN chunk 1 of") && e.contains(ffn.file_stem().unwrap().to_str().unwrap()),
        "{e}"
    );
}

#[test]
fn meta_disagreeing_with_the_files_names_both() {
    let name = bundle_name();
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_bundle(&name, tmp.path());
    let meta = dir.join("meta.yaml");
    let text = std::fs::read_to_string(&meta).unwrap();
    let param = |key: &str| -> String {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{key}: ")[..]))
            .unwrap_or_else(|| panic!("meta.yaml has no {key}"))
            .to_string()
    };
    let (ctx, batch) = (param("context_length"), param("batch_size"));
    let (chunks, split) = (param("num_chunks"), param("split_lm_head"));
    let more_chunks = (chunks.parse::<usize>().unwrap() + 1).to_string();
    let other_split = (split.parse::<usize>().unwrap() * 2).to_string();

    edit(
        &meta,
        &format!("context_length: {ctx}"),
        "context_length: 4096",
    );
    let e = load_err(&dir);
    assert!(
        e.contains("4096") && e.contains(&ctx) && e.contains(".mlpackage"),
        "{e}"
    );
    edit(
        &meta,
        "context_length: 4096",
        &format!("context_length: {ctx}"),
    );

    edit(&meta, &format!("batch_size: {batch}"), "batch_size: 7");
    let e = load_err(&dir);
    assert!(e.contains("prefill") && e.contains(", 7,"), "{e}");
    edit(&meta, "batch_size: 7", &format!("batch_size: {batch}"));

    edit(
        &meta,
        &format!("num_chunks: {chunks}"),
        &format!("num_chunks: {more_chunks}"),
    );
    let e = load_err(&dir);
    assert!(
        e.contains(&format!("num_chunks: {more_chunks}")) || e.contains("chunk"),
        "{e}"
    );
    edit(
        &meta,
        &format!("num_chunks: {more_chunks}"),
        &format!("num_chunks: {chunks}"),
    );

    edit(
        &meta,
        &format!("split_lm_head: {split}"),
        &format!("split_lm_head: {other_split}"),
    );
    let e = load_err(&dir);
    assert!(
        e.contains(&format!("split_lm_head: {other_split}")) && e.contains("lm_head"),
        "{e}"
    );
    edit(
        &meta,
        &format!("split_lm_head: {other_split}"),
        &format!("split_lm_head: {split}"),
    );

    assert!(Llm::load(&dir, &options()).is_ok(), "restored bundle");
    std::fs::remove_file(&meta).unwrap();
    assert!(load_err(&dir).contains("meta.yaml"));
}

#[test]
fn tokenizer_problems_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_bundle(&bundle_name(), tmp.path());
    let tok = dir.join("tokenizer.json");
    let good = std::fs::read(&tok).unwrap();
    std::fs::write(&tok, b"{ not json").unwrap();
    let e = load_err(&dir);
    assert!(e.contains("tokenizer.json"), "{e}");
    std::fs::remove_file(&tok).unwrap();
    let e = load_err(&dir);
    assert!(
        e.contains("tokenizer") && e.contains("tokenizer.json"),
        "{e}"
    );
    std::fs::write(&tok, good).unwrap();

    let cfg = dir.join("tokenizer_config.json");
    let mut j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    j["chat_template"] =
        "{% for m in messages %}{{ raise_exception('roles must alternate') }}{% endfor %}".into();
    std::fs::write(&cfg, j.to_string()).unwrap();
    let llm = Arc::new(Llm::load(&dir, &options()).unwrap());
    let e = llm
        .generate(&Prompt::User("hi".into()), &GenerateParams::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("roles must alternate") && e.contains("tokenizer_config.json"),
        "{e}"
    );

    j["chat_template"] = "{% for m in messages %}".into();
    std::fs::write(&cfg, j.to_string()).unwrap();
    let e = load_err(&dir);
    assert!(
        e.contains("tokenizer_config.json") && e.contains("chat template"),
        "{e}"
    );
}

#[test]
fn prompt_longer_than_the_context_names_the_limit() {
    let llm = common::load(&bundle_name());
    let ctx = llm.context_length();
    let e = llm
        .generate(
            &Prompt::Tokens(vec![5; ctx + 1]),
            &GenerateParams::default(),
        )
        .unwrap_err();
    assert!(
        matches!(e, Error::PromptTooLong { tokens, limit } if tokens == ctx + 1 && limit == ctx),
        "{e}"
    );
    assert!(e.to_string().contains(&ctx.to_string()));
    // A context that fills up stops with a reason, not an error.
    let out = llm
        .generate(
            &Prompt::Tokens(vec![5; ctx - 3]),
            &GenerateParams::default(),
        )
        .unwrap();
    assert_eq!(
        out.stats.stop_reason,
        Some(candle_coreml_llm::StopReason::ContextFull)
    );
    assert_eq!(out.prompt_ids.len() + out.generated_ids.len(), ctx + 1);
}

/// Sliding the context (as ANEMLL's chat_full.py does) keeps generating,
/// and what follows the slide is what a fresh session gives for the kept
/// tokens.
#[test]
fn a_full_context_slides() {
    let r = references()
        .into_iter()
        .find(|r| !r.bundle.starts_with("gemma"))
        .unwrap();
    let llm = common::load(&r.bundle);
    let ctx = llm.context_length();
    let prompt = r.cases[0]
        .prompt_ids
        .iter()
        .copied()
        .cycle()
        .take(ctx - 2)
        .collect::<Vec<_>>();
    let params = GenerateParams {
        max_tokens: Some(8),
        ignore_eos: true,
        context_policy: candle_coreml_llm::ContextPolicy::Slide,
        ..Default::default()
    };
    let mut session = llm.session().unwrap();
    let out = session.generate(prompt, &params).unwrap().finish().unwrap();
    assert_eq!(out.generated_ids.len(), 8);
    assert_eq!(out.stats.slides, 1);
    assert_eq!(
        out.stats.stop_reason,
        Some(candle_coreml_llm::StopReason::MaxTokens)
    );
    let held = session.tokens().to_vec();
    // Tokens generated after the slide: the last 8 - 3 (3 fitted before it).
    let after = 8 - 3;
    let kept = held[..held.len() - after].to_vec();
    assert!(kept.len() < ctx);
    let fresh = llm
        .generate(
            &Prompt::Tokens(kept),
            &GenerateParams {
                max_tokens: Some(after),
                ignore_eos: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(fresh.generated_ids, held[held.len() - after..]);
}
