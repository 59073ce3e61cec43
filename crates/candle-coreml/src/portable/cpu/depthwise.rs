//! Convolution where every group has one input channel (depthwise convs and
//! their channel multipliers), one task per output plane.
//!
//! The input plane is zero-padded once into `s0 x s1` phase planes (padded
//! row `r`, column `c` goes to phase plane `(r % s0, c % s1)` at
//! `(r / s0, c / s1)`), so every tap of a strided conv reads a contiguous
//! run of one phase plane. Outputs are computed `phase_w` wide (the columns
//! past `wo` are thrown away), which makes each tap one long vector loop over
//! a block of output rows, `acc[i] += w * src[off + i]`, instead of many
//! loops as short as a row (7 or 14 values in the late stages of a CNN,
//! shorter than one AVX-512 vector).

use super::geom::{Epilogue, Geom};
use super::simd::multiversion;
use super::{par_for, with_scratch, Shared};

/// Floats of accumulator per row block (16 KiB: stays in L1 across taps).
const BLOCK_FLOATS: usize = 4096;

/// Layout of the phase planes of one padded input plane.
#[derive(Debug, Clone, Copy)]
struct Phases {
    /// Rows of each phase plane, one spare row included (the wide outputs of
    /// the last row read up to one row past the data).
    rows: usize,
    /// Columns of each phase plane.
    cols: usize,
}

impl Phases {
    fn new(g: &Geom) -> Self {
        let ph = g.h + g.pad[0].0 + g.pad[0].1;
        let pw = g.w + g.pad[1].0 + g.pad[1].1;
        Self {
            rows: ph.div_ceil(g.stride[0]) + 1,
            cols: pw.div_ceil(g.stride[1]),
        }
    }

    fn plane(&self) -> usize {
        self.rows * self.cols
    }

    /// Offset in the phase buffer of padded position (`r`, `c`) relative to
    /// an output position: its phase plane and the row/column shift.
    fn tap(&self, g: &Geom, r: usize, c: usize) -> usize {
        let (s0, s1) = (g.stride[0], g.stride[1]);
        ((r % s0) * s1 + c % s1) * self.plane() + (r / s0) * self.cols + c / s1
    }
}

/// `conv(x, w)` for `g.c_in == g.groups`, written to `out` with the epilogue.
pub(super) fn depthwise(
    g: &Geom,
    ho: usize,
    wo: usize,
    x: &[f32],
    w: &[f32],
    epi: &Epilogue<'_>,
    out: &mut [f32],
) {
    let per_group = g.c_out / g.groups;
    let ksize = g.kh * g.kw;
    let tap_sum = |co: usize, acc: &mut [f32], taps: &[&[f32]]| {
        let k = &w[co * ksize..][..ksize];
        scale(acc, taps[0], k[0]);
        for (src, &wv) in taps.iter().zip(k).skip(1) {
            axpy(acc, src, wv);
        }
    };
    planes(
        g,
        ho,
        wo,
        x,
        0.0,
        out,
        |co| co / per_group,
        tap_sum,
        |dst, co, at| epi.apply(dst, co, at),
    );
}

/// Valid max pooling of the planes of `x` padded by `g.pad` with -inf
/// (`g`: one group per channel, `c_out == c_in`, the window as the kernel).
pub(crate) fn max_pool(g: &Geom, ho: usize, wo: usize, x: &[f32], out: &mut [f32]) {
    let window_max = |_: usize, acc: &mut [f32], taps: &[&[f32]]| {
        acc.copy_from_slice(taps[0]);
        for src in &taps[1..] {
            vmax(acc, src);
        }
    };
    planes(
        g,
        ho,
        wo,
        x,
        f32::NEG_INFINITY,
        out,
        |c| c,
        window_max,
        |_, _, _| {},
    );
}

