//! Op conformance suite of the portable backend, one test per case.
//!
//! Every case under `tests/fixtures/conformance/<op>/<case>/` holds a tiny ML
//! program (`model.mlpackage`), its inputs and the outputs numpy/torch expect
//! (`case.npz`, arrays named `input:<name>` and `output:<name>`), and its
//! tolerances (`case.json`). The cases come from `tools/gen_conformance.py`.
//! NeuralNetwork cases (`tests/fixtures/conformance_nn/<layerType>/<case>/`,
//! a `model.mlmodel` each, from `tools/gen_conformance_neuralnetwork.py`) are
//! tagged `nn/<layerType>/<case>` in the manifest.
//!
//! This is a `harness = false` test ([libtest_mimic]): each case is its own
//! trial named `<op>::<case>` (`nn::<layerType>::<case>` for NeuralNetwork
//! layers), so `cargo test --test conformance -- abs::` runs the `abs` cases,
//! `-- nn::` the NeuralNetwork ones, and `-- --list` lists them all.
//!
//! `tests/conformance_manifest.txt` lists every case as `pass`, `fail` or
//! `skip`. A `pass` case must pass; a `fail` case must still fail (kind
//! `xfail`; one that now passes is an error asking to update the manifest);
//! a `skip` case is ignored. A case on disk missing from the manifest fails,
//! and so does a manifest entry with no case on disk. Run with
//! `CONFORMANCE_WRITE_MANIFEST=1` to rewrite the manifest from the results.
//!
//! The trial `coverage::readme_is_current` counts the MIL op names and the
//! NeuralNetwork layer types with a passing case and checks the README's
//! coverage lines (between the `conformance:` marker comments); run with
//! `UPDATE_README=1` to rewrite them.

mod conformance_support;
mod torch_common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use conformance_support::{
    all_layers, all_ops, find_cases, read_manifest, run_guarded, write_manifest, Case, Status,
};
use libtest_mimic::{Arguments, Failed, Trial};

