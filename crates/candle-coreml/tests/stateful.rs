//! Stateful models converted from torch (`tests/fixtures/torch/kv_*`, made by
//! `tools/gen_model_fixtures.py`): a two-layer KV-cache decoder whose
//! `k_cache`/`v_cache` states (fp16 `[layers, heads, ctx, head_dim]`) are
//! updated with `slice_update` at `current_pos`. A prompt of 5 tokens then 4
//! single tokens run on one `State`, and the logits of every call must match
//! torch's (which ran the same calls on its own buffers):
//!
//! - `kv_decoder`: one function, flexible sequence length;
//! - `kv_multifunction`: `prefill` (T=5) and `infer` (T=1, the default)
//!   sharing weights and one state;
//! - `kv_chunk1` + `kv_chunk2`: the decoder split after layer 0; both declare
//!   the full caches and each writes its own layer's slice, so one `State`
//!   drives both.
//!
//! Tolerance (`rtol = atol = 1e-3`, from the JSON): the program computes in
//! fp32 but stores the caches as fp16; torch's reference rounds its cached
//! keys/values to fp16 the same way, so what is left is fp32 summation order
//! and the odd cached value rounding to the neighbouring fp16.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use candle_coreml::{Backend, Model, State};

mod torch_common;
use torch_common::{assert_close, fixture_json, fixtures, npz, to_f64, tolerance, Tolerance};

fn load(file: &str) -> Model {
    Model::builder()
        .backend(Backend::Portable)
        .device(torch_common::test_device())
        .load(fixtures().join(file))
        .unwrap_or_else(|e| panic!("{file}: load: {e}"))
}

/// The arrays under `prefix` (e.g. `step2/input:`), prefix stripped.
fn with_prefix<'a>(
    arrays: &'a BTreeMap<String, Tensor>,
    prefix: &str,
) -> Vec<(&'a str, &'a Tensor)> {
    arrays
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?, v)))
        .collect()
}

fn expected<'a>(arrays: &'a BTreeMap<String, Tensor>, key: &str) -> &'a Tensor {
    arrays
        .get(key)
        .unwrap_or_else(|| panic!("npz has no {key:?}"))
}

fn step_count(arrays: &BTreeMap<String, Tensor>) -> usize {
    (0..)
        .take_while(|k| {
            arrays
                .keys()
                .any(|key| key.starts_with(&format!("step{k}/")))
        })
        .count()
}

/// Compares every `final_state:<name>` with `state.read(name)`.
fn check_final_state(what: &str, state: &State, arrays: &BTreeMap<String, Tensor>, tol: Tolerance) {
    let finals = with_prefix(arrays, "final_state:");
    assert!(!finals.is_empty(), "{what}: npz has no final_state: arrays");
    for (name, want) in finals {
        let got = state
            .read(name)
            .unwrap_or_else(|e| panic!("{what}: read state {name}: {e}"));
        assert_close(&format!("{what}: final state {name}"), &got, want, tol);
    }
}

/// Runs every step of `name`'s npz through `model_for_step(k)` on one state.
fn run_steps<'m>(name: &str, model_for_step: impl Fn(usize) -> &'m Model, state: &mut State) {
    let arrays = npz(name);
    let tol = tolerance(name);
    let steps = step_count(&arrays);
    assert!(steps > 0, "{name}.npz: no steps");
    for k in 0..steps {
        let model = model_for_step(k);
        let inputs = with_prefix(&arrays, &format!("step{k}/input:"));
        let out = model
            .predict_with_state(inputs, state)
            .unwrap_or_else(|e| panic!("{name} step {k} ({}): {e}", model.function_name()));
        for (output, want) in with_prefix(&arrays, &format!("step{k}/output:")) {
            let got = out
                .get(output)
                .unwrap_or_else(|| panic!("{name} step {k}: no output {output:?}"));
            assert_close(&format!("{name} step {k}: {output}"), got, want, tol);
        }
    }
    check_final_state(name, state, &arrays, tol);
}

#[test]
fn kv_decoder_prefill_then_steps_match_torch() {
    let model = load("kv_decoder.mlpackage");
    let mut state = model.make_state().expect("make_state");
    run_steps("kv_decoder", |_| &model, &mut state);
}

#[test]
fn state_other_matches_torch() {
    let model = load("state_other.mlpackage");
    let mut state = model.make_state().expect("make_state");
    run_steps("state_other", |_| &model, &mut state);
}

