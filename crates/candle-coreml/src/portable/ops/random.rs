//! Random ops: `random_uniform`, `random_normal`, `random_bernoulli` and
//! `random_categorical`.
//!
//! Values come from a SplitMix64 generator on the CPU. With a `seed` (>= 0)
//! every call of the op returns the same values; without one (`seed = -1`,
//! the default) each call draws fresh values. The streams cannot match Core
//! ML's own generator bit for bit; they follow the documented distributions.
//! Registered as `random`, so the planner never folds them at load.

use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{DType, Device, Tensor, D};

use super::registry::Registry;
use super::util::checked_dims;
use crate::error::{Error, Result};
use crate::portable::kernel::{kernel, IntsArg, Kernel, OpBuilder};

/// Registers this family's ops.
pub(crate) fn register(reg: &mut Registry) {
    reg.insert("random_uniform", build_uniform).random();
    reg.insert("random_normal", build_normal).random();
    reg.insert("random_bernoulli", build_bernoulli).random();
    reg.insert("random_categorical", build_categorical).random();
}

/// SplitMix64 (Steele, Lea, Flood 2014): small, fast, well distributed.
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator for `seed`; a negative seed draws a fresh stream each time.
    pub(crate) fn new(seed: i64) -> Rng {
        static CALLS: AtomicU64 = AtomicU64::new(0);
        if seed >= 0 {
            return Rng(seed as u64 ^ 0x5DEE_CE66_D1CE_4E5B);
        }
        let n = CALLS.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Rng(t ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box-Muller).
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Prepared parameters shared by the shape-driven ops.
struct Spec {
    shape: IntsArg,
    seed: i64,
    dtype: DType,
}

fn spec(b: &mut OpBuilder<'_>) -> Result<Spec> {
    let seed = b.int_or("seed", -1)?;
    let dtype = b.output_dtype(0)?;
    let shape = b.ints_or_input("shape")?;
    if let IntsArg::Const(s) = &shape {
        checked_dims(s).map_err(|e| b.err(format!("shape: {e}")))?;
    }
    Ok(Spec { shape, seed, dtype })
}

/// Fills a tensor of the op's shape with `f(rng)` values.
fn sample(
    s: &Spec,
    a: &crate::portable::kernel::Args<'_>,
    device: &Device,
    f: impl Fn(&mut Rng) -> f32,
) -> Result<Tensor> {
    let dims = checked_dims(&a.ints(&s.shape)?)?;
    let n: usize = dims.iter().product();
    let mut rng = Rng::new(s.seed);
    let v: Vec<f32> = (0..n).map(|_| f(&mut rng)).collect();
    Ok(Tensor::from_vec(v, dims, device)?.to_dtype(s.dtype)?)
}

fn build_uniform(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let low = b.float_or("low", 0.0)?;
    let high = b.float_or("high", 1.0)?;
    if !(low.is_finite() && high.is_finite()) || high < low {
        return Err(b.err(format!("need finite low <= high, got [{low}, {high})")));
    }
    let s = spec(b)?;
    let device = b.device().clone();
    Ok(kernel(move |a| {
        let t = sample(&s, a, &device, |r| {
            let v = low + (high - low) * r.uniform();
            // Rounding to f32 must not reach `high`.
            let v = v as f32;
            if v as f64 >= high && high > low {
                low as f32
            } else {
                v
            }
        })?;
        Ok(vec![t])
    }))
}

fn build_normal(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let mean = b.float_or("mean", 0.0)?;
    let stddev = b.float_or("stddev", 1.0)?;
    if !(mean.is_finite() && stddev.is_finite()) || stddev < 0.0 {
        return Err(b.err(format!(
            "need finite mean and stddev >= 0, got {mean}, {stddev}"
        )));
    }
    let s = spec(b)?;
    let device = b.device().clone();
    Ok(kernel(move |a| {
        let t = sample(&s, a, &device, |r| (mean + stddev * r.normal()) as f32)?;
        Ok(vec![t])
    }))
}

fn build_bernoulli(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let prob = b.float_or("prob", 0.5)?;
    if !(0.0..=1.0).contains(&prob) {
        return Err(b.err(format!("prob must be in [0, 1], got {prob}")));
    }
    let s = spec(b)?;
    let device = b.device().clone();
    Ok(kernel(move |a| {
        let t = sample(&s, a, &device, |r| f32::from(r.uniform() < prob))?;
        Ok(vec![t])
    }))
}

/// Most samples `random_categorical` may draw per distribution.
const MAX_SIZE: i64 = 1 << 24;

fn build_categorical(b: &mut OpBuilder<'_>) -> Result<Box<dyn Kernel>> {
    let seed = b.int_or("seed", -1)?;
    let size = b.int_or("size", 1)?;
    if !(1..=MAX_SIZE).contains(&size) {
        return Err(b.err(format!("size must be in [1, {MAX_SIZE}], got {size}")));
    }
    let size = size as usize;
    let logits = match b.string_or("mode", "logits")?.as_str() {
        "logits" => true,
        "probs" => false,
        m => return Err(b.err(format!("mode must be logits or probs, got {m:?}"))),
    };
    let dtype = b.output_dtype(0)?;
    let x = b.input("x")?;
    Ok(kernel(move |a| {
        let x = a.tensor(x)?.to_dtype(DType::F64)?;
        let dims = x.dims().to_vec();
        let Some((&k, lead)) = dims.split_last() else {
            return Err(Error::msg("random_categorical: x must have rank >= 1"));
        };
        if k == 0 {
            return Err(Error::msg("random_categorical: no categories"));
        }
        // Probabilities, normalised per distribution.
        let p = if logits {
            let m = x.max_keepdim(D::Minus1)?;
            x.broadcast_sub(&m)?.exp()?
        } else {
            x.clamp(0f64, f64::INFINITY)?
        };
        let p = p.broadcast_div(&p.sum_keepdim(D::Minus1)?)?;
        let n_rows: usize = lead.iter().product();
        let rows: Vec<Vec<f64>> = p.reshape((n_rows, k))?.to_vec2()?;
        let mut out_dims = lead.to_vec();
        out_dims.push(size);
        checked_dims(&out_dims.iter().map(|&d| d as i64).collect::<Vec<_>>())?;
        let mut rng = Rng::new(seed);
        let mut out = Vec::with_capacity(rows.len() * size);
        for row in &rows {
            for _ in 0..size {
                out.push(draw(row, rng.uniform()) as f32);
            }
        }
        let t = Tensor::from_vec(out, out_dims, x.device())?;
        Ok(vec![t.to_dtype(dtype)?])
    }))
}

/// The category whose cumulative probability first exceeds `u`, skipping
/// zero-probability categories (a NaN row gives the last category).
fn draw(probs: &[f64], u: f64) -> usize {
    let mut acc = 0.0;
    let mut last = probs.len().saturating_sub(1);
    for (i, &p) in probs.iter().enumerate() {
        if p > 0.0 {
            acc += p;
            last = i;
            if u < acc {
                return i;
            }
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mil::DataType;
    use crate::portable::testutil::{float, int, ints1, run_op, string, Arg};

    fn stats(t: &Tensor) -> (f64, f64, Vec<f32>) {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var, v)
    }

    #[test]
    fn uniform_range_moments_and_seed() {
        let args = || {
            vec![
                ("shape", Arg::C(ints1(&[200, 100]))),
                ("low", Arg::C(float(-2.0))),
                ("high", Arg::C(float(3.0))),
                ("seed", Arg::C(int(7))),
            ]
        };
        let a = run_op("random_uniform", args(), &[DataType::Fp32]).unwrap();
        let b = run_op("random_uniform", args(), &[DataType::Fp32]).unwrap();
        assert_eq!(a[0].dims(), [200, 100]);
        let (mean, var, v) = stats(&a[0]);
        assert!(v.iter().all(|&x| (-2.0..3.0).contains(&x)));
        // U(-2, 3): mean 0.5, variance 25/12; 20000 samples.
        assert!((mean - 0.5).abs() < 0.05, "mean {mean}");
        assert!((var - 25.0 / 12.0).abs() < 0.1, "var {var}");
        assert_eq!(v, stats(&b[0]).2, "same seed, same values");
    }

    #[test]
    fn normal_moments() {
        let args = vec![
            ("shape", Arg::C(ints1(&[4, 5000]))),
            ("mean", Arg::C(float(1.5))),
            ("stddev", Arg::C(float(2.0))),
            ("seed", Arg::C(int(3))),
        ];
        let out = run_op("random_normal", args, &[DataType::Fp32]).unwrap();
        let (mean, var, _) = stats(&out[0]);
        assert!((mean - 1.5).abs() < 0.06, "mean {mean}");
        assert!((var - 4.0).abs() < 0.2, "var {var}");
    }

    #[test]
    fn bernoulli_rate_and_runtime_shape() {
        let shape = Tensor::new(&[100i64, 100], &Device::Cpu).unwrap();
        let args = vec![("shape", Arg::T(shape)), ("prob", Arg::C(float(0.3)))];
        let out = run_op("random_bernoulli", args, &[DataType::Fp32]).unwrap();
        let (mean, _, v) = stats(&out[0]);
        assert_eq!(out[0].dims(), [100, 100]);
        assert!(v.iter().all(|&x| x == 0.0 || x == 1.0));
        assert!((mean - 0.3).abs() < 0.02, "rate {mean}");
    }

    #[test]
    fn categorical_frequencies() {
        let p = [0.1, 0.6, 0.3, 0.0];
        let x = Tensor::new(
            &[p.map(|v: f64| v as f32), [0.0, 0.0, 0.0, 1.0]],
            &Device::Cpu,
        );
        let args = vec![
            ("x", Arg::T(x.unwrap())),
            ("mode", Arg::C(string("probs"))),
            ("size", Arg::C(int(20000))),
            ("seed", Arg::C(int(11))),
        ];
        let out = run_op("random_categorical", args, &[DataType::Fp32]).unwrap();
        assert_eq!(out[0].dims(), [2, 20000]);
        let rows: Vec<Vec<f32>> = out[0].to_vec2().unwrap();
        for (c, want) in p.iter().enumerate() {
            let f = rows[0].iter().filter(|&&v| v == c as f32).count() as f64 / 20000.0;
            assert!((f - want).abs() < 0.015, "category {c}: {f} vs {want}");
        }
        assert!(rows[1].iter().all(|&v| v == 3.0));
    }

    #[test]
    fn categorical_logits_rank1() {
        let x = Tensor::new(&[0.0f32, 50.0, 0.0], &Device::Cpu).unwrap();
        let out = run_op(
            "random_categorical",
            vec![("x", Arg::T(x))],
            &[DataType::Fp32],
        );
        let out = out.unwrap();
        assert_eq!(out[0].dims(), [1]);
        assert_eq!(out[0].to_vec1::<f32>().unwrap(), [1.0]);
    }

    #[test]
    fn bad_parameters_are_errors() {
        let bad = run_op(
            "random_uniform",
            vec![
                ("shape", Arg::C(ints1(&[2]))),
                ("low", Arg::C(float(1.0))),
                ("high", Arg::C(float(0.0))),
            ],
            &[DataType::Fp32],
        );
        assert!(bad.is_err());
        let neg = run_op(
            "random_normal",
            vec![("shape", Arg::C(ints1(&[-1])))],
            &[DataType::Fp32],
        );
        assert!(neg.is_err());
    }
}
