//! The bf16-pairs form of `c[m, n] = a[m, k] · b[n, k]ᵀ` for products of 32 to 1023 rows
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
//! shadow. What it costs instead: a transpose of each block of sums, which a short reduction
//! does not repay, and 12 rows of weights read at once, which at some depths fall in one set of
//! the level-1 cache ([`rows_crowd_a_set`]; 6 a block there, against two panels of `a`). So the
//! caller takes this form from 32 rows (the dot form's below) to `PAIRS_PACKED_ROWS` (1024; the
//! measurements are there, in `mod.rs`).
//!
//! Numerics: those of `bf16_pairs.rs`, sum for sum — each lane of c adds the same pairs in the same
//! order, so the two forms agree bit for bit (tested).

use std::arch::x86_64::*;

use half::bf16;
use rayon::prelude::*;

use super::bf16_pairs::{bits, pack_panel, PANEL};
use super::scratch::Scratch;
use super::shared_out::SharedOut;
use super::words::{store_rows_of_columns, Rounding};

/// Weight rows (columns of c) per register block: 12 × 2 vectors of accumulators, with the two
/// vectors of a's panel and a broadcast, 27 of the 32 registers.
const BLOCK_COLS: usize = 12;
/// Weight rows per register block where [`BLOCK_COLS`] rows would crowd a cache set.
const NARROW_BLOCK_COLS: usize = 6;
/// Panels of `a` (32 rows each) a narrow block multiplies at once: 6 weight rows × 4 vectors of
/// accumulators, the four vectors of the two panels and a broadcast, 29 of the 32 registers. One
/// panel, 6 × 2, had loaded 2 vectors of the panel and 6 pairs a step for 12 products, and read
/// the panel (128 KiB at a depth of 2048, from level 2) twice as often for its products as a
/// wide block does; two take 4 and 6 for 24. Measured on the 2-core Zen 5, both threads, the two
/// forms in turn (`examples/matmul_probe.rs`), four rounds: 512 × 768 × 2048 0.81–0.83 →
/// 0.89–0.95 of the pair rate (2.08–2.17 → 1.82–1.90 ms), 128 × 768 × 2048 0.73–0.80 →
/// 0.79–0.89. At depths that do not crowd a set, 6 × 4 in place of 12 × 2 was slower
/// (512 × 2048 × 768 0.86–0.92 → 0.76–0.79): the wide block reads the panel less.
const NARROW_PANELS: usize = 2;
/// Columns of c per task: a whole number of register blocks of either width.
const TASK_COLS: usize = 8 * BLOCK_COLS;
/// Elements of a weight row (two lines of 64 bytes) by which the block's prefetches run ahead of
/// its reads: a register block reads a pair of each of its rows a step, so it enters each row's
/// next line every 16 steps (some 400 cycles on Zen 4) and reads its rows' lines from the last
/// level cache or memory — every block of rows of `a` reads all of the weights again, and 12
/// streams a block are more than the hardware's prefetchers follow. So step `p` prefetches row
/// `p mod 16`'s line two lines ahead, each row once in 16 steps. Measured on the 2-core Zen 4, the
/// two builds in turn (medians of the calls' fractions of the pair-rate round beside them,
/// `examples/matmul_probe.rs`): on one thread 128 × 2048 × 768 0.63–0.69 → 0.78–0.82,
/// 512 × 2048 × 768 0.74–0.81 → 0.81–0.85, 512 × 768 × 2048 0.77–0.80 → 0.77–0.84; on two, five
/// rounds, 0.68–0.75 → 0.71–0.81, 0.76–0.80 → 0.74–0.85 and level. One line ahead and four were
/// within those ranges; slicing the reduction so that a slice of the panel stayed in the level-1
/// cache across the task's blocks (128 and 192 pairs) was slower, with the prefetches or without.
const PREFETCH_AHEAD: usize = 64;

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
    let (panels, narrow) = (&panels, rows_crowd_a_set(k));
    // Narrow blocks take two panels' rows at once (`NARROW_PANELS`); the last task may have one.
    let task_panels = if narrow { NARROW_PANELS } else { 1 };
    let panel_count = m.div_ceil(PANEL);
    // Consecutive tasks share their panels, so that a thread's run of them reads them from its
    // cache.
    (0..panel_count.div_ceil(task_panels) * col_tasks).into_par_iter().for_each(|t| {
        let (i, j) = (t / col_tasks, t % col_tasks);
        let first = i * task_panels;
        let count = task_panels.min(panel_count - first);
        let task = InPlaceTask { m, n, k, panel: &panels[first * pairs * PANEL..][..count * pairs * PANEL], b, r0: first * PANEL, narrow, out };
        // SAFETY: `available` (the caller's check) found AVX-512F, BW, VL and BF16.
        unsafe { task.run(j * TASK_COLS..((j + 1) * TASK_COLS).min(n)) }
    });
}

