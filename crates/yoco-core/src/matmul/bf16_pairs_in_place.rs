//! The bf16-pairs form of `c[m, n] = a[m, k] · b[n, k]ᵀ` for products whose `a` is small
//! (`bf16_pairs.rs` has the one that packs the weights): the weights `b` read where they lie, a
//! pair of each of 12 weight rows broadcast a step, and `a`'s rows packed into the pair form's
//! panels instead (`pack_panel`, 32 rows a panel, lanes across rows) — the operands' roles swapped,
//! as the AMX in-place form swaps them (`bf16_amx_in_place.rs`), so that the registers hold
//! blocks of `cᵀ`, transposed on the way out.
//!
//! Packing the weights is a pass over all of them, per call, that the arithmetic does not hide:
//! at 512 × 2048 × 768 on the 2-core Zen 4 its transposes and copies took a tenth of the product
//! (`perf`), and the product ran at ~81% of the pair rate where its register block alone ran at
//! ~97%. Here only `a` is packed; the weights stream through the broadcasts, in the arithmetic's
//! shadow. What it costs instead: 12 rows of weights read at once (12 streams), and a transpose
//! of each block of sums, which a short reduction does not repay. Measured (the 2-core Zen 4,
//! old and new binaries in turn, GFLOP/s): 512 × 2048 × 768 400–420 against 330–400, 256 rows
//! 395–425 against 255–355 (the dot form's), 32–128 rows 350–420 against 325–375 (dot form),
//! 1024 × 704 × 256 385–410 against 370–380; level at 2048 × 704 × 256 and 512 × 768 × 2048;
//! 8–12% slower at 8192 × 768 × 256, 5–10% at 768–2048 rows of depth 2048, 2048³ — so the caller
//! takes this form while `a` has fewer than [`super::PAIRS_IN_PLACE_ELEMENTS`] elements (about
//! what the two cores' level-2 caches hold of it packed).
//!
//! Numerics: those of `bf16_pairs.rs`, sum for sum — each lane of c adds the same pairs in the same
//! order, so the two forms agree bit for bit (tested).

use std::arch::x86_64::*;

use half::bf16;
use rayon::prelude::*;

use super::bf16_pairs::{bits, pack_panel, PANEL};
use super::scratch::Scratch;
use super::shared_out::SharedOut;
use super::words::transpose_words;
use crate::simd::x86::bf16_bits;

/// Weight rows (columns of c) per register block: 12 × 2 vectors of accumulators, with the two
/// vectors of a's panel and a broadcast, 27 of the 32 registers.
const BLOCK_COLS: usize = 12;
/// Columns of c per task: a whole number of register blocks.
const TASK_COLS: usize = 8 * BLOCK_COLS;

/// The in-place form: lengths checked by the caller, `m, n, k > 0`, `bf16_pairs::available`
/// true.
pub(super) fn in_place(m: usize, n: usize, k: usize, a: &[bf16], b: &[bf16], c: &mut [bf16]) {
    let (a, b) = (bits(a), bits(b));
    let pairs = k.div_ceil(2);
    // Kept from earlier products (`scratch.rs`): pack_panel writes every pair, zeros for the
    // rows past m and the high half of an odd k's last pair.
    let mut panels = Scratch::<u32>::take(m.div_ceil(PANEL) * pairs * PANEL);
    panels.par_chunks_mut(pairs * PANEL).enumerate().for_each(|(i, panel)| pack_panel(panel, a, i * PANEL, m, k));
    let out = SharedOut::new(c);
    let col_tasks = n.div_ceil(TASK_COLS);
    let panels = &panels;
    // Consecutive tasks share a panel, so that a thread's run of them reads it from its cache.
    (0..m.div_ceil(PANEL) * col_tasks).into_par_iter().for_each(|t| {
        let (i, j) = (t / col_tasks, t % col_tasks);
        let task = InPlaceTask { m, n, k, panel: &panels[i * pairs * PANEL..][..pairs * PANEL], b, r0: i * PANEL, out };
        // SAFETY: `available` (the caller's check) found AVX-512F, BW, VL and BF16.
        unsafe { task.run(j * TASK_COLS..((j + 1) * TASK_COLS).min(n)) }
    });
}

/// A task of the in-place form: c's rows `r0 .. r0 + 32` (those below m).
struct InPlaceTask<'a> {
    m: usize,
    n: usize,
    k: usize,
    /// Rows r0 .. r0 + 32 of a packed by `pack_panel`: [pairs][32] words.
    panel: &'a [u32],
    b: &'a [u16],
    r0: usize,
    out: SharedOut<bf16>,
}

