//! `conv` ops: `conv` and `conv_transpose`, 1-D to 3-D.
//!
//! Built on candle's conv1d/conv2d/conv_transpose1d/conv_transpose2d.
//! Asymmetric padding is applied explicitly before the conv; per-axis strides
//! or dilations that candle cannot express (it takes one value for both 2-D
//! axes) fall back to a stride-1 conv followed by subsampling, or a kernel
//! dilated with zeros. 3-D convs are sums of 2-D convs over the kernel depth.

use candle_core::Tensor;

use super::epilogue::{same_shape, EpilogueSpec};
use super::registry::Registry;
use super::util::window::{non_negative, subsample, PadType};
use crate::error::{Error, Result};
use crate::portable::cpu;
use crate::portable::fuse_conv::CONV_FUSED;
use crate::portable::kernel::{kernel, Args, Kernel, OpBuilder, Operand};

/// Registers this family's ops.
pub(crate) fn register(reg: &mut Registry) {
    reg.insert("conv", build_conv);
    reg.insert(CONV_FUSED, build_conv);
    reg.insert("conv_transpose", build_conv_transpose);
}

/// Stride/dilation/padding/groups of a conv, parsed at load.
#[derive(Debug, Clone)]
struct Geometry {
    strides: Option<Vec<usize>>,
    dilations: Option<Vec<usize>>,
    pad: PadType,
    groups: usize,
}

impl Geometry {
    fn parse(b: &OpBuilder<'_>) -> Result<Self> {
        let positive = |name: &str| -> Result<Option<Vec<usize>>> {
            match b.opt_ints(name)? {
                None => Ok(None),
                Some(v) if v.iter().all(|&x| x >= 1) => Ok(non_negative(&v)),
                Some(v) => Err(b.err(format!("{name} {v:?} must be positive"))),
            }
        };
        let groups = b.int_or("groups", 1)?;
        let groups = usize::try_from(groups)
            .ok()
            .filter(|&g| g >= 1)
            .ok_or_else(|| b.err(format!("groups {groups} must be positive")))?;
        let g = Geometry {
            strides: positive("strides")?,
            dilations: positive("dilations")?,
            pad: PadType::parse(b)?,
            groups,
        };
        if let Some(r) = b.input_rank("x") {
            g.resolve(r.saturating_sub(2))
                .map_err(|e| b.err(e.to_string()))?;
        }
        Ok(g)
    }

    /// Strides and dilations for `n` spatial axes.
    fn resolve(&self, n: usize) -> Result<(Vec<usize>, Vec<usize>)> {
        if !(1..=3).contains(&n) {
            return Err(Error::msg(format!(
                "{n} spatial dimensions; 1 to 3 are supported"
            )));
        }
        let get = |v: &Option<Vec<usize>>, name: &str| match v {
            None => Ok(vec![1; n]),
            Some(v) if v.len() == n => Ok(v.clone()),
            Some(v) => Err(Error::msg(format!(
                "{name} has {} values for {n} spatial dimensions",
                v.len()
            ))),
        };
        if let PadType::Custom(p) = &self.pad {
            if p.len() != 2 * n {
                return Err(Error::msg(format!(
                    "pad has {} values for {n} spatial dimensions",
                    p.len()
                )));
            }
        }
        Ok((
            get(&self.strides, "strides")?,
            get(&self.dilations, "dilations")?,
        ))
    }
}

/// Reshapes a bias `[C]` to broadcast over `[N, C, *D]` and adds it.
fn add_bias(y: Tensor, bias: Option<Tensor>) -> Result<Tensor> {
    let Some(bias) = bias else { return Ok(y) };
    let mut shape = vec![1; y.rank()];
    if let Some(c) = shape.get_mut(1) {
        *c = bias.elem_count();
    }
    Ok(y.broadcast_add(&bias.to_dtype(y.dtype())?.reshape(shape)?)?)
}

fn build_conv(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let dt = b.output_dtype(0)?;
    let w = b.operand("weight", dt, Ok)?;
    conv_kernel(b, w)
}