/// A task of the in-place form: c's rows `r0 .. r0 + 32` (those below m), or `r0 .. r0 + 64` for
/// [`NARROW_PANELS`] panels.
struct InPlaceTask<'a> {
    m: usize,
    n: usize,
    k: usize,
    /// Rows r0 .. of a packed by `pack_panel`, one panel or [`NARROW_PANELS`]: [pairs][32] words
    /// each, one after the other.
    panel: &'a [u32],
    b: &'a [u16],
    r0: usize,
    /// Blocks of [`NARROW_BLOCK_COLS`] weight rows: [`rows_crowd_a_set`] for this depth.
    narrow: bool,
    out: SharedOut<bf16>,
}

impl InPlaceTask<'_> {
    /// Columns `cols` of the task's rows: register blocks of 12 columns × 2 vectors of rows (6
    /// columns × 4 vectors, two panels, where 12 weight rows would crowd a set of the level-1
    /// cache, [`rows_crowd_a_set`]; × 2 for a last task of one panel), then of 4 columns (the
    /// last of them partial).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn run(&self, cols: std::ops::Range<usize>) {
        // SAFETY (each): the features are enabled here.
        let panels = self.panel.len() / (self.k.div_ceil(2) * PANEL);
        match (self.narrow, panels) {
            (true, NARROW_PANELS) => unsafe { self.columns::<NARROW_BLOCK_COLS, { 2 * NARROW_PANELS }>(cols) },
            (true, _) => unsafe { self.columns::<NARROW_BLOCK_COLS, 2>(cols) },
            (false, _) => unsafe { self.columns::<BLOCK_COLS, 2>(cols) },
        }
    }

    /// [`run`](Self::run)'s columns in register blocks of `J` × `NV` vectors, then of 4 × `NV`.
    #[inline(always)]
    unsafe fn columns<const J: usize, const NV: usize>(&self, cols: std::ops::Range<usize>) {
        let blocks_end = cols.start + cols.len() / J * J;
        // SAFETY (each call): the features are there (`run`'s); the columns lie below n.
        for j0 in (cols.start..blocks_end).step_by(J) {
            unsafe { self.block::<J, NV>(j0, J) };
        }
        for j0 in (blocks_end..cols.end).step_by(4) {
            unsafe { self.block::<4, NV>(j0, (cols.end - j0).min(4)) };
        }
    }

    /// Columns `j0 .. j0 + count` (`count ≤ J`) of the task's rows, over the whole reduction:
    /// `acc[j][v]` sums c[r0 + 16v + lane, j0 + j], vectors 2q and 2q + 1 from panel q. A partial
    /// block's rows past `count` repeat its last weight row (their sums are not stored).
    #[inline(always)]
    unsafe fn block<const J: usize, const NV: usize>(&self, j0: usize, count: usize) {
        let (k, whole) = (self.k, self.k / 2);
        let panel_len = k.div_ceil(2) * PANEL;
        let panel = self.panel.as_ptr();
        let b = self.b[j0 * k..][..count * k].as_ptr();
        let row = |j: usize| j.min(count - 1) * k;
        // SAFETY: the features are there (`run`'s).
        let mut acc = [[unsafe { _mm512_setzero_ps() }; NV]; J];
        for p in 0..whole {
            // Row `p mod 16`'s line PREFETCH_AHEAD elements on ([`PREFETCH_AHEAD`]); past the
            // block's last row it is the next rows' or none (a prefetch does not fault).
            let ahead = p % 16;
            if ahead < J {
                // SAFETY: the features are there (`run`'s); the address is not dereferenced.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(row(ahead) + 2 * p + PREFETCH_AHEAD).cast()) };
            }
            // SAFETY: each of the task's NV / 2 panels holds 32 words for each pair; each weight
            // row read holds elements 2p and 2p + 1 < k (4 bytes, read unaligned).
            unsafe { step(&mut acc, panel.add(p * PANEL), panel_len, |j| b.add(row(j) + 2 * p).cast::<i32>().read_unaligned()) };
        }
        if k % 2 == 1 {
            // An odd k's last element alone, its pair's high half zero (as in the panel): a
            // 4-byte read would take the next row's first element, an ∞ there a NaN here.
            // SAFETY: as above, for pair `whole`; element k − 1 of each row read lies in the block.
            unsafe { step(&mut acc, panel.add(whole * PANEL), panel_len, |j| b.add(row(j) + k - 1).read() as i32) };
        }
        // SAFETY: the features are there (`run`'s).
        unsafe { self.write_transposed(&acc, j0, count) };
    }

    /// `acc[j][v]` (c[r0 + 16v + lane, j0 + j]) rounded to bf16 into the rows of c below m and
    /// the `count` columns from j0: each vector's 16 × J block transposed in registers (columns
    /// past J zeros) by `store_rows_of_columns`, whose mask `count` is never a constant 1.
    ///
    /// # Safety
    /// AVX-512F, BW and VL (inlined into `run`).
    #[inline(always)]
    unsafe fn write_transposed<const J: usize, const NV: usize>(&self, acc: &[[__m512; NV]; J], j0: usize, count: usize) {
        // The panels' vectors of rows, those that start below m.
        for (v, first) in (self.r0..self.m).step_by(16).take(NV).enumerate() {
            // SAFETY (the casts): the features (this function's promise).
            let columns = std::array::from_fn(|j| unsafe { if j < J { _mm512_castps_si512(acc[j][v]) } else { _mm512_setzero_si512() } });
            // SAFETY: the features; rows first .. (below m) and columns j0 .. j0 + count ≤ n
            // belong to this task alone.
            unsafe { store_rows_of_columns(&self.out, self.n, columns, (first, self.m - first), (j0, count), Rounding::Exact) };
        }
    }
}

