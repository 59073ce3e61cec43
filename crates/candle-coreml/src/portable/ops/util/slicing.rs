//! Numpy-style slicing, the one implementation behind `slice_by_index`,
//! `slice_update` and the in-place KV-cache update.
//!
//! Semantics (coremltools' reference implementation of these ops): for each
//! axis `i`, a set `begin_mask[i]` means "from the start" (the end, for a
//! negative stride), a set `end_mask[i]` "to the end"; a set
//! `squeeze_mask[i]` takes the single element at `begin[i]` (index 0 when
//! `begin_mask[i]` is set too) and drops the axis. Negative indices count
//! from the end and out-of-range bounds are clamped, as Python's
//! `slice.indices`. Masks, when given, have one entry per axis.

use crate::error::{Error, Result};
use crate::portable::kernel::{Args, IntsArg, OpBuilder};

/// One axis of a resolved slice: first index, step and element count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    /// First index (may be -1 for an empty slice with a negative step).
    pub(crate) start: i64,
    /// Step between indices (non-zero).
    pub(crate) step: i64,
    /// Number of indices.
    pub(crate) len: usize,
    /// The axis is indexed (and dropped from the result), not sliced.
    pub(crate) squeeze: bool,
}

impl Span {
    /// True when the span covers an axis of size `n` whole, in order.
    pub(crate) fn is_full(&self, n: usize) -> bool {
        self.start == 0 && self.step == 1 && self.len == n && !self.squeeze
    }

    /// The first index as an offset (0 for an empty span).
    pub(crate) fn first(&self) -> usize {
        usize::try_from(self.start).unwrap_or(0)
    }
}

/// Python `slice(begin, end, step).indices(n)`: negative indices count from
/// the end, out-of-range ones are clamped, `None` means "from the start" /
/// "to the end" in the direction of `step`.
pub(crate) fn py_slice(n: usize, begin: Option<i64>, end: Option<i64>, step: i64) -> Result<Span> {
    if step == 0 {
        return Err(Error::msg("slice stride of 0"));
    }
    let n = i64::try_from(n).map_err(|_| Error::msg("dimension too large"))?;
    let (lo, hi) = if step > 0 { (0, n) } else { (-1, n - 1) };
    let clamp = |v: i64| (if v < 0 { v.saturating_add(n) } else { v }).clamp(lo, hi);
    let start = begin.map_or(if step > 0 { 0 } else { n - 1 }, clamp);
    let stop = end.map_or(if step > 0 { n } else { -1 }, clamp);
    let (dist, s) = if step > 0 {
        (stop - start, step)
    } else {
        (start - stop, step.saturating_neg())
    };
    let len = if dist > 0 {
        usize::try_from((dist - 1) / s + 1).unwrap_or(0)
    } else {
        0
    };
    Ok(Span {
        start,
        step,
        len,
        squeeze: false,
    })
}

/// A mask given for `rank` axes: all clear when absent; a wrong length is
/// an error.
fn mask(m: Option<&[bool]>, what: &str, rank: usize) -> Result<Vec<bool>> {
    match m {
        Some(v) if v.len() == rank => Ok(v.to_vec()),
        Some(v) => Err(Error::msg(format!(
            "{what} has {} entries for rank {rank}",
            v.len()
        ))),
        None => Ok(vec![false; rank]),
    }
}

/// The spans of a slice of a tensor of shape `dims`.
pub(crate) fn resolve(
    dims: &[usize],
    begin: &[i64],
    end: &[i64],
    stride: &[i64],
    masks: &Masks,
) -> Result<Vec<Span>> {
    let rank = dims.len();
    if begin.len() != rank || end.len() != rank || stride.len() != rank {
        return Err(Error::msg(format!(
            "slice begin {begin:?}, end {end:?}, stride {stride:?} do not match rank {rank}"
        )));
    }
    let bm = mask(masks.begin.as_deref(), "begin_mask", rank)?;
    let em = mask(masks.end.as_deref(), "end_mask", rank)?;
    let sm = mask(masks.squeeze.as_deref(), "squeeze_mask", rank)?;
    let mut spans = Vec::with_capacity(rank);
    for (i, &n) in dims.iter().enumerate() {
        if sm[i] {
            let size = i64::try_from(n).map_err(|_| Error::msg("dimension too large"))?;
            let idx = if bm[i] { 0 } else { begin[i] };
            let idx = if idx < 0 { idx + size } else { idx };
            if idx < 0 || idx >= size {
                return Err(Error::msg(format!(
                    "slice index {} out of range for dimension {i} of size {n}",
                    begin[i]
                )));
            }
            spans.push(Span {
                start: idx,
                step: 1,
                len: 1,
                squeeze: true,
            });
        } else {
            let b = (!bm[i]).then_some(begin[i]);
            let e = (!em[i]).then_some(end[i]);
            spans.push(
                py_slice(n, b, e, stride[i])
                    .map_err(|e| Error::msg(format!("axis {i}: {}", e.report())))?,
            );
        }
    }
    Ok(spans)
}

