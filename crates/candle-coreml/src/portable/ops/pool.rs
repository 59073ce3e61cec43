//! `pool` ops: `avg_pool`, `max_pool`, `l2_pool`, 1-D to 3-D.
//!
//! The input is padded explicitly (with -inf for max pooling, zeros
//! otherwise, plus the overhang `ceil_mode` needs), then reduced over valid
//! windows with candle's 2-D pooling; 1-D pools run as 2-D pools of height 1
//! and 3-D pools combine 2-D pools of depth slices. Averages divide by the
//! number of counted elements per window, obtained by pooling a mask.

use candle_core::{DType, Tensor};

use super::registry::Registry;
use super::util::window::{non_negative, subsample, PadType};
use crate::error::{Error, Result};
use crate::portable::cpu;
use crate::portable::kernel::{kernel, Kernel, OpBuilder};

/// Registers this family's ops.
pub(crate) fn register(reg: &mut Registry) {
    reg.insert("avg_pool", build_avg);
    reg.insert("max_pool", build_max);
    reg.insert("l2_pool", build_l2);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Avg { exclude_padding: bool },
    Max,
    L2,
}

/// A pooling op's parameters, parsed at load.
#[derive(Debug, Clone)]
struct Pool {
    kind: Kind,
    kernel: Vec<usize>,
    strides: Vec<usize>,
    pad: PadType,
    ceil_mode: bool,
}

fn build_avg(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let exclude_padding = b.bool_or("exclude_padding_from_average", false)?;
    build(b, Kind::Avg { exclude_padding })
}

fn build_max(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    build(b, Kind::Max)
}

fn build_l2(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    build(b, Kind::L2)
}

fn build(b: &mut OpBuilder<'_>, kind: Kind) -> Result<Box<dyn Kernel>> {
    let dt = b.output_dtype(0)?;
    let positive = |v: Vec<i64>, name: &str| -> Result<Vec<usize>> {
        match non_negative(&v) {
            Some(u) if u.iter().all(|&x| x >= 1) => Ok(u),
            _ => Err(b.err(format!("{name} {v:?} must be positive"))),
        }
    };
    let kernel_sizes = positive(b.ints("kernel_sizes")?, "kernel_sizes")?;
    let n = kernel_sizes.len();
    if !(1..=3).contains(&n) {
        return Err(b.err(format!("{n} spatial dimensions; 1 to 3 are supported")));
    }
    let strides = match b.opt_ints("strides")? {
        Some(v) => positive(v, "strides")?,
        None => vec![1; n],
    };
    if strides.len() != n {
        return Err(b.err(format!(
            "strides {strides:?} do not match kernel_sizes {kernel_sizes:?}"
        )));
    }
    let pad = PadType::parse(b)?;
    if let PadType::Custom(p) = &pad {
        if p.len() != 2 * n {
            return Err(b.err(format!(
                "pad {p:?} must hold 2 values per spatial dimension"
            )));
        }
    }
    let pool = Pool {
        kind,
        kernel: kernel_sizes,
        strides,
        pad,
        ceil_mode: b.bool_or("ceil_mode", false)?,
    };
    if let Some(r) = b.input_rank("x") {
        if r != n + 2 {
            return Err(b.err(format!("x has rank {r}, kernel_sizes imply rank {}", n + 2)));
        }
    }
    let x = b.input("x")?;
    Ok(kernel(move |a| {
        let x = a.tensor(x)?;
        let y = pool.run(&x.to_dtype(compute(x.dtype()))?)?;
        Ok(vec![y.to_dtype(dt)?])
    }))
}

/// The dtype pooling runs in: floats as they are, anything else in f32.
fn compute(d: DType) -> DType {
    if d.is_float() {
        d
    } else {
        DType::F32
    }
}

