//! The bundle's tokenizer (`tokenizer.json`), its special tokens and chat
//! template (`tokenizer_config.json` or `chat_template.jinja`), the stop
//! tokens, and a streaming detokenizer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::template::{ChatTemplate, Message, TemplateOptions};

/// End-of-turn tokens that stop generation when the vocabulary has them
/// (FORMATS.md §8), besides the tokenizer's EOS.
pub const END_OF_TURN: [&str; 4] = ["<|endoftext|>", "<|im_end|>", "<end_of_turn>", "<|eot_id|>"];

/// A tokenizer with its chat template and stop tokens.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    template: Option<ChatTemplate>,
    stop_ids: BTreeSet<u32>,
    bos: Option<String>,
    path: PathBuf,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("path", &self.path)
            .field("stop_ids", &self.stop_ids)
            .finish()
    }
}

/// A special token in tokenizer_config.json: a string or `{"content": ...}`.
fn token_string(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// EOS ids in a config: an integer or a list of them.
fn ids(v: Option<&serde_json::Value>) -> Vec<u32> {
    match v {
        Some(serde_json::Value::Number(n)) => {
            n.as_u64().map(|i| vec![i as u32]).unwrap_or_default()
        }
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_u64())
            .map(|i| i as u32)
            .collect(),
        _ => vec![],
    }
}

fn read_json(path: &Path) -> Result<Option<serde_json::Value>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Tokenizer {
            path: path.to_path_buf(),
            message: format!("invalid JSON: {e}"),
        })
}

/// The chat template: `chat_template.jinja`, or tokenizer_config.json's
/// `chat_template` (a string, or a list of named templates: "default").
fn find_template(
    dir: &Path,
    config: Option<&serde_json::Value>,
) -> Result<Option<(String, PathBuf)>> {
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        let s = std::fs::read_to_string(&jinja).map_err(|e| Error::io(&jinja, e))?;
        return Ok(Some((s, jinja)));
    }
    let path = dir.join("tokenizer_config.json");
    match config.and_then(|c| c.get("chat_template")) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some((s.clone(), path))),
        Some(serde_json::Value::Array(list)) => {
            let pick = list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .or_else(|| list.first());
            match pick
                .and_then(|t| t.get("template"))
                .and_then(|t| t.as_str())
            {
                Some(s) => Ok(Some((s.to_string(), path))),
                None => Err(Error::Tokenizer {
                    path,
                    message: "chat_template is a list without a usable {name, template} entry"
                        .into(),
                }),
            }
        }
        Some(_) => Err(Error::Tokenizer {
            path,
            message: "chat_template is neither a string nor a list".into(),
        }),
    }
}

