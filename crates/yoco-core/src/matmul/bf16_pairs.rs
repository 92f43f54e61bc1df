//! bf16 products on CPUs with AVX512-BF16 (Zen 4 and later, Cooper Lake and Sapphire Rapids and
//! later): `vdpbf16ps` multiplies 16 pairs of bf16 by 16 pairs and adds each pair's two products
//! to an f32 lane, 32 multiply-adds an instruction where an f32 FMA does 16, with no widening
//! pass. `c[m, n] = a[m, k] · b[n, k]ᵀ`, all bf16, sums in f32, `c` rounded once. Its rate is the
//! CPU's: about twice the f32 FMA rate on the 2-core Zen 5 and Zen 4 the project ran on (986
//! against 543 GFLOP/s, 463 against 232), half of it on the Xeon with AMX it also ran on (172
//! against 345), where products from 24 rows take the AMX tiles instead (`bf16_amx.rs`, which
//! packs the weights with [`pack_panel`]).
//!
//! Three forms, by the number of rows (`matmul_nt_widened` chooses):
//! - [`packed`] (many rows, prefill), here: the weights `b` packed per call into panels of 32
//!   columns whose lanes hold a column's pair `(b[j, 2p], b[j, 2p + 1])`, and `a` into blocks of 8
//!   rows, each pair of a row broadcast; 8 rows × 2 vectors of accumulators;
//! - the in-place form (`bf16_pairs_in_place.rs`; from 32 rows to 1023): the roles
//!   swapped, `a` packed into the same panels and the weights' pairs broadcast from where they
//!   lie, so that the weights are not copied;
//! - the dot form (a few rows, small batches; `dots.rs`, shared with f32): no packing; 4 rows of
//!   `a` against 4 rows of `b` (1 against 8 below 4 rows), 32 elements of each row a step, lanes
//!   summed at the end.
//!
//! Numerics: each product of two bf16 is exact in f32, and each lane adds its two in turn, so the
//! sums round as an f32 FMA chain's do (in another order). The instruction treats denormal inputs
//! and results as zero (its DAZ and FTZ are fixed): values below 2^-126 in magnitude, which the
//! widening path keeps, count as 0 here, as in oneDNN's bf16 kernels.
//!
//! Soundness: the intrinsics need AVX-512F, BW, VL and BF16; they are called only from
//! [`available`]-checked entries compiled with those features.

use std::arch::x86_64::*;
use std::sync::OnceLock;

use half::bf16;
use rayon::prelude::*;

use super::scratch::Scratch;
use super::shared_out::SharedOut;
use super::words::transpose_16_strip;
use crate::simd::x86::bf16_bits;
use crate::simd::Isa;

/// The CPU has AVX512-BF16 (and the AVX-512 the other kernels use: F, VL, BW, DQ), and
/// `YOCO_CPU_ISA` does not ask for narrower vectors. Detected once per process.
pub(super) fn available() -> bool {
    static DETECTED: OnceLock<bool> = OnceLock::new();
    *DETECTED.get_or_init(|| Isa::detect() == Isa::Avx512 && is_x86_feature_detected!("avx512bf16"))
}

/// Columns per packed panel: two vectors of 16 lanes.
pub(super) const PANEL: usize = 32;
/// Columns packed and multiplied per block (a whole number of panels).
const COLUMNS: usize = 512;
/// Rows of `a` per task of the packed form.
const ROWS: usize = 64;
/// Rows of `a` per register block of the packed form.
const BLOCK_ROWS: usize = 8;
/// Pairs of a panel's tile: 16 × 16 words (`words.rs`).
const PACK_PAIRS: usize = 16;
// `transpose_16_strip` packs a tile's pairs 16 columns at a time.
const _: () = assert!(PACK_PAIRS == 16 && PANEL.is_multiple_of(16));

/// bf16 bits as the u16 the intrinsics take (bf16 is `repr(transparent)` over u16).
pub(super) fn bits(s: &[bf16]) -> &[u16] {
    // SAFETY: bf16 has the size, alignment and validity of u16.
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<u16>(), s.len()) }
}

