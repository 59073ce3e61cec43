//! Sampling grids and interpolation shared by the image and sampling ops.

use candle_core::Tensor;

use crate::error::Result;
use crate::portable::kernel::OpBuilder;

/// How source coordinates are placed for an output axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Grid {
    /// `i * (in - 1) / (out - 1)` (and `(in - 1) / 2` for one output when `centre_single`).
    AlignCorners { centre_single: bool },
    /// `i * (in - in / out) / (out - 1)`.
    Default,
    /// `0.5 * delta + i * delta`, `delta = max(1, in - 1) / out`.
    OffsetCorners,
    /// `(i + 0.5) * in / out - 0.5` (half-pixel centres).
    Unaligned,
    /// `i * in / out` (no offset).
    Scaled,
}

/// The grid of a `sampling_mode` name (`resize_bilinear`, `resize`, `crop_resize`).
pub(crate) fn sampling_grid(b: &OpBuilder<'_>, mode: &str) -> Result<Grid> {
    Ok(match mode {
        "STRICT_ALIGN_CORNERS" => Grid::AlignCorners {
            centre_single: false,
        },
        "ALIGN_CORNERS" => Grid::AlignCorners {
            centre_single: true,
        },
        "DEFAULT" => Grid::Default,
        "OFFSET_CORNERS" => Grid::OffsetCorners,
        "UNALIGN_CORNERS" => Grid::Unaligned,
        other => return Err(b.err(format!("unknown sampling_mode {other:?}"))),
    })
}

/// Source coordinate of each output position, clamped to `[0, in - 1]`.
pub(crate) fn grid(mode: Grid, n_in: usize, n_out: usize) -> Vec<f64> {
    let (xin, xout) = (n_in as f64, n_out as f64);
    let hi = (xin - 1.0).max(0.0);
    (0..n_out)
        .map(|i| {
            let i = i as f64;
            let p = match mode {
                Grid::AlignCorners { centre_single } => {
                    if n_out == 1 {
                        if centre_single {
                            hi / 2.0
                        } else {
                            0.0
                        }
                    } else {
                        i * hi / (xout - 1.0)
                    }
                }
                Grid::Default => {
                    if n_out == 1 {
                        0.0
                    } else {
                        i * (xin - xin / xout) / (xout - 1.0)
                    }
                }
                Grid::OffsetCorners => {
                    let delta = (xin - 1.0).max(1.0) / xout;
                    0.5 * delta + i * delta
                }
                Grid::Unaligned => (i + 0.5) * xin / xout - 0.5,
                Grid::Scaled => i * xin / xout,
            };
            p.clamp(0.0, hi)
        })
        .collect()
}

/// Linear interpolation along `axis` at the given source coordinates.
pub(crate) fn lerp_axis(x: &Tensor, axis: usize, coords: &[f64]) -> Result<Tensor> {
    let n = x.dim(axis)?;
    let device = x.device();
    let lo: Vec<u32> = coords.iter().map(|&c| c.floor() as u32).collect();
    let hi: Vec<u32> = coords
        .iter()
        .map(|&c| (c.floor() as usize + 1).min(n.saturating_sub(1)) as u32)
        .collect();
    let frac: Vec<f32> = coords.iter().map(|&c| (c - c.floor()) as f32).collect();
    let a = x.index_select(&Tensor::new(lo, device)?, axis)?;
    let b = x.index_select(&Tensor::new(hi, device)?, axis)?;
    let mut wshape = vec![1usize; x.rank()];
    wshape[axis] = coords.len();
    let w = Tensor::from_vec(frac, wshape, device)?.to_dtype(x.dtype())?;
    Ok(a.broadcast_add(&b.sub(&a)?.broadcast_mul(&w)?)?)
}