impl Pool {
    fn run(&self, x: &Tensor) -> Result<Tensor> {
        let n = self.kernel.len();
        if x.rank() != n + 2 {
            return Err(Error::msg(format!(
                "x {:?} must have rank {}",
                x.dims(),
                n + 2
            )));
        }
        let spatial = x.dims()[2..].to_vec();
        let pads = self.pad.amounts(&spatial, &self.kernel, &self.strides)?;
        let mut extra = Vec::with_capacity(n);
        for i in 0..n {
            let out = self.out_size(spatial[i], pads[i], i)?;
            let span = (out - 1) * self.strides[i] + self.kernel[i];
            extra.push(span.saturating_sub(spatial[i] + pads[i].0 + pads[i].1));
        }
        if self.kind == Kind::Max && n == 2 {
            if let Some(y) = max_pool_cpu(x, &self.kernel, &self.strides, &pads, &extra)? {
                return Ok(y);
            }
        }
        let fill = if self.kind == Kind::Max {
            f64::NEG_INFINITY
        } else {
            0.0
        };
        let mut xp = if self.kind == Kind::L2 {
            x.sqr()?
        } else {
            x.clone()
        };
        for i in 0..n {
            xp = pad_with(&xp, 2 + i, pads[i].0, pads[i].1 + extra[i], fill)?;
        }
        let max = self.kind == Kind::Max;
        let y = reduce(&xp, &self.kernel, &self.strides, max)?;
        match self.kind {
            Kind::Max => Ok(y),
            Kind::L2 => Ok(y.sqrt()?),
            Kind::Avg { exclude_padding } => {
                let counted = exclude_padding && pads.iter().any(|&p| p != (0, 0));
                if !counted && extra.iter().all(|&e| e == 0) {
                    let k: usize = self.kernel.iter().product();
                    return Ok((y / k as f64)?);
                }
                // Count, per window, the input (and, unless excluded, padding) elements.
                let mut shape = vec![1, 1];
                shape.extend_from_slice(&spatial);
                let mut mask = Tensor::ones(shape, x.dtype(), x.device())?;
                let pad_fill = if exclude_padding { 0.0 } else { 1.0 };
                for (i, &(pb, pa)) in pads.iter().enumerate() {
                    mask = pad_with(&mask, 2 + i, pb, pa, pad_fill)?;
                }
                // The ceil_mode overhang never counts.
                for (i, &e) in extra.iter().enumerate() {
                    mask = mask.pad_with_zeros(2 + i, 0, e)?;
                }
                let counts = reduce(&mask, &self.kernel, &self.strides, false)?;
                Ok(y.broadcast_div(&counts)?)
            }
        }
    }

    /// Output size of spatial axis `i` (coremltools' rule, PyTorch's for `ceil_mode`).
    fn out_size(&self, input: usize, (pb, pa): (usize, usize), i: usize) -> Result<usize> {
        let (k, s) = (self.kernel[i], self.strides[i]);
        let eff = input + pb + pa;
        if eff < k {
            return Err(Error::msg(format!(
                "kernel size {k} exceeds the padded input size {eff}"
            )));
        }
        if !self.ceil_mode {
            return Ok((eff - k) / s + 1);
        }
        let mut out = (eff - k).div_ceil(s) + 1;
        // The last window must start inside the input or its leading padding.
        if (out - 1) * s >= input + pb && pb + pa > 0 {
            out -= 1;
        }
        if out == 0 {
            return Err(Error::msg(format!("spatial dimension {i} has no output")));
        }
        Ok(out)
    }
}

/// The CPU fast path of 2-D max pooling (contiguous f32 data on the CPU),
/// padding implicit; `None` where it does not apply.
fn max_pool_cpu(
    x: &Tensor,
    k: &[usize],
    s: &[usize],
    pads: &[(usize, usize)],
    extra: &[usize],
) -> Result<Option<Tensor>> {
    let Ok((n, c, h, w)) = x.dims4() else {
        return Ok(None);
    };
    let g = cpu::geom::Geom {
        n,
        c_in: c,
        h,
        w,
        c_out: c,
        kh: k[0],
        kw: k[1],
        stride: [s[0], s[1]],
        dil: [1, 1],
        pad: [
            (pads[0].0, pads[0].1 + extra[0]),
            (pads[1].0, pads[1].1 + extra[1]),
        ],
        groups: c,
    };
    let (ho, wo) = g.out_hw()?;
    // As many outputs as the valid pooling of the explicitly padded input.
    if c == 0 || x.elem_count() == 0 {
        return Ok(None);
    }
    let out = cpu::with_f32(x, |x| {
        let mut out = vec![0f32; n * c * ho * wo];
        cpu::depthwise::max_pool(&g, ho, wo, x, &mut out);
        out
    });
    out.map(|o| cpu::tensor(o, &[n, c, ho, wo])).transpose()
}

/// Pads axis `dim` of `t` with `value`.
fn pad_with(t: &Tensor, dim: usize, before: usize, after: usize, value: f64) -> Result<Tensor> {
    if value == 0.0 {
        return Ok(t.pad_with_zeros(dim, before, after)?);
    }
    if before == 0 && after == 0 {
        return Ok(t.clone());
    }
    let block = |len: usize| -> Result<Tensor> {
        let mut shape = t.dims().to_vec();
        shape[dim] = len;
        Ok(Tensor::full(value, shape, t.device())?.to_dtype(t.dtype())?)
    };
    Ok(Tensor::cat(&[&block(before)?, t, &block(after)?], dim)?)
}

