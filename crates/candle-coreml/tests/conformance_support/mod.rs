//! Case discovery, running and the manifest of the conformance suite
//! (shared by the per-case trials and the coverage check).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use candle_coreml::{Backend, Model};

/// Where the cases live.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conformance")
}

/// Where the NeuralNetwork cases live (tags `nn/<layerType>/<case>`).
pub fn root_nn() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conformance_nn")
}

/// The manifest file.
pub fn manifest_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance_manifest.txt")
}

/// What the manifest says about a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

/// Tolerances and metadata of one case (`case.json`).
#[derive(Debug, serde::Deserialize)]
struct CaseMeta {
    op: String,
    case: String,
    rtol: f64,
    atol: f64,
    #[allow(dead_code)]
    dtype: String,
    /// How outputs are judged: absent for allclose, `"shape_only"` for ops
    /// whose values cannot match a reference (random ops: checked by shape).
    #[serde(default)]
    check: Option<String>,
}

/// One case found on disk.
pub struct Case {
    pub tag: String,
    pub dir: PathBuf,
}

/// Reads the manifest: tag -> (status, the whole line).
pub fn read_manifest() -> anyhow::Result<BTreeMap<String, (Status, String)>> {
    let text = std::fs::read_to_string(manifest_path())?;
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let body = line.split('#').next().unwrap_or("").trim();
        if body.is_empty() {
            continue;
        }
        let mut it = body.split_whitespace();
        let (Some(tag), Some(status)) = (it.next(), it.next()) else {
            anyhow::bail!(
                "manifest line {}: expected `<op>/<case> pass|fail|skip`: {line:?}",
                n + 1
            );
        };
        let status = match status {
            "pass" => Status::Pass,
            "fail" => Status::Fail,
            "skip" => Status::Skip,
            s => anyhow::bail!("manifest line {}: unknown status {s:?}", n + 1),
        };
        out.insert(tag.to_string(), (status, line.to_string()));
    }
    Ok(out)
}

/// Every case on disk, sorted by tag: the `<op>/<case>` directories of MIL
/// ops and the `nn/<layerType>/<case>` directories of NeuralNetwork layers.
pub fn find_cases() -> anyhow::Result<Vec<Case>> {
    let mut cases = find_cases_in(&root(), "")?;
    cases.extend(find_cases_in(&root_nn(), "nn/")?);
    cases.sort_by(|a, b| a.tag.cmp(&b.tag));
    Ok(cases)
}

/// The `<op>/<case>` directories under `root` holding a `case.json`, tagged
/// with `prefix`.
fn find_cases_in(root: &Path, prefix: &str) -> anyhow::Result<Vec<Case>> {
    let mut cases = Vec::new();
    for op in std::fs::read_dir(root)? {
        let op = op?.path();
        if !op.is_dir() {
            continue;
        }
        for case in std::fs::read_dir(&op)? {
            let dir = case?.path();
            if dir.join("case.json").is_file() {
                let name = |p: &Path| {
                    p.file_name()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default()
                };
                cases.push(Case {
                    tag: format!("{prefix}{}/{}", name(&op), name(&dir)),
                    dir,
                });
            }
        }
    }
    Ok(cases)
}

/// A tensor's values as f64, row-major.
fn values(t: &Tensor) -> anyhow::Result<Vec<f64>> {
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}

