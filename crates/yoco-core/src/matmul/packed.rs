//! The many-row GEMM (`c = a · op(b)`, prefill's projections), in f32, in the manner of
//! GotoBLAS: both operands packed, then a register-blocked micro-kernel ([`fma_steps`]) that
//! reads each in one stream, front to back.
//!
//! - `a` is packed into groups of `R` rows, the register block's rows (12 with AVX-512, 6 with
//!   AVX2): each step of the reduction holds its `R` values side by side, so the broadcasts need
//!   no address arithmetic, and the register block has 12 rows where 8 row pointers were all the
//!   registers held. In the level-1 cache, interleaved in one process on one thread of the 2-core
//!   Xeon, the packed 12 × 2 block ran 12–15% faster than the 8 × 2 one reading rows where they
//!   lay (and at up to 98% of the FMA rate in a quiet minute).
//! - `op(b)` is packed into panels of [`PANEL`] columns (widened there from 16-bit storage),
//!   [`COLUMNS`] at a time, in parallel, into buffers kept from call to call (`scratch.rs`).
//!
//! With AVX-512 both are transposed 16 × 16 words at a time in registers (`words.rs`): a word at
//! a time, packing took a quarter of a 512 × 768 × 2048 product on one thread. With AVX2 (or
//! from 16-bit storage) the weights of `x · wᵀ` are transposed 8 × 8 (widened as they are
//! loaded): on the Zen 3, packing them had taken a quarter of that product too, a column at a
//! time, each from a line of its own.
//!
//! The tasks, [`GROUPS`] groups of rows (a row block) against one panel, multiply them: for each
//! slice of [`DEPTH`] of the reduction the panel's slice (32 KiB) stays in the level-1 cache
//! across the groups. Consecutive tasks share their row block, and each thread packs the block
//! of its task into a buffer of its own (`thread_block.rs`: 96 × k floats with AVX-512, kept for
//! the thread's life), once for the run of tasks that share it, so the packed rows are written
//! to and read from that thread's level-2 cache. They had been packed all at once before the
//! tasks, into a buffer of m × k (2 MiB at 2048 × 256, twice a core's level-2 cache): written out
//! and read back from the last-level cache or memory. Measured on the 2-core Zen 5, the
//! two builds in turn, five rounds, fractions of the FMA round beside each call
//! (`examples/matmul_probe.rs`, `DTYPE=f32`), both threads: 2048 × 256 × 256 (m × n × k)
//! 0.62 → 0.71, 2048 × 704 × 256 0.71 → 0.74, 2048 × 256 × 704 0.56 → 0.74, 512 × 2048 × 768
//! 0.65 → 0.66, 512 × 768 × 2048 0.58 → 0.64; one thread, four rounds, 0.64 → 0.76, 0.72 → 0.79,
//! 0.61 → 0.78, 0.75 → 0.80, 0.66 → 0.75. The blocks are packed again for each [`COLUMNS`] of
//! n (4 times at n 2048), which those figures include.
//!
//! Where the time went before that, on one thread of the 2-core Zen 5 (a throwaway harness
//! around [`fma_steps`]): the register block alone, a 256-step slice of 8 to 64 groups streamed
//! from level 2 and a panel from 256 in the last-level cache for every 8 blocks, ran at 0.97–1.0
//! of the FMA round beside it; the whole products at 0.65–0.80. Packing `a` and the panels from
//! memory took ~8% of them (a 2048 × 256 `a` in ~300 µs, ~50 µs from cache); at 2048 × 256 × 256
//! on both threads, `perf` put a fifth of the product's samples in the packing, most of them on
//! the loads of `a`'s rows. Tried then and level within the probe's noise (five and six rounds
//! of the builds in turn, ±0.02): the step loop without its bounds checks, `a` packed slice by
//! slice so that a task's groups are one stream, a software prefetch of `a` 384 and 768 words
//! ahead, slices of 128 and 192 steps, and (to see what they cost) no stores of c at all.
//!
//! [`gated`] is SwiGLU's gate made from two products at once, `silu(a · gateᵀ) ⊙ (a · upᵀ)`:
//! `a` packed once, both weights' panels side by side, and each register block holding both
//! products' sums (for half a group's rows with AVX-512, in the same 24 registers; for a whole
//! group one vector wide with AVX2), so that the gate is applied in registers and only its result
//! is written. The two products' sums are those of [`gemm`], step for step, so the result is the
//! unfused FFN's bit for bit.

