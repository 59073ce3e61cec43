//! The palettized products against the dense matrix they stand for, in
//! f64, for every code width, grouping, tail and activation count, on each
//! instruction-set version.

use super::LutMatrix;
use crate::mil::elements::pack_bits;
use crate::mil::ByteView;
use crate::portable::cpu::simd::{forced, Level};

/// A deterministic pseudo-random sequence.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn float(&mut self) -> f32 {
        (self.next() % 2001) as f32 / 1000.0 - 1.0
    }
}

struct Case {
    rows: usize,
    cols: usize,
    bits: u32,
    groups: usize,
}

fn check(case: &Case, n: usize, seed: u64) {
    let Case {
        rows,
        cols,
        bits,
        groups,
    } = *case;
    let mut rng = Lcg(seed);
    let entries = 1usize << bits;
    let codes: Vec<u8> = (0..rows * cols)
        .map(|_| (rng.next() % entries as u64) as u8)
        .collect();
    let tables: Vec<f32> = (0..groups * entries).map(|_| rng.float()).collect();
    let x: Vec<f32> = (0..cols * n).map(|_| rng.float()).collect();
    let bias: Vec<f32> = (0..rows).map(|_| rng.float()).collect();
    let packed = ByteView::from_vec(pack_bits(&codes, bits));
    let m = LutMatrix::new(rows, cols, bits, packed, &tables).unwrap();
    let w = |r: usize, c: usize| {
        let g = r / (rows / groups);
        tables[g * entries + codes[r * cols + c] as usize] as f64
    };
    // X as cols x n (conv layout) and its transpose n x cols (linear layout).
    let xt: Vec<f32> = (0..n * cols)
        .map(|i| x[(i % cols) * n + i / cols])
        .collect();
    for (label, y) in [
        ("matmul", m.matmul(&x, n, Some(&bias)).unwrap()),
        ("matmul_t", m.matmul_t(&xt, n, Some(&bias)).unwrap()),
    ] {
        assert_eq!(y.len(), rows * n);
        for r in 0..rows {
            for s in 0..n {
                let want: f64 = bias[r] as f64
                    + (0..cols)
                        .map(|c| w(r, c) * x[c * n + s] as f64)
                        .sum::<f64>();
                let got = y[r * n + s] as f64;
                assert!(
                    (got - want).abs() <= 1e-4 * (1.0 + want.abs()) * (cols as f64).sqrt(),
                    "{label} {rows}x{cols} {bits}-bit {groups} groups n={n}: \
                     y[{r}][{s}] = {got}, want {want}"
                );
            }
        }
    }
}

const CASES: &[Case] = &[
    // Stored nibbles: 128-column blocks, then 32-column blocks, then a tail.
    Case {
        rows: 12,
        cols: 320,
        bits: 4,
        groups: 4,
    },
    Case {
        rows: 5,
        cols: 290,
        bits: 4,
        groups: 1,
    },
    // Stored nibbles, whole blocks of 32 and a tail; one table and per-row groups.
    Case {
        rows: 24,
        cols: 96,
        bits: 4,
        groups: 3,
    },
    Case {
        rows: 17,
        cols: 70,
        bits: 4,
        groups: 17,
    },
    // Odd columns: 4-bit codes straddle rows, repacked to bytes.
    Case {
        rows: 6,
        cols: 37,
        bits: 4,
        groups: 1,
    },
    // Byte codes: 64-column blocks, then 32- and 16-column blocks, then a tail.
    Case {
        rows: 6,
        cols: 200,
        bits: 6,
        groups: 2,
    },
    Case {
        rows: 3,
        cols: 144,
        bits: 5,
        groups: 3,
    },
    // 6-bit (64 entries), with and without a 16-column remainder block.
    Case {
        rows: 20,
        cols: 80,
        bits: 6,
        groups: 4,
    },
    Case {
        rows: 9,
        cols: 64,
        bits: 6,
        groups: 1,
    },
    // Narrow widths padded to 64-entry tables; wide ones decoded in scratch.
    Case {
        rows: 8,
        cols: 48,
        bits: 1,
        groups: 2,
    },
    Case {
        rows: 8,
        cols: 50,
        bits: 2,
        groups: 8,
    },
    Case {
        rows: 5,
        cols: 33,
        bits: 3,
        groups: 1,
    },
    Case {
        rows: 7,
        cols: 40,
        bits: 5,
        groups: 7,
    },
    Case {
        rows: 4,
        cols: 32,
        bits: 7,
        groups: 2,
    },
    Case {
        rows: 70,
        cols: 64,
        bits: 8,
        groups: 10,
    },
];

#[test]
fn products_equal_the_dense_matrix_on_every_version() {
    for level in [Level::Portable, Level::Avx2, Level::Avx512] {
        forced(level, || {
            for (i, case) in CASES.iter().enumerate() {
                for n in [1, 2, 3, 4, 5, 9] {
                    check(case, n, (i * 31 + n) as u64);
                }
            }
        });
    }
}

#[test]
fn inconsistent_sizes_are_errors() {
    let packed = || ByteView::from_vec(vec![0u8; 8]);
    // 16 bytes of 4-bit codes are needed for 4 x 8.
    let e = LutMatrix::new(4, 8, 4, packed(), &[0.0; 16]).unwrap_err();
    assert!(e.to_string().contains("bytes of codes"), "{e}");
    // 3 tables of 16 do not divide 4 rows.
    let e = LutMatrix::new(4, 4, 4, packed(), &[0.0; 48]).unwrap_err();
    assert!(e.to_string().contains("table values"), "{e}");
    let e = LutMatrix::new(4, 4, 9, packed(), &[0.0; 16]).unwrap_err();
    assert!(e.to_string().contains("9-bit"), "{e}");
    let m = LutMatrix::new(2, 8, 4, packed(), &[0.0; 16]).unwrap();
    assert!(m.matmul(&[0.0; 7], 1, None).is_err());
    assert!(m.matmul(&[0.0; 8], 1, Some(&[0.0; 3])).is_err());
}