/// Compares `got` with `want` (allclose: |a-b| <= atol + rtol*|b|, NaNs equal).
/// Returns an error naming the output and the largest error.
fn compare(name: &str, got: &Tensor, want: &Tensor, rtol: f64, atol: f64) -> anyhow::Result<()> {
    if got.dims() != want.dims() {
        anyhow::bail!(
            "output {name}: shape {:?}, expected {:?}",
            got.dims(),
            want.dims()
        );
    }
    let (g, w) = (values(got)?, values(want)?);
    let mut worst: Option<(usize, f64)> = None;
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= atol + rtol * b.abs();
        if !ok {
            let err = if (a - b).is_nan() {
                f64::INFINITY
            } else {
                (a - b).abs()
            };
            if worst.is_none_or(|(_, e)| err > e) {
                worst = Some((i, err));
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((i, err)) => anyhow::bail!(
            "output {name}: max error {err:.3e} at flat index {i} (got {}, expected {})",
            g[i],
            w[i]
        ),
    }
}

/// Runs one case; `Err` holds a one-line reason.
fn run_case(case: &Case) -> anyhow::Result<()> {
    let meta: CaseMeta =
        serde_json::from_str(&std::fs::read_to_string(case.dir.join("case.json"))?)?;
    anyhow::ensure!(
        format!("{}/{}", meta.op, meta.case) == case.tag,
        "case.json names {}/{}",
        meta.op,
        meta.case
    );
    let arrays = Tensor::read_npz(case.dir.join("case.npz"))?;
    let mut inputs = Vec::new();
    let mut expected = Vec::new();
    for (name, t) in arrays {
        if let Some(n) = name.strip_prefix("input:") {
            inputs.push((n.to_string(), t));
        } else if let Some(n) = name.strip_prefix("output:") {
            expected.push((n.to_string(), t));
        }
    }
    // MIL cases hold an ML program package, NeuralNetwork cases a .mlmodel.
    let file = ["model.mlpackage", "model.mlmodel"]
        .iter()
        .map(|f| case.dir.join(f))
        .find(|p| p.exists())
        .ok_or_else(|| anyhow::anyhow!("no model.mlpackage or model.mlmodel"))?;
    let model = Model::builder()
        .backend(Backend::Portable)
        .device(crate::torch_common::test_device())
        .load(file)?;
    let mut outputs = model.predict(inputs.iter().map(|(n, t)| (n.as_str(), t)))?;
    for (name, want) in &expected {
        let got = outputs
            .remove(name)
            .ok_or_else(|| anyhow::anyhow!("output {name} missing"))?;
        match meta.check.as_deref() {
            None => compare(name, &got, want, meta.rtol, meta.atol)?,
            Some("shape_only") => anyhow::ensure!(
                got.dims() == want.dims(),
                "output {name}: shape {:?}, expected {:?}",
                got.dims(),
                want.dims()
            ),
            Some(c) => anyhow::bail!("unknown check {c:?} in case.json"),
        }
    }
    Ok(())
}

/// Runs a case, turning a panic into an error.
pub fn run_guarded(case: &Case) -> Result<(), String> {
    match catch_unwind(AssertUnwindSafe(|| run_case(case))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(one_line(&format!("{e:#}"))),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(one_line(&format!("panic: {msg}")))
        }
    }
}

/// `s` on one line, at most 200 characters.
fn one_line(s: &str) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

/// The MIL op names of the iOS15-iOS18 opsets (written by the generator).
pub fn all_ops() -> anyhow::Result<BTreeSet<String>> {
    names_in(&root().join("all_ops.txt"))
}

/// The NeuralNetwork layer types of NeuralNetwork.proto (written by the
/// NeuralNetwork generator).
pub fn all_layers() -> anyhow::Result<BTreeSet<String>> {
    names_in(&root_nn().join("all_layers.txt"))
}

/// The non-empty lines of a list file, trimmed.
fn names_in(path: &Path) -> anyhow::Result<BTreeSet<String>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// Rewrites the manifest from the results, keeping `skip` entries.
pub fn write_manifest(
    manifest: &BTreeMap<String, (Status, String)>,
    results: &[(String, Result<(), String>)],
) -> anyhow::Result<()> {
    let old = std::fs::read_to_string(manifest_path())?;
    let mut text: String = old
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    for (tag, res) in results {
        match (manifest.get(tag), res) {
            (Some((Status::Skip, line)), _) => writeln!(text, "{line}")?,
            (_, Ok(())) => writeln!(text, "{tag} pass")?,
            (_, Err(e)) => writeln!(text, "{tag} fail  # {}", e.replace('#', "No."))?,
        }
    }
    std::fs::write(manifest_path(), text)?;
    Ok(())
}
