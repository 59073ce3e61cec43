//! Resampling ops: iOS17 `resize` (any number of trailing axes, linear or
//! nearest), and the 2-D point samplers `resample` (a coordinate grid),
//! `affine` (a grid made by a 2x3 matrix) and `crop_resize` (boxes).
//!
//! The point samplers share one kernel: source points in pixel coordinates
//! are folded by the padding mode, their two (nearest: one) neighbours per axis
//! are gathered from the flattened image, and the weighted values summed.

use candle_core::{DType, Device, Tensor};

use super::registry::Registry;
use super::util::grid::{grid, lerp_axis, sampling_grid, Grid};
use super::util::numeric::round_half_even;
use crate::error::{Error, Result};
use crate::portable::kernel::{kernel, IntsArg, Kernel, OpBuilder};

/// Registers this family's ops.
pub(crate) fn register(reg: &mut Registry) {
    reg.insert("resize", build_resize);
    reg.insert("resample", build_resample);
    reg.insert("affine", build_affine);
    reg.insert("crop_resize", build_crop_resize);
}

// ------------------------------------------------------------------ resize

fn build_resize(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let shape = b.ints_or_input("shape")?;
    let dims = b.int("resized_dims")?;
    if !(0..=64).contains(&dims) {
        return Err(b.err(format!("resized_dims {dims} is out of range")));
    }
    let dims = dims as usize;
    let linear = match b.string_or("interpolation_mode", "LINEAR")?.as_str() {
        "LINEAR" => true,
        "NEAREST_NEIGHBOR" => false,
        other => return Err(b.err(format!("unknown interpolation_mode {other:?}"))),
    };
    let mode = sampling_grid(b, &b.string_or("sampling_mode", "DEFAULT")?)?;
    if let IntsArg::Const(v) = &shape {
        if v.len() < dims {
            return Err(b.err(format!("shape {v:?} has fewer than {dims} entries")));
        }
    }
    let out = b.output_dtype(0)?;
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        let target = a.ints(&shape)?;
        let sizes = resize_sizes(t.dims(), &target, dims)?;
        let work = if t.dtype().is_float() {
            t.dtype()
        } else {
            DType::F32
        };
        let mut y = t.to_dtype(work)?;
        for (axis, n_out) in sizes {
            let n_in = y.dim(axis)?;
            let coords = grid(mode, n_in, n_out);
            y = if linear {
                lerp_axis(&y, axis, &coords)?
            } else {
                let idx: Vec<u32> = coords
                    .iter()
                    .map(|&c| nearest_index(mode, c, n_in) as u32)
                    .collect();
                y.index_select(&Tensor::new(idx, y.device())?, axis)?
            };
        }
        Ok(vec![y.to_dtype(out)?])
    }))
}

/// The (axis, size) pairs `resize` produces; a 0 in `target` keeps the size.
fn resize_sizes(dims: &[usize], target: &[i64], n: usize) -> Result<Vec<(usize, usize)>> {
    if n > target.len() || n > dims.len() {
        return Err(Error::msg(format!(
            "resize of {n} dims with shape {target:?} on input {dims:?}"
        )));
    }
    let first = dims.len() - n;
    (0..n)
        .map(|i| {
            let v = target[target.len() - n + i];
            let axis = first + i;
            match v {
                0 => Ok((axis, dims[axis])),
                1..=0x4000_0000 if dims[axis] > 0 => Ok((axis, v as usize)),
                _ => Err(Error::msg(format!(
                    "cannot resize axis {axis} of {dims:?} to {v}"
                ))),
            }
        })
        .collect()
}

/// The source index nearest-neighbour `resize` takes for grid point `c`:
/// the floor for `DEFAULT` (`i * in / out`, as `resize_nearest_neighbor`),
/// the nearest pixel centre otherwise.
fn nearest_index(mode: Grid, c: f64, n_in: usize) -> usize {
    let v = if mode == Grid::Default {
        c.floor()
    } else {
        (c + 0.5).floor()
    };
    (v.max(0.0) as usize).min(n_in.saturating_sub(1))
}

