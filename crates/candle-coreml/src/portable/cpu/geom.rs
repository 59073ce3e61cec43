//! What the CPU convolution and pooling kernels are given: the geometry of
//! one call and the epilogue applied to each output value.

use super::act::{self, Act};
use crate::error::{Error, Result};

/// Geometry of one convolution call (padding resolved for this input size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geom {
    pub(crate) n: usize,
    pub(crate) c_in: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) c_out: usize,
    pub(crate) kh: usize,
    pub(crate) kw: usize,
    pub(crate) stride: [usize; 2],
    pub(crate) dil: [usize; 2],
    /// (before, after) zero padding of H and of W.
    pub(crate) pad: [(usize, usize); 2],
    pub(crate) groups: usize,
}

impl Geom {
    fn span(k: usize, d: usize) -> usize {
        (k.max(1) - 1) * d + 1
    }

    /// Output height and width.
    pub(crate) fn out_hw(&self) -> Result<(usize, usize)> {
        let ph = self.h + self.pad[0].0 + self.pad[0].1;
        let pw = self.w + self.pad[1].0 + self.pad[1].1;
        let (eh, ew) = (
            Self::span(self.kh, self.dil[0]),
            Self::span(self.kw, self.dil[1]),
        );
        if ph < eh || pw < ew || self.stride.contains(&0) || self.dil.contains(&0) {
            return Err(Error::msg(format!(
                "conv geometry {self:?} gives no output"
            )));
        }
        Ok((
            (ph - eh) / self.stride[0] + 1,
            (pw - ew) / self.stride[1] + 1,
        ))
    }

    pub(super) fn check(&self, x: usize, w: usize) -> Result<()> {
        let g = self.groups;
        if g == 0 || !self.c_in.is_multiple_of(g) || !self.c_out.is_multiple_of(g) {
            return Err(Error::msg(format!(
                "{} input and {} output channels do not split into {g} groups",
                self.c_in, self.c_out
            )));
        }
        if x != self.n * self.c_in * self.h * self.w {
            return Err(Error::msg("conv input size does not match its geometry"));
        }
        if w != self.c_out * (self.c_in / g) * self.kh * self.kw {
            return Err(Error::msg("conv weight size does not match its geometry"));
        }
        Ok(())
    }
}

/// What is applied to each output value after the sum of products:
/// `post(pre(acc + bias) + residual)`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Epilogue<'a> {
    /// One value per output channel.
    pub(crate) bias: Option<&'a [f32]>,
    pub(crate) pre: &'a [Act],
    /// A tensor of the output's shape added after `pre`.
    pub(crate) residual: Option<&'a [f32]>,
    pub(crate) post: &'a [Act],
}

impl Epilogue<'_> {
    /// Applies the epilogue to `v`, the values of output channel `co` at
    /// flat output positions `at..at + v.len()` (over the whole NCHW output).
    pub(super) fn apply(&self, v: &mut [f32], co: usize, at: usize) {
        if let Some(b) = self.bias {
            act::add_scalar(v, b[co]);
        }
        for &a in self.pre {
            act::apply(a, v);
        }
        if let Some(r) = self.residual {
            act::add(v, &r[at..at + v.len()]);
        }
        for &a in self.post {
            act::apply(a, v);
        }
    }
}
