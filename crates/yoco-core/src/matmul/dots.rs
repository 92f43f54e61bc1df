//! The dot form of `c[m, n] = a[m, k] · b[n, k]ᵀ` with AVX-512, for few rows of `a` (decode,
//! small batches), where packing the weights would cost more than it saves: a block of 4 rows of
//! `a` against 4 rows of `b` (a row of `a` against 8 of `b` where there are fewer than 4), one
//! vector of each row a step, each output's lanes summed at the end. Three element types: f32
//! (FMA; AVX-512F), bf16 (pairs multiplied by `vdpbf16ps`; AVX512-BF16, see `bf16_pairs.rs`) and
//! f16 (widened by `vcvtph2ps` as it is loaded, then FMA), each row read where it lies, in its
//! own type.
//!
//! Soundness: the intrinsics are called only from each element's `run`, compiled with the
//! features its instructions need, which the caller has detected (`available` in `bf16_pairs.rs`
//! for bf16, `Isa::Avx512` for f32 and f16).

use std::arch::x86_64::*;

use half::{bf16, f16};
use rayon::prelude::*;

use super::shared_out::SharedOut;
use crate::Element;

/// Rows of `b` per task.
const ROWS_PER_TASK: usize = 64;

/// An element type the dot form multiplies with one AVX-512 instruction a vector.
pub(super) trait DotElement: Copy + Send + Sync + Sized + 'static {
    /// Elements per vector.
    const STEP: usize;
    type Vector: Copy;
    /// Elements `p0 .. p0 + count` of `row` (`count ≤ STEP`), the rest of the vector zeros.
    ///
    /// # Safety
    /// Those elements lie in `row`; the CPU has the element's features (inlined into `run`).
    unsafe fn load(row: &[Self], p0: usize, count: usize) -> Self::Vector;
    /// `acc + a · b`, lane by lane (bf16: each f32 lane adds the products of its pair).
    ///
    /// # Safety
    /// As `load`.
    unsafe fn madd(acc: __m512, a: Self::Vector, b: Self::Vector) -> __m512;
    /// A sum, rounded to the element type.
    fn round(sum: f32) -> Self;
    /// Runs `task` compiled with the element's features.
    ///
    /// # Safety
    /// The CPU has them.
    unsafe fn run(task: &DotTask<'_, Self>);
}

impl DotElement for f32 {
    const STEP: usize = 16;
    type Vector = __m512;
    #[inline(always)]
    unsafe fn load(row: &[f32], p0: usize, count: usize) -> __m512 {
        let mask: __mmask16 = if count >= 16 { !0 } else { (1u16 << count) - 1 };
        // SAFETY: the masked load reads only the `count` elements from p0, which lie in the row
        // (the caller's promise); AVX-512F present.
        unsafe { _mm512_maskz_loadu_ps(mask, row.as_ptr().add(p0)) }
    }
    #[inline(always)]
    unsafe fn madd(acc: __m512, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F present (the caller's promise).
        unsafe { _mm512_fmadd_ps(a, b, acc) }
    }
    fn round(sum: f32) -> f32 {
        sum
    }
    unsafe fn run(task: &DotTask<'_, f32>) {
        #[target_feature(enable = "avx512f")]
        unsafe fn run_avx512(task: &DotTask<'_, f32>) {
            // SAFETY: AVX-512F is enabled here.
            unsafe { task.body() }
        }
        // SAFETY: the CPU has AVX-512F (the caller's promise).
        unsafe { run_avx512(task) }
    }
}

impl DotElement for bf16 {
    const STEP: usize = 32;
    type Vector = __m512bh;
    #[inline(always)]
    unsafe fn load(row: &[bf16], p0: usize, count: usize) -> __m512bh {
        let mask: __mmask32 = if count >= 32 { !0 } else { (1u32 << count) - 1 };
        // SAFETY: as f32's; bf16 is 16 bits, AVX-512BW present; the bits are bf16 as __m512bh
        // takes them.
        unsafe { std::mem::transmute(_mm512_maskz_loadu_epi16(mask, row.as_ptr().add(p0).cast())) }
    }
    #[inline(always)]
    unsafe fn madd(acc: __m512, a: __m512bh, b: __m512bh) -> __m512 {
        // SAFETY: AVX512-BF16 present (the caller's promise).
        unsafe { _mm512_dpbf16_ps(acc, a, b) }
    }
    fn round(sum: f32) -> bf16 {
        <bf16 as Element>::from_f32(sum)
    }
    unsafe fn run(task: &DotTask<'_, bf16>) {
        #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
        unsafe fn run_avx512_bf16(task: &DotTask<'_, bf16>) {
            // SAFETY: the features are enabled here.
            unsafe { task.body() }
        }
        // SAFETY: the CPU has them (the caller's promise).
        unsafe { run_avx512_bf16(task) }
    }
}

impl DotElement for f16 {
    const STEP: usize = 16;
    type Vector = __m512;
    #[inline(always)]
    unsafe fn load(row: &[f16], p0: usize, count: usize) -> __m512 {
        let mask: __mmask16 = if count >= 16 { !0 } else { (1u16 << count) - 1 };
        // SAFETY: as f32's; f16 is 16 bits, AVX-512BW and VL present; the widening is exact.
        unsafe { _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, row.as_ptr().add(p0).cast())) }
    }
    #[inline(always)]
    unsafe fn madd(acc: __m512, a: __m512, b: __m512) -> __m512 {
        // SAFETY: widened, the lanes multiply as f32's do (the caller's promise covers both).
        unsafe { <f32 as DotElement>::madd(acc, a, b) }
    }
    fn round(sum: f32) -> f16 {
        <f16 as Element>::from_f32(sum)
    }
    unsafe fn run(task: &DotTask<'_, f16>) {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        unsafe fn run_avx512(task: &DotTask<'_, f16>) {
            // SAFETY: the features are enabled here.
            unsafe { task.body() }
        }
        // SAFETY: the CPU has them (the caller's promise: Isa::Avx512).
        unsafe { run_avx512(task) }
    }
}