// ------------------------------------------------------------ point sampler

/// How a source point between pixels is read.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Interp {
    Bilinear,
    Nearest,
}

/// What a source point outside the image reads.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Padding {
    /// Pixels outside are this value (each neighbour on its own).
    Constant(f64),
    /// Pixels outside repeat the edge.
    Border,
    /// Mirrored about the edge pixel centres: `|1 2 3| -> 2 | 1 2 3 | 2`.
    Reflection,
    /// Mirrored about the image edges: `|1 2 3| -> 1 | 1 2 3 | 3`.
    Symmetric,
    /// A point outside `[0, n - 1]` on either axis reads this value
    /// (`crop_resize`, as TensorFlow's `extrapolation_value`).
    Extrapolate(f64),
}

fn parse_interp(b: &OpBuilder<'_>) -> Result<Interp> {
    match b
        .string_or("sampling_mode", "bilinear")?
        .to_lowercase()
        .as_str()
    {
        "bilinear" => Ok(Interp::Bilinear),
        "nearest" => Ok(Interp::Nearest),
        other => Err(b.err(format!("unknown sampling_mode {other:?}"))),
    }
}

fn parse_padding(b: &OpBuilder<'_>) -> Result<Padding> {
    let value = b.float_or("padding_value", 0.0)?;
    match b
        .string_or("padding_mode", "constant")?
        .to_lowercase()
        .as_str()
    {
        "constant" => Ok(Padding::Constant(value)),
        "border" => Ok(Padding::Border),
        "reflection" => Ok(Padding::Reflection),
        "symmetric" => Ok(Padding::Symmetric),
        other => Err(b.err(format!("unknown padding_mode {other:?}"))),
    }
}

/// Mirrors `p` into `[lo, lo + span]`.
fn reflect(p: &Tensor, lo: f64, span: f64) -> Result<Tensor> {
    if span <= 0.0 {
        return Ok(p.zeros_like()?.affine(1.0, lo)?);
    }
    let t = p.affine(1.0, -lo)?.abs()?;
    let period = 2.0 * span;
    let r = t.sub(&t.affine(1.0 / period, 0.0)?.floor()?.affine(period, 0.0)?)?;
    // span - |r - span|
    let r = r.affine(1.0, -span)?.abs()?.affine(-1.0, span)?;
    Ok(r.affine(1.0, lo)?)
}

/// Applies a padding mode that moves points (all but the constant ones).
fn fold(p: &Tensor, n: usize, pad: Padding) -> Result<Tensor> {
    let hi = n.saturating_sub(1) as f64;
    Ok(match pad {
        Padding::Constant(_) | Padding::Extrapolate(_) => p.clone(),
        Padding::Border => p.clamp(0.0, hi)?,
        Padding::Reflection => reflect(p, 0.0, hi)?.clamp(0.0, hi)?,
        Padding::Symmetric => reflect(p, -0.5, n as f64)?.clamp(0.0, hi)?,
    })
}

/// 1.0 where `0 <= p <= n - 1`, else 0.0 (f32).
fn inside(p: &Tensor, n: usize) -> Result<Tensor> {
    let lo = p.ge(0.0)?;
    let hi = p.le(n.saturating_sub(1) as f64)?;
    Ok(lo.mul(&hi)?.to_dtype(DType::F32)?)
}

/// Sample points: batch index, row and column (pixel units), all `[M]` f32.
struct Points {
    batch: Tensor,
    y: Tensor,
    x: Tensor,
}