/// The packed form: lengths checked by the caller, `m, n, k > 0`, [`available`] true.
pub(super) fn packed(m: usize, n: usize, k: usize, a: &[bf16], b: &[bf16], c: &mut [bf16]) {
    let (a, b) = (bits(a), bits(b));
    let pairs = k.div_ceil(2);
    // a's rows in blocks of BLOCK_ROWS, each [pairs][BLOCK_ROWS]: the register block's broadcasts
    // all sit at fixed offsets from one pointer (read from the rows where they lie, eight row
    // pointers did not fit the registers and were reloaded from the stack every step).
    // Buffers kept from earlier products (`scratch.rs`): pack_rows and pack_panel write every
    // word, zeros past m, n and k included.
    let mut a_packed = Scratch::<u32>::take(m.div_ceil(BLOCK_ROWS) * pairs * BLOCK_ROWS);
    a_packed.par_chunks_mut(pairs * BLOCK_ROWS).enumerate().for_each(|(block, packed)| pack_rows(packed, a, block * BLOCK_ROWS, m, k));
    let out = SharedOut::new(c);
    let row_blocks = m.div_ceil(ROWS);
    let mut panels_packed = Scratch::<u32>::take(pairs * COLUMNS.min(n.next_multiple_of(PANEL)));
    for first in (0..n).step_by(COLUMNS) {
        let panels = (n - first).min(COLUMNS).div_ceil(PANEL);
        panels_packed[..panels * pairs * PANEL].par_chunks_mut(pairs * PANEL).enumerate().for_each(|(j, panel)| pack_panel(panel, b, first + j * PANEL, n, k));
        let (a, panels_packed) = (&a_packed, &panels_packed);
        (0..row_blocks * panels).into_par_iter().for_each(|t| {
            let (rb, j) = (t / panels, t % panels);
            let rows = rb * ROWS..((rb + 1) * ROWS).min(m);
            let task = PanelTask { m, n, pairs, a, panel: &panels_packed[j * pairs * PANEL..][..pairs * PANEL], first: first + j * PANEL, rows, out };
            // SAFETY: `available` (the caller's check) found AVX-512F, BW, VL and BF16.
            unsafe { task.run() }
        });
    }
}

/// Pair `p` of `row`, `(row[2p], row[2p + 1])` as one 32-bit word (low half first), for every
/// pair, into `words[p · stride]`; a row of odd length ends in a pair whose high half is zero.
fn pairs_of_row(words: &mut [u32], stride: usize, row: &[u16]) {
    let mut chunks = row.chunks_exact(2);
    for (p, chunk) in (&mut chunks).enumerate() {
        words[p * stride] = chunk[0] as u32 | (chunk[1] as u32) << 16;
    }
    if let [last] = chunks.remainder() {
        words[row.len() / 2 * stride] = *last as u32;
    }
}

/// Rows `first .. first + BLOCK_ROWS` of a into `packed` [pairs][BLOCK_ROWS]; rows past m are
/// zeros (their sums are not stored).
fn pack_rows(packed: &mut [u32], a: &[u16], first: usize, m: usize, k: usize) {
    for r in 0..BLOCK_ROWS {
        if first + r < m {
            pairs_of_row(&mut packed[r..], BLOCK_ROWS, &a[(first + r) * k..][..k]);
        } else {
            packed[r..].iter_mut().step_by(BLOCK_ROWS).for_each(|w| *w = 0);
        }
    }
}

/// Columns `first ..` of `bᵀ` (rows of b) into `panel` [pairs][PANEL] as bf16 pairs; columns
/// past n are zeros (their products are not stored, and zeros keep them finite). Each 16 valid
/// columns' whole tiles of [`PACK_PAIRS`] pairs are transposed in registers, a strip of them a
/// call (`transpose_16_strip`); the edges (a last part tile, the columns of a part group of 16)
/// word by word, a tile at a time.
pub(super) fn pack_panel(panel: &mut [u32], b: &[u16], first: usize, n: usize, k: usize) {
    let pairs = k.div_ceil(2);
    let cols = PANEL.min(n - first);
    // Pairs of the first `whole` columns the strips pack.
    let (strip, whole) = (k / 2 - k / 2 % PACK_PAIRS, cols - cols % 16);
    for c0 in (0..whole).step_by(16) {
        let rows: [&[u16]; 16] = std::array::from_fn(|i| &b[(first + c0 + i) * k..][..2 * strip]);
        // SAFETY: `packed` runs only where `available` found AVX-512; each row holds the strip's
        // whole pairs, and the panel `pairs` ≥ strip steps of PANEL from column c0 + 16 ≤ PANEL.
        unsafe { transpose_16_strip(&rows, strip / PACK_PAIRS, &mut panel[c0..], PANEL, 16) };
    }
    for p0 in (0..pairs).step_by(PACK_PAIRS) {
        let count = PACK_PAIRS.min(pairs - p0);
        let tile = &mut panel[p0 * PANEL..][..count * PANEL];
        let span = 2 * p0..(2 * (p0 + count)).min(k);
        for col in (0..PANEL).filter(|&col| p0 >= strip || col >= whole) {
            if col < cols {
                pairs_of_row(&mut tile[col..], PANEL, &b[(first + col) * k..][span.clone()]);
            } else {
                tile[col..].iter_mut().step_by(PANEL).for_each(|w| *w = 0);
            }
        }
    }
}

