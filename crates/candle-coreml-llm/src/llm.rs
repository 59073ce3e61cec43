//! The public entry point: a loaded bundle with its tokenizer, sessions and
//! one-call generation.

use std::path::Path;
use std::sync::Arc;

use crate::bundle::{Bundle, LoadOptions};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::meta::Meta;
use crate::sampler::SamplingParams;
use crate::session::{Completion, ContextPolicy, Session, StopHandle};
use crate::template::{Message, TemplateOptions};
use crate::tokenizer::TextTokenizer;

/// What to generate after.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// One user message, through the chat template (with
    /// [`GenerateParams::system`] when set).
    User(String),
    /// A conversation, through the chat template.
    Chat(Vec<Message>),
    /// Text tokenized as given (the tokenizer's own special tokens added,
    /// no chat template).
    Raw(String),
    /// Token ids as given.
    Tokens(Vec<u32>),
}

/// Settings of one generation.
#[derive(Debug, Clone, Default)]
pub struct GenerateParams {
    /// Sampling (greedy by default; [`Llm::default_sampling`] gives the
    /// bundle's recommendation).
    pub sampling: SamplingParams,
    /// Most tokens to generate (`None`: until an end token or a full context).
    pub max_tokens: Option<usize>,
    /// Strings that end generation; the text stops before them.
    pub stop_strings: Vec<String>,
    /// What to do when the context is full.
    pub context_policy: ContextPolicy,
    /// A system message put before [`Prompt::User`].
    pub system: Option<String>,
    /// Chat-template variables (`enable_thinking`...);
    /// `add_generation_prompt` is always set for generation.
    pub template: TemplateOptions,
    /// A handle to stop the generation from elsewhere.
    pub stop: Option<StopHandle>,
    /// Go on past end tokens (benchmarks: a fixed number of tokens).
    pub ignore_eos: bool,
}

/// A loaded bundle, ready to generate. Share it between threads and
/// sessions through an `Arc`.
///
/// ```
/// use std::sync::Arc;
/// use candle_coreml_llm::{GenerateParams, Llm, LoadOptions, Prompt};
///
/// let dir = "assets/demo-chat"; // the repository's demo bundle
/// # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/demo-chat");
/// let llm = Arc::new(Llm::load(dir, &LoadOptions::default())?);
/// let params = GenerateParams { max_tokens: Some(64), ..Default::default() };
/// let out = llm.generate(&Prompt::User("What does len do?".into()), &params)?;
/// println!("{} ({:.1} tokens/s)", out.text, out.stats.decode_tokens_per_s());
/// # Ok::<(), candle_coreml_llm::Error>(())
/// ```
pub struct Llm {
    bundle: Bundle,
    engine: Engine,
    tokenizer: TextTokenizer,
}

impl std::fmt::Debug for Llm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llm").field("bundle", &self.bundle).finish()
    }
}

impl Llm {
    /// Loads the bundle in `dir` and its tokenizer.
    pub fn load(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Llm> {
        let bundle = Bundle::load(dir, opts)?;
        Self::new(bundle)
    }

    /// A model over a bundle whose parts are already loaded (or wrapped).
    pub fn new(bundle: Bundle) -> Result<Llm> {
        let tokenizer = TextTokenizer::load(&bundle.files.tokenizer_dir)?;
        let engine = Engine::new(bundle.parts.clone(), bundle.config.clone())?;
        Ok(Llm {
            bundle,
            engine,
            tokenizer,
        })
    }

    /// The bundle.
    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// meta.yaml.
    pub fn meta(&self) -> &Meta {
        self.bundle.meta()
    }

    /// The engine (prefill and decoding steps).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The tokenizer and chat template.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Positions available to prompt and answer together.
    pub fn context_length(&self) -> usize {
        self.engine.config().context_length
    }

    /// True when the LM head picks the token itself: generation is greedy.
    pub fn argmax_in_model(&self) -> bool {
        matches!(
            self.engine.config().head,
            crate::config::Head::Argmax { .. }
        )
    }

    /// The bundle's `recommended_sampling`, or greedy (always greedy for
    /// `argmax_in_model` heads).
    pub fn default_sampling(&self) -> SamplingParams {
        match &self.meta().recommended_sampling {
            Some(r) if !self.argmax_in_model() => SamplingParams::from_recommended(r),
            _ => SamplingParams::greedy(),
        }
    }

    /// A new conversation.
    pub fn session(self: &Arc<Self>) -> Result<Session> {
        Session::new(self.clone())
    }

    /// The token ids of `prompt`.
    pub fn prompt_ids(&self, prompt: &Prompt, params: &GenerateParams) -> Result<Vec<u32>> {
        let opts = TemplateOptions {
            add_generation_prompt: true,
            ..params.template.clone()
        };
        match prompt {
            Prompt::User(text) => {
                let mut messages = vec![];
                if let Some(s) = &params.system {
                    messages.push(Message::system(s.clone()));
                }
                messages.push(Message::user(text.clone()));
                self.tokenizer.apply_chat_template(&messages, &opts)
            }
            Prompt::Chat(messages) => self.tokenizer.apply_chat_template(messages, &opts),
            Prompt::Raw(text) => self.tokenizer.encode(text, true),
            Prompt::Tokens(ids) => Ok(ids.clone()),
        }
    }

    /// Generates after `prompt` in a fresh session and returns the whole
    /// answer with its figures.
    pub fn generate(
        self: &Arc<Self>,
        prompt: &Prompt,
        params: &GenerateParams,
    ) -> Result<Completion> {
        let ids = self.prompt_ids(prompt, params)?;
        if ids.is_empty() {
            return Err(Error::Msg("the prompt has no tokens".into()));
        }
        let mut session = self.session()?;
        let result = session.generate(ids, params)?.finish();
        result
    }
}