/// Samples `x` `[B, C, H, W]` at `pts`; returns `[C, M]` in f32.
fn sample(x: &Tensor, pts: &Points, interp: Interp, pad: Padding) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if h == 0 || w == 0 || b == 0 {
        return Err(Error::msg(format!(
            "cannot sample an empty image {:?}",
            x.dims()
        )));
    }
    let flat = x
        .to_dtype(DType::F32)?
        .transpose(0, 1)?
        .reshape((c, b * h * w))?
        .contiguous()?;
    let (py, px) = (fold(&pts.y, h, pad)?, fold(&pts.x, w, pad)?);
    let (py, px) = match pad {
        Padding::Extrapolate(_) => (
            py.clamp(0.0, (h - 1) as f64)?,
            px.clamp(0.0, (w - 1) as f64)?,
        ),
        _ => (py, px),
    };
    let corners = match interp {
        Interp::Nearest => vec![(
            round_half_even(&py)?,
            round_half_even(&px)?,
            py.ones_like()?,
        )],
        Interp::Bilinear => {
            let (y0, x0) = (py.floor()?, px.floor()?);
            let (fy, fx) = (py.sub(&y0)?, px.sub(&x0)?);
            let (gy, gx) = (fy.affine(-1.0, 1.0)?, fx.affine(-1.0, 1.0)?);
            let (y1, x1) = (y0.affine(1.0, 1.0)?, x0.affine(1.0, 1.0)?);
            vec![
                (y0.clone(), x0.clone(), gy.mul(&gx)?),
                (y0, x1.clone(), gy.mul(&fx)?),
                (y1.clone(), x0, fy.mul(&gx)?),
                (y1, x1, fy.mul(&fx)?),
            ]
        }
    };
    let base = pts
        .batch
        .affine((h * w) as f64, 0.0)?
        .to_dtype(DType::I64)?;
    let mut acc: Option<Tensor> = None;
    let mut outside = Tensor::zeros_like(&py)?;
    for (cy, cx, wgt) in corners {
        let valid = inside(&cy, h)?.mul(&inside(&cx, w)?)?;
        let iy = cy.clamp(0.0, (h - 1) as f64)?.to_dtype(DType::I64)?;
        let ix = cx.clamp(0.0, (w - 1) as f64)?.to_dtype(DType::I64)?;
        let idx = base.add(&iy.affine(w as f64, 0.0)?)?.add(&ix)?;
        let idx = idx
            .unsqueeze(0)?
            .broadcast_as((c, idx.dim(0)?))?
            .contiguous()?;
        let vals = flat.gather(&idx, 1)?;
        let wv = wgt.mul(&valid)?;
        outside = outside.add(&wgt.sub(&wv)?)?;
        let term = vals.broadcast_mul(&wv.unsqueeze(0)?)?;
        acc = Some(match acc {
            Some(a) => a.add(&term)?,
            None => term,
        });
    }
    let acc = acc.ok_or_else(|| Error::msg("no sample corners"))?;
    match pad {
        Padding::Constant(v) if v != 0.0 => {
            Ok(acc.broadcast_add(&outside.affine(v, 0.0)?.unsqueeze(0)?)?)
        }
        Padding::Extrapolate(v) => {
            let valid = inside(&pts.y, h)?.mul(&inside(&pts.x, w)?)?;
            let fill = valid.affine(-v, v)?.unsqueeze(0)?;
            Ok(acc
                .broadcast_mul(&valid.unsqueeze(0)?)?
                .broadcast_add(&fill)?)
        }
        _ => Ok(acc),
    }
}

// ------------------------------------------------------- resample, affine

/// How normalized coordinates map to pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Coords {
    Unnormalized,
    MinusOneToOne,
    ZeroToOne,
}

fn parse_coords(b: &OpBuilder<'_>) -> Result<Coords> {
    match b
        .string_or("coordinates_mode", "normalized_minus_one_to_one")?
        .to_lowercase()
        .as_str()
    {
        "unnormalized" => Ok(Coords::Unnormalized),
        "normalized_minus_one_to_one" => Ok(Coords::MinusOneToOne),
        "normalized_zero_to_one" => Ok(Coords::ZeroToOne),
        other => Err(b.err(format!("unknown coordinates_mode {other:?}"))),
    }
}

