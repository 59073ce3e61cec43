//! Palettized weight matrices kept in their stored form, multiplied with
//! f32 activations without expanding the weights:
//! `W[r][c] = table[r / group_rows][code[r][c]]`.
//!
//! Codes stay as the weight file stores them (memory-mapped, no copy) when
//! they are 4 bits wide and every row starts on a byte (two codes a byte,
//! LSB first); other widths are repacked once into one byte per code.
//!
//! On x86-64 with AVX-512 the codes are decoded in registers, 16 at a time.
//! Nibbles: a 64-byte load holds 128 codes, a shift per vector leaves each
//! lane's code in its low bits and `vpermps` looks the 16-entry table up.
//! Bytes with up to 64 entries: two `vpermt2w` per 32 codes look up the low
//! and high 16-bit halves of the f32 table, and interleaving the halves
//! rebuilds the f32s exactly. Blocks narrower than a 64-byte load use a
//! 128-bit broadcast and per-lane shifts (bytes: two `vpermt2ps` and a
//! blend). Which column each lane holds is fixed by the decode, so the
//! activations are permuted the same way once per call
//! ([`LutMatrix::source_column`], computed once per matrix). Elsewhere
//! (other CPUs, 128- or 256-entry tables) rows are decoded to f32 in
//! scratch. Few activation columns go through a row-by-row product; more
//! through decoded blocks of rows and the GEMM.

use super::gemm::{gemm, Mat};
use super::{par_for, with_scratch, Shared};
use crate::error::{Error, Result};
use crate::mil::elements::unpack_bits;
use crate::mil::ByteView;

/// How the codes of one row are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codes {
    /// Two 4-bit codes a byte, LSB first.
    Nibbles,
    /// One code a byte.
    Bytes,
}

/// Up to this many activation columns use the row-by-row product.
const ROWWISE_MAX: usize = 4;
/// Rows decoded at once before a GEMM.
const BLOCK_ROWS: usize = 64;

/// A palettized `rows x cols` matrix.
pub(crate) struct LutMatrix {
    rows: usize,
    cols: usize,
    codes: Codes,
    data: ByteView,
    row_bytes: usize,
    group_rows: usize,
    /// Entries of each group's table as stored here (16, 64 or 256).
    entries: usize,
    /// `groups x entries` values, padded with zeros past the real entries.
    tables: Vec<f32>,
    /// For each permuted position, the column it holds when rows decode in
    /// registers ([`LutMatrix::source_column`]), computed once.
    perm: Vec<u32>,
    /// Byte codes: each table's f32 bit patterns split in 16-bit halves,
    /// `groups x [64 low halves, 64 high halves]`, looked up by `vpermt2w`.
    halves: Vec<u16>,
}

impl std::fmt::Debug for LutMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LutMatrix({}x{}, {:?}, {} rows a table)",
            self.rows, self.cols, self.codes, self.group_rows
        )
    }
}

