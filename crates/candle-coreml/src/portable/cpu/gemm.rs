//! `C (+)= A B` on row-major f32 slices through the `gemm` crate (the GEMM
//! candle's CPU matmul uses), single-threaded: callers split the work.

use crate::error::{Error, Result};

/// A row-major matrix view: `rows x cols`, rows `ld` floats apart.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) ld: usize,
}

impl<'a> Mat<'a> {
    pub(crate) fn new(data: &'a [f32], rows: usize, cols: usize, ld: usize) -> Result<Self> {
        check(data.len(), rows, cols, ld)?;
        Ok(Self {
            data,
            rows,
            cols,
            ld,
        })
    }
}

fn check(len: usize, rows: usize, cols: usize, ld: usize) -> Result<()> {
    let need = if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1)
            .checked_mul(ld)
            .and_then(|v| v.checked_add(cols))
            .ok_or_else(|| Error::msg("matrix size overflows"))?
    };
    if cols > ld && rows > 1 || len < need {
        return Err(Error::msg(format!(
            "matrix {rows}x{cols} (row stride {ld}) does not fit {len} values"
        )));
    }
    Ok(())
}

/// `dst = a b` (or `dst += a b` with `accumulate`), `dst` being
/// `a.rows x b.cols` with rows `ldd` apart.
pub(crate) fn gemm(
    dst: &mut [f32],
    ldd: usize,
    a: Mat<'_>,
    b: Mat<'_>,
    accumulate: bool,
) -> Result<()> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k {
        return Err(Error::msg(format!("gemm: {m}x{k} times {}x{n}", b.rows)));
    }
    check(dst.len(), m, n, ldd)?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * ldd..r * ldd + n].fill(0.0);
            }
        }
        return Ok(());
    }
    // SAFETY: `check` proved that every element the strides address is in
    // bounds of its slice; `dst` is exclusively borrowed and does not
    // overlap `a` or `b` (shared borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            ldd as isize,
            accumulate,
            a.data.as_ptr(),
            1,
            a.ld as isize,
            b.data.as_ptr(),
            1,
            b.ld as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the triple loop in f64.
    #[test]
    fn strided_product_and_accumulate() {
        let (m, k, n) = (5, 7, 9);
        let a: Vec<f32> = (0..m * 10).map(|i| (i % 13) as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..k * 12).map(|i| (i % 7) as f32 * 0.25 - 1.0).collect();
        let mut dst = vec![1.0f32; m * 11];
        gemm(
            &mut dst,
            11,
            Mat::new(&a, m, k, 10).unwrap(),
            Mat::new(&b, k, n, 12).unwrap(),
            true,
        )
        .unwrap();
        for i in 0..m {
            for j in 0..n {
                let want: f64 = 1.0
                    + (0..k)
                        .map(|p| a[i * 10 + p] as f64 * b[p * 12 + j] as f64)
                        .sum::<f64>();
                assert!((dst[i * 11 + j] as f64 - want).abs() < 1e-4, "({i},{j})");
            }
            assert_eq!(dst[i * 11 + 9], 1.0, "columns past n untouched");
        }
        assert!(Mat::new(&a, m, k, 10).is_ok());
        assert!(Mat::new(&a[..40], m, k, 10).is_err());
    }
}