/// Pixel coordinate of `c` along an axis of `n` pixels.
fn to_pixels(c: &Tensor, n: usize, mode: Coords, align: bool) -> Result<Tensor> {
    let n = n as f64;
    Ok(match (mode, align) {
        (Coords::Unnormalized, _) => c.clone(),
        (Coords::MinusOneToOne, true) => c.affine((n - 1.0) / 2.0, (n - 1.0) / 2.0)?,
        (Coords::MinusOneToOne, false) => c.affine(n / 2.0, (n - 1.0) / 2.0)?,
        (Coords::ZeroToOne, true) => c.affine(n - 1.0, 0.0)?,
        (Coords::ZeroToOne, false) => c.affine(n, -0.5)?,
    })
}

/// A prepared grid sampler: reads `[B, Ho, Wo, 2]` (x, y) coordinates.
#[derive(Debug, Clone, Copy)]
struct GridSampler {
    interp: Interp,
    pad: Padding,
    coords: Coords,
    align: bool,
}

impl GridSampler {
    fn parse(b: &OpBuilder<'_>) -> Result<Self> {
        Ok(GridSampler {
            interp: parse_interp(b)?,
            pad: parse_padding(b)?,
            coords: parse_coords(b)?,
            align: b.bool_or("align_corners", false)?,
        })
    }

    /// Samples `x` `[B, C, H, W]` at `grid` `[D, Ho, Wo, 2]` (`D` is `B` or 1).
    fn run(&self, x: &Tensor, grid: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let (d, ho, wo, two) = grid.dims4()?;
        if two != 2 || (d != b && d != 1) {
            return Err(Error::msg(format!(
                "coordinates {:?} do not fit image {:?}",
                grid.dims(),
                x.dims()
            )));
        }
        let grid = grid
            .to_dtype(DType::F32)?
            .broadcast_as((b, ho, wo, 2))?
            .reshape((b * ho * wo, 2))?;
        let gx = grid.narrow(1, 0, 1)?.flatten_all()?;
        let gy = grid.narrow(1, 1, 1)?.flatten_all()?;
        let pts = Points {
            batch: batch_ids(b, ho * wo, x.device())?,
            y: to_pixels(&gy, h, self.coords, self.align)?,
            x: to_pixels(&gx, w, self.coords, self.align)?,
        };
        let y = sample(x, &pts, self.interp, self.pad)?;
        Ok(y.reshape((c, b, ho, wo))?.transpose(0, 1)?)
    }
}

/// `[0 x per, 1 x per, ...]` as f32 `[b * per]`.
fn batch_ids(b: usize, per: usize, dev: &Device) -> Result<Tensor> {
    let ids = Tensor::arange(0u32, b as u32, dev)?.to_dtype(DType::F32)?;
    Ok(ids.unsqueeze(1)?.broadcast_as((b, per))?.flatten_all()?)
}

fn build_resample(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let coords = b.input("coordinates")?;
    let sampler = GridSampler::parse(b)?;
    let out = b.output_dtype(0)?;
    Ok(kernel(move |a| {
        let y = sampler.run(a.tensor(x)?, a.tensor(coords)?)?;
        Ok(vec![y.to_dtype(out)?])
    }))
}

