//! Finding a bundle's files: meta.yaml, the model parts, the tokenizer.
//!
//! meta.yaml names `.mlmodelc` files; a bundle converted on Linux holds
//! `.mlpackage`s under the same stems, so either extension is accepted.
//! 0.3.4 writes `ffn` without the chunk suffix: chunks are then found by
//! their `_chunk_NNofMM` names.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::meta::{Meta, ModelType};

/// Extensions a model part may have, in order of preference.
pub const MODEL_EXTENSIONS: [&str; 2] = ["mlmodelc", "mlpackage"];

/// Where each model file of a bundle is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartFiles {
    /// Embeddings, FFN chunks (in order) and LM head.
    Chunked {
        /// `{prefix}_embeddings[_lutN]`.
        embeddings: PathBuf,
        /// `{prefix}_FFN_PF[_lutN]_chunk_NNofMM`, chunk 1 first.
        chunks: Vec<PathBuf>,
        /// Second files of split-rotate bundles (meta.yaml's `pf`, holding
        /// the rotate functions in ANEMLL 0.3.5), chunk 1 first.
        prefill_chunks: Option<Vec<PathBuf>>,
        /// `{prefix}_lm_head[_lutN]`.
        lm_head: PathBuf,
    },
    /// One file from token ids to logits.
    Monolithic {
        /// The model file.
        model: PathBuf,
    },
}

/// A bundle folder's files, found and checked to exist.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleFiles {
    /// The bundle folder.
    pub dir: PathBuf,
    /// Its meta.yaml.
    pub meta: Meta,
    /// The model parts.
    pub parts: PartFiles,
    /// Folder with tokenizer.json and tokenizer_config.json.
    pub tokenizer_dir: PathBuf,
}

impl BundleFiles {
    /// Reads `dir/meta.yaml` and finds every file it implies.
    pub fn discover(dir: impl AsRef<Path>) -> Result<BundleFiles> {
        let dir = dir.as_ref().to_path_buf();
        let meta_path = dir.join("meta.yaml");
        if !meta_path.is_file() {
            return Err(Error::MissingFile {
                what: "bundle meta.yaml".into(),
                tried: vec![meta_path],
            });
        }
        let meta = Meta::load(&meta_path)?;
        let parts = match meta.model_type {
            ModelType::Monolithic => {
                let name = meta.monolithic_model.clone().unwrap_or_else(|| {
                    format!(
                        "{}_monolithic_full{}",
                        meta.model_prefix,
                        meta.lut_bits.suffix()
                    )
                });
                PartFiles::Monolithic {
                    model: find_model(&dir, &name, "monolithic model")?,
                }
            }
            ModelType::Chunked => chunked_files(&dir, &meta)?,
        };
        let tokenizer_dir = match &meta.tokenizer_path {
            Some(p) if dir.join(p).join("tokenizer.json").is_file() => dir.join(p),
            _ => dir.clone(),
        };
        Ok(BundleFiles {
            dir,
            meta,
            parts,
            tokenizer_dir,
        })
    }

    /// Every model file, in load order.
    pub fn model_paths(&self) -> Vec<&Path> {
        match &self.parts {
            PartFiles::Chunked {
                embeddings,
                chunks,
                prefill_chunks,
                lm_head,
            } => {
                let mut v: Vec<&Path> = vec![embeddings];
                v.extend(chunks.iter().map(PathBuf::as_path));
                if let Some(pf) = prefill_chunks {
                    v.extend(pf.iter().map(PathBuf::as_path));
                }
                v.push(lm_head);
                v
            }
            PartFiles::Monolithic { model } => vec![model],
        }
    }
}

fn chunked_files(dir: &Path, meta: &Meta) -> Result<PartFiles> {
    let p = &meta.model_prefix;
    let embeddings = match &meta.embeddings {
        Some(name) => find_model(dir, name, "embeddings")?,
        None => {
            let with_lut = format!("{p}_embeddings{}", meta.lut_embeddings.suffix());
            find_model(dir, &with_lut, "embeddings").or_else(|e| {
                find_model(dir, &format!("{p}_embeddings"), "embeddings").map_err(|_| e)
            })?
        }
    };
    let lm_head = match &meta.lm_head {
        Some(name) => find_model(dir, name, "LM head")?,
        None => find_model(
            dir,
            &format!("{p}_lm_head{}", meta.lut_lmhead.suffix()),
            "LM head",
        )?,
    };
    let ffn_name = meta
        .ffn
        .clone()
        .unwrap_or_else(|| format!("{p}_FFN_PF{}", meta.lut_ffn.suffix()));
    let chunks = find_chunks(dir, &ffn_name, meta.num_chunks, "FFN", &meta.path)?;
    let prefill_chunks = match (&meta.pf, meta.split_rotate) {
        (Some(pf), true) => Some(find_chunks(
            dir,
            pf,
            meta.num_chunks,
            "prefill",
            &meta.path,
        )?),
        _ => None,
    };
    Ok(PartFiles::Chunked {
        embeddings,
        chunks,
        prefill_chunks,
        lm_head,
    })
}

