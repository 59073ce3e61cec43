//! Op conformance suite of the portable backend, one test per case.
//!
//! Every case under `tests/fixtures/conformance/<op>/<case>/` holds a tiny ML
//! program (`model.mlpackage`), its inputs and the outputs numpy/torch expect
//! (`case.npz`, arrays named `input:<name>` and `output:<name>`), and its
//! tolerances (`case.json`). The cases come from `tools/gen_conformance.py`.
//!
//! This is a `harness = false` test ([libtest_mimic]): each case is its own
//! trial named `<op>::<case>`, so `cargo test --test conformance -- abs::`
//! runs the `abs` cases and `-- --list` lists them all.
//!
//! `tests/conformance_manifest.txt` lists every case as `pass`, `fail` or
//! `skip`. A `pass` case must pass; a `fail` case must still fail (kind
//! `xfail`; one that now passes is an error asking to update the manifest);
//! a `skip` case is ignored. A case on disk missing from the manifest fails,
//! and so does a manifest entry with no case on disk. Run with
//! `CONFORMANCE_WRITE_MANIFEST=1` to rewrite the manifest from the results.
//!
//! The trial `coverage::readme_is_current` counts the MIL op names with a
//! passing case and checks the README's coverage lines (between the
//! `conformance:` marker comments); run with `UPDATE_README=1` to rewrite
//! them.

mod conformance_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use conformance_support::{
    all_ops, find_cases, read_manifest, run_guarded, write_manifest, Case, Status,
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
    let name = case.tag.replacen('/', "::", 1);
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

/// Runs every case, counts the MIL op names with a passing case, and checks
/// (or, with `UPDATE_README=1`, rewrites) the README's coverage lines.
fn readme_is_current() -> Result<(), Failed> {
    let ops = all_ops().map_err(|e| format!("{e:#}"))?;
    let cases = find_cases().map_err(|e| format!("{e:#}"))?;
    let mut covered = BTreeSet::new();
    for case in &cases {
        if run_guarded(case).is_ok() {
            covered.insert(case.tag.split('/').next().unwrap_or_default().to_string());
        }
    }
    if !covered.is_empty() {
        // Every case program is made of `const` ops besides the op under test.
        covered.insert("const".to_string());
    }
    let have: Vec<&str> = ops
        .iter()
        .filter(|o| covered.contains(*o))
        .map(String::as_str)
        .collect();
    let missing: Vec<&str> = ops
        .iter()
        .filter(|o| !covered.contains(*o))
        .map(String::as_str)
        .collect();
    let count = format!("{} of the {}", have.len(), ops.len());
    let list = format!(
        "\nMIL op names with a passing conformance case ({}): {}.\n\nWithout one ({}): {}.\n",
        have.len(),
        have.join(", "),
        missing.len(),
        missing.join(", ")
    );
    let path = readme_path();
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let updated = replace_between(&text, "conformance:count", &count)
        .and_then(|t| replace_between(&t, "conformance:ops", &list))
        .map_err(Failed::from)?;
    if updated == text {
        return Ok(());
    }
    if std::env::var_os("UPDATE_README").is_some() {
        std::fs::write(&path, updated).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("conformance: README coverage rewritten ({count} MIL op names)");
        return Ok(());
    }
    Err(format!(
        "README.md's op coverage is stale: {count} MIL op names have a passing case; \
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
