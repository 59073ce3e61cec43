//! Ops that move elements between the channel, spatial and batch dims of a
//! rank-4 `[n, C, H, W]` tensor (`depth_to_space`, `space_to_depth`,
//! `pixel_shuffle`, `pixel_unshuffle`, `space_to_batch`, `batch_to_space`),
//! and `pad`.

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::portable::kernel::{kernel, Kernel, OpBuilder};
use crate::portable::ops::registry::Registry;
use crate::portable::ops::util::{checked_dims, finish, out_dtype, scalar};

/// Registers the rearranging ops.
pub(super) fn register(reg: &mut Registry) {
    reg.insert("depth_to_space", build_depth_to_space);
    reg.insert("space_to_depth", build_space_to_depth);
    reg.insert("pixel_shuffle", build_pixel_shuffle);
    reg.insert("pixel_unshuffle", build_pixel_unshuffle);
    reg.insert("space_to_batch", build_space_to_batch);
    reg.insert("batch_to_space", build_batch_to_space);
    reg.insert("pad", build_pad);
}

/// How a block of channels maps onto a `f x f` spatial block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// Channel `(i*f + j)*C' + c` goes to `(c, i, j)` (`depth_to_space`, TensorFlow's DCR).
    BlockMajor,
    /// Channel `c*f*f + i*f + j` goes to `(c, i, j)` (`pixel_shuffle`, PyTorch).
    ChannelMajor,
}

/// A positive block factor parameter.
fn factor(b: &OpBuilder<'_>, name: &str) -> Result<usize> {
    let f = b.int(name)?;
    usize::try_from(f)
        .ok()
        .filter(|&f| f >= 1)
        .ok_or_else(|| b.err(format!("{name} must be positive, got {f}")))
}

/// Channels to space: `[n, C*f*f, H, W] -> [n, C, H*f, W*f]`.
fn to_space(t: &Tensor, f: usize, order: Order) -> Result<Tensor> {
    let (n, c, h, w) = t.dims4()?;
    if !c.is_multiple_of(f * f) {
        return Err(Error::msg(format!(
            "{c} channels are not divisible by {f}x{f}"
        )));
    }
    let co = c / (f * f);
    let v = match order {
        Order::BlockMajor => t
            .reshape(vec![n, f, f, co, h, w])?
            .permute(vec![0, 3, 4, 1, 5, 2])?,
        Order::ChannelMajor => t
            .reshape(vec![n, co, f, f, h, w])?
            .permute(vec![0, 1, 4, 2, 5, 3])?,
    };
    Ok(v.reshape((n, co, h * f, w * f))?)
}

/// Space to channels: `[n, C, H*f, W*f] -> [n, C*f*f, H, W]`, the inverse of [`to_space`].
fn to_depth(t: &Tensor, f: usize, order: Order) -> Result<Tensor> {
    let (n, c, h, w) = t.dims4()?;
    if !h.is_multiple_of(f) || !w.is_multiple_of(f) {
        return Err(Error::msg(format!(
            "spatial size {h}x{w} is not divisible by {f}"
        )));
    }
    let v = t.reshape(vec![n, c, h / f, f, w / f, f])?;
    let v = match order {
        Order::BlockMajor => v.permute(vec![0, 3, 5, 1, 2, 4])?,
        Order::ChannelMajor => v.permute(vec![0, 1, 3, 5, 2, 4])?,
    };
    Ok(v.reshape((n, c * f * f, h / f, w / f))?)
}

fn build_depth_to_space(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let f = factor(b, "block_size")?;
    Ok(kernel(move |a| {
        Ok(vec![to_space(a.tensor(x)?, f, Order::BlockMajor)?])
    }))
}

fn build_space_to_depth(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let f = factor(b, "block_size")?;
    Ok(kernel(move |a| {
        Ok(vec![to_depth(a.tensor(x)?, f, Order::BlockMajor)?])
    }))
}

fn build_pixel_shuffle(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let f = factor(b, "upscale_factor")?;
    Ok(kernel(move |a| {
        Ok(vec![to_space(a.tensor(x)?, f, Order::ChannelMajor)?])
    }))
}

fn build_pixel_unshuffle(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let f = factor(b, "downscale_factor")?;
    Ok(kernel(move |a| {
        Ok(vec![to_depth(a.tensor(x)?, f, Order::ChannelMajor)?])
    }))
}

/// `block_shape` (2 positive ints) and a `[2, 2]` list of non-negative ints.
fn block_params(b: &OpBuilder<'_>, pads: &str) -> Result<([usize; 2], [[usize; 2]; 2])> {
    let bs = checked_dims(&b.ints("block_shape")?).map_err(|e| b.err(e.to_string()))?;
    let p = checked_dims(&b.ints(pads)?).map_err(|e| b.err(e.to_string()))?;
    match (bs.as_slice(), p.as_slice()) {
        (&[bh, bw], &[p0, p1, p2, p3]) if bh > 0 && bw > 0 => Ok(([bh, bw], [[p0, p1], [p2, p3]])),
        _ => Err(b.err(format!(
            "block_shape {bs:?} must be 2 positive ints and {pads} a [2, 2] list"
        ))),
    }
}

