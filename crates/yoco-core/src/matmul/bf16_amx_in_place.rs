//! The AMX form of a bf16 product for fewer rows (`bf16_amx.rs` has the one for many):
//! `c[m, n] = a[m, k] · b[n, k]ᵀ` with the weights `b` read where they lie, 16 of their rows a
//! tile, and `a`'s rows packed into the pair form's panels instead — the operands' roles swapped,
//! so that the tiles hold blocks of `cᵀ`, transposed in registers on the way out. At a few dozen
//! rows, packing the weights cost more than the product (2048 × 768 weights: 3 MiB written a call
//! for 100 MFLOP at 32 rows).
//!
//! The weights are read where they lie, which for a tensor is on cache lines (`CpuStorage` is
//! aligned: a tile row split over two lines loads several times slower, `crate::aligned`). A
//! slice that is not aligned is read as it is: copying each block into an aligned buffer first
//! measured slower with weights the cache did not hold (the matmul bench: 8 rows 0.26 → 0.32
//! ms, 32 rows 0.21–0.26 → 0.30–0.32).
//!
//! A tile row of weights is 32 elements, so k must be a multiple of 32 (a row of weights would
//! run into the next one otherwise); the caller sends other products to the packed AMX form. The
//! last block of weights, when n is not a multiple of 32, is copied with zero rows after it.
//! Numerics as the other forms' (`bf16_pairs.rs`).

use std::arch::x86_64::*;

use half::bf16;
use rayon::prelude::*;


use super::amx::{quarters_after_step, Tiles, STEP, TILE_ROWS};
use super::bf16_pairs::{bits, pack_panel, PANEL};
use super::words::{store_rows_of_columns, Rounding};
use super::scratch::Scratch;
use super::shared_out::SharedOut;

/// Weight rows in a register block (two tiles), and rows of `a` in a panel.
const BLOCK: usize = 2 * TILE_ROWS;
const _: () = assert!(BLOCK == PANEL);
/// Blocks of weights per task.
const TASK_BLOCKS: usize = 2;

/// The in-place form: lengths checked by the caller, `m, n, k > 0`, k a multiple of [`STEP`],
/// `amx::available` true.
pub(super) fn in_place(m: usize, n: usize, k: usize, a: &[bf16], b: &[bf16], c: &mut [bf16]) {
    assert!(k.is_multiple_of(STEP), "whole steps of the reduction");
    let (a, b) = (bits(a), bits(b));
    let pairs = k / 2;
    // Both kept from earlier products (`scratch.rs`): pack_panel writes every pair (k is a whole
    // number of steps) and zeros for a's rows past m; the tail's weight rows past n hold other
    // values, which reach only c's columns past n, not stored.
    let mut panels = Scratch::<u32>::take(m.div_ceil(PANEL) * pairs * PANEL);
    panels.par_chunks_mut(pairs * PANEL).enumerate().for_each(|(i, panel)| pack_panel(panel, a, i * PANEL, m, k));
    let whole = n - n % BLOCK;
    let mut tail = Scratch::<u16>::take(if whole < n { BLOCK * k } else { 0 });
    tail[..(n - whole) * k].copy_from_slice(&b[whole * k..]);
    let out = SharedOut::new(c);
    let blocks = n.div_ceil(BLOCK);
    let task = InPlaceTask { m, n, k, b, whole, tail: &tail, panels: &panels, out };
    (0..blocks.div_ceil(TASK_BLOCKS)).into_par_iter().for_each(|t| {
        // SAFETY: `amx::available` (the caller's check) found AMX and AVX512-BF16.
        unsafe { task.run(t * TASK_BLOCKS..((t + 1) * TASK_BLOCKS).min(blocks)) };
    });
}

/// A task of the in-place form: columns of `c` a block of weights at a time.
struct InPlaceTask<'a> {
    m: usize,
    n: usize,
    k: usize,
    /// The weights, [n][k].
    b: &'a [u16],
    /// Weight rows in whole blocks; the rest are copied into `tail`.
    whole: usize,
    /// The last block of weights, when n is not a multiple of 32, with rows past n after it.
    tail: &'a [u16],
    /// a packed by `pack_panel`: [m / 32][k / 2][32] pairs.
    panels: &'a [u32],
    out: SharedOut<bf16>,
}