impl InPlaceTask<'_> {
    /// Columns `cols` of the task's rows: register blocks of 12 columns, then of 4 (the last of
    /// them partial).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn run(&self, cols: std::ops::Range<usize>) {
        let twelves = cols.start + cols.len() / BLOCK_COLS * BLOCK_COLS;
        // SAFETY (each call): the features are enabled here; the columns lie below n.
        for j0 in (cols.start..twelves).step_by(BLOCK_COLS) {
            unsafe { self.block::<BLOCK_COLS>(j0, BLOCK_COLS) };
        }
        for j0 in (twelves..cols.end).step_by(4) {
            unsafe { self.block::<4>(j0, (cols.end - j0).min(4)) };
        }
    }

    /// Columns `j0 .. j0 + count` (`count ≤ J`) of the task's rows, over the whole reduction:
    /// `acc[j][v]` sums c[r0 + 16v + lane, j0 + j]. A partial block's rows past `count` repeat
    /// its last weight row (their sums are not stored).
    #[inline(always)]
    unsafe fn block<const J: usize>(&self, j0: usize, count: usize) {
        let (k, whole) = (self.k, self.k / 2);
        let panel = self.panel.as_ptr();
        let b = self.b[j0 * k..][..count * k].as_ptr();
        let row = |j: usize| j.min(count - 1) * k;
        // SAFETY: the features are there (`run`'s).
        let mut acc = [[unsafe { _mm512_setzero_ps() }; 2]; J];
        for p in 0..whole {
            // SAFETY: the panel holds 32 words for each pair; each weight row read holds
            // elements 2p and 2p + 1 < k (4 bytes, read unaligned).
            unsafe { step(&mut acc, panel.add(p * PANEL), |j| b.add(row(j) + 2 * p).cast::<i32>().read_unaligned()) };
        }
        if k % 2 == 1 {
            // An odd k's last element alone, its pair's high half zero (as in the panel): a
            // 4-byte read would take the next row's first element, an ∞ there a NaN here.
            // SAFETY: as above, for pair `whole`; element k − 1 of each row read lies in the block.
            unsafe { step(&mut acc, panel.add(whole * PANEL), |j| b.add(row(j) + k - 1).read() as i32) };
        }
        // SAFETY: the features are there (`run`'s).
        unsafe { self.write_transposed(&acc, j0, count) };
    }

    /// `acc[j][v]` (c[r0 + 16v + lane, j0 + j]) rounded to bf16 into the rows of c below m and
    /// the `count` columns from j0: each vector's 16 × J block transposed in registers (columns
    /// past J zeros), a row's `count` columns stored under a mask.
    ///
    /// The mask is never a constant of one lane: LLVM (Rust 1.95) compiled the masked store of one
    /// lane, constant, of a narrowed vector as a 4-byte store of the lane before narrowing, which
    /// wrote a zero over the next element of c (caught by `every_form_matches_the_f64_product`
    /// when blocks of one column had their own constant mask).
    ///
    /// # Safety
    /// AVX-512F, BW and VL (inlined into `run`).
    #[inline(always)]
    unsafe fn write_transposed<const J: usize>(&self, acc: &[[__m512; 2]; J], j0: usize, count: usize) {
        let mask = ((1u32 << count) - 1) as __mmask16;
        for v in 0..2 {
            let first = self.r0 + 16 * v;
            if first >= self.m {
                break;
            }
            // SAFETY: the features (this function's promise); no memory is touched.
            let rows = unsafe { transpose_words(std::array::from_fn(|j| if j < J { _mm512_castps_si512(acc[j][v]) } else { _mm512_setzero_si512() })) };
            for (i, row) in rows.iter().enumerate().take(self.m - first) {
                // SAFETY: row first + i < m, columns j0 .. j0 + count ≤ n belong to this task
                // alone; the masked store writes those `count` elements only.
                unsafe {
                    let to = self.out.slice((first + i) * self.n + j0, count).as_mut_ptr();
                    _mm256_mask_storeu_epi16(to.cast(), mask, bf16_bits(_mm512_castsi512_ps(*row)));
                }
            }
        }
    }
}

/// One pair of the reduction: the panel's two vectors at `panel` (32 rows of a) against
/// `weight_pair(j)`, the pair of weight row j as one 32-bit word, broadcast.
///
/// # Safety
/// AVX-512F and BF16 (inlined into `run`); `panel` points to 32 readable words.
#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
unsafe fn step<const J: usize>(acc: &mut [[__m512; 2]; J], panel: *const u32, weight_pair: impl Fn(usize) -> i32) {
    // SAFETY: the caller's promises; __m512bh takes the pairs' bits as they are.
    unsafe {
        let a0: __m512bh = std::mem::transmute(_mm512_loadu_si512(panel.cast()));
        let a1: __m512bh = std::mem::transmute(_mm512_loadu_si512(panel.add(16).cast()));
        for (j, acc) in acc.iter_mut().enumerate() {
            let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(weight_pair(j)));
            acc[0] = _mm512_dpbf16_ps(acc[0], a0, x);
            acc[1] = _mm512_dpbf16_ps(acc[1], a1, x);
        }
    }
}