impl TextTokenizer {
    /// Loads `dir/tokenizer.json`, `dir/tokenizer_config.json` and the
    /// optional `generation_config.json`/`config.json` (for EOS ids).
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(Error::MissingFile {
                what: "tokenizer".into(),
                tried: vec![path],
            });
        }
        let inner = tokenizers::Tokenizer::from_file(&path).map_err(|e| Error::Tokenizer {
            path: path.clone(),
            message: format!("cannot load: {e}"),
        })?;
        let config = read_json(&dir.join("tokenizer_config.json"))?;
        let mut specials = BTreeMap::new();
        for key in ["bos_token", "eos_token", "pad_token", "unk_token"] {
            if let Some(s) = token_string(config.as_ref().and_then(|c| c.get(key))) {
                specials.insert(key.to_string(), s);
            }
        }
        let template = match find_template(dir, config.as_ref())? {
            Some((src, from)) => Some(ChatTemplate::new(src, from, specials.clone())?),
            None => None,
        };
        let mut stop_ids = BTreeSet::new();
        if let Some(eos) = specials.get("eos_token") {
            stop_ids.extend(inner.token_to_id(eos));
        }
        for file in ["generation_config.json", "config.json"] {
            if let Some(c) = read_json(&dir.join(file))? {
                stop_ids.extend(ids(c.get("eos_token_id")));
            }
        }
        for t in END_OF_TURN {
            stop_ids.extend(inner.token_to_id(t));
        }
        Ok(Self {
            inner,
            template,
            stop_ids,
            bos: specials.get("bos_token").cloned(),
            path,
        })
    }

    /// The `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// The chat template, when the bundle has one.
    pub fn template(&self) -> Option<&ChatTemplate> {
        self.template.as_ref()
    }

    /// Token ids that end generation.
    pub fn stop_ids(&self) -> &BTreeSet<u32> {
        &self.stop_ids
    }

    /// The vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Token ids of `text`; `add_special_tokens` applies the tokenizer's
    /// post-processor (e.g. a BOS).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        self.inner
            .encode(text, add_special_tokens)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::Tokenizer {
                path: self.path.clone(),
                message: format!("cannot encode: {e}"),
            })
    }

    /// Text of `ids`.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| Error::Tokenizer {
                path: self.path.clone(),
                message: format!("cannot decode: {e}"),
            })
    }

    /// Renders `messages` with the chat template and tokenizes the result
    /// as transformers' `apply_chat_template` does (no added special tokens:
    /// the template writes them).
    pub fn apply_chat_template(
        &self,
        messages: &[Message],
        opts: &TemplateOptions,
    ) -> Result<Vec<u32>> {
        let text = self.render_chat(messages, opts)?;
        self.encode(&text, false)
    }

    /// Renders `messages` with the chat template.
    pub fn render_chat(&self, messages: &[Message], opts: &TemplateOptions) -> Result<String> {
        let t = self.template.as_ref().ok_or_else(|| Error::Tokenizer {
            path: self.path.with_file_name("tokenizer_config.json"),
            message: "the bundle has no chat template (chat_template in tokenizer_config.json or chat_template.jinja); use raw prompts".into(),
        })?;
        t.render(messages, opts)
    }

    /// The BOS string, when the tokenizer config names one.
    pub fn bos_token(&self) -> Option<&str> {
        self.bos.as_deref()
    }
}

/// Turns a stream of token ids into text pieces that never split a UTF-8
/// character and keep SentencePiece word spaces: each piece is the growth
/// of the decoded text of a short window of recent tokens, released once it
/// does not end in an incomplete character.
#[derive(Debug, Clone, Default)]
pub struct StreamDecoder {
    ids: Vec<u32>,
    prefix: usize,
    read: usize,
    skip_special_tokens: bool,
}

impl StreamDecoder {
    /// A decoder; `skip_special_tokens` drops special tokens from the text.
    pub fn new(skip_special_tokens: bool) -> Self {
        Self {
            skip_special_tokens,
            ..Default::default()
        }
    }

    /// Adds a token; returns the text it completes (may be empty).
    pub fn push(&mut self, tok: &TextTokenizer, id: u32) -> Result<String> {
        self.ids.push(id);
        let before = tok.decode(&self.ids[self.prefix..self.read], self.skip_special_tokens)?;
        let now = tok.decode(&self.ids[self.prefix..], self.skip_special_tokens)?;
        if now.len() > before.len() && !now.ends_with('\u{FFFD}') {
            let piece = match now.strip_prefix(before.as_str()) {
                Some(rest) => rest.to_string(),
                None => now.get(before.len()..).unwrap_or_default().to_string(),
            };
            self.prefix = self.read;
            self.read = self.ids.len();
            return Ok(piece);
        }
        Ok(String::new())
    }

    /// Text still held back (an incomplete character at the end).
    pub fn flush(&mut self, tok: &TextTokenizer) -> Result<String> {
        let before = tok.decode(&self.ids[self.prefix..self.read], self.skip_special_tokens)?;
        let now = tok.decode(&self.ids[self.prefix..], self.skip_special_tokens)?;
        self.prefix = self.ids.len();
        self.read = self.ids.len();
        Ok(now.get(before.len()..).unwrap_or_default().to_string())
    }
}
