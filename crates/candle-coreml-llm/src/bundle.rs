//! Loading a bundle: files, model parts (with progress on a terminal), the
//! checked engine configuration and the tokenizer.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use candle_coreml::{Backend, ComputePrecision, ComputeUnits, Model};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::{self, EngineConfig};
use crate::error::{Error, Result};
use crate::files::{BundleFiles, PartFiles};
use crate::meta::Meta;
use crate::parts::{Chunk, ModelPart, PartRef, Parts};

/// How to load a bundle's models.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Backend (Auto: Core ML on Apple platforms, portable elsewhere).
    pub backend: Backend,
    /// Device of the portable backend.
    pub device: Device,
    /// Compute units of the native backend.
    pub compute_units: ComputeUnits,
    /// Float precision of the portable backend.
    pub precision: ComputePrecision,
    /// Show a progress bar on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Sliding-window bundles: prefill whole windows through
    /// `prefill_rotate` past the window, as ANEMLL's own loop does (see
    /// [`EngineConfig::rotate_windows`]).
    pub rotate_windows: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            backend: Backend::Auto,
            device: Device::Cpu,
            compute_units: ComputeUnits::All,
            precision: ComputePrecision::default(),
            progress: true,
            rotate_windows: false,
        }
    }
}

/// Functions besides `infer`/`prefill` that sliding-window bundles carry.
const EXTRA_FUNCTIONS: [&str; 2] = ["infer_rotate", "prefill_rotate"];

struct Loader<'a> {
    opts: &'a LoadOptions,
    bar: ProgressBar,
}

impl Loader<'_> {
    fn model(&self, path: &Path, function: Option<&str>) -> Result<Model> {
        let name = path
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default();
        self.bar.set_message(name);
        let mut b = Model::builder()
            .backend(self.opts.backend)
            .device(self.opts.device.clone())
            .compute_units(self.opts.compute_units)
            .precision(self.opts.precision);
        if let Some(f) = function {
            b = b.function(f);
        }
        let m = b.load(path).map_err(|e| load_error(path, e))?;
        self.bar.inc(1);
        Ok(m)
    }

    fn part(&self, path: &Path) -> Result<PartRef> {
        Ok(Arc::new(ModelPart::new(self.model(path, None)?, path)))
    }

    /// `infer`, `prefill` and the rotate functions of one chunk. A
    /// split-rotate bundle gives a second file (meta.yaml's `pf`): ANEMLL
    /// 0.3.5 puts `infer_rotate` and `prefill_rotate` there and keeps `infer`
    /// and `prefill` in the main file; each function is taken from the first
    /// of the two files that has it.
    fn chunk(&self, path: &Path, second: Option<&Path>) -> Result<Chunk> {
        let infer = self.model(path, Some("infer"))?;
        let second = second
            .map(|p| Ok::<_, Error>((self.model(p, None)?, p)))
            .transpose()?;
        let files: Vec<(&Model, &Path)> = std::iter::once((&infer, path))
            .chain(second.as_ref().map(|(m, p)| (m, *p)))
            .collect();
        let function = |name: &str| -> Option<Result<PartRef>> {
            let (m, p) = files
                .iter()
                .find(|(m, _)| m.description().function(name).is_some())?;
            Some(
                m.with_function(name)
                    .map_err(|e| load_error(p, e))
                    .map(|f| Arc::new(ModelPart::new(f, p)) as PartRef),
            )
        };
        let prefill = match function("prefill") {
            Some(f) => f?,
            // No file has it: the main file's error names what it has.
            None => Arc::new(ModelPart::new(
                infer
                    .with_function("prefill")
                    .map_err(|e| load_error(path, e))?,
                path,
            )),
        };
        let mut extra = BTreeMap::new();
        for name in EXTRA_FUNCTIONS {
            if let Some(f) = function(name) {
                extra.insert(name.to_string(), f?);
            }
        }
        Ok(Chunk {
            infer: Arc::new(ModelPart::new(infer, path)),
            prefill,
            extra,
        })
    }
}