/// Max or sum over every valid window of `x [N, C, *D]`.
fn reduce(x: &Tensor, k: &[usize], s: &[usize], max: bool) -> Result<Tensor> {
    match k.len() {
        1 => Ok(pool2d(&x.unsqueeze(2)?, [1, k[0]], [1, s[0]], max)?.squeeze(2)?),
        2 => pool2d(x, [k[0], k[1]], [s[0], s[1]], max),
        _ => {
            let (n, c, d, h, w) = x.dims5()?;
            let d_out = (d - k[0]) / s[0] + 1;
            let mut acc: Option<Tensor> = None;
            for kd in 0..k[0] {
                let xs = subsample(&x.narrow(2, kd, (d_out - 1) * s[0] + 1)?, 2, s[0])?;
                let y = pool2d(
                    &xs.reshape((n, c * d_out, h, w))?,
                    [k[1], k[2]],
                    [s[1], s[2]],
                    max,
                )?;
                acc = Some(match acc {
                    None => y,
                    Some(a) if max => a.maximum(&y)?,
                    Some(a) => (a + y)?,
                });
            }
            let y = acc.ok_or_else(|| Error::msg("pool kernel has no depth"))?;
            let (_, _, ho, wo) = y.dims4()?;
            Ok(y.reshape((n, c, d_out, ho, wo))?)
        }
    }
}

