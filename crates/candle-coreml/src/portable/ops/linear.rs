//! `linear` ops: `linear`, `matmul`, `einsum`.
//!
//! Products run in candle's matmul; integer operands (computed as i64) go
//! through f64, which is exact for the int32 values MIL allows.

use candle_core::{DType, Tensor};

use super::registry::Registry;
use crate::error::{Error, Result};
use crate::portable::fuse_gqa::MATMUL_GQA;
use crate::portable::kernel::{kernel, Kernel, OpBuilder, Operand};

/// Registers this family's ops.
pub(crate) fn register(reg: &mut Registry) {
    reg.insert("linear", build_linear);
    reg.insert("matmul", build_matmul);
    reg.insert(MATMUL_GQA, build_matmul_gqa);
    reg.insert("einsum", build_einsum);
}

/// A matrix product of rank-2+ operands of one dtype, with candle's batch
/// broadcasting; integer dtypes go through f64.
pub(super) fn mm(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    // candle-core 0.11.1's CPU matmul folds the batch into the rows when the
    // rhs batch stride is 0, which is wrong for a non-contiguous lhs.
    let x = &if x.rank() > 2 && !x.is_contiguous() {
        x.contiguous()?
    } else {
        x.clone()
    };
    if x.dtype().is_float() {
        Ok(x.broadcast_matmul(y)?)
    } else {
        let d = x.dtype();
        let p = x
            .to_dtype(DType::F64)?
            .broadcast_matmul(&y.to_dtype(DType::F64)?)?;
        Ok(p.to_dtype(d)?)
    }
}

fn build_linear(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let dt = b.output_dtype(0)?;
    let w = b.operand("weight", dt, Ok)?;
    linear_kernel(b, w)
}

/// The kernel of a `linear` op whose weight `[D_out, D_in]` is prepared as
/// `w` (also used by `_linear_lut`, when it decodes its weight at load).
pub(super) fn linear_kernel(b: &mut OpBuilder<'_>, w: Operand) -> Result<Box<dyn Kernel>> {
    let dt = b.output_dtype(0)?;
    let x = b.input("x")?;
    // A constant weight [D_out, D_in] is used through a transposed view
    // (no copy: the tensor stays shared with the other functions of the model).
    let w = match w {
        Operand::Ready(w) if w.rank() != 2 => {
            return Err(b.err(format!(
                "input \"weight\": weight must be rank 2, got shape {:?}",
                w.dims()
            )))
        }
        Operand::Ready(w) => Operand::Ready(w.t()?),
        input => input,
    };
    let bias = b.opt_operand("bias", dt, Ok)?;
    Ok(kernel(move |a| {
        let x = a.tensor(x)?.to_dtype(dt)?;
        let wt = match &w {
            Operand::Ready(t) => t.clone(),
            Operand::Input(i) => {
                let w = a.tensor(*i)?.to_dtype(dt)?;
                if w.rank() != 2 {
                    return Err(Error::msg(format!(
                        "weight must be rank 2, got shape {:?}",
                        w.dims()
                    )));
                }
                w.t()?
            }
        };
        let (din, dout) = wt.dims2()?;
        let dims = x.dims().to_vec();
        let Some((&last, lead)) = dims.split_last() else {
            return Err(Error::msg("x must have rank 1 or more"));
        };
        if last != din {
            return Err(Error::msg(format!(
                "x has last dimension {last}, weight expects {din}"
            )));
        }
        let rows: usize = lead.iter().product();
        let mut out_dims = lead.to_vec();
        out_dims.push(dout);
        let mut y = mm(&x.reshape((rows, din))?, &wt)?.reshape(out_dims)?;
        if let Some(bias) = &bias {
            y = y.broadcast_add(&bias.get(a)?.to_dtype(dt)?)?;
        }
        Ok(vec![y])
    }))
}

fn build_matmul(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let dt = b.output_dtype(0)?;
    let tx = b.bool_or("transpose_x", false)?;
    let ty = b.bool_or("transpose_y", false)?;
    let x = b.operand("x", dt, |t| transposed(t, tx))?;
    let y = b.operand("y", dt, |t| transposed(t, ty))?;
    // Constants were transposed at load.
    let tx = tx && matches!(x, Operand::Input(_));
    let ty = ty && matches!(y, Operand::Input(_));
    Ok(kernel(move |a| {
        let x = x.get(a)?.to_dtype(dt)?;
        let y = y.get(a)?.to_dtype(dt)?;
        let x = if tx { transposed(x, true)? } else { x };
        // A transposed view: candle's CPU GEMM reads the transposed strides
        // as they are (no copy of, say, a KV cache per attention call).
        let y = if ty && y.rank() >= 2 { y.t()? } else { y };
        Ok(vec![matmul_numpy(&x, &y)?])
    }))
}