/// The kernel of a `conv` op whose weight is already prepared as `w`
/// (also used by `conv_quantized`, which dequantizes its weight at load),
/// and of a fused conv (`_conv_fused`) with its epilogue.
pub(super) fn conv_kernel(b: &mut OpBuilder<'_>, w: Operand) -> Result<Box<dyn Kernel>> {
    let dt = b.output_dtype(0)?;
    let geo = Geometry::parse(b)?;
    let x = b.input("x")?;
    let bias = b.opt_operand("bias", dt, Ok)?;
    let epi = EpilogueSpec::parse(b)?;
    Ok(kernel(move |a| {
        let x = a.tensor(x)?.to_dtype(dt)?;
        let w = w.get(a)?.to_dtype(dt)?;
        let bias = bias.as_ref().map(|o| o.get(a)).transpose()?;
        if let Some(y) = conv_cpu(&x, &w, bias.as_ref(), &geo, &epi, a)? {
            return Ok(vec![y]);
        }
        let y = add_bias(conv(&x, &w, &geo)?, bias)?;
        Ok(vec![epi.apply_candle(y, a)?])
    }))
}

/// The CPU fast path of a 2-D conv (f32 data on the CPU, contiguous), or
/// `None` where it does not apply.
fn conv_cpu(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    geo: &Geometry,
    epi: &EpilogueSpec,
    a: &Args<'_>,
) -> Result<Option<Tensor>> {
    let (Ok((n, c_in, h, wd)), Ok((c_out, _, kh, kw))) = (x.dims4(), w.dims4()) else {
        return Ok(None);
    };
    let (strides, dil) = geo.resolve(2)?;
    let keff = [(kh.max(1) - 1) * dil[0] + 1, (kw.max(1) - 1) * dil[1] + 1];
    let pads = geo.pad.amounts(&[h, wd], &keff, &strides)?;
    let g = cpu::geom::Geom {
        n,
        c_in,
        h,
        w: wd,
        c_out,
        kh,
        kw,
        stride: [strides[0], strides[1]],
        dil: [dil[0], dil[1]],
        pad: [pads[0], pads[1]],
        groups: geo.groups,
    };
    let (ho, wo) = g.out_hw()?;
    let shape = [n, c_out, ho, wo];
    let residual = epi.residual.map(|r| a.tensor(r)).transpose()?;
    if let Some(r) = residual {
        same_shape(&shape, r)?;
    }
    let run = |x: &[f32], w: &[f32], b: Option<&[f32]>, r: Option<&[f32]>| {
        let e = cpu::geom::Epilogue {
            bias: b,
            pre: &epi.pre,
            residual: r,
            post: &epi.post,
        };
        cpu::conv2d::conv2d(&g, x, w, &e)
    };
    let out = cpu::with_f32(x, |x| {
        cpu::with_f32(w, |w| {
            cpu::with_opt_f32(bias, |b| cpu::with_opt_f32(residual, |r| run(x, w, b, r)))
        })
    });
    match out.flatten().flatten().flatten() {
        Some(y) => Ok(Some(cpu::tensor(y?, &shape)?)),
        None => Ok(None),
    }
}

/// MIL `conv` of `x [N, C_in, *D]` with `w [C_out, C_in/groups, *K]`.
fn conv(x: &Tensor, w: &Tensor, geo: &Geometry) -> Result<Tensor> {
    let n = x.rank().saturating_sub(2);
    let (strides, dil) = geo.resolve(n)?;
    if w.rank() != x.rank() {
        return Err(Error::msg(format!(
            "weight {:?} does not match input {:?}",
            w.dims(),
            x.dims()
        )));
    }
    let keff: Vec<usize> = w.dims()[2..]
        .iter()
        .zip(&dil)
        .map(|(&k, &d)| (k.max(1) - 1) * d + 1)
        .collect();
    let pads = geo.pad.amounts(&x.dims()[2..], &keff, &strides)?;
    conv_padded(x, w, &pads, &strides, &dil, geo.groups)
}