impl LutMatrix {
    /// A matrix from codes of `bits` bits packed LSB first over the whole
    /// row-major matrix (as `constexpr_lut_to_dense` stores them), and one
    /// table of `2^bits` values for each group of `rows / groups` rows.
    pub(crate) fn new(
        rows: usize,
        cols: usize,
        bits: u32,
        packed: ByteView,
        tables: &[f32],
    ) -> Result<Self> {
        if !(1..=8).contains(&bits) {
            return Err(Error::msg(format!("{bits}-bit codes (1 to 8 supported)")));
        }
        let n = 1usize << bits;
        let count = rows
            .checked_mul(cols)
            .ok_or_else(|| Error::msg("matrix size overflows"))?;
        let groups = tables.len() / n;
        if !tables.len().is_multiple_of(n) || groups == 0 || !rows.is_multiple_of(groups) {
            return Err(Error::msg(format!(
                "{} table values are not whole tables of {n} for groups of rows of {rows}",
                tables.len()
            )));
        }
        let need = count
            .checked_mul(bits as usize)
            .map(|b| b.div_ceil(8))
            .ok_or_else(|| Error::msg("matrix size overflows"))?;
        if packed.len() != need {
            return Err(Error::msg(format!(
                "{} bytes of codes for {rows}x{cols} {bits}-bit codes (need {need})",
                packed.len()
            )));
        }
        let (codes, data, row_bytes, entries) = if bits == 4 && cols.is_multiple_of(2) {
            (Codes::Nibbles, packed, cols / 2, 16)
        } else {
            let unpacked = unpack_bits(packed.as_slice(), bits, count).map_err(Error::msg)?;
            let entries = if bits <= 6 { 64 } else { 256 };
            (Codes::Bytes, ByteView::from_vec(unpacked), cols, entries)
        };
        let mut padded = vec![0f32; groups * entries];
        for (g, t) in tables.chunks_exact(n).enumerate() {
            padded[g * entries..g * entries + n].copy_from_slice(t);
        }
        let mut m = Self {
            rows,
            cols,
            codes,
            data,
            row_bytes,
            group_rows: rows / groups,
            entries,
            halves: Vec::new(),
            tables: padded,
            perm: Vec::new(),
        };
        if m.codes == Codes::Bytes && m.entries == 64 {
            m.halves = m
                .tables
                .chunks_exact(64)
                .flat_map(|t| {
                    let lo = t.iter().map(|v| v.to_bits() as u16);
                    let hi = t.iter().map(|v| (v.to_bits() >> 16) as u16);
                    lo.chain(hi).collect::<Vec<_>>()
                })
                .collect();
        }
        let (kw, kp) = m.fast_layout();
        let perm = (0..cols)
            .map(|c| u32::try_from(m.source_column(c, kw, kp)))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::msg(format!("{cols} columns")))?;
        m.perm = perm;
        Ok(m)
    }

    /// Rows (output channels).
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (input channels).
    pub(crate) fn cols(&self) -> usize {
        self.cols
    }

    fn table(&self, r: usize) -> &[f32] {
        let g = r / self.group_rows;
        &self.tables[g * self.entries..(g + 1) * self.entries]
    }

    fn row_codes(&self, r: usize) -> &[u8] {
        &self.data.as_slice()[r * self.row_bytes..(r + 1) * self.row_bytes]
    }

    fn code(&self, row: &[u8], c: usize) -> usize {
        match self.codes {
            Codes::Nibbles => ((row[c / 2] >> (4 * (c % 2))) & 15) as usize,
            Codes::Bytes => row[c] as usize,
        }
    }

    /// Columns one register decode covers (the permuted block).
    fn block(&self) -> usize {
        match self.codes {
            Codes::Nibbles => 32,
            Codes::Bytes => 16,
        }
    }

    /// True when rows decode in registers on this CPU.
    fn fast(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            self.entries <= 64 && super::simd::level() == super::simd::Level::Avx512
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Columns in the permuted blocks on this CPU (the rest keep their order).
    fn permuted_cols(&self) -> usize {
        if self.fast() {
            self.fast_layout().1
        } else {
            0
        }
    }

    /// Codes in one 64-byte load: 128 nibbles or 64 bytes.
    fn wide_block(&self) -> usize {
        match self.codes {
            Codes::Nibbles => 128,
            Codes::Bytes => 64,
        }
    }

    /// Columns in whole wide blocks (decoded from 64-byte loads) and in
    /// whole blocks of [`LutMatrix::block`] after them, when rows decode in
    /// registers.
    fn fast_layout(&self) -> (usize, usize) {
        (
            self.cols - self.cols % self.wide_block(),
            self.cols - self.cols % self.block(),
        )
    }

    /// Columns in whole wide blocks on this CPU.
    #[cfg(target_arch = "x86_64")]
    fn wide_cols(&self) -> usize {
        if self.fast() {
            self.fast_layout().0
        } else {
            0
        }
    }

    /// The column held at permuted position `c`. In a wide block of
    /// nibbles, dword `j` of the 64-byte load holds codes `8j..8j+8` and the
    /// `k`-th shift puts code `8j + k` at position `16k + j`; a wide block
    /// of bytes is looked up as 32 words (two codes each) and rebuilt into
    /// f32 by interleaving halves (`avx512::wide_bytes`); in the
    /// narrower blocks after it, see [`LutMatrix::lane_column`].
    fn source_column(&self, c: usize, kw: usize, kp: usize) -> usize {
        if c < kw {
            let w = self.wide_block();
            let p = c % w;
            let within = match self.codes {
                Codes::Nibbles => 8 * (p % 16) + p / 16,
                Codes::Bytes => {
                    // Vector v of four: word lanes i of the 16-bit lookups
                    // of codes 2i (v = 0, 1) and 2i + 1 (v = 2, 3), the low
                    // (v even) or high four words of each 128-bit lane.
                    let (v, q) = (p / 16, p % 16);
                    let i = 8 * (q / 4) + q % 4 + 4 * (v % 2);
                    2 * i + v / 2
                }
            };
            c - p + within
        } else if c < kp {
            let b = self.block();
            c - c % b + self.lane_column(c % b)
        } else {
            c
        }
    }

    /// The column the register decode puts in position `p` of a block:
    /// lane `l` of 128 bits, dword `d`, second vector `v` (nibbles only)
    /// holds byte `4d + l` (and its high nibble when `v` is 1).
    fn lane_column(&self, p: usize) -> usize {
        match self.codes {
            Codes::Nibbles => {
                let (v, l, d) = (p / 16, (p % 16) / 4, p % 4);
                2 * (4 * d + l) + v
            }
            Codes::Bytes => {
                let (l, d) = (p / 4, p % 4);
                4 * d + l
            }
        }
    }

    /// Row `r` as f32 in the order the activations are permuted to.
    fn decode_row(&self, r: usize, out: &mut [f32]) {
        let kp = self.permuted_cols();
        #[cfg(target_arch = "x86_64")]
        if kp > 0 {
            // SAFETY: `fast` checked AVX-512 on this CPU; `out` holds `cols`.
            unsafe { avx512::decode_row(self, r, &mut out[..kp]) };
        }
        let row = self.row_codes(r);
        let table = self.table(r);
        for (c, o) in out.iter_mut().enumerate().take(self.cols).skip(kp) {
            *o = table[self.code(row, c)];
        }
    }

    /// `x` with its columns in decode order: `x` is `n` vectors of `cols`
    /// (`stride` apart along a vector, `step` apart between vectors), the
    /// result `n x cols` row-major (`transposed`: `cols x n`).
    fn permute_x(
        &self,
        x: &[f32],
        n: usize,
        stride: usize,
        step: usize,
        transposed: bool,
    ) -> Vec<f32> {
        let fast = self.fast();
        let mut out = vec![0f32; n * self.cols];
        for s in 0..n {
            for c in 0..self.cols {
                let src = if fast { self.perm[c] as usize } else { c };
                let v = x[s * step + src * stride];
                if transposed {
                    out[c * n + s] = v;
                } else {
                    out[s * self.cols + c] = v;
                }
            }
        }
        out
    }

    /// `Y = W X` for `X` of `cols x n` (row-major, `n` columns of
    /// activations, e.g. a 1x1 conv's `[C_in, H*W]`), plus `bias[r]` on
    /// row `r`: `Y` is `rows x n` row-major.
    pub(crate) fn matmul(&self, x: &[f32], n: usize, bias: Option<&[f32]>) -> Result<Vec<f32>> {
        self.product(x, n, n, 1, bias)
    }

    /// `Y = W Xᵀ` for `X` of `n x cols` (row-major, e.g. a linear layer's
    /// `[tokens, D_in]`): `Y` is `rows x n` row-major.
    pub(crate) fn matmul_t(&self, x: &[f32], n: usize, bias: Option<&[f32]>) -> Result<Vec<f32>> {
        self.product(x, n, 1, self.cols, bias)
    }

    fn product(
        &self,
        x: &[f32],
        n: usize,
        stride: usize,
        step: usize,
        bias: Option<&[f32]>,
    ) -> Result<Vec<f32>> {
        if x.len() != n * self.cols {
            return Err(Error::msg(format!(
                "{} activation values for {n} columns of {}",
                x.len(),
                self.cols
            )));
        }
        if bias.is_some_and(|b| b.len() != self.rows) {
            return Err(Error::msg(format!(
                "bias of {} values for {} output channels",
                bias.map_or(0, <[f32]>::len),
                self.rows
            )));
        }
        let mut y = vec![0f32; self.rows * n];
        if n == 0 || self.rows == 0 {
            return Ok(y);
        }
        let shared = Shared::new(&mut y);
        if n <= ROWWISE_MAX {
            let xp = self.permute_x(x, n, stride, step, false);
            let rows_per = 16;
            par_for(self.rows.div_ceil(rows_per), |blk| {
                let r0 = blk * rows_per;
                let r1 = (r0 + rows_per).min(self.rows);
                // SAFETY: blocks of rows are disjoint.
                let out = unsafe { shared.part(r0 * n, (r1 - r0) * n) };
                self.rowwise(r0, r1, &xp, n, out);
            });
        } else {
            let xt = self.permute_x(x, n, stride, step, true);
            let xm = Mat::new(&xt, self.cols, n, n)?;
            let failed = std::sync::Mutex::new(None);
            par_for(self.rows.div_ceil(BLOCK_ROWS), |blk| {
                let r0 = blk * BLOCK_ROWS;
                let r1 = (r0 + BLOCK_ROWS).min(self.rows);
                // SAFETY: blocks of rows are disjoint.
                let out = unsafe { shared.part(r0 * n, (r1 - r0) * n) };
                let done = with_scratch((r1 - r0) * self.cols, |w| {
                    for r in r0..r1 {
                        self.decode_row(r, &mut w[(r - r0) * self.cols..(r - r0 + 1) * self.cols]);
                    }
                    let wm = Mat::new(w, r1 - r0, self.cols, self.cols)?;
                    gemm(out, n, wm, xm, false)
                });
                if let Err(e) = done {
                    *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                }
            });
            if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
                return Err(e);
            }
        }
        if let Some(bias) = bias {
            for (row, b) in y.chunks_exact_mut(n).zip(bias) {
                row.iter_mut().for_each(|v| *v += b);
            }
        }
        Ok(y)
    }

    /// Rows `r0..r1` against the `n` permuted activation vectors `xp`
    /// (`n x cols`): `out[(r - r0) * n + s]`.
    fn rowwise(&self, r0: usize, r1: usize, xp: &[f32], n: usize, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if self.fast() {
            // SAFETY: `fast` checked AVX-512 on this CPU; sizes as documented.
            unsafe { avx512::rowwise(self, r0, r1, xp, n, out) };
            return;
        }
        with_scratch(self.cols, |w| {
            for r in r0..r1 {
                self.decode_row(r, w);
                for s in 0..n {
                    let xs = &xp[s * self.cols..(s + 1) * self.cols];
                    out[(r - r0) * n + s] = dot(w, xs);
                }
            }
        });
    }

    /// Sum over the unpermuted tail columns of row `r` with vector `xs`.
    #[cfg(target_arch = "x86_64")]
    fn tail_dot(&self, r: usize, xs: &[f32], kp: usize) -> f32 {
        let row = self.row_codes(r);
        let table = self.table(r);
        (kp..self.cols)
            .map(|c| table[self.code(row, c)] * xs[c])
            .sum()
    }
}

