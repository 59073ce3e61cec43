//! `meta.yaml`: what an ANEMLL bundle says about itself.
//!
//! Every key ANEMLL 0.3.4 and 0.3.5 write is read (FORMATS.md §8); unknown
//! keys are ignored. Values are accepted as YAML scalars of any plain type
//! where ANEMLL's writers differ (`lut_ffn: 4` or `lut_ffn: none`,
//! `lm_head_chunk_sizes: [..]` or `"1,2,3"`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// A plain YAML scalar, whatever its type.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Scalar {
    fn as_string(&self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Str(s) => s.clone(),
        }
    }
}

/// A list written as a YAML sequence or as a comma-separated string.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
enum ListOrString {
    List(Vec<Scalar>),
    Str(String),
}

#[derive(Debug, Deserialize)]
struct RawMeta {
    model_info: RawModelInfo,
}

#[derive(Debug, Deserialize)]
struct RawModelInfo {
    name: Option<Scalar>,
    version: Option<Scalar>,
    architecture: Option<Scalar>,
    model_type: Option<Scalar>,
    parameters: BTreeMap<String, serde_value::Value>,
}

/// Thin value type for `parameters`, so that each key is checked on its own
/// and an error names it.
mod serde_value {
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Deserialize)]
    #[serde(untagged)]
    pub(super) enum Value {
        Scalar(super::Scalar),
        List(super::ListOrString),
        Map(std::collections::BTreeMap<String, Value>),
        Null(Option<()>),
    }
}
use serde_value::Value;

/// Bits of a LUT-palettized part, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lut {
    /// Not palettized: no `_lutN` file-name suffix.
    #[default]
    None,
    /// Palettized with this many bits: file names end in `_lutN`.
    Bits(u32),
}

impl Lut {
    /// The file-name suffix (`_lut6`, or empty).
    pub fn suffix(self) -> String {
        match self {
            Lut::None => String::new(),
            Lut::Bits(b) => format!("_lut{b}"),
        }
    }
}

/// Whether the bundle is split into parts or is one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelType {
    /// Embeddings, FFN chunks and LM head in separate files.
    #[default]
    Chunked,
    /// One file from `input_ids` to logits.
    Monolithic,
}

/// `recommended_sampling` from meta.yaml: the bundle author's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RecommendedSampling {
    /// False: greedy.
    pub do_sample: bool,
    /// Temperature.
    pub temperature: Option<f32>,
    /// Nucleus mass.
    pub top_p: Option<f32>,
    /// Top-k.
    pub top_k: Option<usize>,
}

