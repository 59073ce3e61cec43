//! `normalization` ops: `batch_norm`, `instance_norm`, `layer_norm`,
//! `l2_norm`, `local_response_norm`.
//!
//! Statistics are computed in f32 (or f64 for f64 inputs) whatever the input
//! dtype, and the result cast back to the output dtype.

use candle_core::{DType, Tensor};

use super::registry::Registry;
use super::util::norm_axes;
use crate::error::{Error, Result};
use crate::portable::kernel::{kernel, Args, Kernel, OpBuilder, Operand};

/// Registers this family's ops.
pub(crate) fn register(reg: &mut Registry) {
    reg.insert("batch_norm", build_batch_norm);
    reg.insert("instance_norm", build_instance_norm);
    reg.insert("layer_norm", build_layer_norm);
    reg.insert("l2_norm", build_l2_norm);
    reg.insert("local_response_norm", build_lrn);
}

/// The dtype statistics are computed in.
fn stat_dtype(d: DType) -> DType {
    if d == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// An optional per-channel or per-element parameter, in the stats dtype.
fn param(p: &Option<Operand>, a: &Args<'_>, dt: DType) -> Result<Option<Tensor>> {
    p.as_ref().map(|o| Ok(o.get(a)?.to_dtype(dt)?)).transpose()
}

/// `[C]` reshaped to broadcast over `[N, C, *D]` of rank `rank`.
fn per_channel(t: &Tensor, rank: usize) -> Result<Tensor> {
    let mut shape = vec![1; rank.max(2)];
    shape[1] = t.elem_count();
    Ok(t.reshape(shape)?)
}

/// Applies optional `gamma` and `beta` (already shaped to broadcast).
fn affine(y: Tensor, gamma: Option<Tensor>, beta: Option<Tensor>) -> Result<Tensor> {
    let y = match gamma {
        Some(g) => y.broadcast_mul(&g)?,
        None => y,
    };
    Ok(match beta {
        Some(b) => y.broadcast_add(&b)?,
        None => y,
    })
}

/// `(x - mean) / sqrt(var + eps)` over `axes` (biased variance).
fn standardize(x: &Tensor, axes: &[usize], eps: f64) -> Result<Tensor> {
    let mut mean = x.clone();
    for &a in axes {
        mean = mean.mean_keepdim(a)?;
    }
    let centered = x.broadcast_sub(&mean)?;
    let mut var = centered.sqr()?;
    for &a in axes {
        var = var.mean_keepdim(a)?;
    }
    Ok(centered.broadcast_div(&(var + eps)?.sqrt()?)?)
}

fn build_batch_norm(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let out = b.output_dtype(0)?;
    let sd = stat_dtype(out);
    let eps = b.float_or("epsilon", 1e-5)?;
    let x = b.input("x")?;
    let mean = b
        .opt_operand("mean", sd, Ok)?
        .ok_or_else(|| b.err("missing input \"mean\""))?;
    let var = b
        .opt_operand("variance", sd, Ok)?
        .ok_or_else(|| b.err("missing input \"variance\""))?;
    let gamma = b.opt_operand("gamma", sd, Ok)?;
    let beta = b.opt_operand("beta", sd, Ok)?;
    // With constant statistics, fold everything into one scale and shift at load.
    let folded = match (&mean, &var, &gamma, &beta) {
        (Operand::Ready(m), Operand::Ready(v), g, bt)
            if matches!(g, None | Some(Operand::Ready(_)))
                && matches!(bt, None | Some(Operand::Ready(_))) =>
        {
            let ready = |o: &Option<Operand>| match o {
                Some(Operand::Ready(t)) => Some(t.clone()),
                _ => None,
            };
            Some(
                bn_scale_shift(m, v, ready(&gamma), ready(&beta), eps)
                    .map_err(|e| b.err(e.to_string()))?,
            )
        }
        _ => None,
    };
    Ok(kernel(move |a| {
        let x = a.tensor(x)?;
        let (scale, shift) = match &folded {
            Some(f) => f.clone(),
            None => bn_scale_shift(
                &mean.get(a)?.to_dtype(sd)?,
                &var.get(a)?.to_dtype(sd)?,
                param(&gamma, a, sd)?,
                param(&beta, a, sd)?,
                eps,
            )?,
        };
        let r = x.rank();
        if r < 2 || x.dims()[1] != scale.elem_count() {
            return Err(Error::msg(format!(
                "x {:?} does not have {} channels on axis 1",
                x.dims(),
                scale.elem_count()
            )));
        }
        let y = x
            .to_dtype(sd)?
            .broadcast_mul(&per_channel(&scale, r)?)?
            .broadcast_add(&per_channel(&shift, r)?)?;
        Ok(vec![y.to_dtype(out)?])
    }))
}

/// `scale = gamma / sqrt(var + eps)`, `shift = beta - mean * scale`, each `[C]`.
fn bn_scale_shift(
    mean: &Tensor,
    var: &Tensor,
    gamma: Option<Tensor>,
    beta: Option<Tensor>,
    eps: f64,
) -> Result<(Tensor, Tensor)> {
    let c = mean.elem_count();
    let flat = |t: &Tensor, name: &str| -> Result<Tensor> {
        if t.elem_count() != c {
            return Err(Error::msg(format!(
                "{name} has {} values, mean has {c}",
                t.elem_count()
            )));
        }
        Ok(t.flatten_all()?)
    };
    let mut scale = (flat(var, "variance")? + eps)?.sqrt()?.recip()?;
    if let Some(g) = gamma {
        scale = (scale * flat(&g, "gamma")?)?;
    }
    let mut shift = (flat(mean, "mean")? * &scale)?.neg()?;
    if let Some(bt) = beta {
        shift = (shift + flat(&bt, "beta")?)?;
    }
    Ok((scale, shift))
}

fn build_instance_norm(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let out = b.output_dtype(0)?;
    let sd = stat_dtype(out);
    let eps = b.float_or("epsilon", 1e-5)?;
    let x = b.input("x")?;
    let gamma = b.opt_operand("gamma", sd, Ok)?;
    let beta = b.opt_operand("beta", sd, Ok)?;
    Ok(kernel(move |a| {
        let x = a.tensor(x)?.to_dtype(sd)?;
        let r = x.rank();
        if r < 3 {
            return Err(Error::msg(format!(
                "x {:?} must have rank 3 or more",
                x.dims()
            )));
        }
        let axes: Vec<usize> = (2..r).collect();
        let y = standardize(&x, &axes, eps)?;
        let g = param(&gamma, a, sd)?
            .map(|t| per_channel(&t, r))
            .transpose()?;
        let bt = param(&beta, a, sd)?
            .map(|t| per_channel(&t, r))
            .transpose()?;
        Ok(vec![affine(y, g, bt)?.to_dtype(out)?])
    }))
}

fn build_layer_norm(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let out = b.output_dtype(0)?;
    let sd = stat_dtype(out);
    let eps = b.float_or("epsilon", 1e-5)?;
    let axes = b.opt_ints("axes")?;
    if let (Some(axes), Some(r)) = (&axes, b.input_rank("x")) {
        norm_axes(axes, r).map_err(|e| b.err(e.to_string()))?;
    }
    let x = b.input("x")?;
    let gamma = b.opt_operand("gamma", sd, Ok)?;
    let beta = b.opt_operand("beta", sd, Ok)?;
    Ok(kernel(move |a| {
        let x = a.tensor(x)?.to_dtype(sd)?;
        let r = x.rank();
        let axes = match &axes {
            Some(v) => norm_axes(v, r)?,
            None => (0..r).collect(),
        };
        if axes.is_empty() {
            return Ok(vec![x.to_dtype(out)?]);
        }
        // gamma/beta have shape x.shape[axes]; 1 elsewhere.
        let mut pshape = vec![1; r];
        for &ax in &axes {
            pshape[ax] = x.dims()[ax];
        }
        let shaped = |t: Option<Tensor>| -> Result<Option<Tensor>> {
            t.map(|t| {
                if t.elem_count() != pshape.iter().product::<usize>() {
                    return Err(Error::msg(format!(
                        "gamma/beta {:?} do not match x {:?}",
                        t.dims(),
                        x.dims()
                    )));
                }
                Ok(t.reshape(pshape.clone())?)
            })
            .transpose()
        };
        let y = standardize(&x, &axes, eps)?;
        let y = affine(
            y,
            shaped(param(&gamma, a, sd)?)?,
            shaped(param(&beta, a, sd)?)?,
        )?;
        Ok(vec![y.to_dtype(out)?])
    }))
}

fn build_l2_norm(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let out = b.output_dtype(0)?;
    let sd = stat_dtype(out);
    let eps = b.float_or("epsilon", 1e-6)?;
    let x = b.input("x")?;
    Ok(kernel(move |a| {
        let x = a.tensor(x)?.to_dtype(sd)?;
        // The last three axes (all of them below rank 3) are normalized together.
        let r = x.rank();
        let mut ss = x.sqr()?;
        for ax in r.saturating_sub(3)..r {
            ss = ss.sum_keepdim(ax)?;
        }
        let y = x.broadcast_div(&(ss + eps)?.sqrt()?)?;
        Ok(vec![y.to_dtype(out)?])
    }))
}

fn build_lrn(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let out = b.output_dtype(0)?;
    let sd = stat_dtype(out);
    let size = b.int("size")?;
    let size = usize::try_from(size)
        .ok()
        .filter(|&s| s >= 1)
        .ok_or_else(|| b.err(format!("size {size} must be positive")))?;
    let alpha = b.float_or("alpha", 1e-4)?;
    let beta = b.float_or("beta", 0.75)?;
    let k = b.float_or("k", 1.0)?;
    let x = b.input("x")?;
    Ok(kernel(move |a| {
        let x = a.tensor(x)?.to_dtype(sd)?;
        if x.rank() < 3 {
            return Err(Error::msg(format!(
                "x {:?} must have rank 3 or more",
                x.dims()
            )));
        }
        // Sum of squares over channels [c - size/2, c + (size-1)/2], zero outside.
        let c = x.dims()[1];
        let sq = x.sqr()?.pad_with_zeros(1, size / 2, (size - 1) / 2)?;
        let mut sum = sq.narrow(1, 0, c)?;
        for off in 1..size {
            sum = (sum + sq.narrow(1, off, c)?)?;
        }
        let denom = ((sum * (alpha / size as f64))? + k)?.powf(beta)?;
        Ok(vec![(x / denom)?.to_dtype(out)?])
    }))
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use crate::mil::DataType;
    use crate::portable::testutil::{assert_close, float, floats, int, ints1, run_op, Arg};

    /// `((arange(n) % 7) - 3) / 2`, the inputs of the torch reference.
    fn input(n: usize, shape: &[usize]) -> Arg {
        let v: Vec<f32> = (0..n).map(|i| ((i % 7) as f32 - 3.0) / 2.0).collect();
        Arg::T(Tensor::from_vec(v, shape, &Device::Cpu).unwrap())
    }

    fn run(op: &str, args: Vec<(&str, Arg)>) -> Tensor {
        run_op(op, args, &[DataType::Fp32]).unwrap().remove(0)
    }

    #[test]
    fn batch_norm_const_params() {
        // torch: F.batch_norm(x, mean, var, gamma, beta, eps=1e-5)
        let y = run(
            "batch_norm",
            vec![
                ("x", input(12, &[1, 3, 2, 2])),
                ("mean", Arg::C(floats(&[0.5, -0.5, 0.], &[3]))),
                ("variance", Arg::C(floats(&[1., 4., 0.25], &[3]))),
                ("gamma", Arg::C(floats(&[1., 2., -1.], &[3]))),
                ("beta", Arg::C(floats(&[0., 0.5, 1.], &[3]))),
            ],
        );
        let want = [
            -1.99999,
            -1.499993,
            -0.999995,
            -0.4999975,
            1.499999,
            1.999998,
            2.499998,
            -0.4999988,
            2.99996,
            1.99998,
            1.,
            1.99994e-05,
        ];
        assert_close(&y, &want, &[1, 3, 2, 2], 1e-5);
    }

    #[test]
    fn instance_norm_1d() {
        // torch: F.instance_norm(x, weight=[1,-2], bias=[0.5,0], eps=1e-5)
        let y = run(
            "instance_norm",
            vec![
                ("x", input(12, &[2, 2, 3])),
                ("gamma", Arg::C(floats(&[1., -2.], &[2]))),
                ("beta", Arg::C(floats(&[0.5, 0.], &[2]))),
            ],
        );
        let want = [
            -0.7247081,
            0.5,
            1.724708,
            2.449416,
            0.,
            -2.449416,
            1.896997,
            -0.3889983,
            -0.007999033,
            2.449416,
            0.,
            -2.449416,
        ];
        assert_close(&y, &want, &[2, 2, 3], 1e-5);
    }

    #[test]
    fn layer_norm_last_axis_and_two_axes() {
        // torch: F.layer_norm(x, (3,), gamma, beta, eps=1e-5)
        let y = run(
            "layer_norm",
            vec![
                ("x", input(12, &[2, 2, 3])),
                ("axes", Arg::C(ints1(&[-1]))),
                ("gamma", Arg::C(floats(&[1., 2., 0.5], &[3]))),
                ("beta", Arg::C(floats(&[0., 1., -1.], &[3]))),
            ],
        );
        let want = [
            -1.224708, 1., -0.3876459, -1.224708, 1., -0.3876459, 1.396997, -0.7779966, -1.254,
            -1.224708, 1., -0.3876459,
        ];
        assert_close(&y, &want, &[2, 2, 3], 1e-5);
        // torch: F.layer_norm(x, (2,3), eps=1e-3)
        let y = run(
            "layer_norm",
            vec![
                ("x", input(12, &[2, 2, 3])),
                ("axes", Arg::C(ints1(&[1, 2]))),
                ("epsilon", Arg::C(float(1e-3))),
            ],
        );
        let want = [
            -1.462847, -0.8777084, -0.2925695, 0.2925695, 0.8777084, 1.462847, 1.68944, -1.351552,
            -0.8447199, -0.337888, 0.168944, 0.675776,
        ];
        assert_close(&y, &want, &[2, 2, 3], 1e-5);
    }

    #[test]
    fn l2_norm_last_three_axes() {
        // numpy (coremltools value_inference): x / sqrt(sum(x^2 over the last 3 axes) + 1e-6)
        let y = run("l2_norm", vec![("x", input(12, &[2, 1, 2, 3]))]);
        let want = [
            -0.6882471, -0.4588314, -0.2294157, 0., 0.2294157, 0.4588314, 0.6123724, -0.6123724,
            -0.4082483, -0.2041241, 0., 0.2041241,
        ];
        assert_close(&y, &want, &[2, 1, 2, 3], 1e-6);
    }

    #[test]
    fn local_response_norm_odd_and_even_size() {
        // torch: F.local_response_norm(x, size, alpha=0.1, beta=0.75, k=2)
        let run_size = |size: i64| {
            run(
                "local_response_norm",
                vec![
                    ("x", input(10, &[1, 5, 2])),
                    ("size", Arg::C(int(size))),
                    ("alpha", Arg::C(float(0.1))),
                    ("beta", Arg::C(float(0.75))),
                    ("k", Arg::C(float(2.))),
                ],
            )
        };
        let want3 = [
            -0.8650121, -0.5872778, -0.2874754, 0., 0.2874754, 0.5715386, 0.8547752, -0.8547752,
            -0.5715386, -0.2883374,
        ];
        assert_close(&run_size(3), &want3, &[1, 5, 2], 1e-6);
        let want4 = [
            -0.871557, -0.5890894, -0.2898605, 0., 0.2840866, 0.5719625, 0.8617824, -0.8637169,
            -0.5758112, -0.2879056,
        ];
        assert_close(&run_size(4), &want4, &[1, 5, 2], 1e-6);
    }
}