/// A conv with explicit `(before, after)` zero padding per spatial axis.
fn conv_padded(
    x: &Tensor,
    w: &Tensor,
    pads: &[(usize, usize)],
    strides: &[usize],
    dil: &[usize],
    groups: usize,
) -> Result<Tensor> {
    let (c_in, c_in_g) = (x.dims()[1], w.dims()[1]);
    if c_in != c_in_g * groups || !w.dims()[0].is_multiple_of(groups) {
        return Err(Error::msg(format!(
            "weight {:?} does not fit input {:?} with {groups} groups",
            w.dims(),
            x.dims()
        )));
    }
    for (i, (&(pb, pa), (&k, &d))) in pads.iter().zip(w.dims()[2..].iter().zip(dil)).enumerate() {
        if x.dims()[2 + i] + pb + pa < (k.max(1) - 1) * d + 1 {
            return Err(Error::msg(format!(
                "input {:?} is smaller than the kernel {:?}",
                x.dims(),
                w.dims()
            )));
        }
    }
    // candle pads symmetrically, with one amount for all axes.
    let uniform = pads.iter().all(|&p| p == pads[0]) && pads[0].0 == pads[0].1;
    let (x, p) = if uniform {
        (x.clone(), pads[0].0)
    } else {
        let mut t = x.clone();
        for (i, &(pb, pa)) in pads.iter().enumerate() {
            t = t.pad_with_zeros(2 + i, pb, pa)?;
        }
        (t, 0)
    };
    match strides.len() {
        1 => Ok(x.conv1d(w, p, strides[0], dil[0], groups)?),
        2 => conv2d(&x, w, p, [strides[0], strides[1]], [dil[0], dil[1]], groups),
        _ => conv3d(&x, w, p, strides, dil, groups),
    }
}

/// candle's conv2d for per-axis strides and dilations.
fn conv2d(
    x: &Tensor,
    w: &Tensor,
    p: usize,
    s: [usize; 2],
    d: [usize; 2],
    groups: usize,
) -> Result<Tensor> {
    let (w, d) = if d[0] == d[1] {
        (w.clone(), d[0])
    } else {
        (dilate(&dilate(w, 2, d[0])?, 3, d[1])?, 1)
    };
    if s[0] == s[1] {
        return Ok(x.conv2d(&w, p, s[0], d, groups)?);
    }
    let y = x.conv2d(&w, p, 1, d, groups)?;
    let y = subsample(&y, 2, s[0])?;
    subsample(&y, 3, s[1])
}

/// A 3-D conv as the sum, over the kernel depth, of 2-D convs of depth slices.
fn conv3d(
    x: &Tensor,
    w: &Tensor,
    p: usize,
    s: &[usize],
    d: &[usize],
    groups: usize,
) -> Result<Tensor> {
    let x = if p > 0 {
        let mut t = x.clone();
        for axis in 2..5 {
            t = t.pad_with_zeros(axis, p, p)?;
        }
        t
    } else {
        x.clone()
    };
    let (n, c, depth, h, wd) = x.dims5()?;
    let kd = w.dims()[2];
    let d_out = (depth - ((kd.max(1) - 1) * d[0] + 1)) / s[0] + 1;
    let mut acc: Option<Tensor> = None;
    for k in 0..kd {
        let xs = x.narrow(2, k * d[0], (d_out - 1) * s[0] + 1)?;
        let xs = subsample(&xs, 2, s[0])?;
        let xs = xs
            .permute((0, 2, 1, 3, 4))?
            .reshape((n * d_out, c, h, wd))?;
        let wk = w.narrow(2, k, 1)?.squeeze(2)?.contiguous()?;
        let y = conv2d(&xs, &wk, 0, [s[1], s[2]], [d[1], d[2]], groups)?;
        acc = Some(match acc {
            None => y,
            Some(a) => (a + y)?,
        });
    }
    let y = acc.ok_or_else(|| Error::msg("conv kernel has no depth"))?;
    let (_, c_out, ho, wo) = y.dims4()?;
    Ok(y.reshape((n, d_out, c_out, ho, wo))?
        .permute((0, 2, 1, 3, 4))?
        .contiguous()?)
}

/// Inserts `step - 1` zeros between neighbours along axis `dim`.
fn dilate(t: &Tensor, dim: usize, step: usize) -> Result<Tensor> {
    let len = t.dim(dim)?;
    if step <= 1 || len == 0 {
        return Ok(t.clone());
    }
    let u = t.unsqueeze(dim + 1)?.pad_with_zeros(dim + 1, 0, step - 1)?;
    let mut shape = t.dims().to_vec();
    shape[dim] = len * step;
    Ok(u.reshape(shape)?.narrow(dim, 0, (len - 1) * step + 1)?)
}

