//! Layers with weight matrices and constants: `innerProduct`, `embedding`,
//! `embeddingND`, `batchedMatmul`, `loadConstant`, `loadConstantND`.
//!
//! Dynamically quantized layers (`int8DynamicQuantize`) run with their int8
//! weights dequantized; the input is not quantized, so results are as close
//! to the float model as the weights allow (Core ML also rounds the input).

use coreml_proto::proto as pb;

use super::cx::Cx;
use crate::error::Result;
use crate::neuralnetwork::emit::{boolean, floats, int, ints, Arg, Val};
use crate::neuralnetwork::weights::Channels;

/// `w [rows, cols]` transposed.
fn transposed(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

/// `x @ w^T + b` over the last axis.
fn linear(
    cx: &mut Cx<'_>,
    x: &Val,
    w: Vec<f32>,
    out_ch: usize,
    in_ch: usize,
    b: Option<Vec<f32>>,
    hint: &str,
) -> Val {
    let mut args = vec![
        ("x", Arg::V(x.clone())),
        ("weight", Arg::C(floats(w, &[out_ch, in_ch]))),
    ];
    if let Some(b) = b {
        args.push(("bias", Arg::C(floats(b, &[out_ch]))));
    }
    cx.em.f32_op("linear", hint, args, x.rank)
}

/// `innerProduct`: a dense layer over C (rank <= 3) or C, H, W (rank 4, 5).
pub(crate) fn inner_product(cx: &mut Cx<'_>, p: &pb::InnerProductLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let out = cx.out_name(0)?;
    let (cin, cout) = (p.input_channels as usize, p.output_channels as usize);
    if cin == 0 || cout == 0 {
        return Err(cx.err("inputChannels and outputChannels must be positive"));
    }
    let w = cx.weights(
        p.weights.as_ref(),
        cx.count(&[cin, cout], "weights")?,
        Some(Channels::first(cout)),
        "weights",
    )?;
    let b = if p.has_bias {
        Some(cx.weights(p.bias.as_ref(), cout, None, "bias")?)
    } else {
        None
    };
    let hint = cx.name().to_string();
    let y = match x.rank {
        Some(4) => {
            let flat = cx.em.reshape(&x, &[-1, cin as i64], &hint);
            let y = linear(cx, &flat, w, cout, cin, b, &hint);
            cx.em.reshape(&y, &[-1, cout as i64, 1, 1], &out)
        }
        Some(5) => {
            let shape = cx.em.shape(&x, &hint);
            let lead = cx.em.slice1(&shape, 0, Some(2), &hint);
            let flat = cx.em.reshape(&x, &[-1, cin as i64], &hint);
            let y = linear(cx, &flat, w, cout, cin, b, &hint);
            let target = cx.em.concat_ints(
                vec![Arg::V(lead), Arg::C(ints(&[cout as i64, 1, 1]))],
                &hint,
            );
            cx.em.reshape_to(&y, &target, Some(5), &out)
        }
        _ => linear(cx, &x, w, cout, cin, b, &out),
    };
    cx.set(0, y)
}

/// Gathers rows of the table `wt [vocab, dim]` at the (float) indices `ids`.
fn lookup(
    cx: &mut Cx<'_>,
    ids: &Val,
    wt: Vec<f32>,
    vocab: usize,
    dim: usize,
    bias: Option<Vec<f32>>,
    hint: &str,
) -> Val {
    let idx = cx.int_of(ids);
    let table = cx.em.constant(floats(wt, &[vocab, dim]), hint);
    let rank = idx.rank.map(|r| r + 1);
    let y = cx.em.f32_op(
        "gather",
        hint,
        vec![
            ("x", Arg::V(table)),
            ("indices", Arg::V(idx)),
            ("axis", Arg::C(int(0))),
        ],
        rank,
    );
    match bias {
        Some(b) => cx.em.binary_const("add", &y, floats(b, &[dim]), hint),
        None => y,
    }
}

/// An embedding layer's table (`dim` rows of `vocab` as stored, per-channel
/// quantization along `dim`) and its optional bias.
fn table_and_bias(
    cx: &Cx<'_>,
    weights: Option<&pb::WeightParams>,
    bias: Option<&pb::WeightParams>,
    has_bias: bool,
    vocab: usize,
    dim: usize,
) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
    let w = cx.weights(
        weights,
        cx.count(&[vocab, dim], "weights")?,
        Some(Channels::first(dim)),
        "weights",
    )?;
    let b = if has_bias {
        Some(cx.weights(bias, dim, None, "bias")?)
    } else {
        None
    };
    Ok((w, b))
}

/// `embedding`: ids `[x1, 1, 1, 1]` or `[x1, x2, 1, 1, 1]` -> vectors along axis -3.
pub(crate) fn embedding(cx: &mut Cx<'_>, p: &pb::EmbeddingLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let out = cx.out_name(0)?;
    let (vocab, dim) = (p.input_dim as usize, p.output_channels as usize);
    let (w, b) = table_and_bias(
        cx,
        p.weights.as_ref(),
        p.bias.as_ref(),
        p.has_bias,
        vocab,
        dim,
    )?;
    let hint = cx.name().to_string();
    let flat = cx.em.reshape(&x, &[-1], &hint);
    let y = lookup(cx, &flat, transposed(&w, dim, vocab), vocab, dim, b, &hint);
    let y = match x.rank {
        Some(4) => cx.em.reshape(&y, &[-1, dim as i64, 1, 1], &out),
        _ => {
            let shape = cx.em.shape(&x, &hint);
            let lead = cx.em.slice1(&shape, 0, Some(-3), &hint);
            let target = cx
                .em
                .concat_ints(vec![Arg::V(lead), Arg::C(ints(&[dim as i64, 1, 1]))], &hint);
            cx.em.reshape_to(&y, &target, x.rank, &out)
        }
    };
    cx.set(0, y)
}