/// The parsed `meta.yaml` (`model_info` and `model_info.parameters`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Meta {
    /// Where it was read from.
    pub path: PathBuf,
    /// `model_info.name`.
    pub name: Option<String>,
    /// `model_info.version`: the ANEMLL version that wrote the bundle.
    pub version: Option<String>,
    /// `model_info.architecture` (`qwen3`, `llama`, `gemma3`...).
    pub architecture: Option<String>,
    /// `model_info.model_type`.
    pub model_type: ModelType,
    /// `context_length`.
    pub context_length: usize,
    /// `state_length` (KV length); defaults to `context_length`.
    pub state_length: usize,
    /// `attention_size` (causal-mask width); defaults to `context_length`.
    pub attention_size: usize,
    /// `batch_size`: the prefill window.
    pub batch_size: usize,
    /// `num_chunks` (1 when absent).
    pub num_chunks: usize,
    /// `lut_embeddings`.
    pub lut_embeddings: Lut,
    /// `lut_ffn`.
    pub lut_ffn: Lut,
    /// `lut_lmhead`.
    pub lut_lmhead: Lut,
    /// `lut_bits` (monolithic bundles).
    pub lut_bits: Lut,
    /// `model_prefix` (`llama` when absent, as ANEMLL assumes).
    pub model_prefix: String,
    /// `embeddings` file name.
    pub embeddings: Option<String>,
    /// `lm_head` file name.
    pub lm_head: Option<String>,
    /// `ffn` file name (0.3.4 writes it without the chunk suffix).
    pub ffn: Option<String>,
    /// `pf`: the prefill file of split-rotate bundles.
    pub pf: Option<String>,
    /// `monolithic_model` file name.
    pub monolithic_model: Option<String>,
    /// `functions` of a monolithic model.
    pub functions: Vec<String>,
    /// `split_lm_head` (or the legacy `num_logits`): number of logits outputs.
    pub split_lm_head: Option<usize>,
    /// `argmax_in_model`: the head returns per-split argmax pairs.
    pub argmax_in_model: bool,
    /// `vocab_size`.
    pub vocab_size: Option<usize>,
    /// `lm_head_chunk_sizes`: vocabulary size of each head split.
    pub lm_head_chunk_sizes: Option<Vec<usize>>,
    /// `sliding_window` (Gemma 3).
    pub sliding_window: Option<usize>,
    /// `split_rotate` (Gemma 3: rotate functions in separate files).
    pub split_rotate: bool,
    /// `single_cache` (Gemma 3).
    pub single_cache: bool,
    /// `update_mask_prefill`: prefill takes an `update_mask`.
    pub update_mask_prefill: bool,
    /// `prefill_dynamic_slice`: prefill writes its window at `current_pos`.
    pub prefill_dynamic_slice: bool,
    /// `recommended_sampling`.
    pub recommended_sampling: Option<RecommendedSampling>,
    /// `tokenizer_path`, relative to the bundle.
    pub tokenizer_path: Option<String>,
}

impl Meta {
    /// Reads and checks `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Meta> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses meta.yaml text; `path` names it in errors.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Meta> {
        let path = path.as_ref();
        let raw: RawMeta = serde_saphyr::from_str(text)
            .map_err(|e| Error::meta(path, format!("not a valid ANEMLL meta.yaml: {e}")))?;
        let p = Params {
            path,
            map: &raw.model_info.parameters,
        };
        let context_length = p.required_usize("context_length")?;
        let model_type = match raw.model_info.model_type.as_ref().map(Scalar::as_string) {
            None => ModelType::Chunked,
            Some(s) if s == "chunked" => ModelType::Chunked,
            Some(s) if s == "monolithic" => ModelType::Monolithic,
            Some(s) => {
                return Err(Error::meta(
                    path,
                    format!(
                        "model_info.model_type: {s:?} is neither \"chunked\" nor \"monolithic\""
                    ),
                ))
            }
        };
        let meta = Meta {
            path: path.to_path_buf(),
            name: raw.model_info.name.as_ref().map(Scalar::as_string),
            version: raw.model_info.version.as_ref().map(Scalar::as_string),
            architecture: raw.model_info.architecture.as_ref().map(Scalar::as_string),
            model_type,
            context_length,
            state_length: p.usize("state_length")?.unwrap_or(context_length),
            attention_size: p.usize("attention_size")?.unwrap_or(context_length),
            batch_size: p.required_usize("batch_size")?,
            num_chunks: p.usize("num_chunks")?.unwrap_or(1),
            lut_embeddings: p.lut("lut_embeddings")?,
            lut_ffn: p.lut("lut_ffn")?,
            lut_lmhead: p.lut("lut_lmhead")?,
            lut_bits: p.lut("lut_bits")?,
            model_prefix: p.string("model_prefix")?.unwrap_or_else(|| "llama".into()),
            embeddings: p.string("embeddings")?,
            lm_head: p.string("lm_head")?,
            ffn: p.string("ffn")?,
            pf: p.string("pf")?,
            monolithic_model: p.string("monolithic_model")?,
            functions: p.list("functions")?.unwrap_or_default(),
            split_lm_head: match p.usize("split_lm_head")? {
                Some(n) => Some(n),
                None => p.usize("num_logits")?,
            },
            argmax_in_model: p.bool("argmax_in_model")?,
            vocab_size: p.usize("vocab_size")?,
            lm_head_chunk_sizes: p.usize_list("lm_head_chunk_sizes")?,
            sliding_window: p.usize("sliding_window")?,
            split_rotate: p.bool("split_rotate")?,
            single_cache: p.bool("single_cache")?,
            update_mask_prefill: p.bool("update_mask_prefill")?,
            prefill_dynamic_slice: p.bool("prefill_dynamic_slice")?,
            recommended_sampling: p.sampling("recommended_sampling")?,
            tokenizer_path: p.string("tokenizer_path")?,
        };
        meta.check()?;
        Ok(meta)
    }

    fn check(&self) -> Result<()> {
        let err = |m: String| Err(Error::meta(&self.path, m));
        if self.context_length == 0 || self.batch_size == 0 || self.num_chunks == 0 {
            return err(format!(
                "context_length ({}), batch_size ({}) and num_chunks ({}) must be positive",
                self.context_length, self.batch_size, self.num_chunks
            ));
        }
        if self.state_length < self.context_length && self.sliding_window.is_none() {
            return err(format!(
                "state_length {} is shorter than context_length {}",
                self.state_length, self.context_length
            ));
        }
        if self.split_lm_head == Some(0) {
            return err("split_lm_head must be positive".into());
        }
        if let (Some(sizes), Some(v)) = (&self.lm_head_chunk_sizes, self.vocab_size) {
            let sum: usize = sizes.iter().sum();
            if sum != v {
                return err(format!(
                    "lm_head_chunk_sizes add up to {sum}, vocab_size is {v}"
                ));
            }
        }
        Ok(())
    }

    /// The ANEMLL version as (major, minor, patch), when `version` parses.
    pub fn version_tuple(&self) -> Option<(u32, u32, u32)> {
        let v = self.version.as_deref()?;
        let mut it = v
            .trim_start_matches('v')
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u32>().ok());
        Some((
            it.next()??,
            it.next().flatten().unwrap_or(0),
            it.next().flatten().unwrap_or(0),
        ))
    }
}

