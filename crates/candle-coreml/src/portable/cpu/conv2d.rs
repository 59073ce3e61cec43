//! 2-D convolution of NCHW f32 data on the CPU, with a fused epilogue.
//!
//! Three ways, picked from the geometry:
//! - **direct** when every group has one input channel (depthwise convs and
//!   their channel multipliers): see `depthwise`;
//! - **1x1** (stride 1, no padding): the input already is the GEMM's right
//!   operand `[C_in, H*W]`;
//! - **im2col + GEMM** otherwise, in bands of output columns small enough to
//!   stay in cache, each band's columns built in a thread's scratch buffer.
//!
//! The weight `[C_out, C_in/groups, KH, KW]` (contiguous) is the GEMM's left
//! operand as it is, so nothing is copied at load. Work is split into tasks
//! (batch item x group x row block x column band, or output planes) over
//! candle's thread pool; each task applies the epilogue (bias, activations,
//! residual add) to its own tile while it is in cache.

use super::depthwise::depthwise;
use super::gemm::{gemm, Mat};
use super::geom::{Epilogue, Geom};
use super::{par_for, threads, with_scratch, Shared};
use crate::error::{Error, Result};

/// `conv(x, w) -> [n, c_out, ho, wo]` with the epilogue applied.
pub(crate) fn conv2d(g: &Geom, x: &[f32], w: &[f32], epi: &Epilogue<'_>) -> Result<Vec<f32>> {
    g.check(x.len(), w.len())?;
    let (ho, wo) = g.out_hw()?;
    let total = g.n * g.c_out * ho * wo;
    if epi.bias.is_some_and(|b| b.len() != g.c_out) {
        return Err(Error::msg(
            "conv bias does not have one value per output channel",
        ));
    }
    if epi.residual.is_some_and(|r| r.len() != total) {
        return Err(Error::msg("residual does not have the conv output's size"));
    }
    let mut out = vec![0f32; total];
    if g.c_in == g.groups {
        depthwise(g, ho, wo, x, w, epi, &mut out);
    } else {
        gemm_conv(g, ho, wo, x, w, epi, &mut out)?;
    }
    Ok(out)
}

/// Scratch floats an im2col band may take (about 1 MiB).
const BAND_FLOATS: usize = 1 << 18;

/// Tasks: (batch item, group, row block, column band).
#[derive(Debug, Clone, Copy)]
struct Tiling {
    m_blocks: usize,
    mb: usize,
    n_bands: usize,
    nb: usize,
}

impl Tiling {
    fn new(m: usize, n: usize, k: usize, outer: usize) -> Self {
        let want = 2 * threads();
        // Columns per band: the im2col band fits the scratch budget, in
        // multiples of 16; enough bands to keep every thread busy.
        let mut nb = (BAND_FLOATS / k.max(1)).clamp(16, n.max(16)) / 16 * 16;
        let by_threads = n.div_ceil(want.div_ceil(outer).max(1));
        if by_threads >= 64 {
            nb = nb.min(by_threads.div_ceil(16) * 16);
        }
        let nb = nb.min(n).max(1);
        let n_bands = n.div_ceil(nb);
        // Split rows too when columns alone give too few tasks.
        let m_blocks = if outer * n_bands >= want || m < 64 {
            1
        } else {
            want.div_ceil(outer * n_bands).min(m / 32).max(1)
        };
        let mb = m.div_ceil(m_blocks);
        Self {
            m_blocks: m.div_ceil(mb),
            mb,
            n_bands,
            nb,
        }
    }
}

