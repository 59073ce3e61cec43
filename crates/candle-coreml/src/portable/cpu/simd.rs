//! The vector instruction set the CPU offers, detected once at run time, and
//! a macro that compiles a generic loop once per instruction set (so the
//! compiler vectorizes it with AVX-512 or AVX2+FMA where present) and picks
//! the version at run time. A portable version is always there.
//!
//! Off x86-64 there is one version only (aarch64's baseline includes NEON,
//! which the compiler uses for the portable loop), so nothing asks for the
//! level there.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// Instruction sets the fast paths have versions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// No wide vectors: the portable version (SSE2 on x86-64, NEON on aarch64,
    /// whatever the target's baseline is elsewhere).
    Portable,
    /// x86-64 AVX2 with FMA and F16C.
    Avx2,
    /// x86-64 AVX-512 (F, BW, VL, DQ).
    Avx512,
}

/// A level forced by [`forced`] (0: none).
static FORCED: AtomicU8 = AtomicU8::new(0);

/// The best level this CPU supports, lowered by `CANDLE_COREML_SIMD`
/// (`portable`, `avx2`) for comparisons, or by [`forced`] in tests.
pub(crate) fn level() -> Level {
    let best = detected();
    match FORCED.load(Ordering::Relaxed) {
        1 => Level::Portable,
        2 => best.min(Level::Avx2),
        _ => best,
    }
}

/// Runs `f` with the fast paths limited to `level` (tests of each version
/// against the others); calls are serialized.
#[cfg(test)]
pub(crate) fn forced<R>(level: Level, f: impl FnOnce() -> R) -> R {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    FORCED.store(
        match level {
            Level::Portable => 1,
            Level::Avx2 => 2,
            Level::Avx512 => 3,
        },
        Ordering::Relaxed,
    );
    let r = f();
    FORCED.store(0, Ordering::Relaxed);
    r
}

fn detected() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = match std::env::var("CANDLE_COREML_SIMD").as_deref() {
            Ok("portable") => Level::Portable,
            Ok("avx2") => Level::Avx2,
            _ => Level::Avx512,
        };
        detect().min(cap)
    })
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Level {
    if is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
    {
        Level::Avx512
    } else if is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
    {
        Level::Avx2
    } else {
        Level::Portable
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Level {
    Level::Portable
}

/// Defines `fn $name(args) -> ret` that runs `$generic(args)` compiled for
/// AVX-512, AVX2+FMA or the baseline, whichever [`level`] picks. `$generic`
/// must be `#[inline(always)]` so each copy is vectorized for its features.
macro_rules! multiversion {
    ($vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $generic:path) => {
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
                fn v4($($arg: $ty),*) $(-> $ret)? { $generic($($arg),*) }
                #[target_feature(enable = "avx2,fma,f16c")]
                fn v3($($arg: $ty),*) $(-> $ret)? { $generic($($arg),*) }
                match $crate::portable::cpu::simd::level() {
                    // SAFETY: `level` reported these features on this CPU.
                    $crate::portable::cpu::simd::Level::Avx512 => return unsafe { v4($($arg),*) },
                    // SAFETY: as above.
                    $crate::portable::cpu::simd::Level::Avx2 => return unsafe { v3($($arg),*) },
                    $crate::portable::cpu::simd::Level::Portable => {}
                }
            }
            $generic($($arg),*)
        }
    };
}
pub(crate) use multiversion;