struct Params<'a> {
    path: &'a Path,
    map: &'a BTreeMap<String, Value>,
}

impl Params<'_> {
    fn bad(&self, key: &str, want: &str, got: &Value) -> Error {
        Error::meta(
            self.path,
            format!("model_info.parameters.{key}: expected {want}, got {got:?}"),
        )
    }

    fn scalar(&self, key: &str) -> Result<Option<&Scalar>> {
        match self.map.get(key) {
            None | Some(Value::Null(_)) => Ok(None),
            Some(Value::Scalar(s)) => Ok(Some(s)),
            Some(other) => Err(self.bad(key, "a plain value", other)),
        }
    }

    fn usize(&self, key: &str) -> Result<Option<usize>> {
        let Some(s) = self.scalar(key)? else {
            return Ok(None);
        };
        let n = match s {
            Scalar::Int(i) if *i >= 0 => Some(*i as usize),
            Scalar::Str(t) => t.trim().parse::<usize>().ok(),
            _ => None,
        };
        n.map(Some)
            .ok_or_else(|| self.bad(key, "a non-negative integer", &Value::Scalar(s.clone())))
    }

    fn required_usize(&self, key: &str) -> Result<usize> {
        self.usize(key)?.ok_or_else(|| {
            Error::meta(self.path, format!("model_info.parameters.{key} is missing"))
        })
    }

    fn bool(&self, key: &str) -> Result<bool> {
        let Some(s) = self.scalar(key)? else {
            return Ok(false);
        };
        match s {
            Scalar::Bool(b) => Ok(*b),
            Scalar::Int(i) => Ok(*i != 0),
            Scalar::Str(t) if t.eq_ignore_ascii_case("true") => Ok(true),
            Scalar::Str(t) if t.eq_ignore_ascii_case("false") => Ok(false),
            other => Err(self.bad(key, "true or false", &Value::Scalar(other.clone()))),
        }
    }

    fn string(&self, key: &str) -> Result<Option<String>> {
        Ok(self.scalar(key)?.map(Scalar::as_string))
    }

    fn lut(&self, key: &str) -> Result<Lut> {
        let Some(s) = self.scalar(key)? else {
            return Ok(Lut::None);
        };
        let text = s.as_string();
        // "6" or "6,4" (bits, per-channel group size) or "none".
        let bits = text.split(',').next().unwrap_or("").trim();
        if bits.eq_ignore_ascii_case("none") || bits.is_empty() {
            return Ok(Lut::None);
        }
        match bits.parse::<u32>() {
            Ok(b) if (1..=16).contains(&b) => Ok(Lut::Bits(b)),
            _ => Err(self.bad(key, "LUT bits (1-16) or none", &Value::Scalar(s.clone()))),
        }
    }

    fn list(&self, key: &str) -> Result<Option<Vec<String>>> {
        match self.map.get(key) {
            None | Some(Value::Null(_)) => Ok(None),
            Some(Value::List(ListOrString::List(items))) => {
                Ok(Some(items.iter().map(Scalar::as_string).collect()))
            }
            Some(Value::List(ListOrString::Str(s))) | Some(Value::Scalar(Scalar::Str(s))) => {
                Ok(Some(
                    s.trim_matches(|c| c == '[' || c == ']')
                        .split(',')
                        .map(|p| p.trim().to_string())
                        .filter(|p| !p.is_empty())
                        .collect(),
                ))
            }
            Some(other) => Err(self.bad(key, "a list", other)),
        }
    }

    fn usize_list(&self, key: &str) -> Result<Option<Vec<usize>>> {
        let Some(items) = self.list(key)? else {
            return Ok(None);
        };
        items
            .iter()
            .map(|s| match s.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(Error::meta(
                    self.path,
                    format!("model_info.parameters.{key}: {s:?} is not a positive integer"),
                )),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    fn sampling(&self, key: &str) -> Result<Option<RecommendedSampling>> {
        let map = match self.map.get(key) {
            None | Some(Value::Null(_)) => return Ok(None),
            Some(Value::Map(m)) => m,
            Some(other) => return Err(self.bad(key, "a mapping", other)),
        };
        let sub = Params {
            path: self.path,
            map,
        };
        let float = |k: &str| -> Result<Option<f32>> {
            match sub.scalar(k)? {
                None => Ok(None),
                Some(Scalar::Int(i)) => Ok(Some(*i as f32)),
                Some(Scalar::Float(f)) => Ok(Some(*f as f32)),
                Some(Scalar::Str(s)) if s.trim().parse::<f32>().is_ok() => {
                    Ok(s.trim().parse::<f32>().ok())
                }
                Some(other) => Err(Error::meta(
                    self.path,
                    format!("model_info.parameters.{key}.{k}: expected a number, got {other:?}"),
                )),
            }
        };
        let do_sample = match sub.scalar("do_sample")? {
            None => true,
            Some(_) => sub.bool("do_sample")?,
        };
        Ok(Some(RecommendedSampling {
            do_sample,
            temperature: float("temperature")?,
            top_p: match float("top_p")? {
                Some(v) => Some(v),
                None => float("topP")?,
            },
            top_k: match sub.usize("top_k")? {
                Some(v) => Some(v),
                None => sub.usize("topK")?,
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The layout ANEMLL 0.3.5's generate_meta_yaml.py writes for a chunked
    // Qwen 3 bundle (keys and value spellings as it formats them).
    const META_035: &str = "model_info:
  name: anemll-qwen3-tiny-ctx256
  version: 0.3.5
  description: |
    Demonstarates running qwen3-tiny on Apple Neural Engine
    Context length: 256
  license: MIT
  author: Anemll
  framework: Core ML
  language: Python
  architecture: qwen3
  parameters:
    context_length: 256
    batch_size: 64
    lut_embeddings: none
    lut_ffn: 4
    lut_lmhead: 6
    num_chunks: 2
    model_prefix: qwen
    embeddings: qwen_embeddings.mlmodelc
    lm_head: qwen_lm_head_lut6.mlmodelc
    ffn: qwen_FFN_PF_lut4_chunk_01of02.mlmodelc
    split_lm_head: 16
    argmax_in_model: true
    vocab_size: 1000
    lm_head_chunk_sizes: [63, 63, 63, 63, 63, 63, 63, 63, 62, 62, 62, 62, 62, 62, 62, 62]
    prefill_dynamic_slice: true
    recommended_sampling:
      do_sample: true
      temperature: 0.6
      top_p: 0.95
      top_k: 20
    some_future_key: [1, 2]

# Conversion Parameters (for troubleshooting)
# context_length: 256
";

    #[test]
    fn reads_every_key_of_a_035_meta() {
        let m = Meta::parse(META_035, "meta.yaml").unwrap();
        assert_eq!(m.version.as_deref(), Some("0.3.5"));
        assert_eq!(m.version_tuple(), Some((0, 3, 5)));
        assert_eq!(m.architecture.as_deref(), Some("qwen3"));
        assert_eq!(m.model_type, ModelType::Chunked);
        assert_eq!(
            (m.context_length, m.state_length, m.attention_size),
            (256, 256, 256)
        );
        assert_eq!((m.batch_size, m.num_chunks), (64, 2));
        assert_eq!(m.lut_embeddings, Lut::None);
        assert_eq!(m.lut_ffn, Lut::Bits(4));
        assert_eq!(m.lut_lmhead.suffix(), "_lut6");
        assert_eq!(m.model_prefix, "qwen");
        assert_eq!(
            m.ffn.as_deref(),
            Some("qwen_FFN_PF_lut4_chunk_01of02.mlmodelc")
        );
        assert_eq!(m.split_lm_head, Some(16));
        assert!(m.argmax_in_model && m.prefill_dynamic_slice && !m.update_mask_prefill);
        assert_eq!(m.lm_head_chunk_sizes.as_ref().map(|v| v.len()), Some(16));
        let s = m.recommended_sampling.unwrap();
        assert!(s.do_sample);
        assert_eq!(
            (s.temperature, s.top_p, s.top_k),
            (Some(0.6), Some(0.95), Some(20))
        );
    }

    #[test]
    fn legacy_num_logits_and_string_lists() {
        let text = "model_info:\n  version: 0.3.4\n  parameters:\n    context_length: 512\n    batch_size: 64\n    num_logits: 8\n    lm_head_chunk_sizes: \"10, 20\"\n    vocab_size: 30\n";
        let m = Meta::parse(text, "meta.yaml").unwrap();
        assert_eq!(m.split_lm_head, Some(8));
        assert_eq!(m.lm_head_chunk_sizes, Some(vec![10, 20]));
        assert_eq!(m.model_prefix, "llama");
        assert_eq!(m.version_tuple(), Some((0, 3, 4)));
    }

    #[test]
    fn errors_name_the_key() {
        let missing = "model_info:\n  parameters:\n    batch_size: 64\n";
        let e = Meta::parse(missing, "b/meta.yaml").unwrap_err().to_string();
        assert!(
            e.contains("b/meta.yaml") && e.contains("context_length"),
            "{e}"
        );
        let bad = "model_info:\n  parameters:\n    context_length: -3\n    batch_size: 64\n";
        let e = Meta::parse(bad, "meta.yaml").unwrap_err().to_string();
        assert!(e.contains("context_length"), "{e}");
        let lut = "model_info:\n  parameters:\n    context_length: 8\n    batch_size: 4\n    lut_ffn: banana\n";
        let e = Meta::parse(lut, "meta.yaml").unwrap_err().to_string();
        assert!(e.contains("lut_ffn"), "{e}");
        let sizes = "model_info:\n  parameters:\n    context_length: 8\n    batch_size: 4\n    vocab_size: 10\n    lm_head_chunk_sizes: [3, 3]\n";
        let e = Meta::parse(sizes, "meta.yaml").unwrap_err().to_string();
        assert!(e.contains("vocab_size"), "{e}");
        let e = Meta::parse("just text", "meta.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("meta.yaml"), "{e}");
    }
}
