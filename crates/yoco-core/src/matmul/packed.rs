//! The many-row GEMM (`c = a · op(b)`, prefill's projections), in f32: a register-blocked
//! micro-kernel ([`fma_block`]) over `op(b)` packed into panels of [`PANEL`] columns (widened
//! there from 16-bit storage), `a` read where it lies (each of its elements is broadcast, so its
//! rows need no packing).
//!
//! The columns go [`COLUMNS`] at a time: their panels are packed (in parallel, into one buffer
//! reused for every such block, so that no call faults in pages the size of the weights), then
//! the tasks, a block of [`ROWS`] rows of `a` against one panel each, multiply them: for each
//! slice of [`DEPTH`] of the reduction the panel's slice (32 KiB) stays in the level-1 cache
//! across the rows, and consecutive tasks share their rows' slice (64 KiB) in level 2.

use std::ops::Range;

use rayon::prelude::*;

use super::shared_out::SharedOut;
use crate::aligned::AlignedVec;
use crate::simd::{dispatch, fma_block, Simd, SimdKernel};
use crate::Element;

/// Columns per packed panel: the widest register block (2 vectors of 16 lanes).
const PANEL: usize = 32;
/// Columns packed and multiplied per block (a whole number of panels).
const COLUMNS: usize = 512;
/// Rows of `a` per task.
const ROWS: usize = 64;
/// Slice of the reduction per pass of the registers.
const DEPTH: usize = 256;
/// Rows of a panel packed per pass: each column's run of them is read in one piece where b holds
/// op(b) transposed (the weights of `x · wᵀ`), and the tile written stays in the level-1 cache.
const PACK_ROWS: usize = 16;

/// `c[m, n] = a[m, k] · op(b)`, op(b) `[k, n]` read as `b[p · b_rs + j · b_cs]` (any storage
/// type, widened to f32 as it is packed); lengths checked by the caller, `m, n > 0`.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm<T: Element>(m: usize, n: usize, k: usize, a: &[f32], b: &[T], b_rs: usize, b_cs: usize, c: &mut [f32]) {
    if k == 0 {
        c.fill(0.0);
        return;
    }
    let out = SharedOut::new(c);
    let row_blocks = m.div_ceil(ROWS);
    let mut packed = AlignedVec::<f32>::zeroed(k * COLUMNS.min(n.next_multiple_of(PANEL)));
    for first in (0..n).step_by(COLUMNS) {
        let panels = (n - first).min(COLUMNS).div_ceil(PANEL);
        // Panel j holds op(b)'s columns first + j·PANEL .. as rows [k][PANEL], zeros past n.
        packed[..panels * k * PANEL].par_chunks_mut(k * PANEL).enumerate().for_each(|(j, panel)| pack_panel(panel, b, first + j * PANEL, n, k, b_rs, b_cs));
        let packed = &packed;
        (0..row_blocks * panels).into_par_iter().for_each(|t| {
            let (rb, j) = (t / panels, t % panels);
            let rows = rb * ROWS..((rb + 1) * ROWS).min(m);
            dispatch(Task { n, k, a, panel: &packed[j * k * PANEL..][..k * PANEL], first: first + j * PANEL, rows, out }, &mut ());
        });
    }
}

/// Columns `first ..` (those below n) of op(b) into `panel` [k][PANEL], a tile of
/// [`PACK_ROWS`] × PANEL at a time; columns past n are left as they were (zeros, or a panel of
/// earlier columns whose products are not stored).
fn pack_panel<T: Element>(panel: &mut [f32], b: &[T], first: usize, n: usize, k: usize, b_rs: usize, b_cs: usize) {
    let cols = PANEL.min(n - first);
    for p0 in (0..k).step_by(PACK_ROWS) {
        let rows = PACK_ROWS.min(k - p0);
        let tile = &mut panel[p0 * PANEL..][..rows * PANEL];
        for col in 0..cols {
            let start = (first + col) * b_cs + p0 * b_rs;
            for (p, row) in tile.chunks_exact_mut(PANEL).enumerate() {
                row[col] = b[start + p * b_rs].to_f32();
            }
        }
    }
}