/// Reverses axis `dim`.
fn flip(t: &Tensor, dim: usize) -> Result<Tensor> {
    let len = t.dim(dim)?;
    let idx: Vec<u32> = (0..len as u32).rev().collect();
    Ok(t.index_select(&Tensor::new(idx, t.device())?, dim)?)
}

fn build_conv_transpose(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let dt = b.output_dtype(0)?;
    let geo = Geometry::parse(b)?;
    let out_shape = match b.opt_ints("output_shape")? {
        None => None,
        Some(v) => {
            Some(non_negative(&v).ok_or_else(|| b.err(format!("output_shape {v:?} is negative")))?)
        }
    };
    let x = b.input("x")?;
    let w = b.operand("weight", dt, Ok)?;
    let bias = b.opt_operand("bias", dt, Ok)?;
    Ok(kernel(move |a| {
        let x = a.tensor(x)?.to_dtype(dt)?;
        let w = match &w {
            Operand::Ready(t) => t.clone(),
            Operand::Input(i) => a.tensor(*i)?.to_dtype(dt)?,
        };
        let y = conv_transpose(&x, &w, &geo, out_shape.as_deref())?;
        let bias = bias.as_ref().map(|o| o.get(a)).transpose()?;
        Ok(vec![add_bias(y, bias)?])
    }))
}

/// MIL `conv_transpose` of `x [N, C_in, *D]` with `w [C_in, C_out/groups, *K]`.
fn conv_transpose(
    x: &Tensor,
    w: &Tensor,
    geo: &Geometry,
    out_shape: Option<&[usize]>,
) -> Result<Tensor> {
    let n = x.rank().saturating_sub(2);
    let (s, d) = geo.resolve(n)?;
    let g = geo.groups;
    if w.rank() != x.rank() || w.dims()[0] != x.dims()[1] || !x.dims()[1].is_multiple_of(g) {
        return Err(Error::msg(format!(
            "weight {:?} does not fit input {:?} with {g} groups",
            w.dims(),
            x.dims()
        )));
    }
    let din = &x.dims()[2..];
    if din.contains(&0) {
        return Err(Error::msg(format!(
            "input {:?} has an empty spatial dimension",
            x.dims()
        )));
    }
    let keff: Vec<usize> = w.dims()[2..]
        .iter()
        .zip(&d)
        .map(|(&k, &dl)| (k.max(1) - 1) * dl + 1)
        .collect();
    let full: Vec<usize> = (0..n).map(|i| (din[i] - 1) * s[i] + keff[i]).collect();
    let uniform = s.iter().all(|&v| v == s[0]) && d.iter().all(|&v| v == d[0]);
    let y = match n {
        1 => conv_transpose1d(x, w, s[0], d[0], g)?,
        2 if uniform && g == 1 => x.conv_transpose2d(w, 0, 0, s[0], d[0])?,
        _ => conv_transpose_as_conv(x, w, &s, &d, &keff, g)?,
    };
    // Crop the full result to the requested window, per spatial axis.
    let mut y = y;
    for i in 0..n {
        let want = match out_shape {
            // The full [N, C_out, *D] shape, or (leniently) the spatial part only.
            Some(o) if o.len() == n => o[i],
            Some(o) => *o
                .get(2 + i)
                .ok_or_else(|| Error::msg(format!("output_shape {o:?} is too short")))?,
            None => match &geo.pad {
                PadType::Custom(p) => full[i]
                    .checked_sub(p[2 * i] + p[2 * i + 1])
                    .ok_or_else(|| Error::msg(format!("pad {p:?} exceeds the output size")))?,
                PadType::Valid => full[i],
                PadType::Same | PadType::SameLower => din[i] * s[i],
            },
        };
        let begin = match &geo.pad {
            PadType::Custom(p) => p[2 * i],
            PadType::Valid => 0,
            PadType::Same => full[i].saturating_sub(want) / 2,
            PadType::SameLower => full[i].saturating_sub(want).div_ceil(2),
        };
        let avail = full[i].saturating_sub(begin).min(want);
        y = y
            .narrow(2 + i, begin.min(full[i]), avail)?
            .pad_with_zeros(2 + i, 0, want - avail)?;
    }
    Ok(y.contiguous()?)
}

