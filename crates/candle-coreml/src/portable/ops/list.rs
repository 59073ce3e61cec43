//! List ops: `make_list`, `list_length`, `list_read`, `list_write`,
//! `list_gather` and `list_scatter`.
//!
//! The evaluator's run-time values are tensors, and a MIL list holds elements
//! of one shape and dtype (what coremltools' `while_loop` conversions build),
//! so a list is represented as one stacked tensor `[length, *elem_shape]`:
//! its length is its first dimension. Writes return a new tensor (lists are
//! values in MIL); writing past the end grows the list, filling the gap with
//! zeros. A list whose element shape is not known at load starts as a `[0]`
//! tensor and takes the shape of the first value written to it.

use candle_core::{DType, Tensor};

use super::registry::Registry;
use super::util::checked_dims;
use crate::error::{Error, Result};
use crate::mil::DataType;
use crate::portable::kernel::{kernel, IntsArg, Kernel, OpBuilder};

/// Registers this family's ops.
pub(crate) fn register(reg: &mut Registry) {
    reg.insert("make_list", build_make_list);
    reg.insert("list_length", build_list_length);
    reg.insert("list_read", build_list_read);
    reg.insert("list_write", build_list_write);
    reg.insert("list_gather", build_list_gather);
    reg.insert("list_scatter", build_list_scatter);
}

/// The element shape from `elem_shape` (a tuple of scalars or one vector);
/// `None` when a dimension is symbolic (a string) or the input is absent.
fn elem_shape(b: &OpBuilder<'_>) -> Result<Option<Vec<i64>>> {
    if !b.has("elem_shape") {
        return Ok(None);
    }
    let values = b
        .constants("elem_shape")
        .ok_or_else(|| b.err("elem_shape must be constant"))?;
    let mut dims = Vec::new();
    for v in values {
        if v.dtype == DataType::String {
            return Ok(None);
        }
        dims.extend(
            v.to_i64_vec()
                .map_err(|e| b.err(format!("elem_shape: {e}")))?,
        );
    }
    Ok(Some(dims))
}

fn build_make_list(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let elem = elem_shape(b)?;
    if let Some(e) = &elem {
        checked_dims(e).map_err(|err| b.err(format!("elem_shape: {err}")))?;
    }
    let name = b.string_or("dtype", "fp32")?;
    let mil =
        DataType::from_mil_name(&name).ok_or_else(|| b.err(format!("unknown dtype {name:?}")))?;
    let dtype = b.compute_dtype(mil)?;
    let length = match b.opt_ints_or_input("init_length")? {
        Some(l) => l,
        None => IntsArg::Const(vec![1]),
    };
    let device = b.device().clone();
    Ok(kernel(move |a| {
        let n = match a.ints(&length)?.as_slice() {
            [n] if *n >= 0 => *n,
            v => return Err(Error::msg(format!("make_list: bad init_length {v:?}"))),
        };
        let dims = match &elem {
            Some(e) => std::iter::once(n).chain(e.iter().copied()).collect(),
            None if n == 0 => vec![0],
            None => {
                return Err(Error::msg(
                    "make_list: a list with a symbolic element shape must start empty",
                ))
            }
        };
        Ok(vec![Tensor::zeros(checked_dims(&dims)?, dtype, &device)?])
    }))
}

fn build_list_length(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let ls = b.input("ls")?;
    let dtype = b.output_dtype(0)?;
    Ok(kernel(move |a| {
        let t = a.tensor(ls)?;
        let n = t.dims().first().copied().unwrap_or(0) as i64;
        Ok(vec![Tensor::new(n, t.device())?.to_dtype(dtype)?])
    }))
}

