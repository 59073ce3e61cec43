//! The CPU convolution against candle's conv2d (an independent
//! implementation: im2col + its own GEMM call, per-group split), for every
//! path (direct, 1x1, im2col) and every SIMD version.

use candle_core::{Device, Tensor};

use super::*;
use crate::portable::cpu::act::Act;
use crate::portable::cpu::depthwise::max_pool;
use crate::portable::cpu::simd::{forced, Level};

fn data(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0) - 1.0)
        .collect()
}

/// candle: explicit zero padding, then conv2d (per-axis strides by
/// subsampling a stride-1 result).
fn reference(g: &Geom, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let dev = Device::Cpu;
    let xt = Tensor::from_vec(x.to_vec(), (g.n, g.c_in, g.h, g.w), &dev).unwrap();
    let wt = Tensor::from_vec(w.to_vec(), (g.c_out, g.c_in / g.groups, g.kh, g.kw), &dev).unwrap();
    let xt = xt
        .pad_with_zeros(2, g.pad[0].0, g.pad[0].1)
        .unwrap()
        .pad_with_zeros(3, g.pad[1].0, g.pad[1].1)
        .unwrap();
    assert_eq!(g.dil[0], g.dil[1], "the reference takes one dilation");
    let mut y = xt.conv2d(&wt, 0, 1, g.dil[0], g.groups).unwrap();
    for (axis, s) in [(2, g.stride[0]), (3, g.stride[1])] {
        let len = y.dim(axis).unwrap();
        let idx: Vec<u32> = (0..len as u32).step_by(s).collect();
        y = y
            .index_select(&Tensor::new(idx, &dev).unwrap(), axis)
            .unwrap();
    }
    if let Some(b) = bias {
        let b = Tensor::from_vec(b.to_vec(), (1, g.c_out, 1, 1), &dev).unwrap();
        y = y.broadcast_add(&b).unwrap();
    }
    y.flatten_all().unwrap().to_vec1().unwrap()
}

fn geom(c_in: usize, c_out: usize, hw: (usize, usize), k: (usize, usize), groups: usize) -> Geom {
    Geom {
        n: 1,
        c_in,
        h: hw.0,
        w: hw.1,
        c_out,
        kh: k.0,
        kw: k.1,
        stride: [1, 1],
        dil: [1, 1],
        pad: [(0, 0); 2],
        groups,
    }
}

fn cases() -> Vec<Geom> {
    let mut v = vec![
        // 1x1 (pointwise GEMM), several column bands.
        geom(24, 40, (23, 31), (1, 1), 1),
        // 3x3 same padding, stride 1 and 2, batch 2.
        Geom {
            n: 2,
            pad: [(1, 1), (1, 1)],
            ..geom(8, 12, (15, 17), (3, 3), 1)
        },
        Geom {
            stride: [2, 2],
            pad: [(1, 1), (1, 1)],
            ..geom(8, 12, (15, 17), (3, 3), 1)
        },
        // 7x7 stride 2 with asymmetric padding (a stem), per-axis stride.
        Geom {
            stride: [2, 3],
            pad: [(3, 2), (1, 3)],
            ..geom(3, 16, (33, 29), (7, 7), 1)
        },
        // Grouped (2 input channels per group), dilation 2.
        Geom {
            dil: [2, 2],
            pad: [(2, 2), (2, 2)],
            ..geom(8, 12, (13, 11), (3, 3), 4)
        },
        // Few columns, many output channels: tasks split over row blocks.
        geom(32, 128, (7, 7), (1, 1), 1),
        Geom {
            pad: [(1, 1), (1, 1)],
            ..geom(16, 96, (5, 6), (3, 3), 1)
        },
        // 1x1 with stride 2 (im2col path).
        Geom {
            stride: [2, 2],
            ..geom(16, 8, (14, 14), (1, 1), 1)
        },
    ];
    // Depthwise 3x3 and 5x5, strides 1 and 2, with and without multiplier.
    for (k, s, mult) in [
        (3, 1, 1),
        (3, 2, 1),
        (5, 1, 1),
        (5, 2, 1),
        (3, 1, 2),
        (3, 2, 3),
    ] {
        let p = k / 2;
        v.push(Geom {
            n: 2,
            stride: [s, s],
            pad: [(p, p), (p, p + 1)],
            ..geom(6, 6 * mult, (19, 21), (k, k), 6)
        });
    }
    // Depthwise with dilation and per-axis strides; a plane taller than one
    // accumulator block (several row blocks).
    v.push(Geom {
        stride: [2, 3],
        dil: [2, 2],
        pad: [(2, 1), (3, 2)],
        ..geom(5, 5, (17, 23), (3, 3), 5)
    });
    v.push(Geom {
        pad: [(1, 1), (1, 1)],
        ..geom(2, 2, (90, 70), (3, 3), 2)
    });
    v
}