/// `_matmul_gqa` (made at load by [`crate::portable::fuse_gqa`]): `x` of
/// `[1, G*R, S, C]` or `[G*R, S, C]` times group `h / R` of `y` (`[G, T, D]`,
/// or its transpose), as one batched product of `[G, R*S, C]` with `y`.
fn build_matmul_gqa(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let dt = b.output_dtype(0)?;
    let ty = b.bool_or("transpose_y", false)?;
    let x = b.input("x")?;
    let y = b.input("y")?;
    Ok(kernel(move |a| {
        let x = a.tensor(x)?.to_dtype(dt)?;
        let y = a.tensor(y)?.to_dtype(dt)?;
        let (g, _, _) = y.dims3()?;
        let (heads, s, c) = match *x.dims() {
            [1, h, s, c] | [h, s, c] if g > 0 && h % g == 0 => (h, s, c),
            _ => {
                return Err(Error::msg(format!(
                    "x of shape {:?} cannot take {g} key/value groups",
                    x.dims()
                )))
            }
        };
        let y = if ty { y.t()? } else { y };
        let rank = x.rank();
        let x = x.contiguous()?.reshape((g, heads / g * s, c))?;
        let out = mm(&x, &y)?;
        let n = out.dim(2)?;
        let out = if rank == 4 {
            out.reshape((1, heads, s, n))?
        } else {
            out.reshape((heads, s, n))?
        };
        Ok(vec![out])
    }))
}

/// Swaps the last two axes of `t` (a no-op below rank 2), contiguous.
fn transposed(t: Tensor, yes: bool) -> Result<Tensor> {
    if yes && t.rank() >= 2 {
        Ok(t.t()?.contiguous()?)
    } else {
        Ok(t)
    }
}

/// `numpy.matmul`: rank-1 operands are promoted to matrices and the added
/// axis removed from the result; batch axes broadcast.
fn matmul_numpy(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    if x.rank() == 0 || y.rank() == 0 {
        return Err(Error::msg("matmul operands must have rank 1 or more"));
    }
    let x1 = x.rank() == 1;
    let y1 = y.rank() == 1;
    let xm = if x1 { x.unsqueeze(0)? } else { x.clone() };
    let ym = if y1 { y.unsqueeze(1)? } else { y.clone() };
    let (k1, k2) = (xm.dims()[xm.rank() - 1], ym.dims()[ym.rank() - 2]);
    if k1 != k2 {
        return Err(Error::msg(format!(
            "matmul: x {:?} and y {:?} do not agree on the inner dimension",
            x.dims(),
            y.dims()
        )));
    }
    let mut out = mm(&xm, &ym)?;
    if y1 {
        out = out.squeeze(out.rank() - 1)?;
    }
    if x1 {
        let axis = if y1 { out.rank() - 1 } else { out.rank() - 2 };
        out = out.squeeze(axis)?;
    }
    Ok(out)
}

fn build_einsum(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let dt = b.output_dtype(0)?;
    let equation = b.string("equation")?;
    let spec =
        Einsum::parse(&equation).map_err(|e| b.err(format!("equation {equation:?}: {e}")))?;
    let values = b.variadic("values")?;
    let [x, y] = values[..] else {
        return Err(b.err(format!("einsum takes 2 values, got {}", values.len())));
    };
    Ok(kernel(move |a| {
        let x = a.tensor(x)?.to_dtype(dt)?;
        let y = a.tensor(y)?.to_dtype(dt)?;
        Ok(vec![spec.run(&x, &y)?])
    }))
}

/// A parsed two-operand einsum equation (`"nchw,nwhu->nchu"`).
struct Einsum {
    a: Vec<char>,
    b: Vec<char>,
    out: Vec<char>,
}

