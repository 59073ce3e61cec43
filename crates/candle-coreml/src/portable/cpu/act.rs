//! Activations of the fused conv epilogue, on f32 slices, as MIL defines
//! them (NaN propagates as in numpy: comparisons are written so that a NaN
//! input stays NaN).

use super::simd::multiversion;

/// One elementwise step applied to a conv output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Act {
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, lo), hi)` (relu6 is `Clip(0, 6)`).
    Clip(f32, f32),
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `x * sigmoid(x)`.
    Silu,
    /// `min(max(alpha * x + beta, 0), 1)`.
    HardSigmoid(f32, f32),
    /// `x` where `x >= alpha`, else 0 (MIL `thresholded_relu`).
    Threshold(f32),
    /// `x` for positive `x`, else `alpha * x`.
    LeakyRelu(f32),
    /// `alpha * x + beta`.
    Linear(f32, f32),
    /// `t * min(max(alpha * t + beta, 0), 1)` with `t = thresholded_relu(x,
    /// thr)` (or `t = x` without `thr`): hard-swish as coremltools writes it
    /// (`thresholded_relu`, `sigmoid_hard`, `mul`).
    HardSwish(Option<f32>, f32, f32),
}

/// `exp(x)` for f32 without a library call or a float-to-int conversion, so
/// loops of it vectorize: `2^n * p(r)` with `x = n ln2 + r`, `|r| <= ln2/2`,
/// p of degree 6 (relative error about 2e-7). `x` is clamped to
/// `[-87.3, 88.3]`, where `2^n` stays a normal float.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    // Adding 1.5 * 2^23 rounds to an integer, which the low mantissa bits
    // then hold (two's complement): no `as i32`, whose saturating semantics
    // do not vectorize.
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67
                    + r * (0.041_666_41 + r * (0.008_333_452 + r * 0.001_388_889)))));
    // n is in -126..=127 here: 2^n from the exponent bits.
    let bits = t.to_bits().wrapping_sub(MAGIC.to_bits()).wrapping_add(127) << 23;
    p * f32::from_bits(bits)
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[inline(always)]
fn hard_sigmoid(x: f32, a: f32, b: f32) -> f32 {
    let v = a * x + b;
    let v = if v < 0.0 { 0.0 } else { v };
    if v > 1.0 {
        1.0
    } else {
        v
    }
}

#[inline(always)]
fn threshold(x: f32, alpha: f32) -> f32 {
    if x < alpha {
        0.0
    } else {
        x
    }
}

#[inline(always)]
fn apply_generic(act: Act, v: &mut [f32]) {
    match act {
        Act::Relu => v
            .iter_mut()
            .for_each(|x| *x = if *x < 0.0 { 0.0 } else { *x }),
        Act::Clip(lo, hi) => v.iter_mut().for_each(|x| {
            let y = if *x < lo { lo } else { *x };
            *x = if y > hi { hi } else { y };
        }),
        Act::Sigmoid => v.iter_mut().for_each(|x| *x = sigmoid(*x)),
        Act::Silu => v.iter_mut().for_each(|x| *x *= sigmoid(*x)),
        Act::HardSigmoid(a, b) => v.iter_mut().for_each(|x| *x = hard_sigmoid(*x, a, b)),
        Act::Threshold(alpha) => v.iter_mut().for_each(|x| *x = threshold(*x, alpha)),
        Act::LeakyRelu(alpha) => v
            .iter_mut()
            .for_each(|x| *x = if *x < 0.0 { alpha * *x } else { *x }),
        Act::Linear(a, b) => v.iter_mut().for_each(|x| *x = a * *x + b),
        Act::HardSwish(thr, a, b) => {
            let thr = thr.unwrap_or(f32::NEG_INFINITY);
            v.iter_mut().for_each(|x| {
                let t = threshold(*x, thr);
                *x = t * hard_sigmoid(t, a, b);
            })
        }
    }
}

multiversion!(pub(crate) fn apply(act: Act, v: &mut [f32]) => apply_generic);

#[inline(always)]
fn add_generic(v: &mut [f32], other: &[f32]) {
    v.iter_mut().zip(other).for_each(|(a, b)| *a += *b);
}

multiversion!(pub(crate) fn add(v: &mut [f32], other: &[f32]) => add_generic);

/// Softmax of each `len`-long row of `v`, in place (max subtracted first).
#[inline(always)]
fn softmax_rows_generic(v: &mut [f32], len: usize) {
    for row in v.chunks_exact_mut(len.max(1)) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        row.iter_mut().for_each(|x| *x = exp(*x - max));
        // 16 partial sums: a single running sum would not vectorize.
        let mut acc = [0f32; 16];
        let chunks = row.chunks_exact(16);
        let rest: f32 = chunks.remainder().iter().sum();
        for c in chunks {
            for (a, x) in acc.iter_mut().zip(c) {
                *a += x;
            }
        }
        let inv = 1.0 / (acc.iter().sum::<f32>() + rest);
        row.iter_mut().for_each(|x| *x *= inv);
    }
}

multiversion!(pub(crate) fn softmax_rows(v: &mut [f32], len: usize) => softmax_rows_generic);

#[inline(always)]
fn add_scalar_generic(v: &mut [f32], s: f32) {
    v.iter_mut().for_each(|a| *a += s);
}

multiversion!(pub(crate) fn add_scalar(v: &mut [f32], s: f32) => add_scalar_generic);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_within_a_few_ulp() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 5e-7, "relative error {worst}");
        assert!((0.0..1e-37).contains(&exp(-1000.0)));
        assert!(exp(1000.0).is_finite());
    }

    /// Each activation against its definition in f64 (numpy's formulas).
    #[test]
    fn activations_match_their_definitions() {
        let xs: Vec<f32> = (-60..60).map(|i| i as f32 * 0.173).collect();
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let hs = |x: f64, a: f64, b: f64| (a * x + b).clamp(0.0, 1.0);
        type Def = Box<dyn Fn(f64) -> f64>;
        let cases: Vec<(Act, Def)> = vec![
            (Act::Relu, Box::new(|x| x.max(0.0))),
            (Act::Clip(0.0, 6.0), Box::new(|x| x.clamp(0.0, 6.0))),
            (Act::Sigmoid, Box::new(sig)),
            (Act::Silu, Box::new(move |x| x * sig(x))),
            (
                Act::HardSigmoid(0.2, 0.5),
                Box::new(move |x| hs(x, 0.2, 0.5)),
            ),
            (
                Act::Threshold(1.0),
                Box::new(|x| if x < 1.0 { 0.0 } else { x }),
            ),
            (
                Act::LeakyRelu(0.1),
                Box::new(|x| if x < 0.0 { 0.1 * x } else { x }),
            ),
            (Act::Linear(2.0, -1.0), Box::new(|x| 2.0 * x - 1.0)),
            (
                Act::HardSwish(Some(-3.0), 1.0 / 6.0, 0.5),
                Box::new(move |x| {
                    let t = if x < -3.0 { 0.0 } else { x };
                    t * hs(t, 1.0 / 6.0, 0.5)
                }),
            ),
        ];
        for (act, f) in cases {
            let mut v = xs.clone();
            apply(act, &mut v);
            for (&x, &y) in xs.iter().zip(&v) {
                let want = f(x as f64);
                assert!(
                    (y as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()),
                    "{act:?}({x}) = {y}, want {want}"
                );
            }
        }
        let mut nan = [f32::NAN];
        apply(Act::Relu, &mut nan);
        assert!(nan[0].is_nan(), "relu propagates NaN");
    }
}