/// One task of the packed form: `c[rows, first .. first + PANEL]` (the columns below n).
struct PanelTask<'a> {
    m: usize,
    n: usize,
    pairs: usize,
    /// a packed by [`pack_rows`], every block of rows.
    a: &'a [u32],
    panel: &'a [u32],
    first: usize,
    /// A whole number of row blocks from its start.
    rows: std::ops::Range<usize>,
    out: SharedOut<bf16>,
}

impl PanelTask<'_> {
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn run(&self) {
        for r0 in self.rows.clone().step_by(BLOCK_ROWS) {
            // SAFETY: the features are enabled here.
            unsafe { self.block(r0) };
        }
    }

    /// Rows `r0 .. r0 + BLOCK_ROWS` (those below m) of the task's columns, over the whole
    /// reduction.
    #[inline(always)]
    unsafe fn block(&self, r0: usize) {
        let pairs = self.pairs;
        let a = &self.a[r0 * pairs..][..pairs * BLOCK_ROWS];
        let b = &self.panel[..pairs * PANEL];
        let mut acc = [[_mm512_setzero_ps(); 2]; BLOCK_ROWS];
        for p in 0..pairs {
            // SAFETY: p < pairs, so both reads lie in the slices above (a block of rows holds
            // BLOCK_ROWS words a pair, a panel PANEL).
            let (a, b) = unsafe { (a.as_ptr().add(p * BLOCK_ROWS), b.as_ptr().add(p * PANEL)) };
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.cast()));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(16).cast()));
            for (r, acc) in acc.iter_mut().enumerate() {
                let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(a.add(r).read() as i32));
                acc[0] = _mm512_dpbf16_ps(acc[0], x, b0);
                acc[1] = _mm512_dpbf16_ps(acc[1], x, b1);
            }
        }
        let valid = PANEL.min(self.n - self.first);
        // Lanes of each vector below n: rounded in registers and stored under a mask; a vector
        // wholly past n is not stored (its address would lie past the row, past c on the last).
        let masks: [__mmask16; 2] = std::array::from_fn(|v| ((1u32 << valid.saturating_sub(16 * v).min(16)) - 1) as u16);
        for (r, acc) in acc.iter().enumerate().take(self.m.saturating_sub(r0)) {
            // SAFETY: row r0 + r, columns first .. first + valid belong to this task alone.
            let to = unsafe { self.out.slice((r0 + r) * self.n + self.first, valid) }.as_mut_ptr();
            for (v, (&acc, &mask)) in acc.iter().zip(&masks).enumerate().take(valid.div_ceil(16)) {
                // SAFETY: the masked store writes only the lanes below `valid`, which lie in `to`;
                // the features are enabled in `run`, which this is inlined into.
                unsafe { _mm256_mask_storeu_epi16(to.add(16 * v).cast(), mask, bf16_bits(acc)) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matmul::bf16_amx::amx;
    use crate::matmul::bf16_pairs_in_place::in_place as pairs_in_place;
    use crate::matmul::amx::STEP;
    use crate::matmul::bf16_amx_in_place::in_place;
    use crate::matmul::dots::dots;
    use crate::rng::Rng;

    type Form = fn(usize, usize, usize, &[bf16], &[bf16], &mut [bf16]);

    /// The forms this CPU runs: the AMX form where it has AMX.
    fn forms() -> Vec<(&'static str, Form)> {
        let mut forms: Vec<(&'static str, Form)> = vec![("packed", packed), ("in place", pairs_in_place), ("dots", dots::<bf16>)];
        if crate::matmul::amx::available() {
            forms.push(("amx", amx));
        }
        forms
    }

    /// The in-place AMX form where the CPU has AMX: k a multiple of its step.
    fn in_place_form(k: usize) -> Option<(&'static str, Form)> {
        (crate::matmul::amx::available() && k.is_multiple_of(STEP)).then_some(("amx in place", in_place as Form))
    }

    fn random(rng: &mut Rng, len: usize) -> Vec<bf16> {
        (0..len).map(|_| bf16::from_f64(rng.normal())).collect()
    }

    /// Every form this CPU runs, whatever the row thresholds send them, against the f64 product
    /// of the stored values: one rounding to bf16 plus the f32 sums' error. Shapes past every
    /// edge: rows past a register block (8, 4, AMX's 32) and a task (64, 128), columns past a
    /// panel (32), a block of columns (512) and a dot task (64), odd k (the last pair's high
    /// half), k below and past a step of 32, depths whose weight rows crowd a cache set (the
    /// in-place form's narrow blocks, over two panels of a and over a last one alone), whole
    /// blocks of rows and columns last (the AMX in-place form writes a block's last quarter
    /// after the loop).
    #[test]
    fn every_form_matches_the_f64_product() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        let mut rng = Rng::new(5);
        for (m, n, k) in [(1, 1, 1), (4, 100, 70), (9, 300, 45), (70, 33, 2), (133, 530, 257), (261, 45, 33), (8, 2048, 31), (5, 64, 96), (300, 40, 100), (70, 530, 64), (33, 100, 32), (40, 30, 2048), (70, 45, 1024), (2, 300, 45), (64, 64, 128), (96, 50, 96)] {
            let (a, b) = (random(&mut rng, m * k), random(&mut rng, n * k));
            let want: Vec<f64> = (0..m * n).map(|idx| (0..k).map(|p| a[idx / n * k + p].to_f64() * b[idx % n * k + p].to_f64()).sum()).collect();
            for (form, f) in forms().into_iter().chain(in_place_form(k)) {
                let mut c = vec![bf16::NAN; m * n];
                f(m, n, k, &a, &b, &mut c);
                for (i, (got, want)) in c.iter().zip(&want).enumerate() {
                    let tolerance = want.abs() * 2f64.powi(-8) + 1e-4 * (k as f64).sqrt();
                    assert!((got.to_f64() - want).abs() <= tolerance, "{form} m={m} n={n} k={k} element {i}: {got} vs {want}");
                }
            }
        }
    }

    /// A row of odd length ends in a pair whose high half is zero, not the next row's first
    /// element: an ∞ there reaches its own row's sums only — in a row of a (each form packs a
    /// or reads it in place) and in a row of the weights (the in-place form broadcasts their
    /// pairs from where they lie).
    #[test]
    fn an_odd_row_does_not_read_the_next_row() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        let (n, k) = (40, 33);
        for m in [5, 261] {
            for side in ["a", "b"] {
                let (mut a, mut b) = (vec![bf16::ONE; m * k], vec![bf16::ONE; n * k]);
                // Row 1, element 0 of that side: row 1 or column 1 of c.
                let row_1 = if side == "a" { &mut a[k..] } else { &mut b[k..] };
                row_1[0] = bf16::INFINITY;
                for (form, f) in forms() {
                    let mut c = vec![bf16::NAN; m * n];
                    f(m, n, k, &a, &b, &mut c);
                    for (i, c) in c.iter().enumerate() {
                        let infinite = if side == "a" { i / n == 1 } else { i % n == 1 };
                        let want = if infinite { f32::INFINITY } else { k as f32 };
                        assert_eq!(c.to_f32(), want, "{form} m={m} ∞ in {side} element {i}");
                    }
                }
            }
        }
    }

    /// The two packed forms add the same pairs in the same order for every element of c (one
    /// packs the weights, the other a), so they agree bit for bit: an error in either's
    /// indexing or edges that stays within the f64 test's tolerance fails here.
    #[test]
    fn the_packed_forms_agree_exactly() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        let mut rng = Rng::new(9);
        for (m, n, k) in [(97, 301, 64), (33, 13, 511), (300, 50, 2), (64, 4, 7), (45, 20, 1024), (40, 203, 1024), (70, 45, 1024), (130, 9, 2048)] {
            let (a, b) = (random(&mut rng, m * k), random(&mut rng, n * k));
            let (mut weights_packed, mut rows_packed) = (vec![bf16::NAN; m * n], vec![bf16::ZERO; m * n]);
            packed(m, n, k, &a, &b, &mut weights_packed);
            pairs_in_place(m, n, k, &a, &b, &mut rows_packed);
            for (i, (x, y)) in weights_packed.iter().zip(&rows_packed).enumerate() {
                assert_eq!(x.to_bits(), y.to_bits(), "m={m} n={n} k={k} element {i}");
            }
        }
    }
}
