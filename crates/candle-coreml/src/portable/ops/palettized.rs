//! Products with a palettized weight, made at load by
//! [`crate::portable::fuse_lut`]: `_conv_lut` (a 1x1 `conv`, epilogue
//! included when the conv was fused) and `_linear_lut` (`linear`).
//!
//! On the CPU the weight stays in its stored form ([`LutMatrix`]: codes
//! plus tables, multiplied without expansion). Elsewhere, or for a layout
//! that kernel does not take (vector tables, tables grouped along input
//! channels), the weight is decoded once at load, exactly as the
//! `constexpr_lut_to_dense` op would have been, and the op runs as `conv` /
//! `linear`.

use std::borrow::Cow;
use std::sync::Arc;

use candle_core::{DType, Tensor};

use super::conv::conv_kernel;
use super::epilogue::EpilogueSpec;
use super::linear::linear_kernel;
use super::registry::Registry;
use crate::error::{Error, Result};
use crate::mil::{ByteView, Operation, TensorData, TensorValue, Value};
use crate::portable::cpu::lut::LutMatrix;
use crate::portable::cpu::with_f32;
use crate::portable::fuse_lut::{CONV_LUT, LINEAR_LUT, LUT_ATTR_PREFIX, LUT_PARAMS};
use crate::portable::kernel::{kernel, Args, Kernel, OpBuilder, Operand};
use crate::portable::values::materialize;

/// Registers the palettized products.
pub(crate) fn register(reg: &mut Registry) {
    reg.insert(CONV_LUT, build_conv_lut);
    reg.insert(LINEAR_LUT, build_linear_lut);
}

/// The weight as the kernel will use it.
enum Weight {
    Lut(Arc<LutMatrix>),
    Dense(Tensor),
}

/// Parameter `name` of the folded constexpr.
fn param<'a>(b: &OpBuilder<'a>, name: &str) -> Option<&'a TensorValue> {
    b.op()
        .attribute(&format!("{LUT_ATTR_PREFIX}{name}"))
        .and_then(Value::as_tensor)
}

/// The stored bytes of `t` (shared, not copied, when memory-mapped).
fn stored_bytes(t: &TensorValue) -> Option<ByteView> {
    match &t.data {
        TensorData::Bytes(v) => Some(v.clone()),
        _ => Some(ByteView::from_vec(t.to_le_bytes().ok()?.into_owned())),
    }
}

/// The weight in stored form, or `None` for layouts [`LutMatrix`] does not
/// take (or parameters it finds inconsistent: the dense decoding then
/// reports them).
fn lut_matrix(b: &OpBuilder<'_>) -> Option<LutMatrix> {
    let indices = param(b, "indices")?;
    let lut = param(b, "lut")?;
    let tables = lut.to_f32_vec().ok()?;
    if let Some(shape) = param(b, "shape") {
        // iOS16: one table, `log2(len)`-bit codes packed in uint8 bytes.
        let shape = shape.to_usize_vec().ok()?;
        let (&rows, rest) = shape.split_first()?;
        let cols = rest.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
        let bits = tables.len().checked_ilog2()?;
        if tables.len() != 1 << bits {
            return None;
        }
        return LutMatrix::new(rows, cols, bits, stored_bytes(indices)?, &tables).ok();
    }
    // iOS18: `lut` is [g_0, ..., g_{K-1}, 2^bits, vector]; only groups along
    // the output channels and scalar entries are taken here.
    let rank = indices.shape.len();
    let (&rows, rest) = indices.shape.split_first()?;
    let cols = rest.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
    let bits = indices
        .dtype
        .bit_width()
        .filter(|_| indices.dtype.is_palette_index())?;
    let ls = &lut.shape;
    let scalar_rows_groups = ls.len() == rank + 2
        && ls[1..rank].iter().all(|&g| g == 1)
        && ls[rank] == 1 << bits
        && ls[rank + 1] == 1;
    if !scalar_rows_groups {
        return None;
    }
    LutMatrix::new(rows, cols, bits, stored_bytes(indices)?, &tables).ok()
}

/// The weight decoded as `constexpr_lut_to_dense` would, on the device.
fn dense_weight(b: &OpBuilder<'_>) -> Result<Tensor> {
    let op = Operation {
        op_type: "constexpr_lut_to_dense".into(),
        inputs: Default::default(),
        outputs: Vec::new(),
        blocks: Vec::new(),
        attributes: LUT_PARAMS
            .iter()
            .filter_map(|&n| Some((n.to_string(), Value::Tensor(param(b, n)?.clone()))))
            .collect(),
        location: None,
    };
    let tv = crate::mil::constexpr::decompress(&op, &|_| None)
        .map_err(|e| b.err(format!("palettized weight: {e}")))?;
    materialize(&tv, b.device(), b.precision)?
        .ok_or_else(|| b.err("palettized weight has no tensor form"))
}

