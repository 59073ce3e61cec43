//! `scaled_dot_product_attention` (iOS18).

use candle_core::{DType, Tensor, D};

use super::registry::Registry;
use crate::error::Result;
use crate::portable::kernel::{kernel, Kernel, OpBuilder};

/// Registers this family's ops.
pub(crate) fn register(reg: &mut Registry) {
    reg.insert("scaled_dot_product_attention", build_sdpa);
}

/// `softmax(Q K^T / sqrt(d) + mask) V` over the last two axes, with leading
/// axes broadcast. A bool mask keeps positions where it is true (others get
/// -inf); a float mask is added.
fn build_sdpa(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let q = b.input("query")?;
    let k = b.input("key")?;
    let v = b.input("value")?;
    let mask = b.opt_input("attn_mask")?;
    let out_dtype = b.output_dtype(0)?;
    Ok(kernel(move |a| {
        let qt = a.tensor(q)?.to_dtype(DType::F32)?;
        let kt = a.tensor(k)?.to_dtype(DType::F32)?;
        let vt = a.tensor(v)?.to_dtype(DType::F32)?;
        let d = *qt.dims().last().unwrap_or(&1) as f64;
        let scores = matmul_bcast(&qt, &kt.transpose(D::Minus1, D::Minus2)?)?;
        let mut scores = (scores / d.sqrt())?;
        if let Some(m) = mask {
            let mt = a.tensor(m)?;
            let add = if mt.dtype() == DType::U8 {
                let zeros = mt.zeros_like()?.to_dtype(DType::F32)?;
                let neg = (zeros.ones_like()? * f64::NEG_INFINITY)?;
                mt.where_cond(&zeros, &neg)?
            } else {
                mt.to_dtype(DType::F32)?
            };
            scores = scores.broadcast_add(&add)?;
        }
        let probs =
            candle_core::Tensor::exp(&scores.broadcast_sub(&scores.max_keepdim(D::Minus1)?)?)?;
        let probs = probs.broadcast_div(&probs.sum_keepdim(D::Minus1)?)?;
        let out = matmul_bcast(&probs, &vt)?;
        Ok(vec![out.to_dtype(out_dtype)?])
    }))
}

/// Batched matmul with numpy broadcasting of the leading axes.
fn matmul_bcast(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let (xr, yr) = (x.rank(), y.rank());
    if xr < 2 || yr < 2 {
        return Err(crate::error::Error::msg(format!(
            "attention operands need rank >= 2, got {:?} and {:?}",
            x.dims(),
            y.dims()
        )));
    }
    let lead_x = &x.dims()[..xr - 2];
    let lead_y = &y.dims()[..yr - 2];
    let n = lead_x.len().max(lead_y.len());
    let mut lead = Vec::with_capacity(n);
    for i in 0..n {
        let a = if i + lead_x.len() >= n {
            lead_x[i + lead_x.len() - n]
        } else {
            1
        };
        let b = if i + lead_y.len() >= n {
            lead_y[i + lead_y.len() - n]
        } else {
            1
        };
        lead.push(a.max(b));
    }
    let mut xs = lead.clone();
    xs.extend_from_slice(&x.dims()[xr - 2..]);
    let mut ys = lead;
    ys.extend_from_slice(&y.dims()[yr - 2..]);
    let x = x.broadcast_as(xs)?.contiguous()?;
    let y = y.broadcast_as(ys)?.contiguous()?;
    Ok(x.matmul(&y)?)
}
