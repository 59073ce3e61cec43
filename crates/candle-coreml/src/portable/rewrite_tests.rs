//! Which ops the load-time rewrites leave in the bundles ANEMLL's converter
//! made for candle-coreml-llm's tests (what the rewritten programs compute
//! is checked against transformers there, by running them).

use std::collections::HashMap;
use std::path::Path;

use crate::portable::fuse_conv::CONV_FUSED;
use crate::portable::fuse_gather::GATHER_ROWS;
use crate::portable::fuse_gqa::MATMUL_GQA;
use crate::portable::fuse_lut::CONV_LUT;
use crate::portable::ops::epilogue::EPILOGUE_ATTR;
use crate::portable::plan::rewritten_ops;

const BUNDLE: &str = "../candle-coreml-llm/tests/fixtures/bundles/qwen3_035_1chunk_lut";

/// Op type -> count after the rewrites, and the fused epilogues.
fn after(part: &str, function: &str) -> (HashMap<String, usize>, Vec<String>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(BUNDLE)
        .join(part);
    let file = crate::format::open(path).unwrap();
    let program = file.program().unwrap();
    let f = program
        .functions
        .iter()
        .find(|f| f.name == function)
        .unwrap();
    let ops = rewritten_ops(&f.block);
    let mut counts = HashMap::new();
    for op in &ops {
        *counts.entry(op.op_type.clone()).or_default() += 1;
    }
    let epilogues = ops
        .iter()
        .filter_map(|o| o.attribute(EPILOGUE_ATTR)?.as_str().map(str::to_string))
        .collect();
    (counts, epilogues)
}

#[test]
fn anemll_chunk_products_read_stored_weights_and_the_cache_in_place() {
    for function in ["infer", "prefill"] {
        let (n, epilogues) = after("qwen_FFN_PF_lut4_chunk_01of01.mlpackage", function);
        let count = |t: &str| n.get(t).copied().unwrap_or(0);
        // Every palettized weight is multiplied in stored form: none is
        // decoded, no plain conv is left (gate + silu arrive fused).
        assert_eq!(count("constexpr_lut_to_dense"), 0, "{function}: {n:?}");
        assert_eq!(count("conv") + count(CONV_FUSED), 0, "{function}: {n:?}");
        assert!(count(CONV_LUT) > 0, "{function}: {n:?}");
        assert!(
            epilogues.iter().any(|e| e == "silu"),
            "{function}: {epilogues:?}"
        );
        // Keys and values are no longer tiled for the grouped heads.
        assert_eq!(count("tile"), 0, "{function}: {n:?}");
        assert_eq!(count(MATMUL_GQA), 2 * count("softmax"), "{function}: {n:?}");
    }
}

#[test]
fn anemll_embeddings_and_head() {
    let (n, _) = after("qwen_embeddings.mlpackage", "main");
    assert_eq!(n.get(GATHER_ROWS), Some(&1), "{n:?}");
    assert_eq!(n.get("gather"), None, "{n:?}");
    let (n, _) = after("qwen_lm_head_lut6.mlpackage", "main");
    assert_eq!(n.get("constexpr_lut_to_dense"), None, "{n:?}");
    assert!(n.get(CONV_LUT).is_some_and(|&c| c > 0), "{n:?}");
}
