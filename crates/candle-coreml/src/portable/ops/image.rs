//! Image resizing ops: nearest-neighbour and bilinear up/down-sampling of the
//! last two axes, and `crop`.
//!
//! Bilinear interpolation is separable, so each op samples a grid of source
//! coordinates per axis (the grid formulas of the MIL docs) and interpolates
//! along height, then width.

use candle_core::{DType, Device, Tensor};

use super::registry::Registry;
use super::util::grid::{grid, lerp_axis, sampling_grid, Grid};
use crate::error::{Error, Result};
use crate::portable::kernel::{kernel, Kernel, OpBuilder};

/// Registers this family's ops.
pub(crate) fn register(reg: &mut Registry) {
    reg.insert("upsample_nearest_neighbor", build_upsample_nearest);
    reg.insert("resize_nearest_neighbor", build_resize_nearest);
    reg.insert("upsample_bilinear", build_upsample_bilinear);
    reg.insert("resize_bilinear", build_resize_bilinear);
    reg.insert("crop", build_crop);
}

/// Nearest-neighbour sampling along `axis` at the given source indices.
fn pick_axis(x: &Tensor, axis: usize, idx: Vec<u32>, device: &Device) -> Result<Tensor> {
    Ok(x.index_select(&Tensor::new(idx, device)?, axis)?)
}

fn spatial(x: &Tensor) -> Result<(usize, usize, usize)> {
    let r = x.rank();
    if r < 3 {
        return Err(Error::msg(format!(
            "image ops need rank >= 3, got shape {:?}",
            x.dims()
        )));
    }
    Ok((r - 2, x.dim(r - 2)?, x.dim(r - 1)?))
}

/// Output size `floor(n * scale)`, checked.
fn scaled(n: usize, scale: f64) -> Result<usize> {
    let v = (n as f64 * scale).floor();
    if !(v >= 1.0 && v < (1u64 << 31) as f64) {
        return Err(Error::msg(format!(
            "scale {scale} of size {n} gives an empty or huge output"
        )));
    }
    Ok(v as usize)
}

fn build_upsample_nearest(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let sh = b.float_or("scale_factor_height", 1.0)?;
    let sw = b.float_or("scale_factor_width", 1.0)?;
    if sh <= 0.0 || sw <= 0.0 {
        return Err(b.err(format!("scale factors must be positive, got {sh} and {sw}")));
    }
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        let (ax, h, w) = spatial(t)?;
        let (oh, ow) = (scaled(h, sh)?, scaled(w, sw)?);
        let rows = (0..oh)
            .map(|i| ((i as f64 / sh).floor() as usize).min(h - 1) as u32)
            .collect();
        let cols = (0..ow)
            .map(|i| ((i as f64 / sw).floor() as usize).min(w - 1) as u32)
            .collect();
        let t = pick_axis(t, ax, rows, t.device())?;
        Ok(vec![pick_axis(&t, ax + 1, cols, t.device())?])
    }))
}

fn build_resize_nearest(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let oh = target(b, "target_size_height")?;
    let ow = target(b, "target_size_width")?;
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        let (ax, h, w) = spatial(t)?;
        let rows = (0..oh).map(|i| ((i * h) / oh).min(h - 1) as u32).collect();
        let cols = (0..ow).map(|i| ((i * w) / ow).min(w - 1) as u32).collect();
        let t = pick_axis(t, ax, rows, t.device())?;
        Ok(vec![pick_axis(&t, ax + 1, cols, t.device())?])
    }))
}

fn target(b: &OpBuilder<'_>, name: &str) -> Result<usize> {
    let v = b.int(name)?;
    if !(1..=(1 << 30)).contains(&v) {
        return Err(b.err(format!("{name} must be a positive size, got {v}")));
    }
    Ok(v as usize)
}

fn bilinear(t: &Tensor, oh: usize, ow: usize, gh: Grid, gw: Grid) -> Result<Tensor> {
    let (ax, h, w) = spatial(t)?;
    let float = if t.dtype().is_float() {
        t.dtype()
    } else {
        DType::F32
    };
    let t = t.to_dtype(float)?;
    let t = lerp_axis(&t, ax, &grid(gh, h, oh))?;
    lerp_axis(&t, ax + 1, &grid(gw, w, ow))
}