impl Einsum {
    fn parse(eq: &str) -> Result<Self> {
        let eq: String = eq.chars().filter(|c| !c.is_whitespace()).collect();
        let (lhs, out) = eq
            .split_once("->")
            .ok_or_else(|| Error::msg("an explicit output (\"->\") is required"))?;
        let (a, b) = lhs
            .split_once(',')
            .ok_or_else(|| Error::msg("two operands separated by ',' are required"))?;
        let letters = |s: &str| -> Result<Vec<char>> {
            let v: Vec<char> = s.chars().collect();
            for (i, c) in v.iter().enumerate() {
                if !c.is_ascii_alphabetic() {
                    return Err(Error::msg(format!(
                        "unsupported subscript {c:?} (ellipsis is not supported)"
                    )));
                }
                if v[..i].contains(c) {
                    return Err(Error::msg(format!(
                        "subscript {c:?} repeats within one term"
                    )));
                }
            }
            Ok(v)
        };
        let (a, b, out) = (letters(a)?, letters(b)?, letters(out)?);
        if let Some(c) = out.iter().find(|c| !a.contains(c) && !b.contains(c)) {
            return Err(Error::msg(format!(
                "output subscript {c:?} is in no operand"
            )));
        }
        Ok(Self { a, b, out })
    }

    /// Evaluates the equation as one batched matmul: batch letters (in both
    /// operands and the output), free letters of each side, contracted letters.
    fn run(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        if x.rank() != self.a.len() || y.rank() != self.b.len() {
            return Err(Error::msg(format!(
                "einsum operands of shapes {:?} and {:?} do not match the equation",
                x.dims(),
                y.dims()
            )));
        }
        // Letters in one operand only and not in the output are summed first.
        let (x, a) = sum_private(x, &self.a, &self.b, &self.out)?;
        let (y, b) = sum_private(y, &self.b, &a, &self.out)?;
        let size = |c: char| -> Result<usize> {
            let sx = a.iter().position(|&l| l == c).map(|i| x.dims()[i]);
            let sy = b.iter().position(|&l| l == c).map(|i| y.dims()[i]);
            match (sx, sy) {
                (Some(p), Some(q)) if p == q || q == 1 => Ok(p),
                (Some(1), Some(q)) => Ok(q),
                (Some(p), None) | (None, Some(p)) => Ok(p),
                _ => Err(Error::msg(format!(
                    "subscript {c:?} has sizes {sx:?} and {sy:?}"
                ))),
            }
        };
        let batch: Vec<char> = a
            .iter()
            .copied()
            .filter(|c| b.contains(c) && self.out.contains(c))
            .collect();
        let contract: Vec<char> = a
            .iter()
            .copied()
            .filter(|c| b.contains(c) && !self.out.contains(c))
            .collect();
        let m: Vec<char> = a.iter().copied().filter(|c| !b.contains(c)).collect();
        let n: Vec<char> = b.iter().copied().filter(|c| !a.contains(c)).collect();
        let sizes = |ls: &[char]| ls.iter().map(|&c| size(c)).collect::<Result<Vec<usize>>>();
        let (bs, ms, ks, ns) = (sizes(&batch)?, sizes(&m)?, sizes(&contract)?, sizes(&n)?);
        let prod = |v: &[usize]| v.iter().product::<usize>();
        let x3 = arrange(&x, &a, &[&batch, &m, &contract], &size)?.reshape((
            prod(&bs),
            prod(&ms),
            prod(&ks),
        ))?;
        let y3 = arrange(&y, &b, &[&batch, &contract, &n], &size)?.reshape((
            prod(&bs),
            prod(&ks),
            prod(&ns),
        ))?;
        let z = mm(&x3, &y3)?;
        let zl: Vec<char> = batch.iter().chain(&m).chain(&n).copied().collect();
        let zdims: Vec<usize> = bs.iter().chain(&ms).chain(&ns).copied().collect();
        let z = z.reshape(zdims)?;
        let perm = self
            .out
            .iter()
            .map(|c| zl.iter().position(|l| l == c))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| Error::msg("einsum: output subscript lost"))?;
        if perm.is_empty() {
            return Ok(z.reshape(())?);
        }
        Ok(z.permute(perm)?.contiguous()?)
    }
}

/// Sums the axes of `t` whose letters appear neither in `other` nor in `out`.
fn sum_private(
    t: &Tensor,
    own: &[char],
    other: &[char],
    out: &[char],
) -> Result<(Tensor, Vec<char>)> {
    let mut t = t.clone();
    let mut kept = Vec::new();
    for (i, c) in own.iter().enumerate().rev() {
        if !other.contains(c) && !out.contains(c) {
            t = t.sum(i)?;
        } else {
            kept.push(*c);
        }
    }
    kept.reverse();
    Ok((t, kept))
}