fn load_error(path: &Path, e: candle_coreml::Error) -> Error {
    match e {
        candle_coreml::Error::UnknownFunction { name, available } => Error::mismatch(
            path,
            format!("has no function {name:?} (it has {available:?}); an ANEMLL FFN part has infer and prefill"),
        ),
        other => Error::Model {
            part: path.display().to_string(),
            source: other,
        },
    }
}

/// Loads the model parts of `files`.
pub fn load_parts(files: &BundleFiles, opts: &LoadOptions) -> Result<Parts> {
    let n = match &files.parts {
        PartFiles::Chunked {
            chunks,
            prefill_chunks,
            ..
        } => 2 + chunks.len() + prefill_chunks.as_ref().map_or(0, Vec::len),
        PartFiles::Monolithic { .. } => 1,
    };
    let bar = if opts.progress && std::io::stderr().is_terminal() {
        let b = ProgressBar::with_draw_target(Some(n as u64), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("loading {bar:24} {pos}/{len} {msg}") {
            b.set_style(style);
        }
        b
    } else {
        ProgressBar::hidden()
    };
    let loader = Loader { opts, bar };
    let parts = match &files.parts {
        PartFiles::Chunked {
            embeddings,
            chunks,
            prefill_chunks,
            lm_head,
        } => {
            let embeddings = loader.part(embeddings)?;
            let chunks = chunks
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let pf = prefill_chunks.as_ref().map(|p| p[i].as_path());
                    loader.chunk(c, pf)
                })
                .collect::<Result<Vec<_>>>()?;
            let lm_head = loader.part(lm_head)?;
            Parts::Chunked {
                embeddings,
                chunks,
                lm_head,
            }
        }
        PartFiles::Monolithic { model } => {
            let c = loader.chunk(model, None)?;
            Parts::Monolithic {
                infer: c.infer,
                prefill: c.prefill,
                extra: c.extra,
            }
        }
    };
    loader.bar.finish_and_clear();
    Ok(parts)
}

/// A bundle's description: files, meta and checked configuration, with the
/// loaded parts.
///
/// ```
/// use candle_coreml_llm::{Bundle, LoadOptions};
///
/// let dir = "assets/demo-chat"; // the repository's demo bundle
/// # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/demo-chat");
/// let bundle = Bundle::load(dir, &LoadOptions::default())?;
/// let meta = bundle.meta();
/// println!("{:?}: context {}, prefill batch {}", meta.name, meta.context_length, meta.batch_size);
/// assert_eq!(bundle.config.context_length, meta.context_length);
/// println!("KV states: {:?}", bundle.config.state_names);
/// # Ok::<(), candle_coreml_llm::Error>(())
/// ```
#[derive(Clone)]
pub struct Bundle {
    /// Where everything is.
    pub files: BundleFiles,
    /// The loaded parts.
    pub parts: Parts,
    /// What the engine runs on.
    pub config: EngineConfig,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("dir", &self.files.dir)
            .field("config", &self.config)
            .finish()
    }
}

impl Bundle {
    /// Finds, loads and checks the bundle in `dir`.
    pub fn load(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Bundle> {
        let files = BundleFiles::discover(dir)?;
        let parts = load_parts(&files, opts)?;
        let mut bundle = Self::from_parts(files, parts)?;
        bundle.config.rotate_windows = opts.rotate_windows;
        Ok(bundle)
    }

    /// Checks already loaded (or wrapped) parts against the bundle's meta.
    pub fn from_parts(files: BundleFiles, parts: Parts) -> Result<Bundle> {
        let config = config::check(&files.meta, &parts)?;
        Ok(Bundle {
            files,
            parts,
            config,
        })
    }

    /// The bundle folder.
    pub fn dir(&self) -> &PathBuf {
        &self.files.dir
    }

    /// meta.yaml.
    pub fn meta(&self) -> &Meta {
        &self.files.meta
    }
}
