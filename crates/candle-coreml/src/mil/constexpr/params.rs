//! What the decoders share: parameter lookup ([`Params`]), dense outputs,
//! shapes, strides, axes and block walks.

use crate::mil::program::{Binding, Operation};
use crate::mil::types::DataType;
use crate::mil::value::{ByteView, TensorData, TensorValue, Value};

/// The parameters of one op, from its inputs or its attributes.
pub(super) struct Params<'a, 'l> {
    pub(super) op: &'a Operation,
    pub(super) lookup: &'l dyn Fn(&str) -> Option<&'a Value>,
}

impl<'a> Params<'a, '_> {
    /// The tensor bound to parameter `name`, if the op has it.
    pub(super) fn opt(&self, name: &str) -> Result<Option<&'a TensorValue>, String> {
        let value: &'a Value = if let Some(arg) = self.op.input(name) {
            match arg.bindings.as_slice() {
                [Binding::Value(v)] => v,
                [Binding::Name(n)] => (self.lookup)(n).ok_or_else(|| {
                    format!("parameter `{name}` is bound to {n:?}, which is not a known constant")
                })?,
                b => {
                    return Err(format!(
                        "parameter `{name}` must be one value, found {} bindings",
                        b.len()
                    ))
                }
            }
        } else if let Some(v) = self.op.attribute(name) {
            v
        } else {
            return Ok(None);
        };
        value
            .as_tensor()
            .map(Some)
            .ok_or_else(|| format!("parameter `{name}` is not a tensor"))
    }

    /// The tensor bound to the required parameter `name`.
    pub(super) fn req(&self, name: &str) -> Result<&'a TensorValue, String> {
        self.opt(name)?
            .ok_or_else(|| format!("missing parameter `{name}`"))
    }

    /// An integer scalar parameter.
    pub(super) fn int(&self, name: &str) -> Result<Option<i64>, String> {
        self.opt(name)?
            .map(|t| t.scalar_i64().map_err(in_param(name)))
            .transpose()
    }
}

/// Prefixes an element-decoding error with the parameter it came from.
pub(super) fn in_param(name: &str) -> impl Fn(String) -> String + '_ {
    move |e| format!("parameter `{name}`: {e}")
}

/// A decoded output: `bytes` in `dtype`, of `shape`.
pub(super) fn dense(dtype: DataType, shape: Vec<usize>, bytes: Vec<u8>) -> TensorValue {
    TensorValue::new(dtype, shape, TensorData::Bytes(ByteView::from_vec(bytes)))
}

/// Bytes per element of a whole-byte dtype; an error for sub-byte and string.
pub(super) fn byte_width(dtype: DataType, what: &str) -> Result<usize, String> {
    match dtype.bit_width() {
        Some(b) if b % 8 == 0 => Ok(b as usize / 8),
        _ => Err(format!("parameter `{what}`: unsupported dtype {dtype}")),
    }
}

/// Product of dimensions, failing on overflow.
pub(super) fn element_count(shape: &[usize]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} has too many elements"))
}

/// Row-major strides of `shape` (in elements).
pub(super) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1].saturating_mul(shape[d + 1]);
    }
    s
}

/// An axis in `-rank..rank`, made non-negative.
pub(super) fn normalize_axis(axis: i64, rank: usize, what: &str) -> Result<usize, String> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        return Err(format!(
            "parameter `{what}` = {axis} is out of range for rank {rank}"
        ));
    }
    Ok(if axis < 0 { axis + r } else { axis } as usize)
}

/// Checks that `groups` cuts `shape` into equal blocks: same rank, every
/// group count at least 1 and dividing its dimension.
pub(super) fn check_blocks(shape: &[usize], groups: &[usize], what: &str) -> Result<(), String> {
    if shape.len() != groups.len() {
        return Err(format!(
            "parameter `{what}` has shape {groups:?}, which does not match the rank of {shape:?}"
        ));
    }
    for (d, (&n, &g)) in shape.iter().zip(groups).enumerate() {
        if g == 0 || !n.is_multiple_of(g) {
            return Err(format!(
                "parameter `{what}` has {g} blocks along axis {d}, which do not divide its size {n}"
            ));
        }
    }
    Ok(())
}

/// Visits every position of a row-major tensor of `shape` in order, calling
/// `f(flat, block, offset)`: `flat` counts positions, `block` is the
/// row-major index of the block holding the position when the tensor is cut
/// into `groups[d]` equal blocks along each axis (see [`check_blocks`]), and
/// `offset` is `sum(coord[d] * steps[d])`.
pub(super) fn walk_blocks(
    shape: &[usize],
    groups: &[usize],
    steps: &[usize],
    mut f: impl FnMut(usize, usize, usize) -> Result<(), String>,
) -> Result<(), String> {
    check_blocks(shape, groups, "blocks")?;
    if steps.len() != shape.len() {
        return Err("internal: steps do not match the shape".into());
    }
    let n = element_count(shape)?;
    let rank = shape.len();
    let block_len: Vec<usize> = shape.iter().zip(groups).map(|(&n, &g)| n / g).collect();
    let gstride = strides(groups);
    let mut coord = vec![0usize; rank];
    let (mut block, mut offset) = (0usize, 0usize);
    for flat in 0..n {
        f(flat, block, offset)?;
        for d in (0..rank).rev() {
            coord[d] += 1;
            if coord[d] < shape[d] {
                offset += steps[d];
                if coord[d].is_multiple_of(block_len[d]) {
                    block += gstride[d];
                }
                break;
            }
            // Wrap this axis back to 0 and carry into the next one.
            offset -= (shape[d] - 1) * steps[d];
            block -= (groups[d] - 1) * gstride[d];
            coord[d] = 0;
        }
    }
    Ok(())
}