/// Broadcasts `t` (axes named by `letters`) to the full letter sizes and
/// permutes its axes into the order of `groups`, concatenated.
fn arrange(
    t: &Tensor,
    letters: &[char],
    groups: &[&[char]],
    size: &dyn Fn(char) -> Result<usize>,
) -> Result<Tensor> {
    let full = letters
        .iter()
        .map(|&c| size(c))
        .collect::<Result<Vec<usize>>>()?;
    let t = if full.as_slice() != t.dims() {
        t.broadcast_as(full)?
    } else {
        t.clone()
    };
    let order: Vec<usize> = groups
        .iter()
        .flat_map(|g| g.iter())
        .map(|c| letters.iter().position(|l| l == c))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| Error::msg("einsum: operand subscript lost"))?;
    if order.is_empty() {
        return Ok(t);
    }
    Ok(t.permute(order)?.contiguous()?)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use crate::mil::DataType;
    use crate::portable::testutil::{assert_close, boolean, floats, run_op, string, Arg};

    fn t(v: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
    }

    fn iota(n: usize) -> Vec<f32> {
        (0..n).map(|i| i as f32).collect()
    }

    #[test]
    fn linear_const_weight_and_bias() {
        // numpy: x @ w.T + b
        let x = t(&[1., 2., 3., -1., 0., 2.], &[2, 3]);
        let w = floats(&[1., 0., -1., 2., 1., 0.5], &[2, 3]);
        let bias = floats(&[0.5, -1.], &[2]);
        let out = run_op(
            "linear",
            vec![
                ("x", Arg::T(x)),
                ("weight", Arg::C(w)),
                ("bias", Arg::C(bias)),
            ],
            &[DataType::Fp32],
        )
        .unwrap();
        assert_close(&out[0], &[-1.5, 4.5, -2.5, -2.], &[2, 2], 1e-6);
    }

    #[test]
    fn linear_runtime_weight_rank3() {
        let x = t(&iota(6), &[1, 2, 3]);
        let w = t(&[1., 1., 1., 0., 1., 0.], &[2, 3]);
        let out = run_op(
            "linear",
            vec![("x", Arg::T(x)), ("weight", Arg::T(w))],
            &[DataType::Fp32],
        )
        .unwrap();
        assert_close(&out[0], &[3., 1., 12., 4.], &[1, 2, 2], 1e-6);
    }

    #[test]
    fn matmul_transposes_and_broadcast() {
        // numpy: np.matmul(np.swapaxes(x, -1, -2), np.swapaxes(y, -1, -2))
        // x = arange(12).reshape(2,3,2), y = arange(6).reshape(1,2,3) (const).
        let x = t(&iota(12), &[2, 3, 2]);
        let y: Vec<f64> = (0..6).map(f64::from).collect();
        let out = run_op(
            "matmul",
            vec![
                ("x", Arg::T(x)),
                ("y", Arg::C(floats(&y, &[1, 2, 3]))),
                ("transpose_x", Arg::C(boolean(true))),
                ("transpose_y", Arg::C(boolean(true))),
            ],
            &[DataType::Fp32],
        )
        .unwrap();
        let want = [10., 28., 13., 40., 28., 100., 31., 112.];
        assert_close(&out[0], &want, &[2, 2, 2], 1e-5);
    }

    #[test]
    fn matmul_runtime_transpose_y_batched_and_broadcast() {
        // numpy: x @ np.swapaxes(y, -1, -2), both runtime (y read as a
        // transposed view). Attention-like: x = arange(6).reshape(1,2,1,3),
        // y = arange(24).reshape(1,2,4,3) % 7 - 3; broadcast batch:
        // x = arange(6).reshape(2,1,3), y = arange(12).reshape(1,4,3) % 5 - 2.
        // (x shape, y shape, y modulus, y offset, want, want shape)
        type Case<'a> = (&'a [usize], &'a [usize], usize, f32, &'a [f32], &'a [usize]);
        let cases: [Case; 2] = [
            (
                &[1, 2, 1, 3],
                &[1, 2, 4, 3],
                7,
                3.,
                &[-4., 5., -7., 2., 3., -10., 26., -22.],
                &[1, 2, 1, 4],
            ),
            (
                &[2, 1, 3],
                &[1, 4, 3],
                5,
                2.,
                &[-1., -2., 2., -4., -10., 1., 2., -7.],
                &[2, 1, 4],
            ),
        ];
        for (xs, ys, m, off, want, shape) in cases {
            let x = t(&iota(xs.iter().product()), xs);
            let yv: Vec<f32> = (0..ys.iter().product::<usize>())
                .map(|i| (i % m) as f32 - off)
                .collect();
            let out = run_op(
                "matmul",
                vec![
                    ("x", Arg::T(x)),
                    ("y", Arg::T(t(&yv, ys))),
                    ("transpose_y", Arg::C(boolean(true))),
                ],
                &[DataType::Fp32],
            )
            .unwrap();
            assert_close(&out[0], want, shape, 1e-6);
        }
    }

    #[test]
    fn matmul_rank1_operands() {
        // x [3] @ y [2,3,2] -> [2,2]; y [2,3,2] @ v [2] -> [2,3]; v @ v -> scalar.
        let y = t(&iota(12), &[2, 3, 2]);
        let v3 = t(&[1., 2., 3.], &[3]);
        let out = run_op(
            "matmul",
            vec![("x", Arg::T(v3.clone())), ("y", Arg::T(y.clone()))],
            &[DataType::Fp32],
        )
        .unwrap();
        assert_close(&out[0], &[16., 22., 52., 58.], &[2, 2], 1e-5);
        let v2 = t(&[1., -1.], &[2]);
        let out = run_op(
            "matmul",
            vec![("x", Arg::T(y)), ("y", Arg::T(v2))],
            &[DataType::Fp32],
        )
        .unwrap();
        assert_close(&out[0], &[-1.; 6], &[2, 3], 1e-6);
        let out = run_op(
            "matmul",
            vec![("x", Arg::T(v3.clone())), ("y", Arg::T(v3))],
            &[DataType::Fp32],
        )
        .unwrap();
        assert_close(&out[0], &[14.], &[], 1e-6);
    }

    #[test]
    fn matmul_int() {
        let x = Tensor::new(&[[1i64, 2], [3, 4]], &Device::Cpu).unwrap();
        let y = Tensor::new(&[[5i64, 6], [7, 8]], &Device::Cpu).unwrap();
        let out = run_op(
            "matmul",
            vec![("x", Arg::T(x)), ("y", Arg::T(y))],
            &[DataType::Int32],
        )
        .unwrap();
        assert_eq!(
            out[0].to_vec2::<i64>().unwrap(),
            vec![vec![19, 22], vec![43, 50]]
        );
    }

    #[test]
    fn einsum_coreml_form_with_broadcast() {
        // numpy: np.einsum("nchw,nwhu->nchu", x, np.broadcast_to(y, (1,3,2,2)))
        // x = arange(12).reshape(1,2,2,3), y = arange(6).reshape(1,3,1,2).
        let x = t(&iota(12), &[1, 2, 2, 3]);
        let y = t(&iota(6), &[1, 3, 1, 2]);
        let out = run_op(
            "einsum",
            vec![
                ("values", Arg::Many(vec![x, y])),
                ("equation", Arg::C(string("nchw,nwhu->nchu"))),
            ],
            &[DataType::Fp32],
        )
        .unwrap();
        let want = [10., 13., 28., 40., 46., 67., 64., 94.];
        assert_close(&out[0], &want, &[1, 2, 2, 2], 1e-5);
    }

    #[test]
    fn einsum_generic_forms() {
        // numpy: np.einsum(eq, x, y) for each equation below.
        let x = t(&iota(6), &[2, 3]);
        let y = t(&[1., 0., 2., -1., 1., 1.], &[2, 3]);
        let run = |eq: &str, a: &Tensor, b: &Tensor| {
            run_op(
                "einsum",
                vec![
                    ("values", Arg::Many(vec![a.clone(), b.clone()])),
                    ("equation", Arg::C(string(eq))),
                ],
                &[DataType::Fp32],
            )
            .unwrap()
            .remove(0)
        };
        assert_close(&run("ij,kj->ik", &x, &y), &[4., 3., 13., 6.], &[2, 2], 1e-6);
        assert_close(&run("ij,ij->", &x, &y), &[10.], &[], 1e-6);
        assert_close(
            &run("ij,kj->jik", &x, &y),
            &[0., 0., 3., -3., 0., 1., 0., 4., 4., 2., 10., 5.],
            &[3, 2, 2],
            1e-6,
        );
        let v = t(&[1., 2., 3.], &[3]);
        assert_close(&run("ij,j->i", &x, &v), &[8., 26.], &[2], 1e-6);
        assert_close(
            &run("ij,k->ik", &x, &v),
            &[3., 6., 9., 12., 24., 36.],
            &[2, 3],
            1e-6,
        );
    }
}