use std::ops::Range;

use rayon::prelude::*;

use super::scratch::Scratch;
use super::shared_out::SharedOut;
use super::thread_block::{product_number, with_block};
use crate::math::silu;
use crate::simd::{dispatch, prefetch_for_write, Isa, Simd, SimdKernel};
use crate::Element;

/// Columns per packed panel: the register block's width (2 vectors of 16 lanes).
const PANEL: usize = 32;
/// Columns packed and multiplied per block (a whole number of panels).
const COLUMNS: usize = 512;
/// Groups of rows of `a` per task.
const GROUPS: usize = 8;
/// Slice of the reduction per pass of the registers.
const DEPTH: usize = 256;
/// Steps of the reduction packed per pass: a tile of 16 × 16 words (`words.rs`), and each
/// column's (or row's) run of them is read in one piece.
const PACK_STEPS: usize = 16;
/// Rows of the register block with AVX-512: 12 rows × 2 vectors is 24 accumulators of the 32
/// registers, with 2 for the panel's vectors and one for a broadcast.
const AVX512_ROWS: usize = 12;
/// Rows of the register block with AVX2 (16 registers), and one lane's: 6 × 2 accumulators.
const AVX2_ROWS: usize = 6;

/// The rows of a register block on `isa`: the group size `a` is packed in.
fn group_rows(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => AVX512_ROWS,
        Isa::Avx2 | Isa::Scalar => AVX2_ROWS,
    }
}

/// `c[m, n] = a[m, k] · op(b)`, op(b) `[k, n]` read as `b[p · b_rs + j · b_cs]` (any storage
/// type, widened to f32 as it is packed); lengths checked by the caller, `m, n > 0`.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm<T: Element>(m: usize, n: usize, k: usize, a: &[f32], b: &[T], b_rs: usize, b_cs: usize, c: &mut [f32]) {
    multiply(m, n, k, a, &[Strided { b, rs: b_rs, cs: b_cs }], c);
}

/// `c[m, n] = silu(a · gateᵀ) ⊙ (a · upᵀ)`, gate and up `[n, k]` (SwiGLU's w1 and w3); lengths
/// checked by the caller, `m, n > 0`.
pub(super) fn gated(m: usize, n: usize, k: usize, a: &[f32], gate: &[f32], up: &[f32], c: &mut [f32]) {
    multiply(m, n, k, a, &[Strided { b: gate, rs: 1, cs: k }, Strided { b: up, rs: 1, cs: k }], c);
}