fn build_upsample_bilinear(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let sh = b.float_or("scale_factor_height", 1.0)?;
    let sw = b.float_or("scale_factor_width", 1.0)?;
    let align = b.bool_or("align_corners", true)?;
    let half = b.bool_or("half_pixel_centers", !align)?;
    if sh <= 0.0 || sw <= 0.0 {
        return Err(b.err(format!("scale factors must be positive, got {sh} and {sw}")));
    }
    let mode = match (align, half) {
        (true, _) => Grid::AlignCorners {
            centre_single: false,
        },
        (false, true) => Grid::Unaligned,
        (false, false) => Grid::Scaled,
    };
    let out = b.output_dtype(0)?;
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        let (_, h, w) = spatial(t)?;
        let r = bilinear(t, scaled(h, sh)?, scaled(w, sw)?, mode, mode)?;
        Ok(vec![r.to_dtype(out)?])
    }))
}

fn build_resize_bilinear(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let oh = if b.has("target_size_height") {
        target(b, "target_size_height")?
    } else {
        1
    };
    let ow = if b.has("target_size_width") {
        target(b, "target_size_width")?
    } else {
        1
    };
    let mode = sampling_grid(b, &b.string_or("sampling_mode", "DEFAULT")?)?;
    let out = b.output_dtype(0)?;
    Ok(kernel(move |a| {
        let r = bilinear(a.tensor(x)?, oh, ow, mode, mode)?;
        Ok(vec![r.to_dtype(out)?])
    }))
}

fn build_crop(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let ch = b.ints("crop_height")?;
    let cw = b.ints("crop_width")?;
    let (&[top, bottom], &[left, right]) = (ch.as_slice(), cw.as_slice()) else {
        return Err(b.err("crop_height and crop_width must have two entries each"));
    };
    if [top, bottom, left, right].iter().any(|&v| v < 0) {
        return Err(b.err("crop amounts must not be negative"));
    }
    let (top, bottom, left, right) = (top as usize, bottom as usize, left as usize, right as usize);
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        let (ax, h, w) = spatial(t)?;
        if top + bottom >= h || left + right >= w {
            return Err(Error::msg(format!(
                "crop of ({top}, {bottom}, {left}, {right}) leaves nothing of {h}x{w}"
            )));
        }
        let t = t.narrow(ax, top, h - top - bottom)?;
        Ok(vec![t.narrow(ax + 1, left, w - left - right)?])
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_match_the_documented_examples() {
        // From the MIL docs: Xin = 2.
        let round = |v: Vec<f64>| {
            v.into_iter()
                .map(|x| (x * 100.0).round() / 100.0)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            round(grid(Grid::Unaligned, 2, 5)),
            vec![0.0, 0.1, 0.5, 0.9, 1.0]
        );
        assert_eq!(
            round(grid(
                Grid::AlignCorners {
                    centre_single: false
                },
                2,
                5
            )),
            vec![0.0, 0.25, 0.5, 0.75, 1.0]
        );
        assert_eq!(
            round(grid(Grid::Unaligned, 2, 6)),
            vec![0.0, 0.0, 0.33, 0.67, 1.0, 1.0]
        );
        assert_eq!(
            round(grid(
                Grid::AlignCorners {
                    centre_single: false
                },
                2,
                6
            )),
            vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
        );
    }

    #[test]
    fn bilinear_align_corners_doubles() {
        let x = Tensor::new(&[[[0f32, 1.0], [2.0, 3.0]]], &Device::Cpu).unwrap();
        let g = Grid::AlignCorners {
            centre_single: false,
        };
        let y = bilinear(&x, 3, 3, g, g).unwrap();
        let v: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(v, vec![0.0, 0.5, 1.0, 1.0, 1.5, 2.0, 2.0, 2.5, 3.0]);
    }
}