/// `embeddingND`: ids `[..., 1]` -> `[..., embeddingSize]`.
pub(crate) fn embedding_nd(cx: &mut Cx<'_>, p: &pb::EmbeddingNdLayerParams) -> Result<()> {
    cx.expect_inputs(1..=1)?;
    let x = cx.input(0)?;
    let out = cx.out_name(0)?;
    let (vocab, dim) = (p.vocab_size as usize, p.embedding_size as usize);
    let (w, b) = table_and_bias(
        cx,
        p.weights.as_ref(),
        p.bias.as_ref(),
        p.has_bias,
        vocab,
        dim,
    )?;
    let hint = cx.name().to_string();
    let ids = cx.em.f32_op(
        "squeeze",
        &hint,
        vec![("x", Arg::V(x.clone())), ("axes", Arg::C(ints(&[-1])))],
        x.rank.map(|r| r - 1),
    );
    let y = lookup(cx, &ids, transposed(&w, dim, vocab), vocab, dim, b, &out);
    cx.set(0, y.with_rank(x.rank))
}

/// `batchedMatmul`: two inputs (numpy-style batches, 1-D operands promoted),
/// or one input times a weight matrix (+ bias).
pub(crate) fn batched_matmul(cx: &mut Cx<'_>, p: &pb::BatchedMatMulLayerParams) -> Result<()> {
    cx.expect_inputs(1..=2)?;
    let a = cx.input(0)?;
    let out = cx.out_name(0)?;
    if cx.n_inputs() == 1 {
        let (rows, cols) = (
            p.weight_matrix_first_dimension as usize,
            p.weight_matrix_second_dimension as usize,
        );
        if rows == 0 || cols == 0 {
            return Err(cx.err(
                "weightMatrixFirstDimension and weightMatrixSecondDimension must be positive",
            ));
        }
        // Stored column-major [X1, X2]: row-major [X2, X1], MIL linear's layout.
        let w = cx.weights(
            p.weights.as_ref(),
            cx.count(&[rows, cols], "weights")?,
            Some(Channels::first(cols)),
            "weights",
        )?;
        let b = if p.has_bias {
            Some(cx.weights(p.bias.as_ref(), cols, None, "bias")?)
        } else {
            None
        };
        let y = linear(cx, &a, w, cols, rows, b, &out);
        return cx.set(0, y);
    }
    let b = cx.input(1)?;
    let hint = cx.name().to_string();
    let promote = |cx: &mut Cx<'_>, v: Val, axis: i64| -> Val {
        if v.rank == Some(1) {
            cx.em.f32_op(
                "expand_dims",
                &hint,
                vec![("x", Arg::V(v)), ("axes", Arg::C(ints(&[axis])))],
                Some(2),
            )
        } else {
            v
        }
    };
    let a = promote(cx, a, 0);
    let b = promote(cx, b, -1);
    let rank = match (a.rank, b.rank) {
        (Some(x), Some(y)) => Some(x.max(y)),
        _ => None,
    };
    let args = vec![
        ("x", Arg::V(a)),
        ("y", Arg::V(b)),
        ("transpose_x", Arg::C(boolean(p.transpose_a))),
        ("transpose_y", Arg::C(boolean(p.transpose_b))),
    ];
    cx.out_op(0, "matmul", args, rank)
}

/// `loadConstant` (`[C, H, W]`, as `[1, 1, C, H, W]`) and `loadConstantND`.
pub(crate) fn load_constant(
    cx: &mut Cx<'_>,
    shape: &[u64],
    data: Option<&pb::WeightParams>,
    legacy: bool,
) -> Result<()> {
    cx.expect_inputs(0..=0)?;
    let mut dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    if legacy {
        if dims.len() != 3 {
            return Err(cx.err(format!("shape {shape:?} must be [C, H, W]")));
        }
        dims.splice(0..0, [1, 1]);
    }
    let n = cx.count(&dims, "data")?;
    let v = cx.weights(data, n, None, "data")?;
    let out = cx.out_name(0)?;
    let c = cx.em.constant(floats(v, &dims), &out);
    cx.set(0, c)
}

/// Translates the layer when it belongs to this family.
pub(super) fn dispatch(
    cx: &mut Cx<'_>,
    layer: &pb::neural_network_layer::Layer,
) -> Option<Result<()>> {
    use pb::neural_network_layer::Layer as L;
    Some(match layer {
        L::InnerProduct(p) => inner_product(cx, p),
        L::Embedding(p) => embedding(cx, p),
        L::EmbeddingNd(p) => embedding_nd(cx, p),
        L::BatchedMatmul(p) => batched_matmul(cx, p),
        L::LoadConstant(p) => load_constant(cx, &p.shape, p.data.as_ref(), true),
        L::LoadConstantNd(p) => load_constant(cx, &p.shape, p.data.as_ref(), false),
        _ => return None,
    })
}