fn build_affine(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    let theta = b.input("transform_matrix")?;
    let sampler = GridSampler::parse(b)?;
    let oh = b.int("output_height")?;
    let ow = b.int("output_width")?;
    if !(1..=1 << 30).contains(&oh) || !(1..=1 << 30).contains(&ow) {
        return Err(b.err(format!("output size {oh}x{ow} is not positive")));
    }
    let (oh, ow) = (oh as usize, ow as usize);
    let out = b.output_dtype(0)?;
    // Output positions (x, y, 1) in [-1, 1], as the sampler normalizes them.
    let axis = move |n: usize| -> Vec<f32> {
        (0..n)
            .map(|i| {
                let (i, n) = (i as f64, n as f64);
                let v = match (sampler.align, n > 1.0) {
                    (true, true) => 2.0 * i / (n - 1.0) - 1.0,
                    (true, false) => 0.0,
                    (false, _) => (2.0 * i + 1.0) / n - 1.0,
                };
                v as f32
            })
            .collect()
    };
    let (xs, ys) = (axis(ow), axis(oh));
    let mut base = Vec::with_capacity(oh * ow * 3);
    for y in &ys {
        for x in &xs {
            base.extend_from_slice(&[*x, *y, 1.0]);
        }
    }
    let base = Tensor::from_vec(base, (1, oh * ow, 3), b.device())?;
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        let m = a.tensor(theta)?.to_dtype(DType::F32)?;
        let d = m.dim(0)?;
        if m.dims() != [d, 6] {
            return Err(Error::msg(format!(
                "transform_matrix must be [D, 6], got {:?}",
                m.dims()
            )));
        }
        // [1, M, 3] x [D, 3, 2] -> [D, M, 2] of (x', y').
        let m = m.reshape((d, 2, 3))?.transpose(1, 2)?;
        let g = base.broadcast_matmul(&m)?.reshape((d, oh, ow, 2))?;
        Ok(vec![sampler.run(t, &g)?.to_dtype(out)?])
    }))
}

// ------------------------------------------------------------- crop_resize

/// How the four numbers of a box are laid out.
#[derive(Debug, Clone, Copy, PartialEq)]
enum BoxMode {
    // [h0, w0, h1, w1], [w0, h0, w1, h1], [hc, wc, bh, bw], [wc, hc, bw, bh].
    CornersHw,
    CornersWh,
    CenterHw,
    CenterWh,
}

impl BoxMode {
    /// `(h_start, w_start, h_end, w_end)` of one box.
    fn corners(self, v: [f64; 4]) -> [f64; 4] {
        let centre = |c: f64, s: f64| (c - s / 2.0, c + s / 2.0);
        match self {
            BoxMode::CornersHw => v,
            BoxMode::CornersWh => [v[1], v[0], v[3], v[2]],
            BoxMode::CenterHw | BoxMode::CenterWh => {
                let [hc, wc, bh, bw] = match self {
                    BoxMode::CenterHw => v,
                    _ => [v[1], v[0], v[3], v[2]],
                };
                let ((h0, h1), (w0, w1)) = (centre(hc, bh), centre(wc, bw));
                [h0, w0, h1, w1]
            }
        }
    }
}

/// Source coordinates of `n` samples across the box side from `s` to `e`
/// (pixels): the `resize_bilinear` grid of the box, whose size is taken as
/// `|e - s| + 1` pixels, walked from `s` towards `e`.
fn box_grid(mode: Grid, s: f64, e: f64, n: usize) -> Vec<f64> {
    let a = (e - s).abs();
    let sign = if e < s { -1.0 } else { 1.0 };
    let (x, nf) = (a + 1.0, n as f64);
    (0..n)
        .map(|i| {
            let i = i as f64;
            let off = match mode {
                Grid::AlignCorners { centre_single } => match (n, centre_single) {
                    (1, true) => a / 2.0,
                    (1, false) => 0.0,
                    _ => i * a / (nf - 1.0),
                },
                Grid::Default | Grid::Scaled => (i * x / nf).min(a),
                Grid::OffsetCorners => {
                    let step = a.max(1.0) / nf;
                    (0.5 * step + i * step).min(a)
                }
                Grid::Unaligned => ((i + 0.5) * x / nf - 0.5).clamp(0.0, a),
            };
            s + sign * off
        })
        .collect()
}

/// The parameters of `crop_resize`, parsed at load.
#[derive(Debug, Clone, Copy)]
struct CropResize {
    th: usize,
    tw: usize,
    normalized: bool,
    scale: f64,
    boxes: BoxMode,
    grid: Grid,
    pad: f64,
}