/// [`gemm`] of one operand, [`gated`] of two (the gate's, then the up's).
fn multiply<T: Element>(m: usize, n: usize, k: usize, a: &[f32], operands: &[Strided<'_, T>], c: &mut [f32]) {
    if k == 0 {
        // Empty sums: zeros, and silu(0) · 0 is zero too.
        c.fill(0.0);
        return;
    }
    let isa = Isa::detect();
    let group = group_rows(isa);
    let groups = m.div_ceil(group);
    let out = SharedOut::new(c);
    let row_blocks = groups.div_ceil(GROUPS);
    let panel_len = k * PANEL;
    let product = product_number();
    let mut panels_packed = Scratch::<f32>::take(operands.len() * k * COLUMNS.min(n.next_multiple_of(PANEL)));
    for first in (0..n).step_by(COLUMNS) {
        let panels = (n - first).min(COLUMNS).div_ceil(PANEL);
        // Panel (o, j) holds operand o's columns first + j·PANEL .. as rows [k][PANEL], at
        // (o · panels + j) · k · PANEL.
        panels_packed[..operands.len() * panels * panel_len].par_chunks_mut(panel_len).enumerate().for_each(|(i, panel)| pack_panel(panel, operands[i / panels], first + i % panels * PANEL, n, k, isa));
        let panels_packed = &panels_packed;
        let panel = |o: usize, j: usize| &panels_packed[(o * panels + j) * panel_len..][..panel_len];
        (0..row_blocks * panels).into_par_iter().for_each(|t| {
            let (rb, j) = (t / panels, t % panels);
            let groups = rb * GROUPS..((rb + 1) * GROUPS).min(groups);
            let up = (operands.len() == 2).then(|| panel(1, j));
            let pack = |to: &mut [f32]| {
                for (g, to) in groups.clone().zip(to.chunks_exact_mut(group * k)) {
                    pack_group(to, a, g * group..((g + 1) * group).min(m), k, isa);
                }
            };
            with_block((product, rb), groups.len() * group * k, pack, |a| {
                dispatch(Task { m, n, k, group, a, panel: panel(0, j), up, first: first + j * PANEL, groups: groups.clone(), out }, &mut ());
            });
        });
    }
}

/// `a`'s `rows` (at most a group) into `to` [k][group], each step's values side by side; the
/// slots of rows past m (the last group's) repeat its last row, so that they hold values of this
/// product (their sums are not stored).
fn pack_group(to: &mut [f32], a: &[f32], rows: Range<usize>, k: usize, isa: Isa) {
    let group = to.len() / k;
    // Sixteen rows, the transposes' height: those past the group's (16 > 12) are read but not
    // stored.
    let last = rows.len() - 1;
    let rows: [&[f32]; 16] = std::array::from_fn(|r| &a[(rows.start + r.min(last)) * k..][..k]);
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        done = k - k % PACK_STEPS;
        // SAFETY: Isa::Avx512 was detected; each row holds k ≥ done words, and `to` k steps of
        // `group` words each.
        unsafe { super::words::transpose_16_strip(&rows, done / PACK_STEPS, to, group, group) };
    }
    let _ = isa;
    for (p, to) in to.chunks_exact_mut(group).enumerate().skip(done) {
        for (to, row) in to.iter_mut().zip(&rows) {
            *to = row[p];
        }
    }
}

/// op(b) `[k, n]` as stored: element (p, j) at `b[p · rs + j · cs]`.
#[derive(Clone, Copy)]
struct Strided<'a, T> {
    b: &'a [T],
    rs: usize,
    cs: usize,
}

/// Columns `first ..` (those below n) of op(b) into `panel` [k][PANEL], a tile of
/// [`PACK_STEPS`] × PANEL at a time; columns past n are left as they were (their products are
/// not stored). Where b is stored `[n, k]` (the weights of `x · wᵀ`), whole tiles of 16 columns
/// are transposed in registers: 16 × 16 words where b is f32 on AVX-512, else 8 × 8 lanes,
/// widened from 16-bit storage as they are loaded (`words::transpose_8_widened`).
fn pack_panel<T: Element>(panel: &mut [f32], op_b: Strided<'_, T>, first: usize, n: usize, k: usize, isa: Isa) {
    let Strided { b, rs, cs } = op_b;
    let cols = PANEL.min(n - first);
    // Steps of the panel's first `whole` columns already packed, a strip of tiles at a time.
    let (mut packed, mut whole) = (0, 0);
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = (isa == Isa::Avx512 && rs == 1).then(|| crate::dtype::as_slice_of::<T, f32>(b)).flatten() {
        (packed, whole) = (k - k % PACK_STEPS, cols - cols % 16);
        for c0 in (0..whole).step_by(16) {
            let rows: [&[f32]; 16] = std::array::from_fn(|i| &b[(first + c0 + i) * cs..][..packed]);
            // SAFETY: Isa::Avx512 was detected; each row holds `packed` words, and the panel k
            // steps of PANEL from column c0 + 16 ≤ PANEL.
            unsafe { super::words::transpose_16_strip(&rows, packed / PACK_STEPS, &mut panel[c0..], PANEL, 16) };
        }
    }
    let _ = isa;
    for p0 in (0..k).step_by(PACK_STEPS) {
        let steps = PACK_STEPS.min(k - p0);
        let tile = &mut panel[p0 * PANEL..][..steps * PANEL];
        for c0 in (0..cols).step_by(16) {
            if p0 < packed && c0 < whole {
                continue;
            }
            #[cfg(target_arch = "x86_64")]
            if isa != Isa::Scalar && rs == 1 && steps == PACK_STEPS && c0 + 16 <= cols {
                for (s, c) in [(0, 0), (0, 8), (8, 0), (8, 8)] {
                    let rows: [&[T]; 8] = std::array::from_fn(|i| &b[(first + c0 + c + i) * cs + p0 + s..][..8]);
                    // SAFETY: AVX2 and F16C, which Isa::Avx2 and Isa::Avx512 were detected with;
                    // each row holds 8 elements, and the tile 8 steps of PANEL from column
                    // c0 + c + 8 ≤ PANEL.
                    unsafe { super::words::transpose_8_widened(&rows, &mut tile[s * PANEL + c0 + c..], PANEL) };
                }
                continue;
            }
            for col in c0..(c0 + 16).min(cols) {
                let start = (first + col) * cs + p0 * rs;
                for (p, row) in tile.chunks_exact_mut(PANEL).enumerate() {
                    row[col] = b[start + p * rs].to_f32();
                }
            }
        }
    }
}