/// Convolution as (im2col +) GEMM per group, tiled over output columns.
fn gemm_conv(
    g: &Geom,
    ho: usize,
    wo: usize,
    x: &[f32],
    w: &[f32],
    epi: &Epilogue<'_>,
    out: &mut [f32],
) -> Result<()> {
    let (cig, cog) = (g.c_in / g.groups, g.c_out / g.groups);
    let k = cig * g.kh * g.kw;
    let n = ho * wo;
    let pointwise = g.kh == 1 && g.kw == 1 && g.stride == [1, 1] && g.pad == [(0, 0); 2];
    let t = Tiling::new(cog, n, k, g.n * g.groups);
    let shared = Shared::new(out);
    let tasks = g.n * g.groups * t.m_blocks * t.n_bands;
    let failed = std::sync::Mutex::new(None);
    par_for(tasks, |task| {
        let band = task % t.n_bands;
        let mblock = task / t.n_bands % t.m_blocks;
        let gi = task / (t.n_bands * t.m_blocks) % g.groups;
        let b = task / (t.n_bands * t.m_blocks * g.groups);
        let (p0, np) = (band * t.nb, t.nb.min(n - band * t.nb));
        let (r0, nr) = (mblock * t.mb, t.mb.min(cog - mblock * t.mb));
        let co0 = gi * cog + r0;
        let a = &w[co0 * k..][..nr * k];
        let xin = &x[(b * g.c_in + gi * cig) * g.h * g.w..][..cig * g.h * g.w];
        let res = (|| -> Result<()> {
            let out_base = (b * g.c_out + co0) * n + p0;
            // SAFETY: tiles (batch, group, row block, band) are disjoint; the
            // rows of this tile are `n` apart, the part spans all of them.
            let dst = unsafe { shared.part(out_base, (nr - 1) * n + np) };
            let am = Mat::new(a, nr, k, k)?;
            if pointwise {
                gemm(dst, n, am, Mat::new(&xin[p0..], k, np, n)?, false)?;
            } else {
                with_scratch(k * np, |cols| -> Result<()> {
                    im2col(g, ho, wo, xin, p0, np, cols);
                    gemm(dst, n, am, Mat::new(cols, k, np, np)?, false)
                })?;
            }
            for r in 0..nr {
                let row = &mut dst[r * n..r * n + np];
                epi.apply(row, co0 + r, out_base + r * n);
            }
            Ok(())
        })();
        if let Err(e) = res {
            if let Ok(mut f) = failed.lock() {
                f.get_or_insert(e);
            }
        }
    });
    match failed.into_inner() {
        Ok(Some(e)) => Err(e),
        _ => Ok(()),
    }
}

/// Columns `p0..p0 + np` of the im2col matrix of one group's input `x`
/// (`cig` planes): row `(c, ky, kx)` holds, for each output position, the
/// input value under that tap (0 in the padding). `cols` is `k x np`.
fn im2col(g: &Geom, _ho: usize, wo: usize, x: &[f32], p0: usize, np: usize, cols: &mut [f32]) {
    let cig = g.c_in / g.groups;
    let (pt, pl) = (g.pad[0].0 as isize, g.pad[1].0 as isize);
    let (s0, s1) = (g.stride[0] as isize, g.stride[1] as isize);
    let mut r = 0;
    for c in 0..cig {
        let plane = &x[c * g.h * g.w..][..g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let dst = &mut cols[r * np..(r + 1) * np];
                r += 1;
                let (dy, dx) = ((ky * g.dil[0]) as isize - pt, (kx * g.dil[1]) as isize - pl);
                let mut p = p0;
                let mut i = 0;
                while i < np {
                    let (oy, ox0) = (p / wo, p % wo);
                    let len = (wo - ox0).min(np - i);
                    let seg = &mut dst[i..i + len];
                    let iy = oy as isize * s0 + dy;
                    if iy < 0 || iy >= g.h as isize {
                        seg.fill(0.0);
                    } else {
                        let row = &plane[iy as usize * g.w..][..g.w];
                        fill_row(seg, row, ox0 as isize * s1 + dx, s1);
                    }
                    p += len;
                    i += len;
                }
            }
        }
    }
}

/// `seg[j] = row[start + j * s]`, 0 where that index is outside `row`.
fn fill_row(seg: &mut [f32], row: &[f32], start: isize, s: isize) {
    let w = row.len() as isize;
    let len = seg.len() as isize;
    // First and one-past-last j with 0 <= start + j*s < w.
    let lo = if start >= 0 { 0 } else { (-start + s - 1) / s }.min(len);
    let hi = if start >= w {
        0
    } else {
        ((w - start + s - 1) / s).min(len)
    }
    .max(lo);
    let (lo, hi) = (lo as usize, hi as usize);
    seg[..lo].fill(0.0);
    seg[hi..].fill(0.0);
    if s == 1 {
        let a = (start + lo as isize) as usize;
        seg[lo..hi].copy_from_slice(&row[a..a + hi - lo]);
    } else {
        for (j, v) in seg[lo..hi].iter_mut().enumerate() {
            *v = row[(start + (lo + j) as isize * s) as usize];
        }
    }
}

#[cfg(test)]
#[path = "conv2d_tests.rs"]
mod tests;