impl CropResize {
    /// Crops `(batch, box)` pairs of `x` `[B, C, H, W]`: `[S, C, th, tw]`.
    fn run(&self, x: &Tensor, crops: &[(usize, [f64; 4])]) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let (s, th, tw) = (crops.len(), self.th, self.tw);
        let mut ys = Vec::with_capacity(s * th);
        let mut xs = Vec::with_capacity(s * tw);
        let mut ids = Vec::with_capacity(s);
        for &(bi, v) in crops {
            if bi >= b {
                return Err(Error::msg(format!(
                    "crop_resize box index {bi} is out of range for batch {b}"
                )));
            }
            let [mut h0, mut w0, mut h1, mut w1] = self.boxes.corners(v);
            if self.normalized {
                let (sh, sw) = ((h as f64 - 1.0), (w as f64 - 1.0));
                (h0, h1, w0, w1) = (h0 * sh, h1 * sh, w0 * sw, w1 * sw);
            }
            let k = self.scale;
            ys.extend(
                box_grid(self.grid, h0 * k, h1 * k, th)
                    .iter()
                    .map(|&v| v as f32),
            );
            xs.extend(
                box_grid(self.grid, w0 * k, w1 * k, tw)
                    .iter()
                    .map(|&v| v as f32),
            );
            ids.push(bi as f32);
        }
        let dev = x.device();
        let shape = (s, th, tw);
        let pts = Points {
            batch: Tensor::from_vec(ids, (s, 1, 1), dev)?
                .broadcast_as(shape)?
                .flatten_all()?,
            y: Tensor::from_vec(ys, (s, th, 1), dev)?
                .broadcast_as(shape)?
                .flatten_all()?,
            x: Tensor::from_vec(xs, (s, 1, tw), dev)?
                .broadcast_as(shape)?
                .flatten_all()?,
        };
        let y = sample(x, &pts, Interp::Bilinear, Padding::Extrapolate(self.pad))?;
        Ok(y.reshape((c, s, th, tw))?.transpose(0, 1)?)
    }
}

fn build_crop_resize(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let x = b.input("x")?;
    // iOS15/16 take `roi` [N, 1, 4|5, 1, 1]; iOS17 `boxes` [N, 4] and `box_indices`.
    let legacy = b.has("roi");
    let (rois, indices) = if legacy {
        (b.input("roi")?, None)
    } else {
        (b.input("boxes")?, b.opt_input("box_indices")?)
    };
    let size = |name: &str| -> Result<usize> {
        match b.int_or(name, 1)? {
            v @ 1..=0x4000_0000 => Ok(v as usize),
            v => Err(b.err(format!("{name} must be a positive size, got {v}"))),
        }
    };
    let boxes = match b
        .string_or("box_coordinate_mode", "CORNERS_HEIGHT_FIRST")?
        .as_str()
    {
        "CORNERS_HEIGHT_FIRST" => BoxMode::CornersHw,
        "CORNERS_WIDTH_FIRST" => BoxMode::CornersWh,
        "CENTER_SIZE_HEIGHT_FIRST" => BoxMode::CenterHw,
        "CENTER_SIZE_WIDTH_FIRST" => BoxMode::CenterWh,
        other => return Err(b.err(format!("unknown box_coordinate_mode {other:?}"))),
    };
    let p = CropResize {
        th: size("target_height")?,
        tw: size("target_width")?,
        normalized: b.bool_or("normalized_coordinates", false)?,
        scale: b.float_or("spatial_scale", 1.0)?,
        boxes,
        grid: sampling_grid(b, &b.string_or("sampling_mode", "DEFAULT")?)?,
        pad: b.float_or("pad_value", 0.0)?,
    };
    let out = b.output_dtype(0)?;
    Ok(kernel(move |a| {
        let t = a.tensor(x)?;
        let batch = t.dims4()?.0;
        let r = a.tensor(rois)?;
        let vals: Vec<f64> = r.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
        let y = if legacy {
            legacy_crops(&p, t, r.dims(), &vals, batch)?
        } else {
            let n = vals.len() / 4;
            if r.dims() != [n, 4] {
                return Err(Error::msg(format!(
                    "boxes must be [N, 4], got {:?}",
                    r.dims()
                )));
            }
            let ids: Vec<i64> = match indices {
                Some(i) => a
                    .tensor(i)?
                    .flatten_all()?
                    .to_dtype(DType::I64)?
                    .to_vec1()?,
                None => (0..n as i64).collect(),
            };
            if ids.len() != n || ids.iter().any(|&i| i < 0) {
                return Err(Error::msg(format!(
                    "box_indices {ids:?} do not fit {n} boxes"
                )));
            }
            let crops: Vec<_> = (0..n)
                .map(|k| (ids[k] as usize, four(&vals[4 * k..])))
                .collect();
            p.run(t, &crops)?
        };
        Ok(vec![y.to_dtype(out)?])
    }))
}