#[test]
fn kv_multifunction_prefill_then_infer_share_one_state() {
    let infer = load("kv_multifunction.mlpackage");
    assert_eq!(infer.function_name(), "infer", "default function");
    let prefill = infer
        .with_function("prefill")
        .expect("with_function(prefill)");
    assert_eq!(prefill.function_name(), "prefill");
    let functions: Vec<String> = fixture_json("kv_multifunction")["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|v| v.as_str().expect("function name").to_string())
        .collect();
    let mut state = prefill.make_state().expect("make_state");
    run_steps(
        "kv_multifunction",
        |k| {
            if functions[k] == "prefill" {
                &prefill
            } else {
                &infer
            }
        },
        &mut state,
    );
}

#[test]
fn kv_chunks_share_one_state() {
    let chunk1 = load("kv_chunk1.mlpackage");
    let chunk2 = load("kv_chunk2.mlpackage");
    let arrays = npz("kv_chunks");
    let tol = tolerance("kv_chunks");
    let mut state = chunk1.make_state().expect("make_state");
    let steps = step_count(&arrays);
    assert_eq!(steps, 5);
    for k in 0..steps {
        let inputs = with_prefix(&arrays, &format!("step{k}/input:"));
        let out1 = chunk1
            .predict_with_state(inputs.iter().copied(), &mut state)
            .unwrap_or_else(|e| panic!("chunk1 step {k}: {e}"));
        let hidden = out1
            .get("hidden_states")
            .expect("chunk1 output hidden_states");
        let want = expected(&arrays, &format!("step{k}/output:hidden_states"));
        assert_close(
            &format!("chunk1 step {k}: hidden_states"),
            hidden,
            want,
            tol,
        );
        let mut inputs2: Vec<(&str, &Tensor)> = inputs
            .into_iter()
            .filter(|(n, _)| *n != "input_ids")
            .collect();
        inputs2.push(("hidden_states", hidden));
        let out2 = chunk2
            .predict_with_state(inputs2, &mut state)
            .unwrap_or_else(|e| panic!("chunk2 step {k}: {e}"));
        let want = expected(&arrays, &format!("step{k}/output:logits"));
        assert_close(
            &format!("chunk2 step {k}: logits"),
            &out2["logits"],
            want,
            tol,
        );
    }
    check_final_state("kv_chunks", &state, &arrays, tol);
}

fn all_zero(t: &Tensor) -> bool {
    to_f64(t).iter().all(|v| *v == 0.0)
}

#[test]
fn state_write_read_round_trip() {
    let model = load("kv_decoder.mlpackage");
    let mut state = model.make_state().expect("make_state");
    assert_eq!(
        state.names(),
        vec!["k_cache".to_string(), "v_cache".to_string()]
    );
    // Quarter steps up to 128: exact in fp16, the states' dtype.
    let values: Vec<f32> = (0..2 * 2 * 16 * 16)
        .map(|i| (i % 512) as f32 * 0.25 - 64.0)
        .collect();
    let written = Tensor::from_vec(values, (2, 2, 16, 16), &Device::Cpu).expect("tensor");
    state.write("k_cache", &written).expect("write k_cache");
    let read = state.read("k_cache").expect("read k_cache");
    assert_eq!(read.dims(), &[2, 2, 16, 16]);
    assert_eq!(to_f64(&read), to_f64(&written));
    assert!(
        all_zero(&state.read("v_cache").expect("read v_cache")),
        "v_cache untouched"
    );
}

#[test]
fn state_write_of_wrong_shape_is_an_error_naming_the_state() {
    let model = load("kv_decoder.mlpackage");
    let mut state = model.make_state().expect("make_state");
    let wrong = Tensor::zeros((2, 2, 8, 16), DType::F32, &Device::Cpu).expect("tensor");
    let err = state
        .write("k_cache", &wrong)
        .expect_err("a [2, 2, 8, 16] write into [2, 2, 16, 16]");
    let msg = err.to_string();
    assert!(msg.contains("k_cache"), "{msg}");
    let err = state
        .write("no_such_state", &wrong)
        .expect_err("an unknown state");
    assert!(err.to_string().contains("no_such_state"), "{err}");
}

#[test]
fn state_of_a_model_with_other_states_is_an_error() {
    let decoder = load("kv_decoder.mlpackage");
    let other = load("state_other.mlpackage");
    let arrays = npz("kv_decoder");
    // A `k_cache` of [1, 4] used with a model whose `k_cache` is [2, 2, 16, 16].
    let mut state = other.make_state().expect("make_state");
    let err = decoder
        .predict_with_state(with_prefix(&arrays, "step0/input:"), &mut state)
        .expect_err("a State with another k_cache shape");
    let msg = err.to_string();
    assert!(msg.contains("k_cache"), "{msg}");
    assert!(
        msg.contains("2, 2, 16, 16") && msg.contains("1, 4"),
        "both shapes in: {msg}"
    );
    // And the other way round.
    let mut state = decoder.make_state().expect("make_state");
    let x = Tensor::zeros((1, 4), DType::F32, &Device::Cpu).expect("tensor");
    let err = other
        .predict_with_state([("x", &x)], &mut state)
        .expect_err("a State of another model");
    let msg = err.to_string();
    assert!(msg.contains("k_cache"), "{msg}");
    assert!(
        msg.contains("2, 2, 16, 16") && msg.contains("1, 4"),
        "both shapes in: {msg}"
    );
}

#[test]
fn make_state_zeroes_and_reset_zeroes_again() {
    let model = load("kv_decoder.mlpackage");
    let arrays = npz("kv_decoder");
    let mut state = model.make_state().expect("make_state");
    for name in ["k_cache", "v_cache"] {
        let t = state.read(name).expect("read");
        assert_eq!(t.dims(), &[2, 2, 16, 16], "{name}");
        assert!(all_zero(&t), "fresh {name} is zero");
    }
    model
        .predict_with_state(with_prefix(&arrays, "step0/input:"), &mut state)
        .expect("prefill");
    assert!(
        !all_zero(&state.read("k_cache").expect("read")),
        "prefill wrote k_cache"
    );
    state.reset().expect("reset");
    for name in ["k_cache", "v_cache"] {
        assert!(
            all_zero(&state.read(name).expect("read")),
            "{name} after reset"
        );
    }
    // After a reset the same prompt gives the same logits as on a fresh state.
    let out = model
        .predict_with_state(with_prefix(&arrays, "step0/input:"), &mut state)
        .expect("prefill after reset");
    let want = expected(&arrays, "step0/output:logits");
    assert_close(
        "prefill after reset",
        &out["logits"],
        want,
        tolerance("kv_decoder"),
    );
}