fn main() -> ExitCode {
    let args = Arguments::from_args();
    match trials() {
        Ok(trials) => libtest_mimic::run(&args, trials).exit_code(),
        Err(e) => {
            eprintln!("conformance: cannot set up the suite: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One trial per case on disk, plus the manifest and README checks.
fn trials() -> anyhow::Result<Vec<Trial>> {
    let manifest = read_manifest()?;
    let cases = find_cases()?;
    if std::env::var_os("CONFORMANCE_WRITE_MANIFEST").is_some() {
        let results: Vec<_> = cases
            .iter()
            .map(|c| (c.tag.clone(), run_guarded(c)))
            .collect();
        write_manifest(&manifest, &results)?;
        println!("conformance: manifest rewritten");
        return trials_after_rewrite();
    }
    let on_disk: BTreeSet<String> = cases.iter().map(|c| c.tag.clone()).collect();
    let stale: Vec<String> = manifest
        .keys()
        .filter(|t| !on_disk.contains(*t))
        .cloned()
        .collect();
    let mut trials: Vec<Trial> = cases
        .into_iter()
        .map(|case| {
            let status = manifest.get(&case.tag).map(|(s, _)| *s);
            case_trial(case, status)
        })
        .collect();
    trials.push(Trial::test("manifest::every_entry_is_on_disk", move || {
        if stale.is_empty() {
            Ok(())
        } else {
            Err(format!("the manifest lists cases not on disk: {}", stale.join(", ")).into())
        }
    }));
    trials.push(Trial::test(
        "coverage::readme_is_current",
        readme_is_current,
    ));
    Ok(trials)
}

/// The trials once more after the manifest was rewritten from the results.
fn trials_after_rewrite() -> anyhow::Result<Vec<Trial>> {
    let manifest = read_manifest()?;
    Ok(find_cases()?
        .into_iter()
        .map(|case| {
            let status = manifest.get(&case.tag).map(|(s, _)| *s);
            case_trial(case, status)
        })
        .collect())
}

/// The trial of one case, judged by its manifest status.
fn case_trial(case: Case, status: Option<Status>) -> Trial {
    // `abs/basic` -> `abs::basic`, `nn/add/alpha` -> `nn::add::alpha`.
    let name = if case.tag.starts_with("nn/") {
        case.tag.replacen('/', "::", 2)
    } else {
        case.tag.replacen('/', "::", 1)
    };
    let trial = Trial::test(name, move || match status {
        None => {
            let how = match run_guarded(&case) {
                Ok(()) => "it passes".to_string(),
                Err(e) => e,
            };
            Err(format!("not in tests/conformance_manifest.txt ({how})").into())
        }
        Some(Status::Pass) => run_guarded(&case).map_err(Failed::from),
        Some(Status::Fail) => match run_guarded(&case) {
            Ok(()) => Err("listed as `fail` but passes: mark it `pass` in the manifest".into()),
            Err(_) => Ok(()),
        },
        Some(Status::Skip) => Ok(()),
    });
    match status {
        Some(Status::Fail) => trial.with_kind("xfail"),
        Some(Status::Skip) => trial.with_ignored_flag(true),
        _ => trial,
    }
}

/// The README at the workspace root.
fn readme_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")
}

/// What the cases cover: MIL op names and NeuralNetwork layer types with a
/// passing case.
struct Coverage {
    ops: BTreeSet<String>,
    layers: BTreeSet<String>,
}

/// Runs every case and collects what passes.
fn coverage() -> anyhow::Result<Coverage> {
    let mut cov = Coverage {
        ops: BTreeSet::new(),
        layers: BTreeSet::new(),
    };
    for case in find_cases()? {
        if run_guarded(&case).is_err() {
            continue;
        }
        let (set, rest) = match case.tag.strip_prefix("nn/") {
            Some(rest) => (&mut cov.layers, rest),
            None => (&mut cov.ops, case.tag.as_str()),
        };
        set.insert(rest.split('/').next().unwrap_or_default().to_string());
    }
    if !cov.ops.is_empty() {
        // Every case program is made of `const` ops besides the op under test.
        cov.ops.insert("const".to_string());
    }
    Ok(cov)
}

/// `all` split into the names in `covered` and the others, in order.
fn split<'a>(
    all: &'a BTreeSet<String>,
    covered: &BTreeSet<String>,
) -> (Vec<&'a str>, Vec<&'a str>) {
    all.iter()
        .map(String::as_str)
        .partition(|n| covered.contains(*n))
}

/// Why a NeuralNetwork layer type has no passing case.
fn layer_gap(layer: &str) -> &'static str {
    match layer {
        "custom" => {
            "custom layers run code of the model's author, which a model file does not hold"
        }
        _ => "no passing conformance case yet",
    }
}

/// The README's coverage sections: (marker, body) pairs.
fn readme_sections(cov: &Coverage) -> anyhow::Result<Vec<(&'static str, String)>> {
    let (ops, layers) = (all_ops()?, all_layers()?);
    let (have, missing) = split(&ops, &cov.ops);
    let op_list = format!(
        "\nMIL op names with a passing conformance case ({}): {}.\n\nWithout one ({}): {}.\n",
        have.len(),
        have.join(", "),
        missing.len(),
        missing.join(", ")
    );
    let op_count = format!("{} of the {}", have.len(), ops.len());
    let (have_nn, missing_nn) = split(&layers, &cov.layers);
    let code = |v: &[&str]| {
        v.iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut nn_list = format!(
        "\nNeuralNetwork layer types with a passing conformance case ({}): {}.\n",
        have_nn.len(),
        code(&have_nn)
    );
    if !missing_nn.is_empty() {
        nn_list.push_str(&format!("\nWithout one ({}):\n", missing_nn.len()));
        for l in &missing_nn {
            nn_list.push_str(&format!("- `{l}`: {}\n", layer_gap(l)));
        }
    }
    let nn_count = format!("{} of the {}", have_nn.len(), layers.len());
    Ok(vec![
        ("conformance:count", op_count),
        ("conformance:ops", op_list),
        ("conformance:nn-count", nn_count),
        ("conformance:nn-layers", nn_list),
    ])
}

/// Runs every case, counts the MIL op names and NeuralNetwork layer types
/// with a passing case, and checks (or, with `UPDATE_README=1`, rewrites) the
/// README's coverage lines.
fn readme_is_current() -> Result<(), Failed> {
    let cov = coverage().map_err(|e| format!("{e:#}"))?;
    let sections = readme_sections(&cov).map_err(|e| format!("{e:#}"))?;
    let path = readme_path();
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut updated = text.clone();
    for (marker, body) in &sections {
        updated = replace_between(&updated, marker, body).map_err(Failed::from)?;
    }
    let counts = format!(
        "{} MIL op names, {} NeuralNetwork layer types",
        sections[0].1, sections[2].1
    );
    if updated == text {
        return Ok(());
    }
    if std::env::var_os("UPDATE_README").is_some() {
        std::fs::write(&path, updated).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("conformance: README coverage rewritten ({counts})");
        return Ok(());
    }
    Err(format!(
        "README.md's coverage is stale: {counts} have a passing case; \
         rerun with UPDATE_README=1 to rewrite it"
    )
    .into())
}

/// `text` with what lies between `<!-- {marker} -->` and `<!-- /{marker} -->`
/// replaced by `body`.
fn replace_between(text: &str, marker: &str, body: &str) -> Result<String, String> {
    let (open, close) = (format!("<!-- {marker} -->"), format!("<!-- /{marker} -->"));
    let start = text
        .find(&open)
        .ok_or_else(|| format!("README.md has no {open} marker"))?
        + open.len();
    let end = text[start..]
        .find(&close)
        .ok_or_else(|| format!("README.md has no {close} marker"))?
        + start;
    Ok(format!("{}{body}{}", &text[..start], &text[end..]))
}