fn weight(b: &OpBuilder<'_>) -> Result<Weight> {
    if b.device().is_cpu() {
        if let Some(m) = lut_matrix(b) {
            return Ok(Weight::Lut(Arc::new(m)));
        }
    }
    Ok(Weight::Dense(dense_weight(b)?))
}

/// A bias as f32 values: read once at load when constant.
enum Bias {
    None,
    Ready(Vec<f32>),
    Input(Operand),
}

impl Bias {
    fn new(b: &mut OpBuilder<'_>) -> Result<Self> {
        Ok(match b.opt_operand("bias", DType::F32, Ok)? {
            None => Bias::None,
            Some(Operand::Ready(t)) => Bias::Ready(t.flatten_all()?.to_vec1()?),
            Some(input) => Bias::Input(input),
        })
    }

    /// The values for this call.
    fn values<'s>(&'s self, a: &Args<'_>) -> Result<Option<Cow<'s, [f32]>>> {
        Ok(match self {
            Bias::None => None,
            Bias::Ready(v) => Some(Cow::Borrowed(v)),
            Bias::Input(o) => Some(Cow::Owned(
                o.get(a)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
            )),
        })
    }
}

fn build_conv_lut(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let m = match weight(b)? {
        Weight::Dense(w) => return conv_kernel(b, Operand::Ready(w)),
        Weight::Lut(m) => m,
    };
    let dt = b.output_dtype(0)?;
    let x = b.input("x")?;
    let bias = Bias::new(b)?;
    let epi = EpilogueSpec::parse(b)?;
    Ok(kernel(move |a| {
        let xt = a.tensor(x)?;
        let dims = xt.dims().to_vec();
        if dims.len() < 3 || dims[1] != m.cols() {
            return Err(Error::msg(format!(
                "x has shape {dims:?}; the weight takes [N, {}, ...]",
                m.cols()
            )));
        }
        let (n, spatial) = (dims[0], dims[2..].iter().product::<usize>());
        let bias = bias.values(a)?;
        let x32 = xt.to_dtype(DType::F32)?.contiguous()?;
        let y = with_f32(&x32, |xs| -> Result<Vec<f32>> {
            let per = m.cols() * spatial;
            let mut y = Vec::with_capacity(n * m.rows() * spatial);
            for batch in xs.chunks_exact(per.max(1)).take(n) {
                y.extend(m.matmul(batch, spatial, bias.as_deref())?);
            }
            Ok(y)
        })
        .ok_or_else(|| Error::msg("palettized conv: x is not on the CPU"))??;
        let mut out_dims = dims;
        out_dims[1] = m.rows();
        let y = Tensor::from_vec(y, out_dims, xt.device())?.to_dtype(dt)?;
        Ok(vec![epi.apply_candle(y, a)?])
    }))
}

fn build_linear_lut(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let m = match weight(b)? {
        Weight::Dense(w) => return linear_kernel(b, Operand::Ready(w)),
        Weight::Lut(m) => m,
    };
    let dt = b.output_dtype(0)?;
    let x = b.input("x")?;
    let bias = Bias::new(b)?;
    Ok(kernel(move |a| {
        let xt = a.tensor(x)?;
        let dims = xt.dims().to_vec();
        if dims.last() != Some(&m.cols()) {
            return Err(Error::msg(format!(
                "x has shape {dims:?}; the weight takes [..., {}]",
                m.cols()
            )));
        }
        let tokens = xt.elem_count() / m.cols().max(1);
        let bias = bias.values(a)?;
        let x32 = xt.to_dtype(DType::F32)?.contiguous()?;
        // [D_out, tokens], transposed to [tokens, D_out].
        let yt = with_f32(&x32, |xs| m.matmul_t(xs, tokens, bias.as_deref()))
            .ok_or_else(|| Error::msg("palettized linear: x is not on the CPU"))??;
        let y = if tokens == 1 {
            yt
        } else {
            let mut y = vec![0f32; yt.len()];
            for (o, row) in yt.chunks_exact(tokens).enumerate() {
                for (t, v) in row.iter().enumerate() {
                    y[t * m.rows() + o] = *v;
                }
            }
            y
        };
        let mut out_dims = dims;
        if let Some(last) = out_dims.last_mut() {
            *last = m.rows();
        }
        Ok(vec![
            Tensor::from_vec(y, out_dims, xt.device())?.to_dtype(dt)?
        ])
    }))
}