impl InPlaceTask<'_> {
    /// `c[.., first .. first + BLOCK]` (the columns below n) for the blocks of weights `blocks`
    /// (rows `first = 32 · block ..`), every panel of a against each.
    ///
    /// The sums of each block of weights × panel of a are written out to c while the tiles
    /// multiply the next pair, a quarter between steps (`amx::quarters_after_step`): written
    /// after the tiles, the transposes and stores had taken 0.6 of 1.85 ms at 512 × 2048 × 768
    /// on one thread, the tile unit idle meanwhile.
    ///
    /// # Safety
    /// `amx::available` returned true.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn run(&self, blocks: std::ops::Range<usize>) {
        let (pairs, steps) = (self.k / 2, self.k / STEP);
        // SAFETY: AMX is there (this function's promise).
        let mut tiles = unsafe { Tiles::configure() };
        // Two buffers of sums: the tiles' next sums go into one while the other's are written
        // out. `previous`: which buffer holds sums not yet written, and their place in c
        // (the weights' first row: c's first column; a's first row).
        let mut sums = [[[0f32; PANEL]; BLOCK]; 2];
        let mut previous: Option<(usize, usize, usize)> = None;
        for (i, (first, r0)) in blocks.flat_map(|block| (0..self.m.div_ceil(PANEL)).map(move |p| (block * BLOCK, p * PANEL))).enumerate() {
            let weights = if first < self.whole { &self.b[first * self.k..][..BLOCK * self.k] } else { self.tail };
            assert_eq!(weights.len(), BLOCK * self.k, "a whole block of weights");
            let panel = &self.panels[r0 / PANEL * pairs * PANEL..][..pairs * PANEL];
            let [even, odd] = &mut sums;
            let (filling, written) = if i % 2 == 0 { (even, &*odd) } else { (odd, &*even) };
            tiles.zero_sums();
            for s in 0..steps {
                // SAFETY: step s of the 32 weight rows is 64 bytes at s·64 of each row of 2k
                // bytes (k is a multiple of 32), and its 16 pairs × 32 rows of a the panel's
                // 2 KiB from s·16·32 words.
                unsafe { tiles.multiply_add_2x2(weights[s * STEP..].as_ptr(), 2 * self.k, panel[s * (STEP / 2) * PANEL..][..STEP / 2 * PANEL].as_ptr(), 4 * PANEL) };
                if let Some((_, before_first, before_r0)) = previous {
                    for quarter in quarters_after_step(s, steps) {
                        // SAFETY: the features are enabled here.
                        unsafe { self.write_quarter(written, quarter, before_r0, before_first) };
                    }
                }
            }
            tiles.store_sums(filling);
            previous = Some((i % 2, first, r0));
        }
        if let Some((buffer, first, r0)) = previous {
            let written = &sums[buffer];
            for quarter in 0..4 {
                // SAFETY: the features are enabled here.
                unsafe { self.write_quarter(written, quarter, r0, first) };
            }
        }
    }

    /// Quarter `quarter` (rows `16 · (quarter / 2)`, columns `16 · (quarter % 2)`) of
    /// `sums[w][r]` = c[r0 + r, first + w], rounded to bf16 (as `bf16_amx.rs` rounds) into the
    /// rows of c below m and columns below n, transposed in registers (`store_rows_of_columns`);
    /// nothing where the quarter lies past them.
    #[inline(always)]
    unsafe fn write_quarter(&self, sums: &[[f32; PANEL]; BLOCK], quarter: usize, r0: usize, first: usize) {
        let (rh, wh) = (16 * (quarter / 2), 16 * (quarter % 2));
        let (rows, cols) = (PANEL.min(self.m - r0), BLOCK.min(self.n - first));
        if rh >= rows || wh >= cols {
            return;
        }
        // SAFETY: AVX-512F, BW, VL and BF16 (the caller's); each load reads 16 f32 of a row of
        // sums.
        let columns = std::array::from_fn(|i| unsafe { _mm512_castps_si512(_mm512_loadu_ps(sums[wh + i][rh..].as_ptr())) });
        // SAFETY: the features; rows r0 + rh .. (below m) and columns first + wh .. (below n)
        // belong to this task alone.
        unsafe { store_rows_of_columns(&self.out, self.n, columns, (r0 + rh, rows - rh), (first + wh, (cols - wh).min(16)), Rounding::Instruction) };
    }
}