/// The integers of an index tensor, each in `[0, limit)` when `limit` is set.
fn indices(t: &Tensor, limit: Option<usize>) -> Result<Vec<usize>> {
    let v = t.flatten_all()?.to_dtype(DType::I64)?.to_vec1::<i64>()?;
    v.into_iter()
        .map(|i| {
            let u = usize::try_from(i)
                .map_err(|_| Error::msg(format!("list index {i} is negative")))?;
            match limit {
                Some(n) if u >= n => Err(Error::msg(format!(
                    "list index {i} out of range for a list of length {n}"
                ))),
                _ => Ok(u),
            }
        })
        .collect()
}

/// The length of a list tensor (a rank-0 tensor is not a list).
fn length(ls: &Tensor) -> Result<usize> {
    ls.dims()
        .first()
        .copied()
        .ok_or_else(|| Error::msg("list value is a scalar"))
}

fn build_list_read(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let ls = b.input("ls")?;
    let index = b.input("index")?;
    let dtype = b.output_dtype(0)?;
    Ok(kernel(move |a| {
        let l = a.tensor(ls)?;
        let i = match indices(a.tensor(index)?, Some(length(l)?))?.as_slice() {
            [i] => *i,
            v => {
                return Err(Error::msg(format!(
                    "list_read: one index expected, got {v:?}"
                )))
            }
        };
        Ok(vec![l.get(i)?.to_dtype(dtype)?])
    }))
}

fn build_list_gather(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let ls = b.input("ls")?;
    let idx = b.input("indices")?;
    let dtype = b.output_dtype(0)?;
    Ok(kernel(move |a| {
        let l = a.tensor(ls)?;
        let ix = indices(a.tensor(idx)?, Some(length(l)?))?;
        let ix: Vec<u32> = ix
            .into_iter()
            .map(|i| u32::try_from(i).map_err(|_| Error::msg("list index too large")))
            .collect::<Result<_>>()?;
        let n = ix.len();
        let ix = Tensor::from_vec(ix, n, l.device())?;
        Ok(vec![l.index_select(&ix, 0)?.to_dtype(dtype)?])
    }))
}

/// Writes `values` (`[k, *elem]`) at rows `at` of list `ls`, growing it as needed.
fn write_rows(ls: &Tensor, at: &[usize], values: &Tensor) -> Result<Tensor> {
    let elem = values.dims().get(1..).unwrap_or(&[]).to_vec();
    let mut ls = ls.clone();
    // An empty list of unknown element shape adopts the written one.
    if ls.dims() == [0] && !elem.is_empty() {
        let dims: Vec<usize> = std::iter::once(0).chain(elem.iter().copied()).collect();
        ls = Tensor::zeros(dims, ls.dtype(), ls.device())?;
    }
    if ls.dims().get(1..) != Some(elem.as_slice()) {
        return Err(Error::msg(format!(
            "list elements have shape {:?}, written value has shape {elem:?}",
            ls.dims().get(1..).unwrap_or(&[])
        )));
    }
    let values = values.to_dtype(ls.dtype())?;
    let len = length(&ls)?;
    if let Some(&top) = at.iter().max() {
        if top >= len {
            let mut dims = vec![top as i64 + 1 - len as i64];
            dims.extend(elem.iter().map(|&d| d as i64));
            let pad = Tensor::zeros(checked_dims(&dims)?, ls.dtype(), ls.device())?;
            ls = Tensor::cat(&[&ls, &pad], 0)?;
        }
    }
    for (k, &i) in at.iter().enumerate() {
        ls = ls.slice_scatter0(&values.narrow(0, k, 1)?, i)?;
    }
    Ok(ls)
}

fn build_list_write(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let ls = b.input("ls")?;
    let index = b.input("index")?;
    let value = b.input("value")?;
    Ok(kernel(move |a| {
        let i = match indices(a.tensor(index)?, None)?.as_slice() {
            [i] => *i,
            v => {
                return Err(Error::msg(format!(
                    "list_write: one index expected, got {v:?}"
                )))
            }
        };
        let v = a.tensor(value)?.unsqueeze(0)?;
        Ok(vec![write_rows(a.tensor(ls)?, &[i], &v)?])
    }))
}