/// `c = a · bᵀ` in the dot form: lengths checked by the caller, `m, n, k > 0`, and the CPU has
/// the element's features. Each task takes [`ROWS_PER_TASK`] rows of b (columns of c) against
/// every row of a.
pub(super) fn dots<E: DotElement>(m: usize, n: usize, k: usize, a: &[E], b: &[E], c: &mut [E]) {
    let out = SharedOut::new(c);
    (0..n.div_ceil(ROWS_PER_TASK)).into_par_iter().for_each(|t| {
        let task = DotTask { m, n, k, a, b, cols: t * ROWS_PER_TASK..((t + 1) * ROWS_PER_TASK).min(n), out };
        // SAFETY: the CPU has the element's features (the caller's promise).
        unsafe { E::run(&task) }
    });
}

/// One task of the dot form: `c[.., cols]`.
pub(super) struct DotTask<'a, E> {
    m: usize,
    n: usize,
    k: usize,
    a: &'a [E],
    b: &'a [E],
    cols: std::ops::Range<usize>,
    out: SharedOut<E>,
}

impl<E: DotElement> DotTask<'_, E> {
    /// The task, inlined into `E::run`'s entry.
    ///
    /// # Safety
    /// The CPU has the element's features.
    #[inline(always)]
    unsafe fn body(&self) {
        // Each block of b's rows against every block of a's, so that those rows stay in the
        // level-1 cache while a's (few) rows come from level 1 or 2.
        let (m, cols) = (self.m, &self.cols);
        // SAFETY (each call): the features are there (this function's promise).
        if m < 4 {
            // Decode rows: 8 rows of b a block, so that more of the weights stream in at once
            // (memory-bound: a bf16 row of 8192 × 3072 weights 1.41–1.57 ms against 1.56–1.77
            // with 4, the 2-core Zen 4, in turn; f32 level; f16 not measured).
            let col_end = cols.start + cols.len() / 8 * 8;
            for j0 in (cols.start..col_end).step_by(8) {
                for i0 in 0..m {
                    unsafe { self.block::<1, 8>(i0, j0) };
                }
            }
            for j0 in col_end..cols.end {
                for i0 in 0..m {
                    unsafe { self.block::<1, 1>(i0, j0) };
                }
            }
            return;
        }
        let (row_end, col_end) = (m - m % 4, cols.start + (cols.len() - cols.len() % 4));
        for j0 in (cols.start..col_end).step_by(4) {
            for i0 in (0..row_end).step_by(4) {
                unsafe { self.block::<4, 4>(i0, j0) };
            }
            for i0 in row_end..m {
                unsafe { self.block::<1, 4>(i0, j0) };
            }
        }
        for j0 in col_end..cols.end {
            for i0 in (0..row_end).step_by(4) {
                unsafe { self.block::<4, 1>(i0, j0) };
            }
            for i0 in row_end..m {
                unsafe { self.block::<1, 1>(i0, j0) };
            }
        }
    }

    /// `c[i0 .. i0 + R, j0 .. j0 + J]`, a vector of the reduction a step; in the last, partial
    /// step the elements past k are zeros in both operands.
    #[inline(always)]
    unsafe fn block<const R: usize, const J: usize>(&self, i0: usize, j0: usize) {
        let k = self.k;
        let a: [&[E]; R] = std::array::from_fn(|r| &self.a[(i0 + r) * k..][..k]);
        let b: [&[E]; J] = std::array::from_fn(|j| &self.b[(j0 + j) * k..][..k]);
        // SAFETY: the features are there (this function's promise).
        let mut acc = [[unsafe { _mm512_setzero_ps() }; J]; R];
        let whole = k - k % E::STEP;
        for p0 in (0..whole).step_by(E::STEP) {
            // SAFETY: p0 + STEP ≤ k: every element lies in each row.
            unsafe { Self::step(&mut acc, &a, &b, p0, E::STEP) };
        }
        if whole < k {
            // SAFETY: the k − whole elements from `whole` lie in each row.
            unsafe { Self::step(&mut acc, &a, &b, whole, k - whole) };
        }
        for (r, acc) in acc.iter().enumerate() {
            // SAFETY: row i0 + r, columns j0 .. j0 + J belong to this task alone.
            let to = unsafe { self.out.slice((i0 + r) * self.n + j0, J) };
            for (c, &s) in to.iter_mut().zip(acc) {
                // SAFETY: the features are there (this function's promise).
                *c = E::round(unsafe { _mm512_reduce_add_ps(s) });
            }
        }
    }

    /// One step of [`block`](Self::block): elements `p0 .. p0 + count` of the rows.
    ///
    /// # Safety
    /// Those elements lie in each row; the features are there.
    #[inline(always)]
    unsafe fn step<const R: usize, const J: usize>(acc: &mut [[__m512; J]; R], a: &[&[E]; R], b: &[&[E]; J], p0: usize, count: usize) {
        // SAFETY (each call): the caller's promises.
        let bv: [E::Vector; J] = std::array::from_fn(|j| unsafe { E::load(b[j], p0, count) });
        for r in 0..R {
            let av = unsafe { E::load(a[r], p0, count) };
            for j in 0..J {
                acc[r][j] = unsafe { E::madd(acc[r][j], av, bv[j]) };
            }
        }
    }
}