fn build_space_to_batch(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let ([bh, bw], p) = block_params(b, "paddings")?;
    Ok(kernel(move |a| {
        let t = a
            .tensor(x)?
            .pad_with_zeros(2, p[0][0], p[0][1])?
            .pad_with_zeros(3, p[1][0], p[1][1])?;
        let (n, c, h, w) = t.dims4()?;
        if !h.is_multiple_of(bh) || !w.is_multiple_of(bw) {
            return Err(Error::msg(format!(
                "padded size {h}x{w} is not divisible by block {bh}x{bw}"
            )));
        }
        let v = t
            .reshape(vec![n, c, h / bh, bh, w / bw, bw])?
            .permute(vec![3, 5, 0, 1, 2, 4])?;
        Ok(vec![v.reshape((bh * bw * n, c, h / bh, w / bw))?])
    }))
}

fn build_batch_to_space(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let ([bh, bw], crops) = block_params(b, "crops")?;
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        let (nb, c, h, w) = t.dims4()?;
        if !nb.is_multiple_of(bh * bw) {
            return Err(Error::msg(format!(
                "batch {nb} is not divisible by block {bh}x{bw}"
            )));
        }
        let n = nb / (bh * bw);
        let v = t
            .reshape(vec![bh, bw, n, c, h, w])?
            .permute(vec![2, 3, 4, 0, 5, 1])?;
        let v = v.reshape((n, c, h * bh, w * bw))?;
        let [[t0, b0], [l0, r0]] = crops;
        if t0 + b0 > h * bh || l0 + r0 > w * bw {
            return Err(Error::msg(format!(
                "crops {crops:?} exceed the output size"
            )));
        }
        Ok(vec![v.narrow(2, t0, h * bh - t0 - b0)?.narrow(
            3,
            l0,
            w * bw - l0 - r0,
        )?])
    }))
}

/// `pad`'s modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PadMode {
    Constant,
    Reflect,
    Replicate,
}

fn build_pad(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let pad = b.ints_or_input("pad")?;
    let mode = match b.string_or("mode", "constant")?.as_str() {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "replicate" => PadMode::Replicate,
        m => return Err(b.err(format!("unknown pad mode {m:?}"))),
    };
    let value = b.float_or("constant_val", 0.0)?;
    let dt = out_dtype(b, 0);
    Ok(kernel(move |a| {
        let mut t = a.tensor(x)?.clone();
        let p = a.ints(&pad)?;
        let rank = t.rank();
        if !p.len().is_multiple_of(2) || p.len() / 2 > rank {
            return Err(Error::msg(format!("pad {p:?} does not fit rank {rank}")));
        }
        let first = rank - p.len() / 2;
        let mut out: Vec<i64> = t.dims().iter().map(|&d| d as i64).collect();
        for (i, lr) in p.chunks_exact(2).enumerate() {
            out[first + i] = out[first + i].saturating_add(lr[0]).saturating_add(lr[1]);
        }
        checked_dims(&out)?;
        for (i, lr) in p.chunks_exact(2).enumerate() {
            let (l, r) = (checked_dims(&lr[..1])?[0], checked_dims(&lr[1..])?[0]);
            t = pad_dim(&t, first + i, l, r, mode, value)?;
        }
        Ok(vec![finish(t, dt)?])
    }))
}

/// Pads dimension `d` of `t` with `l` elements before and `r` after.
fn pad_dim(t: &Tensor, d: usize, l: usize, r: usize, mode: PadMode, value: f64) -> Result<Tensor> {
    if l == 0 && r == 0 {
        return Ok(t.clone());
    }
    let n = t.dim(d)?;
    let idx: Vec<i64> = match mode {
        PadMode::Constant => {
            let mut dims = t.dims().to_vec();
            let fill = scalar(value, t.dtype(), t.device())?;
            let mut parts = Vec::with_capacity(3);
            for (k, size) in [(0, l), (1, 0), (2, r)] {
                if k == 1 {
                    parts.push(t.clone());
                } else if size > 0 {
                    dims[d] = size;
                    parts.push(fill.broadcast_as(dims.as_slice())?.contiguous()?);
                }
            }
            return Ok(Tensor::cat(&parts, d)?);
        }
        PadMode::Reflect => {
            if l >= n || r >= n {
                return Err(Error::msg(format!(
                    "reflect pad of {l}/{r} on a dimension of size {n}"
                )));
            }
            let right = (1..=r).map(|k| n - 1 - k);
            (1..=l)
                .rev()
                .chain(0..n)
                .chain(right)
                .map(|i| i as i64)
                .collect()
        }
        PadMode::Replicate => {
            if n == 0 {
                return Err(Error::msg("replicate pad of an empty dimension"));
            }
            std::iter::repeat_n(0, l)
                .chain(0..n)
                .chain(std::iter::repeat_n(n - 1, r))
                .map(|i| i as i64)
                .collect()
        }
    };
    let len = idx.len();
    Ok(t.contiguous()?
        .index_select(&Tensor::from_vec(idx, len, t.device())?, d)?)
}