/// candle's valid 2-D max pooling, or a window sum.
fn pool2d(x: &Tensor, k: [usize; 2], s: [usize; 2], max: bool) -> Result<Tensor> {
    let x = x.contiguous()?;
    if max {
        Ok(x.max_pool2d_with_stride((k[0], k[1]), (s[0], s[1]))?)
    } else {
        let mean = x.avg_pool2d_with_stride((k[0], k[1]), (s[0], s[1]))?;
        Ok((mean * (k[0] * k[1]) as f64)?)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use crate::mil::DataType;
    use crate::portable::testutil::{assert_close, boolean, ints1, run_op, string, Arg};

    /// `((arange(n) % 7) - 3) / 2`, the inputs of the torch reference.
    fn input(n: usize, shape: &[usize]) -> Arg {
        let v: Vec<f32> = (0..n).map(|i| ((i % 7) as f32 - 3.0) / 2.0).collect();
        Arg::T(Tensor::from_vec(v, shape, &Device::Cpu).unwrap())
    }

    fn pool(
        op: &str,
        x: Arg,
        k: &[i64],
        s: &[i64],
        pad: &str,
        extra: Vec<(&'static str, Arg)>,
    ) -> Tensor {
        let mut args = vec![
            ("x", x),
            ("kernel_sizes", Arg::C(ints1(k))),
            ("strides", Arg::C(ints1(s))),
            ("pad_type", Arg::C(string(pad))),
        ];
        args.extend(extra);
        run_op(op, args, &[DataType::Fp32]).unwrap().remove(0)
    }

    #[test]
    fn max_pool2d_ceil_mode() {
        // torch: F.max_pool2d(x, 3, 2, padding=1, ceil_mode=True)
        let extra = vec![
            ("pad", Arg::C(ints1(&[1, 1, 1, 1]))),
            ("ceil_mode", Arg::C(boolean(true))),
        ];
        let y = pool(
            "max_pool",
            input(72, &[1, 2, 6, 6]),
            &[3, 3],
            &[2, 2],
            "custom",
            extra,
        );
        let want = [
            1.5, 0., 1., 1., 1.5, 1.5, 0.5, 0.5, 1., 1.5, 1.5, -0.5, 0., 1., 1.5, -1.5, -0.5, 0.5,
            1.5, 1.5, 1.5, 1.5, 1., 1., 1.5, 1.5, 1.5, 0., 0.5, 1.5, 1.5, -1.,
        ];
        assert_close(&y, &want, &[1, 2, 4, 4], 1e-6);
    }

    #[test]
    fn avg_pool2d_ceil_mode_counts() {
        // torch: F.avg_pool2d(x, 3, 2, padding=1, ceil_mode=True, count_include_pad=True/False)
        let run = |exclude: bool| {
            let extra = vec![
                ("pad", Arg::C(ints1(&[1, 1, 1, 1]))),
                ("ceil_mode", Arg::C(boolean(true))),
                ("exclude_padding_from_average", Arg::C(boolean(exclude))),
            ];
            pool(
                "avg_pool",
                input(72, &[1, 2, 6, 6]),
                &[3, 3],
                &[2, 2],
                "custom",
                extra,
            )
        };
        let incl = [
            -0.2777778,
            -0.5,
            0.1666667,
            0.25,
            0.4444444,
            -0.3333333,
            -0.5,
            0.,
            0.1666667,
            0.6111111,
            -0.3333333,
            -0.5,
            -0.08333333,
            0.25,
            0.1666667,
            -0.375,
            -0.4444444,
            -0.1666667,
            0.5,
            0.4166667,
            0.,
            -0.6111111,
            0.,
            0.25,
            0.5,
            0.3333333,
            -0.6111111,
            -0.25,
            0.08333333,
            0.5,
            -0.1666667,
            -0.25,
        ];
        assert_close(&run(false), &incl, &[1, 2, 4, 4], 1e-6);
        let excl = [
            -0.625, -0.75, 0.25, 0.75, 0.6666667, -0.3333333, -0.5, 0., 0.25, 0.6111111,
            -0.3333333, -1., -0.25, 0.5, 0.3333333, -1.5, -1., -0.25, 0.75, 1.25, 0., -0.6111111,
            0., 0.5, 0.75, 0.3333333, -0.6111111, -0.5, 0.25, 1., -0.3333333, -1.,
        ];
        assert_close(&run(true), &excl, &[1, 2, 4, 4], 1e-6);
    }

    #[test]
    fn avg_pool2d_same_even_kernel() {
        // torch: F.avg_pool2d(F.pad(x, (0,1,0,1)), 2, 1), divided by the pooled mask when excluding.
        let run = |exclude: bool| {
            let extra = vec![("exclude_padding_from_average", Arg::C(boolean(exclude)))];
            pool(
                "avg_pool",
                input(25, &[1, 1, 5, 5]),
                &[2, 2],
                &[1, 1],
                "same",
                extra,
            )
        };
        let incl = [
            0., -0.375, -0.75, -0.25, 0., 0.75, 0.375, 0., -0.375, -0.5, -0.25, 0.25, 0.75, 0.375,
            -0.125, -0.375, -0.75, -0.25, 0.25, 0.25, 0., -0.625, -0.375, -0.125, 0.,
        ];
        assert_close(&run(false), &incl, &[1, 1, 5, 5], 1e-6);
        let excl = [
            0., -0.375, -0.75, -0.25, 0., 0.75, 0.375, 0., -0.375, -1., -0.25, 0.25, 0.75, 0.375,
            -0.25, -0.375, -0.75, -0.25, 0.25, 0.5, 0., -1.25, -0.75, -0.25, 0.,
        ];
        assert_close(&run(true), &excl, &[1, 1, 5, 5], 1e-6);
    }

    #[test]
    fn avg_pool1d_same_lower_excluding_padding() {
        // torch: F.avg_pool1d(F.pad(x, (1,0)), 2, 1) / F.avg_pool1d(F.pad(ones, (1,0)), 2, 1)
        let extra = vec![("exclude_padding_from_average", Arg::C(boolean(true)))];
        let y = pool(
            "avg_pool",
            input(6, &[1, 1, 6]),
            &[2],
            &[1],
            "same_lower",
            extra,
        );
        assert_close(
            &y,
            &[-1.5, -1.25, -0.75, -0.25, 0.25, 0.75],
            &[1, 1, 6],
            1e-6,
        );
    }

    #[test]
    fn l2_pool1d() {
        // torch: F.lp_pool1d(x, 2, 3, 2)
        let y = pool(
            "l2_pool",
            input(14, &[1, 2, 7]),
            &[3],
            &[2],
            "valid",
            vec![],
        );
        let r = std::f32::consts::FRAC_1_SQRT_2;
        let want = [1.870829, r, 1.870829, 1.870829, r, 1.870829];
        assert_close(&y, &want, &[1, 2, 3], 1e-5);
    }

    #[test]
    fn pool3d() {
        // torch: F.max_pool3d(x, 2, (1,2,2)) and F.avg_pool3d(x, 2, (1,2,2)), x = ((arange(48)*7) % 48) / 4
        let v: Vec<f32> = (0..48).map(|i| ((i * 7) % 48) as f32 / 4.0).collect();
        let x = || Arg::T(Tensor::from_vec(v.clone(), &[1, 1, 3, 4, 4], &Device::Cpu).unwrap());
        let y = pool("max_pool", x(), &[2, 2, 2], &[1, 2, 2], "valid", vec![]);
        assert_close(
            &y,
            &[11., 10.5, 10.75, 11.25, 11., 11.5, 11.75, 11.25],
            &[1, 1, 2, 2, 2],
            1e-6,
        );
        let y = pool("avg_pool", x(), &[2, 2, 2], &[1, 2, 2], "valid", vec![]);
        assert_close(
            &y,
            &[4.875, 5.375, 5.375, 5.875, 5.875, 6.375, 6.375, 6.875],
            &[1, 1, 2, 2, 2],
            1e-6,
        );
    }
}
