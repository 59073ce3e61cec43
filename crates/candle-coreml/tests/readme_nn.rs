//! The README's NeuralNetwork layer coverage (between the `nn-layers`
//! markers) is generated from the conformance manifest: a layer type is
//! covered when one of its `nn/<layerType>/<case>` cases is listed `pass`
//! (the conformance test makes those pass). This test fails when the README
//! is stale; `UPDATE_README=1` rewrites the section.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Why a layer type has no passing case.
fn reason(layer: &str) -> &'static str {
    match layer {
        "custom" => {
            "custom layers run code of the model's author, which a model file does not hold"
        }
        _ => "no passing conformance case yet",
    }
}

/// The generated section (without the marker lines).
fn render() -> String {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let manifest =
        std::fs::read_to_string(base.join("conformance_manifest.txt")).expect("manifest");
    let all: BTreeSet<String> =
        std::fs::read_to_string(base.join("fixtures/conformance_nn/all_layers.txt"))
            .expect("all_layers.txt")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
    let mut covered = BTreeSet::new();
    for line in manifest.lines() {
        let mut it = line.split('#').next().unwrap_or("").split_whitespace();
        if let (Some(tag), Some("pass")) = (it.next(), it.next()) {
            if let Some(layer) = tag.strip_prefix("nn/").and_then(|t| t.split('/').next()) {
                covered.insert(layer.to_string());
            }
        }
    }
    let code = |v: Vec<&String>| {
        v.iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let yes: Vec<&String> = all.iter().filter(|l| covered.contains(*l)).collect();
    let no: Vec<&String> = all.iter().filter(|l| !covered.contains(*l)).collect();
    let mut text = format!(
        "**{} of {}** NeuralNetwork layer types pass conformance cases \
         (`cargo test -p candle-coreml --test conformance -- --nocapture` prints the count): {}.\n",
        yes.len(),
        all.len(),
        code(yes)
    );
    if !no.is_empty() {
        text.push_str("\nWithout a passing case:\n");
        for l in no {
            text.push_str(&format!("- `{l}`: {}\n", reason(l)));
        }
    }
    text
}

#[test]
fn readme_lists_the_covered_neural_network_layers() {
    let path = repo().join("README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let begin = readme
        .find("<!-- nn-layers:begin")
        .expect("nn-layers:begin marker");
    let body_start = begin
        + readme[begin..]
            .find("-->")
            .expect("end of the begin marker")
        + 3;
    let end = readme
        .find("<!-- nn-layers:end -->")
        .expect("nn-layers:end marker");
    let want = format!("\n{}", render());
    if readme[body_start..end] == want {
        return;
    }
    if std::env::var_os("UPDATE_README").is_some() {
        let updated = format!("{}{}{}", &readme[..body_start], want, &readme[end..]);
        std::fs::write(&path, updated).expect("write README.md");
        return;
    }
    panic!(
        "README.md's NeuralNetwork layer section is stale; run \
         `UPDATE_README=1 cargo test -p candle-coreml --test readme_nn`. It should read:\n{want}"
    );
}