/// `name` without a model extension.
fn stem(name: &str) -> &str {
    MODEL_EXTENSIONS
        .iter()
        .find_map(|e| name.strip_suffix(&format!(".{e}")[..]))
        .unwrap_or(name)
}

/// Finds `dir/name` with either model extension.
pub fn find_model(dir: &Path, name: &str, what: &str) -> Result<PathBuf> {
    let s = stem(name);
    let tried: Vec<PathBuf> = MODEL_EXTENSIONS
        .iter()
        .map(|e| dir.join(format!("{s}.{e}")))
        .collect();
    tried
        .iter()
        .find(|p| p.exists())
        .cloned()
        .ok_or_else(|| Error::MissingFile {
            what: what.to_string(),
            tried,
        })
}

/// Splits `base_chunk_NNofMM` into (base, NN, MM).
fn parse_chunk_name(s: &str) -> Option<(&str, usize, usize)> {
    let i = s.rfind("_chunk_")?;
    let (base, rest) = (&s[..i], &s[i + "_chunk_".len()..]);
    let (a, b) = rest.split_once("of")?;
    // A split-rotate FFN name may carry a suffix after the count (`_combined`, `_rot`).
    let digits = b.find(|c: char| !c.is_ascii_digit()).unwrap_or(b.len());
    if digits != b.len() {
        return None;
    }
    Some((base, a.parse().ok()?, b.parse().ok()?))
}

fn find_chunks(
    dir: &Path,
    name: &str,
    num_chunks: usize,
    what: &str,
    meta_path: &Path,
) -> Result<Vec<PathBuf>> {
    let s = stem(name);
    let base = match parse_chunk_name(s) {
        Some((base, _, total)) => {
            if total != num_chunks {
                return Err(Error::mismatch(
                    meta_path,
                    format!("{what} file {name} says {total} chunks, num_chunks is {num_chunks}"),
                ));
            }
            base.to_string()
        }
        None => {
            // 0.3.4 names the FFN without its chunk suffix; a one-chunk
            // bundle may also hold the plain file.
            if num_chunks == 1 && find_model(dir, s, what).is_ok() && !chunk_exists(dir, s, 1, 1) {
                return Ok(vec![find_model(dir, s, what)?]);
            }
            s.to_string()
        }
    };
    check_no_other_chunk_count(dir, &base, num_chunks, what, meta_path)?;
    (1..=num_chunks)
        .map(|i| {
            let n = format!("{base}_chunk_{i:02}of{num_chunks:02}");
            find_model(dir, &n, &format!("{what} chunk {i} of {num_chunks}"))
        })
        .collect()
}

fn chunk_exists(dir: &Path, base: &str, i: usize, n: usize) -> bool {
    find_model(dir, &format!("{base}_chunk_{i:02}of{n:02}"), "").is_ok()
}

/// A folder holding `base_chunk_01of03` while meta.yaml says 2 chunks is a
/// mismatch worth naming, rather than "chunk 2 of 2 missing".
fn check_no_other_chunk_count(
    dir: &Path,
    base: &str,
    num_chunks: usize,
    what: &str,
    meta_path: &Path,
) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let s = stem(&name);
        if s.len() == name.len() {
            continue;
        }
        if let Some((b, _, total)) = parse_chunk_name(s) {
            if b == base && total != num_chunks && !chunk_exists(dir, base, 1, num_chunks) {
                return Err(Error::mismatch(
                    meta_path,
                    format!(
                        "meta.yaml says num_chunks: {num_chunks}, but the folder holds {what} file {name} (of {total})"
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_names() {
        assert_eq!(
            parse_chunk_name("qwen_FFN_PF_lut4_chunk_02of03"),
            Some(("qwen_FFN_PF_lut4", 2, 3))
        );
        assert_eq!(parse_chunk_name("qwen_FFN_PF_lut4"), None);
        assert_eq!(stem("a.mlmodelc"), "a");
        assert_eq!(stem("a.mlpackage"), "a");
        assert_eq!(stem("a"), "a");
    }
}
