//! Window geometry shared by conv and pool: `pad_type`, strides.

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::portable::kernel::OpBuilder;

/// MIL `pad_type` with its `pad` amounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PadType {
    /// No padding.
    Valid,
    /// Output size `ceil(in / stride)`, an odd padding's extra element after.
    Same,
    /// As `Same`, the extra element before.
    SameLower,
    /// Explicit `[before, after]` per spatial axis, flattened.
    Custom(Vec<usize>),
}

impl PadType {
    /// Reads `pad_type` (default `valid`) and `pad`.
    pub(crate) fn parse(b: &OpBuilder<'_>) -> Result<Self> {
        let kind = b.string_or("pad_type", "valid")?.to_ascii_lowercase();
        Ok(match kind.as_str() {
            "valid" => PadType::Valid,
            "same" => PadType::Same,
            "same_lower" => PadType::SameLower,
            "custom" => {
                let pad = b.opt_ints("pad")?.unwrap_or_default();
                let pad = non_negative(&pad)
                    .ok_or_else(|| b.err(format!("pad {pad:?} must be non-negative")))?;
                if pad.len() % 2 != 0 {
                    return Err(b.err(format!(
                        "pad {pad:?} must hold a before/after pair per axis"
                    )));
                }
                PadType::Custom(pad)
            }
            other => return Err(b.err(format!("unknown pad_type {other:?}"))),
        })
    }

    /// `(before, after)` padding per spatial axis for inputs of spatial size
    /// `input`, effective (dilated) kernel sizes `kernel` and `strides`.
    pub(crate) fn amounts(
        &self,
        input: &[usize],
        kernel: &[usize],
        strides: &[usize],
    ) -> Result<Vec<(usize, usize)>> {
        let n = input.len();
        Ok(match self {
            PadType::Valid => vec![(0, 0); n],
            PadType::Custom(p) => {
                if p.len() != 2 * n {
                    return Err(Error::msg(format!(
                        "pad has {} values, expected {}",
                        p.len(),
                        2 * n
                    )));
                }
                p.chunks(2).map(|c| (c[0], c[1])).collect()
            }
            PadType::Same | PadType::SameLower => input
                .iter()
                .zip(kernel)
                .zip(strides)
                .map(|((&i, &k), &s)| {
                    let total = (s * i.div_ceil(s) + k).saturating_sub(i + s);
                    let small = total / 2;
                    if *self == PadType::Same {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    }
                })
                .collect(),
        })
    }
}

/// Converts a list of integers to sizes; `None` when one is negative.
pub(crate) fn non_negative(v: &[i64]) -> Option<Vec<usize>> {
    v.iter().map(|&x| usize::try_from(x).ok()).collect()
}

/// Every `step`-th element of axis `dim`, from the first.
pub(crate) fn subsample(t: &Tensor, dim: usize, step: usize) -> Result<Tensor> {
    let len = t.dim(dim)?;
    if step <= 1 || len <= 1 {
        return Ok(t.clone());
    }
    let count = len.div_ceil(step);
    let t = t.pad_with_zeros(dim, 0, count * step - len)?;
    let mut shape = t.dims().to_vec();
    shape[dim] = count;
    shape.insert(dim + 1, step);
    Ok(t.reshape(shape)?.narrow(dim + 1, 0, 1)?.squeeze(dim + 1)?)
}
