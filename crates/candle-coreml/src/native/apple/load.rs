//! Loading: compile `.mlpackage` / `.mlmodel` once into a cached
//! `.mlmodelc`, then `MLModel modelWithContentsOfURL:configuration:error:`.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use objc2::rc::Retained;
use objc2_core_ml::{MLComputeUnits, MLModel, MLModelConfiguration};
use objc2_foundation::NSURL;

use super::support::{has_macos15_apis, native_error, ns};
use crate::description::ModelDescription;
use crate::engine::resolve_function;
use crate::error::{Error, Result};
use crate::format;
use crate::options::{ComputeUnits, ModelOptions};

/// A loaded model and what we learnt on the way.
pub(super) struct Loaded {
    pub model: Retained<MLModel>,
    /// The function Core ML runs.
    pub function: String,
    /// The model's description as our own reader sees it (every function,
    /// declaration order, short descriptions), when it could be read.
    pub file_description: Option<ModelDescription>,
}

/// Name of the cache folder under the system temp dir.
const CACHE_FOLDER: &str = "candle-coreml-compiled";

/// Loads `path` with `options`.
pub(super) fn load(path: &Path, options: &ModelOptions) -> Result<Loaded> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    // Our reader tells the function names and their order; Core ML's own
    // description only covers the function it loads. A model our reader
    // cannot describe still loads: Core ML is the authority here.
    let file_description = format::describe(path).ok();
    let function = pick_function(options.function.as_deref(), file_description.as_ref())?;
    let multifunction = file_description
        .as_ref()
        .is_some_and(|d| d.functions.len() > 1);

    let compiled = if is_compiled(path, meta.is_dir()) {
        path.to_path_buf()
    } else {
        let cache = options
            .cache_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(CACHE_FOLDER));
        compile_cached(path, &cache)?
    };
    let config = configuration(options, &function, multifunction)?;
    let url = directory_url(&compiled)?;
    // SAFETY: `url` names a compiled model folder and `config` is a fully
    // initialised configuration; both outlive the call.
    let model = unsafe { MLModel::modelWithContentsOfURL_configuration_error(&url, &config) }
        .map_err(|e| native_error(&format!("{}: cannot load", path.display()), &e))?;
    Ok(Loaded {
        model,
        function,
        file_description,
    })
}

/// The function to run: resolved against the file's description when our
/// reader could read it; else the one asked for, or `main`.
fn pick_function(asked: Option<&str>, file: Option<&ModelDescription>) -> Result<String> {
    match file {
        Some(d) if !d.default_function.is_empty() || asked.is_some() => resolve_function(d, asked),
        _ => Ok(asked.unwrap_or("main").to_string()),
    }
}

/// True for a compiled model folder (`.mlmodelc`).
fn is_compiled(path: &Path, is_dir: bool) -> bool {
    is_dir
        && (path.extension().is_some_and(|e| e == "mlmodelc")
            || path.join("coremldata.bin").is_file()
            || path.join("model.mil").is_file())
}

/// `MLModelConfiguration` for `options`.
fn configuration(
    options: &ModelOptions,
    function: &str,
    multifunction: bool,
) -> Result<Retained<MLModelConfiguration>> {
    // SAFETY: `new` returns a fresh, default configuration.
    let config = unsafe { MLModelConfiguration::new() };
    // SAFETY: `compute_units` maps to one of the four values Core ML defines.
    unsafe { config.setComputeUnits(compute_units(options.compute_units)) };
    let name_it = multifunction || (options.function.is_some() && function != "main");
    if name_it {
        if !has_macos15_apis() {
            return Err(Error::BackendUnavailable {
                backend: "native",
                reason: format!(
                    "function {function:?}: multifunction models need macOS 15 / iOS 18 \
                     (MLModelConfiguration.functionName); use Backend::Portable on older systems"
                ),
            });
        }
        // SAFETY: functionName exists on macOS 15 / iOS 18 and later (checked above).
        unsafe { config.setFunctionName(Some(&*ns(function))) };
    }
    Ok(config)
}

/// Our compute units as Core ML's `MLComputeUnits`.
pub(super) fn compute_units(units: ComputeUnits) -> MLComputeUnits {
    match units {
        ComputeUnits::CpuOnly => MLComputeUnits::CPUOnly,
        ComputeUnits::CpuAndGpu => MLComputeUnits::CPUAndGPU,
        ComputeUnits::CpuAndNeuralEngine => MLComputeUnits::CPUAndNeuralEngine,
        ComputeUnits::All => MLComputeUnits::All,
    }
}