fn build_list_scatter(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let ls = b.input("ls")?;
    let idx = b.input("indices")?;
    let value = b.input("value")?;
    Ok(kernel(move |a| {
        let at = indices(a.tensor(idx)?, None)?;
        let v = a.tensor(value)?;
        if v.dims().first() != Some(&at.len()) {
            return Err(Error::msg(format!(
                "list_scatter: {} indices for values of shape {:?}",
                at.len(),
                v.dims()
            )));
        }
        Ok(vec![write_rows(a.tensor(ls)?, &at, v)?])
    }))
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::portable::testutil::{assert_close, int, ints1, run_op, string, Arg};

    fn list(rows: &[[f32; 2]]) -> Tensor {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_vec(flat, (rows.len(), 2), &Device::Cpu).unwrap()
    }

    #[test]
    fn make_list_is_zeros_of_elem_shape() {
        let out = run_op(
            "make_list",
            vec![
                ("init_length", Arg::C(int(3))),
                ("elem_shape", Arg::Cs(vec![int(2), int(4)])),
                ("dtype", Arg::C(string("int32"))),
            ],
            &[DataType::Int32],
        )
        .unwrap();
        assert_eq!(out[0].dims(), [3, 2, 4]);
        assert_eq!(out[0].dtype(), DType::I64);
    }

    #[test]
    fn write_grows_and_read_gathers() {
        let ls = list(&[[1.0, 2.0]]);
        let v = Tensor::new(&[5.0f32, 6.0], &Device::Cpu).unwrap();
        let out = run_op(
            "list_write",
            vec![
                ("ls", Arg::T(ls)),
                ("index", Arg::C(int(2))),
                ("value", Arg::T(v)),
            ],
            &[DataType::Fp32],
        )
        .unwrap();
        assert_close(&out[0], &[1.0, 2.0, 0.0, 0.0, 5.0, 6.0], &[3, 2], 0.0);
        let g = run_op(
            "list_gather",
            vec![
                ("ls", Arg::T(out[0].clone())),
                ("indices", Arg::C(ints1(&[2, 0]))),
            ],
            &[DataType::Fp32],
        )
        .unwrap();
        assert_close(&g[0], &[5.0, 6.0, 1.0, 2.0], &[2, 2], 0.0);
        let r = run_op(
            "list_read",
            vec![("ls", Arg::T(out[0].clone())), ("index", Arg::C(int(3)))],
            &[DataType::Fp32],
        );
        assert!(r.is_err(), "read past the end");
        let n = run_op(
            "list_length",
            vec![("ls", Arg::T(out[0].clone()))],
            &[DataType::Int32],
        );
        assert_eq!(n.unwrap()[0].to_scalar::<i64>().unwrap(), 3);
    }

    #[test]
    fn scatter_into_unknown_shape_list() {
        let empty = Tensor::zeros(0, DType::F32, &Device::Cpu).unwrap();
        let vals = list(&[[1.0, 2.0], [3.0, 4.0]]);
        let out = run_op(
            "list_scatter",
            vec![
                ("ls", Arg::T(empty)),
                ("indices", Arg::C(ints1(&[1, 0]))),
                ("value", Arg::T(vals)),
            ],
            &[DataType::Fp32],
        )
        .unwrap();
        assert_close(&out[0], &[3.0, 4.0, 1.0, 2.0], &[2, 2], 0.0);
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let ls = list(&[[1.0, 2.0]]);
        let v = Tensor::new(&[5.0f32, 6.0, 7.0], &Device::Cpu).unwrap();
        let out = run_op(
            "list_write",
            vec![
                ("ls", Arg::T(ls)),
                ("index", Arg::C(int(0))),
                ("value", Arg::T(v)),
            ],
            &[DataType::Fp32],
        );
        assert!(out.is_err());
    }
}