/// One pair of the reduction: `NV` vectors of rows of a, two from each panel (the first at
/// `panel`, the next `panel_len` words on), against `weight_pair(j)`, the pair of weight row j as
/// one 32-bit word, broadcast.
///
/// # Safety
/// AVX-512F and BF16 (inlined into `run`); `panel` points to 32 readable words, and so does each
/// of the `NV / 2 − 1` pointers `panel_len` words apart after it.
#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
unsafe fn step<const J: usize, const NV: usize>(acc: &mut [[__m512; NV]; J], panel: *const u32, panel_len: usize, weight_pair: impl Fn(usize) -> i32) {
    // SAFETY: the caller's promises; __m512bh takes the pairs' bits as they are.
    unsafe {
        let a: [__m512bh; NV] = std::array::from_fn(|v| std::mem::transmute(_mm512_loadu_si512(panel.add(v / 2 * panel_len + v % 2 * 16).cast())));
        for (j, acc) in acc.iter_mut().enumerate() {
            let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(weight_pair(j)));
            for v in 0..NV {
                acc[v] = _mm512_dpbf16_ps(acc[v], a[v], x);
            }
        }
    }
}

/// Whether the lines of more than 4 of a register block's [`BLOCK_COLS`] weight rows, `2k`
/// bytes apart, fall in one set of a level-1 cache of 64 sets of 64-byte lines (Zen 4's and
/// recent Intel cores' 32 or 48 KiB, 8 or 12 ways): where they do, the lines the block reads each
/// step evict one another. A depth of 2048 puts every row 4 KiB from the last, all in one set:
/// measured on the 2-core Zen 4, 512 × 768 × 2048 ran at 320–360 GFLOP/s in place, level with or
/// below packing the weights (365–380), where a depth of 2040 ran at 390–440; in blocks of 6 rows
/// it runs at 360–410.
fn rows_crowd_a_set(k: usize) -> bool {
    const LINE: usize = 64;
    const SETS: usize = 64;
    // The lines the block's rows start in (rows of a short k share lines, which is no crowding).
    let mut lines: Vec<usize> = (0..BLOCK_COLS).map(|j| j * 2 * k / LINE).collect();
    lines.dedup();
    let mut lines_per_set = [0u8; SETS];
    for line in lines {
        lines_per_set[line % SETS] += 1;
    }
    lines_per_set.iter().any(|&lines| lines > 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Depths of 1024 and 2048 (rows 2 and 4 KiB apart) crowd a set, and their multiples; the
    /// models' other depths and depths just off a power of two do not.
    #[test]
    fn which_depths_crowd_a_set() {
        for k in [1024, 2048, 3072, 4096, 8192] {
            assert!(rows_crowd_a_set(k), "k {k}");
        }
        for k in [2, 64, 256, 704, 768, 2040, 2056, 3000] {
            assert!(!rows_crowd_a_set(k), "k {k}");
        }
    }
}
