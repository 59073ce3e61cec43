//! Which ops the rewrite fuses in the torch-converted fixtures (their
//! results against torch are checked by tests/models.rs, which runs the
//! fused programs).

use super::*;
use crate::portable::fuse::fuse_state_updates;

fn fused(rel: &str) -> (Vec<String>, Vec<String>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    let file = crate::format::open(path).unwrap();
    let f = &file.program().unwrap().functions[0];
    let ops = fuse_conv_epilogues(fuse_state_updates(&f.block), &f.block.outputs);
    let types = ops.iter().map(|o| o.op_type.clone()).collect();
    let epilogues = ops
        .iter()
        .filter_map(|o| o.attribute(EPILOGUE_ATTR)?.as_str().map(str::to_string))
        .collect();
    (types, epilogues)
}

#[test]
fn resnet_fuses_relu_and_residual_add() {
    let (types, epi) = fused("torch/resnet_fp32.mlpackage");
    assert!(!types.iter().any(|t| t == "relu"), "{types:?}");
    assert!(!types.iter().any(|t| t == "add"), "{types:?}");
    assert!(epi.iter().any(|e| e == "add;relu"), "{epi:?}");
    assert!(epi.iter().any(|e| e == "relu"), "{epi:?}");
}

#[test]
fn mobilenet_fuses_its_activations() {
    let (types, epi) = fused("torch/mobilenet_fp32.mlpackage");
    let convs = types.iter().filter(|t| *t == "conv").count();
    let fused = types.iter().filter(|t| *t == CONV_FUSED).count();
    assert!(fused > 0 && fused >= convs, "{types:?}");
    assert!(!epi.is_empty());
    for e in &epi {
        for step in e.split(';') {
            assert!(Step::decode(step).is_some(), "{step}");
        }
    }
}

#[test]
fn a_value_read_twice_is_not_fused() {
    // The conv output of the first block feeds two ops in no fixture, so
    // build one: conv -> relu, and the conv output is also a block output.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torch/resnet_fp32.mlpackage");
    let file = crate::format::open(path).unwrap();
    let f = &file.program().unwrap().functions[0];
    let first_conv = f
        .block
        .operations
        .iter()
        .find(|o| o.op_type == "conv")
        .unwrap();
    let mut outputs = f.block.outputs.clone();
    outputs.push(first_conv.outputs[0].name.clone());
    let ops: Vec<_> = f.block.operations.iter().map(Cow::Borrowed).collect();
    let ops = fuse_conv_epilogues(ops, &outputs);
    let kept = ops
        .iter()
        .find(|o| o.outputs[0].name == first_conv.outputs[0].name)
        .unwrap();
    assert_eq!(kept.op_type, "conv");
}