super::simd::multiversion!(fn dot(a: &[f32], b: &[f32]) -> f32 => dot_generic);

/// A dot product in 16 partial sums (vectorizes).
#[inline(always)]
fn dot_generic(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>()
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Codes, LutMatrix};

    /// Rows ahead whose codes are prefetched.
    const PREFETCH_ROWS: usize = 6;
    /// Rows ahead whose codes are prefetched into L2.
    const PREFETCH_L2_ROWS: usize = 32;

    /// The table of row `r` in registers: four vectors of 16 (entries past
    /// the table's are never selected).
    #[target_feature(enable = "avx512f,avx512dq,avx512bw")]
    unsafe fn table(m: &LutMatrix, r: usize) -> [__m512; 4] {
        let t = m.table(r);
        let p = t.as_ptr();
        // SAFETY: tables hold at least 16 entries, 64 when more are read.
        unsafe {
            if t.len() >= 64 {
                [
                    _mm512_loadu_ps(p),
                    _mm512_loadu_ps(p.add(16)),
                    _mm512_loadu_ps(p.add(32)),
                    _mm512_loadu_ps(p.add(48)),
                ]
            } else {
                let v = _mm512_loadu_ps(p);
                [v, v, v, v]
            }
        }
    }

    /// 16 code bytes at `p`, broadcast to the four 128-bit lanes.
    #[target_feature(enable = "avx512f,avx512dq,avx512bw")]
    unsafe fn bytes16(p: *const u8) -> __m512i {
        // SAFETY: the caller passes 16 readable bytes.
        unsafe { _mm512_broadcast_i32x4(_mm_loadu_si128(p.cast())) }
    }

    /// Shifts per dword so lane `l` holds byte `4d + l` low.
    #[target_feature(enable = "avx512f,avx512dq,avx512bw")]
    fn shifts(extra: i32) -> __m512i {
        _mm512_setr_epi32(
            extra,
            extra,
            extra,
            extra,
            8 + extra,
            8 + extra,
            8 + extra,
            8 + extra,
            16 + extra,
            16 + extra,
            16 + extra,
            16 + extra,
            24 + extra,
            24 + extra,
            24 + extra,
            24 + extra,
        )
    }

    /// The 128 weights of the 128 nibble codes at `p` (64 bytes), as eight
    /// vectors of 16: dword `j` holds codes `8j..8j+8`, the `k`-th shift by
    /// 4 bits leaves code `8j + k` where `vpermps` reads its index.
    #[target_feature(enable = "avx512f,avx512dq,avx512bw")]
    unsafe fn wide_nibbles(t: __m512, p: *const u8) -> [__m512; 8] {
        // SAFETY: the caller passes 64 readable bytes.
        let v = unsafe { _mm512_loadu_si512(p.cast()) };
        std::array::from_fn(|k| {
            _mm512_permutexvar_ps(_mm512_srlv_epi32(v, _mm512_set1_epi32(4 * k as i32)), t)
        })
    }

    /// The 32 weights of the 32 nibble codes at `p` (16 bytes), as two
    /// vectors of 16 in the order of [`LutMatrix::lane_column`].
    #[target_feature(enable = "avx512f,avx512dq,avx512bw")]
    unsafe fn narrow_nibbles(t: __m512, p: *const u8) -> [__m512; 2] {
        // SAFETY: the caller passes 16 readable bytes.
        let v = unsafe { bytes16(p) };
        [
            _mm512_permutexvar_ps(_mm512_srlv_epi32(v, shifts(0)), t),
            _mm512_permutexvar_ps(_mm512_srlv_epi32(v, shifts(4)), t),
        ]
    }

    /// The 16-bit halves of row `r`'s table in registers: low halves of
    /// entries 0-31 and 32-63, then the high halves.
    #[target_feature(enable = "avx512f,avx512dq,avx512bw")]
    unsafe fn halves(m: &LutMatrix, r: usize) -> [__m512i; 4] {
        let g = r / m.group_rows;
        let p = m.halves[g * 128..(g + 1) * 128].as_ptr();
        // SAFETY: 128 halves per group, four vectors of 32.
        unsafe {
            [
                _mm512_loadu_si512(p.cast()),
                _mm512_loadu_si512(p.add(32).cast()),
                _mm512_loadu_si512(p.add(64).cast()),
                _mm512_loadu_si512(p.add(96).cast()),
            ]
        }
    }

    /// The 64 weights of 64 byte codes at `p`, as four vectors of 16 in
    /// the order of [`LutMatrix::source_column`]: each 16-bit lookup gives
    /// 32 low or high halves, and interleaving the halves gives the f32s.
    #[target_feature(enable = "avx512f,avx512dq,avx512bw")]
    unsafe fn wide_bytes(h: &[__m512i; 4], p: *const u8) -> [__m512; 4] {
        // SAFETY: the caller passes 64 readable bytes.
        let words = unsafe { _mm512_loadu_si512(p.cast()) };
        let mut out = [_mm512_setzero_ps(); 4];
        for (half, idx) in [words, _mm512_srli_epi16::<8>(words)]
            .into_iter()
            .enumerate()
        {
            let lo = _mm512_permutex2var_epi16(h[0], idx, h[1]);
            let hi = _mm512_permutex2var_epi16(h[2], idx, h[3]);
            out[2 * half] = _mm512_castsi512_ps(_mm512_unpacklo_epi16(lo, hi));
            out[2 * half + 1] = _mm512_castsi512_ps(_mm512_unpackhi_epi16(lo, hi));
        }
        out
    }

    /// 64-entry lookup of the low 6 bits of each dword of `idx`.
    #[target_feature(enable = "avx512f,avx512dq,avx512bw")]
    fn lookup64(t: &[__m512; 4], idx: __m512i) -> __m512 {
        let lo = _mm512_permutex2var_ps(t[0], idx, t[1]);
        let hi = _mm512_permutex2var_ps(t[2], idx, t[3]);
        // Bit 5 moved to the sign and read as a mask: shift and move
        // issue on another port than the permutes (a `vptestmd` would not).
        let upper = _mm512_movepi32_mask(_mm512_slli_epi32::<26>(idx));
        _mm512_mask_blend_ps(upper, lo, hi)
    }

    /// The permuted columns of row `r` as f32 into `out` (`permuted_cols` long).
    #[target_feature(enable = "avx512f,avx512dq,avx512bw")]
    pub(super) unsafe fn decode_row(m: &LutMatrix, r: usize, out: &mut [f32]) {
        let row = m.row_codes(r).as_ptr();
        // SAFETY: the table has the entries `table` reads.
        let t = unsafe { table(m, r) };
        let o = out.as_mut_ptr();
        match m.codes {
            Codes::Nibbles => {
                let kw = m.wide_cols();
                for b in 0..kw / 128 {
                    // SAFETY: bytes 64b..64b+64 of the row (128 codes) and
                    // out[128b..128b+128], both in bounds.
                    unsafe {
                        for (k, w) in wide_nibbles(t[0], row.add(64 * b)).into_iter().enumerate() {
                            _mm512_storeu_ps(o.add(128 * b + 16 * k), w);
                        }
                    }
                }
                for b in kw / 32..out.len() / 32 {
                    // SAFETY: block `b` reads bytes 16b..16b+16 of the row
                    // (32 codes) and writes out[32b..32b+32], both in bounds.
                    unsafe {
                        let [w0, w1] = narrow_nibbles(t[0], row.add(16 * b));
                        _mm512_storeu_ps(o.add(32 * b), w0);
                        _mm512_storeu_ps(o.add(32 * b + 16), w1);
                    }
                }
            }
            Codes::Bytes => {
                let kw = m.wide_cols();
                // SAFETY: byte codes of 64-entry tables have their halves.
                let h = unsafe { halves(m, r) };
                for b in 0..kw / 64 {
                    // SAFETY: bytes 64b..64b+64 of the row and
                    // out[64b..64b+64], both in bounds.
                    unsafe {
                        let w = wide_bytes(&h, row.add(64 * b));
                        for (k, wk) in w.into_iter().enumerate() {
                            _mm512_storeu_ps(o.add(64 * b + 16 * k), wk);
                        }
                    }
                }
                let s0 = shifts(0);
                for b in kw / 16..out.len() / 16 {
                    // SAFETY: bytes 16b..16b+16 and out[16b..16b+16] are in bounds.
                    unsafe {
                        let v = _mm512_srlv_epi32(bytes16(row.add(16 * b)), s0);
                        _mm512_storeu_ps(o.add(16 * b), lookup64(&t, v));
                    }
                }
            }
        }
    }

    /// Rows `r0..r1` against `n` (1 to 4) permuted vectors `xp`.
    #[target_feature(enable = "avx512f,avx512dq,avx512bw")]
    pub(super) unsafe fn rowwise(
        m: &LutMatrix,
        r0: usize,
        r1: usize,
        xp: &[f32],
        n: usize,
        out: &mut [f32],
    ) {
        // SAFETY: as documented on each function; n is 1..=4.
        unsafe {
            match n {
                1 => rows_n::<1>(m, r0, r1, xp, out),
                2 => rows_n::<2>(m, r0, r1, xp, out),
                3 => rows_n::<3>(m, r0, r1, xp, out),
                _ => rows_n::<4>(m, r0, r1, xp, out),
            }
        }
    }

    // `s` indexes the accumulators and the activation vectors together.
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx512f,avx512dq,avx512bw")]
    unsafe fn rows_n<const N: usize>(
        m: &LutMatrix,
        r0: usize,
        r1: usize,
        xp: &[f32],
        out: &mut [f32],
    ) {
        let (kw, kp) = (m.wide_cols(), m.permuted_cols());
        let cols = m.cols;
        let x = xp.as_ptr();
        for r in r0..r1 {
            let row = m.row_codes(r).as_ptr();
            if r + PREFETCH_ROWS < m.rows {
                let ahead = m.row_codes(r + PREFETCH_ROWS);
                for line in ahead.chunks(64) {
                    _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast());
                }
            }
            if r + PREFETCH_L2_ROWS < m.rows {
                let ahead = m.row_codes(r + PREFETCH_L2_ROWS);
                for line in ahead.chunks(64) {
                    _mm_prefetch::<_MM_HINT_T1>(line.as_ptr().cast());
                }
            }
            // SAFETY: the table has the entries `table` reads.
            let t = unsafe { table(m, r) };
            // Four sums per vector, so that one FMA latency does not pace
            // the loop.
            let mut acc = [[_mm512_setzero_ps(); N]; 4];
            match m.codes {
                Codes::Nibbles => {
                    for b in 0..kw / 128 {
                        // SAFETY: bytes 64b..64b+64 of the row (128 codes);
                        // columns 128b..128b+128 of each of the N vectors.
                        unsafe {
                            for (k, w) in
                                wide_nibbles(t[0], row.add(64 * b)).into_iter().enumerate()
                            {
                                for s in 0..N {
                                    let xs = x.add(s * cols + 128 * b + 16 * k);
                                    acc[k % 4][s] =
                                        _mm512_fmadd_ps(w, _mm512_loadu_ps(xs), acc[k % 4][s]);
                                }
                            }
                        }
                    }
                    for b in kw / 32..kp / 32 {
                        // SAFETY: bytes 16b..16b+16 of the row; columns
                        // 32b..32b+32 of each of the N vectors of `cols`.
                        unsafe {
                            let [w0, w1] = narrow_nibbles(t[0], row.add(16 * b));
                            for s in 0..N {
                                let xs = x.add(s * cols + 32 * b);
                                acc[0][s] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xs), acc[0][s]);
                                acc[1][s] =
                                    _mm512_fmadd_ps(w1, _mm512_loadu_ps(xs.add(16)), acc[1][s]);
                            }
                        }
                    }
                }
                Codes::Bytes => {
                    // SAFETY: byte codes of 64-entry tables have their halves.
                    let h = unsafe { halves(m, r) };
                    for b in 0..kw / 64 {
                        // SAFETY: bytes 64b..64b+64 of the row; columns
                        // 64b..64b+64 of each of the N vectors.
                        unsafe {
                            let ws = wide_bytes(&h, row.add(64 * b));
                            for (k, w) in ws.into_iter().enumerate() {
                                for s in 0..N {
                                    let xs = x.add(s * cols + 64 * b + 16 * k);
                                    acc[k][s] = _mm512_fmadd_ps(w, _mm512_loadu_ps(xs), acc[k][s]);
                                }
                            }
                        }
                    }
                    let s0 = shifts(0);
                    let pairs = kp / 32;
                    for b in kw / 32..pairs {
                        // SAFETY: bytes and columns 32b..32b+32, in bounds.
                        unsafe {
                            let v0 = _mm512_srlv_epi32(bytes16(row.add(32 * b)), s0);
                            let v1 = _mm512_srlv_epi32(bytes16(row.add(32 * b + 16)), s0);
                            let w0 = lookup64(&t, v0);
                            let w1 = lookup64(&t, v1);
                            for s in 0..N {
                                let xs = x.add(s * cols + 32 * b);
                                acc[0][s] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xs), acc[0][s]);
                                acc[1][s] =
                                    _mm512_fmadd_ps(w1, _mm512_loadu_ps(xs.add(16)), acc[1][s]);
                            }
                        }
                    }
                    if !kp.is_multiple_of(32) {
                        let b = kp / 16 - 1;
                        // SAFETY: the last block of 16, in bounds.
                        unsafe {
                            let v = _mm512_srlv_epi32(bytes16(row.add(16 * b)), s0);
                            let w = lookup64(&t, v);
                            for s in 0..N {
                                let xs = x.add(s * cols + 16 * b);
                                acc[0][s] = _mm512_fmadd_ps(w, _mm512_loadu_ps(xs), acc[0][s]);
                            }
                        }
                    }
                }
            }
            for s in 0..N {
                let sum = _mm512_reduce_add_ps(_mm512_add_ps(
                    _mm512_add_ps(acc[0][s], acc[1][s]),
                    _mm512_add_ps(acc[2][s], acc[3][s]),
                ));
                let tail = m.tail_dot(r, &xp[s * cols..(s + 1) * cols], kp);
                out[(r - r0) * N + s] = sum + tail;
            }
        }
    }
}

#[cfg(test)]
#[path = "lut_tests.rs"]
mod tests;
