//! The matrix products of a chunk, on register-blocked micro-kernels in explicit vectors
//! ([`yoco_core::simd`]) over the chunk's own buffers, with no packing: each product's left
//! operand is broadcast one element at a time, so it may lie anywhere in rows; its right operand is
//! read a vector at a time along its rows, which the chunk's layouts keep contiguous and a whole
//! number of [`PAD`] wide. At a chunk of 64 tokens the general GEMM these replace spent a sixth
//! of the prefill packing its operands.

use yoco_core::simd::{fma_block, Simd};

/// Columns of every right operand and output are a multiple of this: the widest register block,
/// 2 vectors of 16 lanes (AVX-512).
pub(super) const PAD: usize = 32;

/// `A · B`, `A [rows][depth]` in rows `lda` apart and `B [depth][cols]` in rows `ldb` apart.
#[derive(Clone, Copy)]
pub(super) struct Term<'a> {
    pub a: &'a [f32],
    pub lda: usize,
    pub b: &'a [f32],
    pub ldb: usize,
    pub depth: usize,
    /// `A` is lower triangular (`A[r][p] = 0` for `p > r`): each block of rows stops at its last
    /// row's diagonal.
    pub lower: bool,
}

/// What the output starts from.
#[derive(Clone, Copy)]
pub(super) enum Start {
    /// Nothing: the output is overwritten (and not read).
    Zero,
    /// The output times this factor.
    Scaled(f32),
}

/// Which output blocks to compute.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Blocks {
    All,
    /// Only blocks with some column at or left of the diagonal (column ≤ row); the others are
    /// left as they were, for the caller to overwrite.
    OnOrBelowDiagonal,
}

/// `C[r][..cols] = start(C) + Σ terms` for `r < rows`, `C` in rows `ldc` apart; `cols` a
/// multiple of `NV · V::LANES`. `R` × `NV` is the register block (rows × vectors).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn product<V: Simd, const R: usize, const NV: usize>(c: &mut [f32], ldc: usize, rows: usize, cols: usize, start: Start, terms: &[Term], blocks: Blocks) {
    let width = NV * V::LANES;
    debug_assert_eq!(cols % width, 0);
    let full = rows - rows % R;
    for c0 in (0..cols).step_by(width) {
        for r0 in (0..full).step_by(R) {
            if blocks == Blocks::All || c0 < r0 + R {
                block::<V, R, NV>(c, ldc, r0, c0, start, terms);
            }
        }
        for r0 in full..rows {
            if blocks == Blocks::All || c0 <= r0 {
                block::<V, 1, NV>(c, ldc, r0, c0, start, terms);
            }
        }
    }
}

/// Rows `r0 .. r0 + R`, columns `c0 .. c0 + NV · V::LANES` of [`product`], the accumulators in
/// registers over every term's whole depth.
#[inline(always)]
fn block<V: Simd, const R: usize, const NV: usize>(c: &mut [f32], ldc: usize, r0: usize, c0: usize, start: Start, terms: &[Term]) {
    let mut acc = [[V::splat(0.0); NV]; R];
    if let Start::Scaled(factor) = start {
        let factor = V::splat(factor);
        for (r, row) in acc.iter_mut().enumerate() {
            for (n, x) in row.iter_mut().enumerate() {
                *x = V::load(&c[(r0 + r) * ldc + c0 + n * V::LANES..]).mul(factor);
            }
        }
    }
    for t in terms {
        let depth = if t.lower { t.depth.min(r0 + R) } else { t.depth };
        let mut a: [&[f32]; R] = [&[]; R];
        for (r, row) in a.iter_mut().enumerate() {
            *row = &t.a[(r0 + r) * t.lda..];
        }
        fma_block::<V, R, NV>(&mut acc, &a, &t.b[c0..], t.ldb, depth);
    }
    for (r, row) in acc.iter().enumerate() {
        for (n, x) in row.iter().enumerate() {
            x.store(&mut c[(r0 + r) * ldc + c0 + n * V::LANES..]);
        }
    }
}