/// One task: `c[rows of groups, first .. first + PANEL]` (the rows below m, the columns below n)
/// from one packed panel.
struct Task<'a> {
    m: usize,
    n: usize,
    k: usize,
    /// Rows per group of the packed `a`.
    group: usize,
    a: &'a [f32],
    /// The panel of op(b), or of the gate's weights where `up` is some.
    panel: &'a [f32],
    /// The up weights' panel of a [`gated`] product.
    up: Option<&'a [f32]>,
    first: usize,
    groups: Range<usize>,
    out: SharedOut<f32>,
}

impl SimdKernel for Task<'_> {
    type Output = ();
    type Scratch = ();

    #[inline(always)]
    fn run<V: Simd>(self, _: &mut ()) {
        // A gated block holds two products' sums: for half a group's rows with AVX-512 (6 × 2
        // vectors each, 24 of the 32 registers); with AVX2, for a whole group's rows, one vector
        // wide (6 × 1 each, 12 of the 16). Half a group two vectors wide had needed 17 registers
        // there (12 sums, 4 of the panels' vectors, a broadcast): one sum lived on the stack,
        // stored and reloaded on every step, and the fused FFN ran at half the rate of its
        // unfused products.
        match (self.up, V::LANES >= 16) {
            (None, true) => self.blocks::<V, AVX512_ROWS, 2>(),
            (None, false) => self.blocks::<V, AVX2_ROWS, 2>(),
            (Some(up), true) => self.gated_blocks::<V, { AVX512_ROWS / 2 }, 2, AVX512_ROWS>(up),
            (Some(up), false) => self.gated_blocks::<V, AVX2_ROWS, 1, AVX2_ROWS>(up),
        }
    }
}