/// One task: `c[rows, first .. first + PANEL]` (the columns below n) from one packed panel.
struct Task<'a> {
    n: usize,
    k: usize,
    a: &'a [f32],
    panel: &'a [f32],
    first: usize,
    rows: Range<usize>,
    out: SharedOut<f32>,
}

impl SimdKernel for Task<'_> {
    type Output = ();
    type Scratch = ();

    #[inline(always)]
    fn run<V: Simd>(self, _: &mut ()) {
        if V::LANES >= 16 {
            self.blocks::<V, 8, 2>();
        } else {
            self.blocks::<V, 4, 2>();
        }
    }
}

impl Task<'_> {
    /// `R` × `NV`, the register block: 8 rows × 2 vectors with AVX-512, 4 × 2 with AVX2.
    #[inline(always)]
    fn blocks<V: Simd, const R: usize, const NV: usize>(&self) {
        let width = NV * V::LANES;
        let full = self.rows.start + (self.rows.len() - self.rows.len() % R);
        for p0 in (0..self.k).step_by(DEPTH) {
            let depth = DEPTH.min(self.k - p0);
            let slice = &self.panel[p0 * PANEL..];
            for c0 in (0..PANEL).step_by(width) {
                for r0 in (self.rows.start..full).step_by(R) {
                    self.block::<V, R, NV>(r0, c0, p0, depth, &slice[c0..]);
                }
                for r0 in full..self.rows.end {
                    self.block::<V, 1, NV>(r0, c0, p0, depth, &slice[c0..]);
                }
            }
        }
    }

    /// Rows `r0 .. r0 + R`, columns `first + c0 ..` (`NV · V::LANES` of them, those below n)
    /// of c, plus the reduction's slice `p0 .. p0 + depth` (c is read back after the first).
    #[inline(always)]
    fn block<V: Simd, const R: usize, const NV: usize>(&self, r0: usize, c0: usize, p0: usize, depth: usize, b: &[f32]) {
        let width = NV * V::LANES;
        let col = self.first + c0;
        let valid = width.min(self.n.saturating_sub(col));
        if valid == 0 {
            return;
        }
        // A row of c: rows r0.. and columns col..col + valid are this task's alone (gemm).
        // SAFETY: no other task touches these elements while this one runs, and the caller's
        // `c` is borrowed mutably for the whole of `gemm`.
        let c_row = |r: usize| unsafe { self.out.slice((r0 + r) * self.n + col, valid) };
        // The last panel's columns past n go through `tile`.
        let mut tile = [0f32; PANEL];
        let mut acc = [[V::splat(0.0); NV]; R];
        if p0 > 0 {
            for (r, row) in acc.iter_mut().enumerate() {
                let from: &[f32] = if valid == width {
                    c_row(r)
                } else {
                    tile[..valid].copy_from_slice(c_row(r));
                    &tile
                };
                for (n, x) in row.iter_mut().enumerate() {
                    *x = V::load(&from[n * V::LANES..]);
                }
            }
        }
        let mut a: [&[f32]; R] = [&[]; R];
        for (r, row) in a.iter_mut().enumerate() {
            *row = &self.a[(r0 + r) * self.k + p0..];
        }
        fma_block::<V, R, NV>(&mut acc, &a, b, PANEL, depth);
        for (r, row) in acc.iter().enumerate() {
            let to = c_row(r);
            if valid == width {
                for (n, x) in row.iter().enumerate() {
                    x.store(&mut to[n * V::LANES..]);
                }
            } else {
                for (n, x) in row.iter().enumerate() {
                    x.store(&mut tile[n * V::LANES..]);
                }
                to.copy_from_slice(&tile[..valid]);
            }
        }
    }
}
