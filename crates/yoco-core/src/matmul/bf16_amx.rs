//! The AMX form of a bf16 product for many rows (`amx.rs`; `bf16_amx_in_place.rs` has the one for
//! fewer): `c[m, n] = a[m, k] · b[n, k]ᵀ`, all bf16, sums in f32, `c` rounded once. A register
//! block is 2 × 2 tiles of sums (32 rows × 32 columns of `c`), fed a step of 32 elements of the
//! reduction at a time by two tiles of `a`'s rows and two of the weights' columns:
//! - `a` is copied step-major ([`tile_rows`]), its rows padded to a whole number of blocks and the
//!   reduction to a whole number of steps with zeros (which keep the padded products finite and
//!   zero);
//! - the weights are packed per call into the packed form's panels of 32 columns' pairs
//!   (`bf16_pairs.rs`), which are exactly the tiles `tdpbf16ps` takes, a block of columns at a
//!   time, with the reduction padded likewise.
//!
//! Numerics as the pair instruction's (`bf16_pairs.rs`): products exact in f32, summed in f32
//! (in another order), denormal inputs and sums count as zero.

use std::arch::x86_64::*;

use half::bf16;
use rayon::prelude::*;

use super::amx::{Tiles, STEP, TILE_ROWS};
use super::bf16_pairs::{bits, pack_panel, PANEL};
use super::scratch::Scratch;
use super::shared_out::SharedOut;

/// Rows of `a` in a register block (two tiles).
const BLOCK_ROWS: usize = 2 * TILE_ROWS;
/// Columns packed and multiplied per block (a whole number of panels).
const COLUMNS: usize = 512;
/// Rows of `a` per task (a whole number of blocks).
const ROWS: usize = 128;

/// The AMX form: lengths checked by the caller, `m, n, k > 0`, `amx::available` true.
pub(super) fn amx(m: usize, n: usize, k: usize, a: &[bf16], b: &[bf16], c: &mut [bf16]) {
    let (a, b) = (bits(a), bits(b));
    let depth = k.next_multiple_of(STEP);
    let padded_rows = m.next_multiple_of(BLOCK_ROWS);
    let mut a_tiles = Scratch::<u16>::take(padded_rows * depth);
    a_tiles.par_chunks_mut(BLOCK_ROWS * depth).enumerate().for_each(|(block, tiles)| tile_rows(tiles, a, block * BLOCK_ROWS, m, k));
    let pairs = depth / 2;
    let out = SharedOut::new(c);
    let mut panels_packed = Scratch::<u32>::take(pairs * COLUMNS.min(n.next_multiple_of(PANEL)));
    for first in (0..n).step_by(COLUMNS) {
        let panels = (n - first).min(COLUMNS).div_ceil(PANEL);
        panels_packed[..panels * pairs * PANEL].par_chunks_mut(pairs * PANEL).enumerate().for_each(|(j, panel)| {
            pack_panel(panel, b, first + j * PANEL, n, k);
            // pack_panel writes the first k.div_ceil(2) pairs; those past them pad the last step
            // and must be zeros (they meet a's padding, zeros too, in sums that are stored).
            panel[k.div_ceil(2) * PANEL..].fill(0);
        });
        let (a_tiles, panels_packed) = (&a_tiles, &panels_packed);
        let row_chunks = padded_rows.div_ceil(ROWS);
        (0..row_chunks * panels).into_par_iter().for_each(|t| {
            let (chunk, j) = (t / panels, t % panels);
            let task = AmxTask {
                m,
                n,
                depth,
                a: a_tiles,
                panel: &panels_packed[j * pairs * PANEL..][..pairs * PANEL],
                first: first + j * PANEL,
                rows: chunk * ROWS..((chunk + 1) * ROWS).min(padded_rows),
                out,
            };
            // SAFETY: `amx::available` (the caller's check) found AMX and AVX512-BF16.
            unsafe { task.run() }
        });
    }
}