impl Task<'_> {
    /// `R` × `NV`, the register block: `R` is the packed group's rows ([`group_rows`]).
    #[inline(always)]
    fn blocks<V: Simd, const R: usize, const NV: usize>(&self) {
        assert_eq!(self.group, R, "a is packed in groups of the register block's rows");
        let width = NV * V::LANES;
        for p0 in (0..self.k).step_by(DEPTH) {
            let depth = DEPTH.min(self.k - p0);
            let slice = &self.panel[p0 * PANEL..][..depth * PANEL];
            for c0 in (0..PANEL).step_by(width) {
                for g in self.groups.clone() {
                    let a = &self.a[((g - self.groups.start) * self.k + p0) * R..][..depth * R];
                    self.block::<V, R, NV>(g * R, c0, p0, a, &slice[c0..]);
                }
            }
        }
    }

    /// Rows `r0 .. r0 + R` (those below m), columns `first + c0 ..` (`NV · V::LANES` of them,
    /// those below n) of c, plus the reduction's slice from `p0` (c is read back after the
    /// first): `a` that slice of the group [depth][R], `b` of the panel from column c0.
    #[inline(always)]
    fn block<V: Simd, const R: usize, const NV: usize>(&self, r0: usize, c0: usize, p0: usize, a: &[f32], b: &[f32]) {
        let (col, valid) = self.columns(c0, NV * V::LANES);
        if valid == 0 {
            return;
        }
        let rows = R.min(self.m - r0);
        let mut acc = [[[V::splat(0.0); NV]; R]];
        if p0 > 0 {
            // SAFETY (each c_row): the rows and columns of this block are this task's alone.
            load_rows(&mut acc[0], rows, valid, |r| unsafe { self.c_row(r0 + r, col, valid) });
        } else {
            self.own_rows(r0, rows, col, valid);
        }
        fma_steps::<V, R, NV, R, 1>(&mut acc, a, [b]);
        // SAFETY: as above.
        store_rows(&acc[0], rows, valid, |r| unsafe { self.c_row(r0 + r, col, valid) });
    }

    /// A [`gated`] product's tasks: `R` × `NV` for each of the two products, `R` the packed
    /// group's `S` rows or a part of them, each group's parts in turn. The gate's sums wait
    /// between slices of the reduction in a buffer of the task's, the up's in c, and the last
    /// slice writes the gate.
    #[inline(always)]
    fn gated_blocks<V: Simd, const R: usize, const NV: usize, const S: usize>(&self, up: &[f32]) {
        assert!(self.group == S && S.is_multiple_of(R), "a gated block takes a packed group's rows, or a part of them");
        let width = NV * V::LANES;
        // [the task's rows][PANEL]: a group's slot for each of its rows.
        let mut gate_sums = [0f32; GROUPS * AVX512_ROWS * PANEL];
        for p0 in (0..self.k).step_by(DEPTH) {
            let depth = DEPTH.min(self.k - p0);
            let last = p0 + depth == self.k;
            let (gate, up) = (&self.panel[p0 * PANEL..][..depth * PANEL], &up[p0 * PANEL..][..depth * PANEL]);
            for c0 in (0..PANEL).step_by(width) {
                for (i, g) in self.groups.clone().enumerate() {
                    let a = &self.a[((g - self.groups.start) * self.k + p0) * S..][..depth * S];
                    for part in 0..S / R {
                        let sums = &mut gate_sums[(i * S + part * R) * PANEL..][..R * PANEL];
                        self.gated_block::<V, R, NV, S>(g * S + part * R, c0, (p0, last), &a[part * R..], [&gate[c0..], &up[c0..]], sums);
                    }
                }
            }
        }
    }

    /// [`block`](Self::block) for both products of a [`gated`] product: `a` from the part's first
    /// row (steps of `S`), `b` the gate's and the up's panel slices from column c0, `gate_sums`
    /// the gate's sums of these rows between slices ([`R`][`PANEL`], at column c0).
    #[inline(always)]
    fn gated_block<V: Simd, const R: usize, const NV: usize, const S: usize>(&self, r0: usize, c0: usize, (p0, last): (usize, bool), a: &[f32], b: [&[f32]; 2], gate_sums: &mut [f32]) {
        let width = NV * V::LANES;
        let (col, valid) = self.columns(c0, width);
        if valid == 0 || r0 >= self.m {
            return;
        }
        let rows = R.min(self.m - r0);
        let kept = |r: usize| r * PANEL + c0..r * PANEL + c0 + width;
        let mut acc = [[[V::splat(0.0); NV]; R]; 2];
        if p0 > 0 {
            load_rows(&mut acc[0], rows, width, |r| &gate_sums[kept(r)]);
            // SAFETY (each c_row): the rows and columns of this block are this task's alone.
            load_rows(&mut acc[1], rows, valid, |r| unsafe { self.c_row(r0 + r, col, valid) });
        } else {
            self.own_rows(r0, rows, col, valid);
        }
        fma_steps::<V, R, NV, S, 2>(&mut acc, a, b);
        if !last {
            let mut kept_rows = gate_sums.chunks_exact_mut(PANEL);
            store_rows(&acc[0], rows, width, |_| &mut kept_rows.next().expect("a row of the gate's sums")[c0..c0 + width]);
            // SAFETY: as above.
            store_rows(&acc[1], rows, valid, |r| unsafe { self.c_row(r0 + r, col, valid) });
            return;
        }
        let [gates, ups] = &acc;
        for (r, (gates, ups)) in gates.iter().zip(ups).enumerate().take(rows) {
            let (mut gate, mut up) = ([0f32; PANEL], [0f32; PANEL]);
            for (n, (g, u)) in gates.iter().zip(ups).enumerate() {
                g.store(&mut gate[n * V::LANES..]);
                u.store(&mut up[n * V::LANES..]);
            }
            // As the unfused FFN's silu·mul (swiglu's SiluMul): a plain loop that vectorises.
            for (g, u) in gate[..width].iter_mut().zip(&up) {
                *g = silu(*g) * u;
            }
            // SAFETY: the rows and columns of this block are this task's alone.
            unsafe { self.c_row(r0 + r, col, valid) }.copy_from_slice(&gate[..valid]);
        }
    }

    /// A block's columns of c from panel column `c0`: the first, and how many of its `width`
    /// lie below n (none past the last panel's edge).
    #[inline(always)]
    fn columns(&self, c0: usize, width: usize) -> (usize, usize) {
        let col = self.first + c0;
        (col, width.min(self.n.saturating_sub(col)))
    }

    /// Asks for the block's rows of c to be owned for writing while its first slice is
    /// multiplied, before they are first written at its end: a store to a line not in cache
    /// waits for the line to be read, and at 2048 × 704 × 256 (one slice, c out of the level-2
    /// cache) those waits had cost ~5% of the product.
    #[inline(always)]
    fn own_rows(&self, r0: usize, rows: usize, col: usize, valid: usize) {
        for r in 0..rows {
            // SAFETY: the rows and columns of this block are this task's alone.
            prefetch_for_write(unsafe { self.c_row(r0 + r, col, valid) });
        }
    }

    /// `len` elements of row `row` of c from column `col`.
    ///
    /// # Safety
    /// They lie in this task's block (its groups' rows, its panel's columns), which no other
    /// task touches while it runs; the caller's `c` is borrowed mutably for the whole product.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    unsafe fn c_row(&self, row: usize, col: usize, len: usize) -> &mut [f32] {
        // SAFETY: the caller's promise.
        unsafe { self.out.slice(row * self.n + col, len) }
    }
}