/// `begin_mask`, `end_mask`, `squeeze_mask` as given (`None`: absent).
#[derive(Debug, Clone, Default)]
pub(crate) struct Masks {
    pub(crate) begin: Option<Vec<bool>>,
    pub(crate) end: Option<Vec<bool>>,
    pub(crate) squeeze: Option<Vec<bool>>,
}

/// The slice parameters of `slice_by_index` / `slice_update`, parsed at load.
#[derive(Debug, Clone)]
pub(crate) struct SliceArgs {
    begin: IntsArg,
    end: IntsArg,
    stride: Option<IntsArg>,
    pub(crate) masks: Masks,
}

impl SliceArgs {
    /// Reads `begin`, `end`, `stride` (constants or runtime inputs) and the masks.
    pub(crate) fn parse(b: &mut OpBuilder<'_>) -> Result<Self> {
        Ok(Self {
            begin: b.ints_or_input("begin")?,
            end: b.ints_or_input("end")?,
            stride: b.opt_ints_or_input("stride")?,
            masks: Masks {
                begin: b.opt_bools("begin_mask")?,
                end: b.opt_bools("end_mask")?,
                squeeze: b.opt_bools("squeeze_mask")?,
            },
        })
    }

    /// The spans of this slice of a tensor of shape `dims`, for this call.
    pub(crate) fn resolve(&self, a: &Args<'_>, dims: &[usize]) -> Result<Vec<Span>> {
        let stride = match &self.stride {
            Some(s) => a.ints(s)?,
            None => vec![1; dims.len()],
        };
        resolve(
            dims,
            &a.ints(&self.begin)?,
            &a.ints(&self.end)?,
            &stride,
            &self.masks,
        )
    }
}

/// Dims of the slice result (squeezed axes dropped).
pub(crate) fn sliced_dims(spans: &[Span]) -> Vec<usize> {
    spans.iter().filter(|s| !s.squeeze).map(|s| s.len).collect()
}

/// Dims of the slice with squeezed axes kept as size 1 (the window an
/// update is written into).
pub(crate) fn window_dims(spans: &[Span]) -> Vec<usize> {
    spans.iter().map(|s| s.len).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masks(b: &[bool], e: &[bool], s: &[bool]) -> Masks {
        Masks {
            begin: Some(b.to_vec()),
            end: Some(e.to_vec()),
            squeeze: Some(s.to_vec()),
        }
    }

    #[test]
    fn squeeze_with_begin_mask_takes_index_zero() {
        // numpy (coremltools' reference): begin None, stride "infinite".
        let spans = resolve(
            &[4, 5],
            &[3, 1],
            &[4, 3],
            &[1, 1],
            &masks(&[true, false], &[false, false], &[true, false]),
        )
        .unwrap();
        assert_eq!(spans[0].start, 0);
        assert!(spans[0].squeeze);
        assert_eq!(sliced_dims(&spans), vec![2]);
    }

    #[test]
    fn short_masks_are_errors() {
        let e = resolve(
            &[4, 5],
            &[0, 0],
            &[4, 5],
            &[1, 1],
            &masks(&[true], &[false, false], &[false, false]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("begin_mask"), "{e}");
    }

    #[test]
    fn python_slice_indices() {
        // Python: slice(-1, 0, -2).indices(6) == (5, 0, -2): 5, 3, 1.
        let s = py_slice(6, Some(-1), Some(0), -2).unwrap();
        assert_eq!((s.start, s.step, s.len), (5, -2, 3));
        // slice(None, None, -1).indices(0): empty.
        assert_eq!(py_slice(0, None, None, -1).unwrap().len, 0);
        // slice(10, 20).indices(4): clamped, empty.
        assert_eq!(py_slice(4, Some(10), Some(20), 1).unwrap().len, 0);
    }
}