/// Runs one task per output plane: pads input plane `input(co)` into phase
/// planes with `fill`, then `block(co, acc, taps)` computes each block of
/// phase-width output rows from the taps' runs of the phase planes, and
/// `finish(plane, co, at)` sees the finished plane at flat offset `at`.
#[allow(clippy::too_many_arguments)]
fn planes(
    g: &Geom,
    ho: usize,
    wo: usize,
    x: &[f32],
    fill: f32,
    out: &mut [f32],
    input: impl Fn(usize) -> usize + Sync,
    block: impl Fn(usize, &mut [f32], &[&[f32]]) + Sync,
    finish: impl Fn(&mut [f32], usize, usize) + Sync,
) {
    let plane = ho * wo;
    let ph = Phases::new(g);
    let phases_len = g.stride[0] * g.stride[1] * ph.plane();
    let block_rows = (BLOCK_FLOATS / ph.cols).clamp(1, ho);
    let acc_len = block_rows * ph.cols;
    let taps: Vec<usize> = (0..g.kh * g.kw)
        .map(|t| ph.tap(g, (t / g.kw) * g.dil[0], (t % g.kw) * g.dil[1]))
        .collect();
    let shared = Shared::new(out);
    par_for(g.n * g.c_out, |task| {
        let (b, co) = (task / g.c_out, task % g.c_out);
        let src = &x[(b * g.c_in + input(co)) * g.h * g.w..][..g.h * g.w];
        // SAFETY: each task writes only its own output plane.
        let dst = unsafe { shared.part(task * plane, plane) };
        with_scratch(phases_len + acc_len, |buf| {
            let (phases, acc) = buf.split_at_mut(phases_len);
            split_phases(src, g, ph, fill, phases);
            let mut runs: Vec<&[f32]> = Vec::with_capacity(taps.len());
            for oy0 in (0..ho).step_by(block_rows) {
                let rows = block_rows.min(ho - oy0);
                let acc = &mut acc[..rows * ph.cols];
                let at = oy0 * ph.cols;
                runs.clear();
                runs.extend(taps.iter().map(|&t| &phases[t + at..][..acc.len()]));
                block(co, acc, &runs);
                for (r, row) in acc.chunks_exact(ph.cols).enumerate() {
                    dst[(oy0 + r) * wo..][..wo].copy_from_slice(&row[..wo]);
                }
            }
        });
        finish(dst, co, task * plane);
    });
}

/// Pads plane `src` (`g.h x g.w`) with `fill` into its phase planes.
fn split_phases(src: &[f32], g: &Geom, ph: Phases, fill: f32, dst: &mut [f32]) {
    let (s0, s1) = (g.stride[0], g.stride[1]);
    dst.fill(fill);
    for (y, row) in src.chunks_exact(g.w).enumerate() {
        let py = y + g.pad[0].0;
        let line = ((py % s0) * s1) * ph.plane() + (py / s0) * ph.cols;
        if s1 == 1 {
            dst[line + g.pad[1].0..][..g.w].copy_from_slice(row);
            continue;
        }
        for q in 0..s1 {
            // Padded columns c = q + j*s1 that hold input column c - pad.
            let first = (g.pad[1].0 + s1 - q - 1) / s1 * s1 + q;
            if first >= g.pad[1].0 + g.w {
                continue;
            }
            let to = &mut dst[line + q * ph.plane() + first / s1..][..ph.cols - first / s1];
            let from = row[first - g.pad[1].0..].iter().step_by(s1);
            to.iter_mut().zip(from).for_each(|(d, &v)| *d = v);
        }
    }
}

#[inline(always)]
fn scale_generic(acc: &mut [f32], src: &[f32], w: f32) {
    acc.iter_mut().zip(src).for_each(|(a, &s)| *a = w * s);
}

multiversion!(fn scale(acc: &mut [f32], src: &[f32], w: f32) => scale_generic);

#[inline(always)]
fn axpy_generic(acc: &mut [f32], src: &[f32], w: f32) {
    acc.iter_mut().zip(src).for_each(|(a, &s)| *a += w * s);
}

multiversion!(fn axpy(acc: &mut [f32], src: &[f32], w: f32) => axpy_generic);

#[inline(always)]
fn vmax_generic(acc: &mut [f32], src: &[f32]) {
    // NaN in `acc` stays; a NaN in `src` is skipped (as a comparison).
    acc.iter_mut()
        .zip(src)
        .for_each(|(a, &s)| *a = if s > *a { s } else { *a });
}

multiversion!(fn vmax(acc: &mut [f32], src: &[f32]) => vmax_generic);