/// candle's conv_transpose1d, one batch item at a time: its CPU fast path
/// (col2im, taken without padding or dilation) mixes up batch items when the
/// batch is larger than one (candle-core 0.11.1).
fn conv_transpose1d(x: &Tensor, w: &Tensor, s: usize, d: usize, g: usize) -> Result<Tensor> {
    let n = x.dim(0)?;
    if n <= 1 {
        return Ok(x.conv_transpose1d(w, 0, 0, s, d, g)?);
    }
    let items = (0..n)
        .map(|i| Ok(x.narrow(0, i, 1)?.conv_transpose1d(w, 0, 0, s, d, g)?))
        .collect::<Result<Vec<Tensor>>>()?;
    Ok(Tensor::cat(&items, 0)?)
}

/// A transposed conv as a stride-1 conv of the zero-dilated input with the
/// flipped, channel-swapped kernel.
fn conv_transpose_as_conv(
    x: &Tensor,
    w: &Tensor,
    s: &[usize],
    d: &[usize],
    keff: &[usize],
    g: usize,
) -> Result<Tensor> {
    let n = s.len();
    let mut xu = x.clone();
    for (i, &st) in s.iter().enumerate() {
        xu = dilate(&xu, 2 + i, st)?;
    }
    let dims = w.dims();
    let (c_in, c_out_g) = (dims[0], dims[1]);
    let mut grouped = vec![g, c_in / g, c_out_g];
    grouped.extend_from_slice(&dims[2..]);
    let mut conv_shape = vec![g * c_out_g, c_in / g];
    conv_shape.extend_from_slice(&dims[2..]);
    let mut wc = w
        .reshape(grouped)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(conv_shape)?;
    for i in 0..n {
        wc = flip(&wc, 2 + i)?;
    }
    let pads: Vec<(usize, usize)> = keff.iter().map(|&k| (k - 1, k - 1)).collect();
    conv_padded(&xu, &wc, &pads, &vec![1; n], d, g)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use crate::mil::{DataType, TensorValue};
    use crate::portable::testutil::{assert_close, floats, int, ints1, run_op, string, Arg};

    /// `((arange(n) % m) - 3) / 2`, the inputs of the torch reference.
    fn vals(n: usize, m: usize) -> Vec<f64> {
        (0..n).map(|i| ((i % m) as f64 - 3.0) / 2.0).collect()
    }

    fn input(n: usize, m: usize, shape: &[usize]) -> Arg {
        let v: Vec<f32> = vals(n, m).into_iter().map(|x| x as f32).collect();
        Arg::T(Tensor::from_vec(v, shape, &Device::Cpu).unwrap())
    }

    fn weight(n: usize, m: usize, shape: &[usize]) -> Arg {
        Arg::C(floats(&vals(n, m), shape))
    }

    fn run(op: &str, args: Vec<(&str, Arg)>) -> Tensor {
        run_op(op, args, &[DataType::Fp32]).unwrap().remove(0)
    }

    fn c(v: TensorValue) -> Arg {
        Arg::C(v)
    }

    #[test]
    fn conv2d_groups_stride_dilation_same_bias() {
        // torch: F.conv2d(F.pad(x, (2,2,2,2)), w, b, stride=2, dilation=2, groups=2)
        let y = run(
            "conv",
            vec![
                ("x", input(50, 7, &[1, 2, 5, 5])),
                ("weight", weight(36, 5, &[4, 1, 3, 3])),
                ("bias", c(floats(&[0.5, -0.5, 1., 0.], &[4]))),
                ("strides", c(ints1(&[2, 2]))),
                ("dilations", c(ints1(&[2, 2]))),
                ("groups", c(int(2))),
                ("pad_type", c(string("same"))),
            ],
        );
        let want = [
            0.5, -1., 0.5, 0., 4.75, 1., 2.25, -0.25, 0.5, -1.25, 0.25, -0.25, 1.75, -3., -0.5,
            -2., -1.25, 2.75, 3.5, -0.75, -1., -1.25, 5., 3.5, 1., -0.5, 1., -1.25, -2.75, -1., 1.,
            4.5, -1.25, -0.75, 0.75, 0.25,
        ];
        assert_close(&y, &want, &[1, 4, 3, 3], 1e-5);
    }

    #[test]
    fn conv2d_even_kernel_same_and_same_lower() {
        let args = |pad: &str| {
            vec![
                ("x", input(16, 7, &[1, 1, 4, 4])),
                ("weight", c(floats(&[1., 2., 3., 4.], &[1, 1, 2, 2]))),
                ("pad_type", c(string(pad))),
            ]
        };
        // torch: F.conv2d(F.pad(x, (0,1,0,1)), w) and F.conv2d(F.pad(x, (1,0,1,0)), w)
        let same = [
            2., 7., -2., -4.5, -2.5, 2.5, 0.5, 0., 7., -2., -7.5, -2.5, 4., -1.5, -3.5, -1.,
        ];
        assert_close(&run("conv", args("same")), &same, &[1, 1, 4, 4], 1e-5);
        let lower = [
            -6., -8.5, -5., -1.5, -1., 2., 7., -2., -3., -2.5, 2.5, 0.5, 2., 7., -2., -7.5,
        ];
        assert_close(
            &run("conv", args("same_lower")),
            &lower,
            &[1, 1, 4, 4],
            1e-5,
        );
    }

    #[test]
    fn conv1d_custom_pad_stride() {
        // torch: F.conv1d(F.pad(x, (1,2)), w, stride=2)
        let y = run(
            "conv",
            vec![
                ("x", input(14, 7, &[1, 2, 7])),
                ("weight", weight(12, 5, &[2, 2, 3])),
                ("strides", c(ints1(&[2]))),
                ("pad_type", c(string("custom"))),
                ("pad", c(ints1(&[1, 2]))),
            ],
        );
        assert_close(
            &y,
            &[2.75, 1.75, -2.25, -2.25, 4., 1.5, -2., -3.5],
            &[1, 2, 4],
            1e-5,
        );
    }

    #[test]
    fn conv2d_per_axis_stride_and_dilation_runtime_weight() {
        // torch: F.conv2d(x, w, stride=(1,2), dilation=(1,2))
        let y = run(
            "conv",
            vec![
                ("x", input(42, 5, &[1, 1, 6, 7])),
                ("weight", input(6, 4, &[1, 1, 2, 3])),
                ("strides", c(ints1(&[1, 2]))),
                ("dilations", c(ints1(&[1, 2]))),
            ],
        );
        assert_close(
            &y,
            &[2.75, 2.25, 2.25, 1.75, 1.75, 5., 5., 2., 2., 2.75],
            &[1, 1, 5, 2],
            1e-5,
        );
    }

    #[test]
    fn conv3d_custom_pad() {
        // torch: F.conv3d(F.pad(x, (1,1,0,1,1,0)), w, stride=(1,2,1))
        let y = run(
            "conv",
            vec![
                ("x", input(96, 7, &[1, 2, 3, 4, 4])),
                ("weight", weight(32, 5, &[2, 2, 2, 2, 2])),
                ("strides", c(ints1(&[1, 2, 1]))),
                ("pad_type", c(string("custom"))),
                ("pad", c(ints1(&[1, 0, 0, 1, 1, 1]))),
            ],
        );
        let want = [
            2., -1.75, -2., -2.25, 2.5, 0.25, -2., -2.25, 4.5, 0.5, 0.75, -0.5, 3.75, -2.5, -1.25,
            -1.75, 3.75, -2.5, -1.75, 2., 1., -2.5, -1.75, 4.25, -1.75, -1.5, -1.75, 4.25, -2.,
            -2., 2.25, 1.75, -0.75, -3.25, -1.5, -0.25, -0.75, -3.25, -0.5, 2., -2.25, 2., 1.25,
            0.5, -1.5, 1.25, 1.25, 0.5, -2., -0.5, 3., 0.5, -2., 0.75, 2.25, -0.5, -2., 0.75, 0.,
            -0.25,
        ];
        assert_close(&y, &want, &[1, 2, 3, 2, 5], 1e-5);
    }

    #[test]
    fn conv_transpose2d_stride_custom_pad() {
        // torch: F.conv_transpose2d(x, w, stride=2)[:, :, 1:-1, 0:-1]
        let y = run(
            "conv_transpose",
            vec![
                ("x", input(18, 7, &[1, 2, 3, 3])),
                ("weight", weight(24, 5, &[2, 3, 2, 2])),
                ("strides", c(ints1(&[2, 2]))),
                ("pad_type", c(string("custom"))),
                ("pad", c(ints1(&[1, 1, 0, 1]))),
            ],
        );
        let want = [
            0.5, 0.75, 0.5, 0., 0.5, -0.5, 0., -1.5, -0.5, -0.75, 0.5, -1.5, 0.5, -2.25, -1.25,
            -1.75, -1.5, 2.5, 1.5, 1.5, 1.5, 0.5, 1., 0.5, 0.5, -1., -0.5, -1.25, -1.5, 2., 0.,
            0.5, -0.5, 0.5, -1., 1.75, -1.75, -0.25, 2.5, -0.5, 2.5, 1.5, 1.5, 1., 0.5, -1.5, -1.,
            -2.25, -1.25, 2.25, -0.5, 0., -1.5, -0.5, -0.75, 1.5, 1.75, 0.75, -0.25, 0.,
        ];
        assert_close(&y, &want, &[1, 3, 4, 5], 1e-5);
    }

    #[test]
    fn conv_transpose2d_groups_per_axis_stride_bias() {
        // torch: F.conv_transpose2d(x, w, b, stride=(2,1), groups=2)
        let y = run(
            "conv_transpose",
            vec![
                ("x", input(24, 7, &[1, 4, 2, 3])),
                ("weight", weight(16, 5, &[4, 1, 2, 2])),
                ("bias", c(floats(&[1., -1.], &[2]))),
                ("strides", c(ints1(&[2, 1]))),
                ("groups", c(int(2))),
            ],
        );
        let want = [
            4., 1., 4.5, 3., 0.25, 2.25, 3., 1.5, 0.75, 1., -0.75, -0.75, 1.5, 1., 0., 0.75, -1.25,
            -1., -1., -1.75, -2.25, -4.5, -1., -1.75, -0.25, -1., -1., -1., -0.25, 2.5, 0.75,
            -0.25,
        ];
        assert_close(&y, &want, &[1, 2, 4, 4], 1e-5);
    }

    #[test]
    fn conv_transpose1d_same() {
        // torch: F.conv_transpose1d(x, w, stride=2)[:, :, 0:8]
        let y = run(
            "conv_transpose",
            vec![
                ("x", input(8, 7, &[1, 2, 4])),
                ("weight", weight(6, 4, &[2, 1, 3])),
                ("strides", c(ints1(&[2]))),
                ("pad_type", c(string("same"))),
            ],
        );
        assert_close(
            &y,
            &[2.25, 0.75, 1.75, -0.5, 0.25, -1.75, -1.25, 2.25],
            &[1, 1, 8],
            1e-5,
        );
    }

    #[test]
    fn conv_transpose1d_output_shape() {
        // torch: F.conv_transpose1d(x, w, stride=2, padding=1) gives the 7 wanted values.
        let y = run(
            "conv_transpose",
            vec![
                ("x", input(8, 7, &[1, 2, 4])),
                ("weight", weight(6, 4, &[2, 1, 3])),
                ("strides", c(ints1(&[2]))),
                ("pad_type", c(string("same"))),
                ("output_shape", c(ints1(&[1, 1, 7]))),
            ],
        );
        assert_close(
            &y,
            &[0.75, 1.75, -0.5, 0.25, -1.75, -1.25, 2.25],
            &[1, 1, 7],
            1e-5,
        );
    }

    #[test]
    fn conv_transpose1d_batch2() {
        // torch: F.conv_transpose1d(x, w, stride=2)
        let y = run(
            "conv_transpose",
            vec![
                ("x", input(30, 7, &[2, 3, 5])),
                ("weight", weight(18, 5, &[3, 2, 3])),
                ("strides", c(ints1(&[2]))),
            ],
        );
        let want = [
            1.25, 1., 0.5, 0.25, 2.5, 1.25, 1., 0.5, 1.25, -0.25, -1., 0.5, -2.25, 1.25, -3.25,
            -2.5, 1., -1., 0., 2.25, 2.5, 0.5, -0.25, 0.25, 2.5, 1.25, 1., 0.5, 1.25, -0.25, -2.,
            -1., -1., 0., -3.25, -2.5, 1., -1., 0., 2.25, 2.5, 2., 1.5, -1.,
        ];
        assert_close(&y, &want, &[2, 2, 11], 1e-5);
    }
}
