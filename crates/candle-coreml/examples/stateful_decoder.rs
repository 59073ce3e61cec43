//! A stateful decoder loop: one `State` (the KV cache) shared by a model's
//! `prefill` and `infer` functions, as LLM bundles use it.
//!
//! ```sh
//! cargo run -p candle-coreml --example stateful_decoder
//! ```
//!
//! Runs the tiny multifunction decoder the repository ships (random weights,
//! converted from torch with `ct.StateType` caches): prefill 5 prompt tokens,
//! then greedy-decode 8 more one at a time. The cache is updated in place by
//! each call; nothing is re-run for earlier tokens.

use std::path::PathBuf;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_coreml::Model;

/// A `[1, 1, rows, ctx]` additive causal mask for positions `pos..pos+rows`.
fn causal_mask(pos: usize, rows: usize, ctx: usize) -> candle_core::Result<Tensor> {
    let mask: Vec<f32> = (0..rows)
        .flat_map(|r| (0..ctx).map(move |c| if c <= pos + r { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    Tensor::from_vec(mask, (1, 1, rows, ctx), &Device::Cpu)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torch/kv_multifunction.mlpackage");
    let infer = Model::load(&path)?; // the default function, `infer`
    let prefill = infer.with_function("prefill")?; // shares the weights
    let ctx = infer.states()[0].ty.shape().ok_or("state shape")?[2];
    let window = prefill.inputs()[0].ty.shape().ok_or("input shape")?[1];
    println!(
        "states {:?}, context {ctx}, prefill window {window}",
        infer.states().iter().map(|s| &s.name).collect::<Vec<_>>()
    );

    let mut state = infer.make_state()?;
    let prompt: Vec<i32> = vec![3, 14, 15, 9, 26];
    assert_eq!(prompt.len(), window);
    let positions: Vec<i32> = (0..window as i32).collect();
    let out = prefill.predict_with_state(
        [
            (
                "input_ids",
                Tensor::new(prompt.as_slice(), &Device::Cpu)?.unsqueeze(0)?,
            ),
            (
                "position_ids",
                Tensor::new(positions.as_slice(), &Device::Cpu)?,
            ),
            ("causal_mask", causal_mask(0, window, ctx)?),
            ("current_pos", Tensor::new(&[0i32], &Device::Cpu)?),
        ],
        &mut state,
    )?;
    let mut next = out["logits"]
        .i((0, window - 1))?
        .argmax(0)?
        .to_dtype(DType::I64)?
        .to_scalar::<i64>()? as i32;
    let mut tokens = prompt.clone();
    for pos in window..(window + 8).min(ctx) {
        tokens.push(next);
        let out = infer.predict_with_state(
            [
                ("input_ids", Tensor::new(&[[next]], &Device::Cpu)?),
                ("position_ids", Tensor::new(&[pos as i32], &Device::Cpu)?),
                ("causal_mask", causal_mask(pos, 1, ctx)?),
                ("current_pos", Tensor::new(&[pos as i32], &Device::Cpu)?),
            ],
            &mut state,
        )?;
        next = out["logits"]
            .i((0, 0))?
            .argmax(0)?
            .to_dtype(DType::I64)?
            .to_scalar::<i64>()? as i32;
    }
    println!("tokens: {tokens:?}");
    let k = state.read("k_cache")?;
    println!(
        "k_cache {:?}, filled up to position {}",
        k.dims(),
        tokens.len() - 1
    );
    Ok(())
}