fn four(v: &[f64]) -> [f64; 4] {
    [v[0], v[1], v[2], v[3]]
}

/// iOS15/16 `roi` `[N, 1, 4, 1, 1]` (every box on every image: `[N, B, C, h, w]`)
/// or `[N, 1, 5, 1, 1]` (a batch index first: `[N, 1, C, h, w]`).
fn legacy_crops(p: &CropResize, x: &Tensor, dims: &[usize], v: &[f64], b: usize) -> Result<Tensor> {
    let (n, k) = match dims {
        [n, 1, k @ (4 | 5), 1, 1] => (*n, *k),
        _ => {
            return Err(Error::msg(format!(
                "roi must be [N, 1, 4|5, 1, 1], got {dims:?}"
            )))
        }
    };
    let crops: Vec<(usize, [f64; 4])> = if k == 4 {
        (0..n)
            .flat_map(|i| (0..b).map(move |bi| (bi, four(&v[4 * i..]))))
            .collect()
    } else {
        (0..n)
            .map(|i| {
                let id = v[5 * i];
                if !(id >= 0.0 && id.fract() == 0.0) {
                    return Err(Error::msg(format!("roi batch index {id} is not valid")));
                }
                Ok((id as usize, four(&v[5 * i + 1..])))
            })
            .collect::<Result<_>>()?
    };
    let y = p.run(x, &crops)?;
    let (s, c, h, w) = y.dims4()?;
    Ok(y.reshape((n, s / n.max(1), c, h, w))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(y: &[f32], x: &[f32]) -> Points {
        let dev = &Device::Cpu;
        Points {
            batch: Tensor::zeros(y.len(), DType::F32, dev).unwrap(),
            y: Tensor::new(y, dev).unwrap(),
            x: Tensor::new(x, dev).unwrap(),
        }
    }

    fn img() -> Tensor {
        // One row |1 2 3|.
        Tensor::new(&[[[[1f32, 2.0, 3.0]]]], &Device::Cpu).unwrap()
    }

    fn run(p: Padding, i: Interp, x: &[f32]) -> Vec<f32> {
        let y = vec![0f32; x.len()];
        sample(&img(), &pts(&y, x), i, p)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn padding_modes_match_the_documented_1d_examples() {
        let at: Vec<f32> = (-3..6).map(|v| v as f32).collect();
        let n = Interp::Nearest;
        assert_eq!(
            run(Padding::Constant(0.0), n, &at),
            [0., 0., 0., 1., 2., 3., 0., 0., 0.]
        );
        assert_eq!(
            run(Padding::Border, n, &at),
            [1., 1., 1., 1., 2., 3., 3., 3., 3.]
        );
        assert_eq!(
            run(Padding::Reflection, n, &at),
            [2., 3., 2., 1., 2., 3., 2., 1., 2.]
        );
        assert_eq!(
            run(Padding::Symmetric, n, &at),
            [3., 2., 1., 1., 2., 3., 3., 2., 1.]
        );
    }

    #[test]
    fn bilinear_constant_padding_blends_with_the_pad_value() {
        // Half-way between pixel 2 (value 3) and the pad 7: 5.
        let v = run(Padding::Constant(7.0), Interp::Bilinear, &[0.5, 2.5]);
        assert_eq!(v, [1.5, 5.0]);
    }
}