/// The first `rows` of `acc` from `row(r)`, `valid` values each (the rest of the block's width
/// zeros, through a buffer, where a row is cut short by n).
#[inline(always)]
fn load_rows<'a, V: Simd, const R: usize, const NV: usize>(acc: &mut [[V; NV]; R], rows: usize, valid: usize, row: impl Fn(usize) -> &'a [f32]) {
    let mut tile = [0f32; PANEL];
    for (r, sums) in acc.iter_mut().enumerate().take(rows) {
        let from: &[f32] = if valid == NV * V::LANES {
            row(r)
        } else {
            tile[..valid].copy_from_slice(row(r));
            &tile
        };
        for (n, x) in sums.iter_mut().enumerate() {
            *x = V::load(&from[n * V::LANES..]);
        }
    }
}

/// The first `rows` of `acc` into `row(r)`, its first `valid` values each (through a buffer where
/// a row is cut short by n).
#[inline(always)]
fn store_rows<'a, V: Simd, const R: usize, const NV: usize>(acc: &[[V; NV]; R], rows: usize, valid: usize, mut row: impl FnMut(usize) -> &'a mut [f32]) {
    let mut tile = [0f32; PANEL];
    for (r, sums) in acc.iter().enumerate().take(rows) {
        let to = row(r);
        if valid == NV * V::LANES {
            for (n, x) in sums.iter().enumerate() {
                x.store(&mut to[n * V::LANES..]);
            }
        } else {
            for (n, x) in sums.iter().enumerate() {
                x.store(&mut tile[n * V::LANES..]);
            }
            to.copy_from_slice(&tile[..valid]);
        }
    }
}