fn directory_url(path: &Path) -> Result<Retained<NSURL>> {
    let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    NSURL::from_directory_path(&abs)
        .ok_or_else(|| Error::format(path, "path cannot be expressed as a file URL"))
}

fn file_url(path: &Path) -> Result<Retained<NSURL>> {
    let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    let url = if abs.is_dir() {
        NSURL::from_directory_path(&abs)
    } else {
        NSURL::from_file_path(&abs)
    };
    url.ok_or_else(|| Error::format(path, "path cannot be expressed as a file URL"))
}

/// The cached compiled form of `path`, compiling it on a miss. The entry's
/// name holds a hash of the absolute path and of each file's size and
/// modification time, so an edited model is compiled again.
fn compile_cached(path: &Path, cache: &Path) -> Result<PathBuf> {
    let key = cache_key(path)?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    let stem: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let entry = cache.join(format!("{stem}-{key:016x}.mlmodelc"));
    if entry.join("coremldata.bin").is_file() {
        return Ok(entry);
    }
    std::fs::create_dir_all(cache).map_err(|e| Error::io(cache, e))?;
    let url = file_url(path)?;
    // SAFETY: `url` names an existing model file or package. The synchronous
    // compile call is deprecated in favour of a completion-handler form that
    // needs macOS 14.4; it still works everywhere and blocks until done.
    #[allow(deprecated)]
    let compiled = unsafe { MLModel::compileModelAtURL_error(&url) }
        .map_err(|e| native_error(&format!("{}: cannot compile", path.display()), &e))?;
    let tmp = compiled.to_file_path().ok_or_else(|| {
        Error::native(format!(
            "{}: compiled model has no file path",
            path.display()
        ))
    })?;
    // Move into place through a unique name, then rename: readers never see
    // a half-written entry, and a concurrent compile of the same model
    // simply loses the race.
    let staging = cache.join(format!(".{stem}-{key:016x}-{}.partial", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    move_dir(&tmp, &staging)?;
    match std::fs::rename(&staging, &entry) {
        Ok(()) => {}
        Err(_) if entry.join("coremldata.bin").is_file() => {
            let _ = std::fs::remove_dir_all(&staging);
        }
        Err(e) => return Err(Error::io(&entry, e)),
    }
    Ok(entry)
}

/// Renames `from` to `to`, copying when they lie on different volumes
/// (Core ML compiles into a temporary folder).
fn move_dir(from: &Path, to: &Path) -> Result<()> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    copy_dir(from, to)?;
    let _ = std::fs::remove_dir_all(from);
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let ty = entry.file_type().map_err(|e| Error::io(&src, e))?;
        if ty.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| Error::io(&src, e))?;
        }
    }
    Ok(())
}

/// FNV-1a (64 bit): a hash that stays the same across Rust releases, so the
/// cache survives a toolchain update.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Hash of the absolute path and, for every file of the model (one file, or
/// each file of a package folder, in sorted order), its relative path, size
/// and modification time.
fn cache_key(path: &Path) -> Result<u64> {
    let abs = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
    let mut h = Fnv::new();
    h.write(abs.to_string_lossy().as_bytes());
    let mut files = Vec::new();
    list_files(&abs, &abs, &mut files, 0)?;
    files.sort();
    for rel in files {
        let full = abs.join(&rel);
        let meta = std::fs::metadata(&full).map_err(|e| Error::io(&full, e))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        h.write(rel.to_string_lossy().as_bytes());
        h.write(&meta.len().to_le_bytes());
        h.write(&mtime.to_le_bytes());
    }
    Ok(h.0)
}

/// Files under `dir` (or `dir` itself when it is a file), relative to `root`.
fn list_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<()> {
    if !dir.is_dir() {
        out.push(
            dir.strip_prefix(root)
                .unwrap_or(Path::new(""))
                .to_path_buf(),
        );
        return Ok(());
    }
    if depth > 16 {
        return Err(Error::format(dir, "model folder nested too deeply"));
    }
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        list_files(root, &entry.path(), out, depth + 1)?;
    }
    Ok(())
}
