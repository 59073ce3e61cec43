//! Chat with [ANEMLL](https://github.com/Anemll/Anemll) LLM bundles (Core ML
//! models converted for the Apple Neural Engine) through candle-coreml: on
//! macOS through Core ML, everywhere else through the portable MIL evaluator.
//!
//! The layers, each usable alone:
//! - [`meta`], [`files`], [`bundle`]: meta.yaml, finding and loading the
//!   parts (`.mlmodelc` or `.mlpackage`, chunked or monolithic), checking that
//!   they fit together ([`config`]);
//! - [`engine`]: prefill and one decoding step over a shared
//!   [`candle_coreml::State`] (one embeddings call, one `infer` per chunk and
//!   one LM-head call per token);
//! - [`sampler`]: pure functions over logits;
//! - [`tokenizer`], [`template`]: tokenizer.json, the Jinja chat template,
//!   stop tokens, streaming detokenization;
//! - [`session`]: a conversation's state and tokens, the streaming
//!   [`Generation`], figures;
//! - [`Llm`]: all of it together.
//!
//! ```
//! use std::sync::Arc;
//! use candle_coreml_llm::{GenerateParams, Llm, LoadOptions, Message, Prompt};
//!
//! let dir = "assets/demo-chat"; // the repository's demo bundle
//! # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/demo-chat");
//! let llm = Arc::new(Llm::load(dir, &LoadOptions::default())?);
//! let mut session = llm.session()?;
//! let params = GenerateParams { max_tokens: Some(128), ..Default::default() };
//! let ids = llm.prompt_ids(&Prompt::Chat(vec![Message::user("What does len do?")]), &params)?;
//! let mut generation = session.generate(ids, &params)?;
//! for event in generation.by_ref() {
//!     print!("{}", event?.text);
//! }
//! println!("\n{:?}", generation.stats().stop_reason);
//! # Ok::<(), candle_coreml_llm::Error>(())
//! ```

#![deny(missing_docs)]

pub mod bundle;
pub mod config;
pub mod engine;
pub mod error;
pub mod files;
mod llm;
pub mod meta;
pub mod parts;
pub mod sampler;
pub mod session;
pub mod template;
pub mod tokenizer;

pub use bundle::{Bundle, LoadOptions};
pub use error::{Error, Result};
pub use llm::{GenerateParams, Llm, Prompt};
pub use sampler::SamplingParams;
pub use session::{
    Completion, ContextPolicy, Generation, Session, Stats, StopHandle, StopReason, TokenEvent,
};
pub use template::{Message, TemplateOptions};

#[cfg(test)]
mod tests {
    /// A model serves many threads; a session moves to a worker thread.
    #[test]
    fn thread_safety() {
        fn shared<T: Send + Sync>() {}
        fn movable<T: Send>() {}
        shared::<crate::Llm>();
        movable::<crate::Session>();
        movable::<crate::StopHandle>();
    }
}

// The README's Rust examples compile (they are `no_run`: they name files a
// reader has, not files in the repository).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeExamples;