/// `acc[o][r][n] += Σ_p a[p · S + r] · b[o][p][n]` for each of `P` products: `a` a packed group's
/// slice from a row of it (`S` values a step, the first `R` of them this block's) and `b[o]`
/// operand o's panel slice (rows of [`PANEL`], their first `NV` vectors), each read front to back.
#[inline(always)]
fn fma_steps<V: Simd, const R: usize, const NV: usize, const S: usize, const P: usize>(acc: &mut [[[V; NV]; R]; P], a: &[f32], b: [&[f32]; P]) {
    // A local copy, so that the accumulators live in registers: through `acc` the compiler kept
    // half of them in memory, stored on every step.
    let mut sums = *acc;
    for (p, a) in a.chunks(S).enumerate() {
        let b: [[V; NV]; P] = std::array::from_fn(|o| std::array::from_fn(|n| V::load(&b[o][p * PANEL + n * V::LANES..])));
        for (r, &a) in a[..R].iter().enumerate() {
            let a = V::splat(a);
            for (sums, b) in sums.iter_mut().zip(&b) {
                for (sum, &b) in sums[r].iter_mut().zip(b) {
                    *sum = sum.fma(a, b);
                }
            }
        }
    }
    *acc = sums;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// `c = a · op(b)` in f64, op(b) read through the strides.
    fn naive(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], (rs, cs): (usize, usize)) -> Vec<f64> {
        (0..m * n).map(|idx| (0..k).map(|p| a[idx / n * k + p] as f64 * b[p * rs + idx % n * cs] as f64).sum()).collect()
    }

    /// Both layouts of b ([n, k], transposed in registers where whole tiles allow, and [k, n]),
    /// against f64 on fresh random inputs, with shapes past every edge: a group (12, 6) and a
    /// task (96, 48) of rows, a tile of 16 steps and of 16 columns, a panel (32), a block of
    /// columns (512), a slice of the reduction (256). Run twice, large then small, so the second
    /// packs into buffers the first left full of other values (rows and columns past the
    /// shape's edges hold them and must not reach c). CI runs this under YOCO_CPU_ISA=avx2 too.
    #[test]
    fn both_layouts_match_f64_past_every_edge() {
        let mut rng = Rng::new(41);
        for (m, n, k) in [(97, 530, 300), (13, 17, 16), (1, 1, 1), (25, 48, 33), (100, 40, 257), (12, 16, 15)] {
            for layout in ["[n, k]", "[k, n]"] {
                let strides = if layout == "[n, k]" { (1, k) } else { (n, 1) };
                let a: Vec<f32> = (0..m * k).map(|_| rng.normal() as f32).collect();
                let b: Vec<f32> = (0..n * k).map(|_| rng.normal() as f32).collect();
                let mut c = vec![f32::NAN; m * n];
                gemm(m, n, k, &a, &b, strides.0, strides.1, &mut c);
                let want = naive(m, n, k, &a, &b, strides);
                for (i, (&got, &want)) in c.iter().zip(&want).enumerate() {
                    // f32 sums of k products of unit normals: a few ulps of √k.
                    assert!((got as f64 - want).abs() <= 1e-5 * (k as f64).sqrt() * (1.0 + want.abs()), "{m}×{n}×{k} b {layout}, element {i}: {got} vs {want}");
                }
            }
        }
    }

    /// The gated product is `silu(g) · u` of the two plain products bit for bit (its sums are
    /// theirs, step for step), on fresh random inputs and shapes past every edge: half groups
    /// (6 rows of 12 with AVX-512) whose second half lies past m, groups (6 rows with AVX2) partly
    /// past m, tasks (96, 48), panels and column blocks (8 columns each with AVX2, 4 a panel),
    /// and several slices of the reduction (the gate's sums kept between them).
    /// Buffers left full of other values by a larger product first, as above. CI runs this under
    /// YOCO_CPU_ISA=avx2 too.
    #[test]
    fn gated_is_the_gate_of_the_two_products_bit_for_bit() {
        let mut rng = Rng::new(43);
        for (m, n, k) in [(103, 530, 520), (13, 17, 16), (1, 1, 1), (7, 40, 300), (97, 33, 257), (6, 16, 5)] {
            let draw = |rng: &mut Rng, len: usize| -> Vec<f32> { (0..len).map(|_| rng.normal() as f32).collect() };
            let (a, gate, up) = (draw(&mut rng, m * k), draw(&mut rng, n * k), draw(&mut rng, n * k));
            let (mut g, mut u, mut c) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
            gemm(m, n, k, &a, &gate, 1, k, &mut g);
            gemm(m, n, k, &a, &up, 1, k, &mut u);
            gated(m, n, k, &a, &gate, &up, &mut c);
            for (i, ((&c, &g), &u)) in c.iter().zip(&g).zip(&u).enumerate() {
                assert_eq!(c.to_bits(), (silu(g) * u).to_bits(), "{m}×{n}×{k}, element {i}: {c} vs silu({g}) · {u}");
            }
        }
    }
}