fn check(g: &Geom, level: Level) {
    let x = data(g.n * g.c_in * g.h * g.w, 1);
    let w = data(g.c_out * (g.c_in / g.groups) * g.kh * g.kw, 2);
    let bias = data(g.c_out, 3);
    let want = reference(g, &x, &w, Some(&bias));
    let epi = Epilogue {
        bias: Some(&bias),
        ..Default::default()
    };
    let got = forced(level, || conv2d(g, &x, &w, &epi).unwrap());
    assert_eq!(got.len(), want.len(), "{g:?}");
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
            "{g:?} at {i}: {a} vs {b} ({level:?})"
        );
    }
}

#[test]
fn matches_candle_conv2d_on_every_path_and_simd_level() {
    for g in cases() {
        for level in [Level::Portable, Level::Avx2, Level::Avx512] {
            check(&g, level);
        }
    }
}

#[test]
fn epilogue_activations_and_residual() {
    let g = Geom {
        pad: [(1, 1), (1, 1)],
        ..geom(4, 6, (9, 10), (3, 3), 1)
    };
    let x = data(g.c_in * g.h * g.w, 4);
    let w = data(g.c_out * g.c_in * 9, 5);
    let bias = data(g.c_out, 6);
    let residual = data(g.c_out * g.h * g.w, 7);
    let epi = Epilogue {
        bias: Some(&bias),
        pre: &[Act::Silu],
        residual: Some(&residual),
        post: &[Act::Relu],
    };
    let got = conv2d(&g, &x, &w, &epi).unwrap();
    let plain = reference(&g, &x, &w, Some(&bias));
    for (i, (&y, &p)) in got.iter().zip(&plain).enumerate() {
        let p = p as f64;
        let want = (p / (1.0 + (-p).exp()) + residual[i] as f64).max(0.0);
        assert!(
            (y as f64 - want).abs() < 1e-5 * (1.0 + want.abs()),
            "{i}: {y} vs {want}"
        );
    }
}

#[test]
fn bad_sizes_are_errors() {
    let g = geom(4, 6, (5, 5), (3, 3), 1);
    let w = data(6 * 4 * 9, 2);
    assert!(conv2d(&g, &data(99, 1), &w, &Epilogue::default()).is_err());
    assert!(conv2d(&g, &data(100, 1), &w[1..], &Epilogue::default()).is_err());
    assert!(conv2d(&g, &data(100, 1), &w, &Epilogue::default()).is_ok());
    let g = geom(4, 6, (2, 2), (3, 3), 1);
    assert!(conv2d(&g, &data(16, 1), &w, &Epilogue::default()).is_err());
    let g = geom(4, 6, (5, 5), (3, 3), 3);
    assert!(conv2d(&g, &data(100, 1), &w, &Epilogue::default()).is_err());
}

/// Max pooling over phase planes against candle's (input padded with -inf
/// explicitly, then valid pooling), for several windows and strides.
#[test]
fn max_pool_matches_candle() {
    let dev = Device::Cpu;
    for (k, s, pad) in [
        ((3, 3), [2, 2], [(1, 1), (1, 1)]),
        ((2, 2), [2, 2], [(0, 1), (0, 0)]),
        ((3, 2), [1, 3], [(2, 0), (1, 1)]),
    ] {
        let g = Geom {
            n: 2,
            stride: s,
            pad,
            ..geom(3, 3, (17, 20), k, 3)
        };
        let x = data(g.n * g.c_in * g.h * g.w, 9);
        let (ho, wo) = g.out_hw().unwrap();
        let mut got = vec![0f32; g.n * g.c_out * ho * wo];
        max_pool(&g, ho, wo, &x, &mut got);
        let t = Tensor::from_vec(x.clone(), (g.n, g.c_in, g.h, g.w), &dev).unwrap();
        let ninf = |shape: (usize, usize, usize, usize)| {
            Tensor::full(f32::NEG_INFINITY, shape, &dev).unwrap()
        };
        let (n, c) = (g.n, g.c_in);
        let t = Tensor::cat(
            &[
                &ninf((n, c, pad[0].0, g.w)),
                &t,
                &ninf((n, c, pad[0].1, g.w)),
            ],
            2,
        )
        .unwrap();
        let hp = t.dim(2).unwrap();
        let t = Tensor::cat(
            &[&ninf((n, c, hp, pad[1].0)), &t, &ninf((n, c, hp, pad[1].1))],
            3,
        )
        .unwrap();
        let want: Vec<f32> = t
            .max_pool2d_with_stride(k, (s[0], s[1]))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(got, want, "{g:?}");
    }
}