/// Rows `first .. first + BLOCK_ROWS` of a (those below m) into `tiles`, step after step of the
/// reduction: `[steps][BLOCK_ROWS][STEP]`, zeros past m and k (written here: the buffer is kept
/// from earlier products), so that the two tiles a step reads are 2 KiB in one piece and a
/// block's steps one stream (rows read where they lie, 32 rows apart, were as many streams, and
/// the loads waited on them).
fn tile_rows(tiles: &mut [u16], a: &[u16], first: usize, m: usize, k: usize) {
    let rows = BLOCK_ROWS.min(m.saturating_sub(first));
    for (s, step) in tiles.chunks_exact_mut(BLOCK_ROWS * STEP).enumerate() {
        let span = s * STEP..((s + 1) * STEP).min(k);
        for (r, to) in step.chunks_exact_mut(STEP).enumerate() {
            let from = if r < rows { &a[(first + r) * k..][span.clone()] } else { &[][..] };
            to[..from.len()].copy_from_slice(from);
            to[from.len()..].fill(0);
        }
    }
}

/// One task of the AMX form: `c[rows, first .. first + PANEL]` (the rows below m, the columns
/// below n).
struct AmxTask<'a> {
    m: usize,
    n: usize,
    /// k padded to a whole number of steps: the row length of `a`.
    depth: usize,
    /// a by [`tile_rows`]: [blocks][steps][BLOCK_ROWS][STEP].
    a: &'a [u16],
    /// [depth / 2][PANEL] pairs.
    panel: &'a [u32],
    first: usize,
    /// Whole blocks of padded rows.
    rows: std::ops::Range<usize>,
    out: SharedOut<bf16>,
}

impl AmxTask<'_> {
    /// # Safety
    /// `amx::available` returned true.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn run(&self) {
        // SAFETY: AMX is there (this function's promise).
        let mut tiles = unsafe { Tiles::configure() };
        let mut sums = [[0f32; PANEL]; BLOCK_ROWS];
        let tile_step = BLOCK_ROWS * STEP;
        for r0 in self.rows.clone().step_by(BLOCK_ROWS) {
            tiles.zero_sums();
            let a = &self.a[r0 * self.depth..][..BLOCK_ROWS * self.depth];
            for s in 0..self.depth / STEP {
                // SAFETY: step s of the block's 32 rows is the 2 KiB of `a` from s·tile_step
                // (32 rows of 64 bytes), and its 16 pairs × 32 columns the panel's 2 KiB.
                unsafe { tiles.multiply_add_2x2(a[s * tile_step..][..tile_step].as_ptr(), 2 * STEP, self.panel[s * (STEP / 2) * PANEL..][..STEP / 2 * PANEL].as_ptr(), 4 * PANEL) };
            }
            tiles.store_sums(&mut sums);
            // SAFETY: the features are enabled here.
            unsafe { self.write_block(r0, &sums) };
        }
    }

    /// The block's sums, rounded to bf16 (`vcvtneps2bf16`: to nearest even, a denormal sum 0),
    /// into `c`'s rows from `r0` below m and the task's columns below n.
    #[inline(always)]
    unsafe fn write_block(&self, r0: usize, sums: &[[f32; PANEL]; BLOCK_ROWS]) {
        let cols = PANEL.min(self.n - self.first);
        let mask: __mmask32 = if cols == PANEL { !0 } else { (1u32 << cols) - 1 };
        for (r, row) in sums.iter().enumerate().take(self.m.saturating_sub(r0)) {
            // SAFETY: AVX-512F, BW and BF16 (the caller's); the loads read the row's 32 f32.
            let packed = unsafe {
                let low: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(_mm512_loadu_ps(row.as_ptr())));
                let high: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(_mm512_loadu_ps(row[16..].as_ptr())));
                _mm512_inserti64x4::<1>(_mm512_castsi256_si512(low), high)
            };
            // SAFETY: row r0 + r < m, columns first .. first + cols belong to this task alone;
            // the masked store writes those `cols` elements only.
            let to = unsafe { self.out.slice((r0 + r) * self.n + self.first, cols) };
            unsafe { _mm512_mask_storeu_epi16(to.as_mut_ptr().cast(), mask, packed) };
        }
    }
}
