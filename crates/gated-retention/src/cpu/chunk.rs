//! One (batch, head) task over a segment of the sequence: chunk after chunk, the state carried
//! in the task's scratch. Per chunk of `len` tokens, in f32 (`b_t`: the cumulative log-decay
//! from the chunk's start, summed in f64):
//! * `A = (Q Kᵀ) ⊙ M`, `M[t][u] = e^(b_t − b_u)` for `u ≤ t`, else 0 (only the blocks on or
//!   below the diagonal are multiplied);
//! * `O = A V + (Q ⊙ e^b) S`, in one pass of the registers (`A V` stopping at each block's
//!   diagonal);
//! * `S = e^(b_last) S + (K ⊙ e^(b_last − b))ᵀ V`.
//!
//! Layouts (f32, rows padded to [`PAD`] columns where they are a right operand or an output):
//! `Q [len][D]`, `Kᵀ [D][Cp]` (k scaled, transposed once gathered, so that it is the right
//! operand of `Q Kᵀ` and, decayed, the left operand of the state's update), `V [len][D]`,
//! `A [len][Cp]`, `O [len][D]`, `S [D][D]`; `Cp` is the chunk rounded up to [`PAD`]. The head dim
//! is a multiple of [`PAD`] ([`crate::SUPPORTED_HEAD_DIMS`]).

use std::ops::Range;

use yoco_core::math::exp;
#[cfg(target_arch = "x86_64")]
use yoco_core::{matmul::transpose_16_strip, simd::Isa};
use yoco_core::simd::{prefetch, store_narrowed, stream_fence, stream_narrowed, Simd, SimdKernel};
use yoco_core::Element;

use super::product::{product, Blocks, Start, Term, PAD};
use super::SharedOut;
use crate::{RetentionShape, GATE_FLOOR};

/// The next chunk's rows are prefetched in this many parts, one before each step of a chunk.
const PREFETCH_PARTS: usize = 4;

/// A task's buffers, reused for every chunk and segment.
pub(super) struct Scratch {
    q: Vec<f32>,
    /// K as gathered, rows `[len][D]`, before its transpose into `kt`.
    k: Vec<f32>,
    kt: Vec<f32>,
    v: Vec<f32>,
    scores: Vec<f32>,
    out: Vec<f32>,
    state: Vec<f32>,
    /// `b_t` of the chunk, in f64.
    cum: Vec<f64>,
    /// Per-token factors (`e^(b_last − b_u)`).
    factor: Vec<f32>,
}

impl Scratch {
    pub(super) fn new(chunk: usize, dim: usize) -> Self {
        let padded = chunk.next_multiple_of(PAD);
        Scratch {
            q: vec![0.0; chunk * dim],
            k: vec![0.0; chunk * dim],
            kt: vec![0.0; dim * padded],
            v: vec![0.0; chunk * dim],
            scores: vec![0.0; chunk * padded],
            out: vec![0.0; chunk * dim],
            state: vec![0.0; dim * dim],
            cum: vec![0.0; chunk],
            factor: vec![0.0; chunk],
        }
    }
}

/// Tokens `start .. end` of (batch, head) `bh`, in chunks of `chunk` (the last may be shorter).
pub(super) struct Segment<'a, T> {
    pub q: &'a [T],
    pub k: &'a [T],
    pub v: &'a [T],
    pub gates: &'a [f32],
    pub out: &'a SharedOut<T>,
    /// The task's state in the output tensor: read at the start, written at the end.
    pub state: &'a mut [f32],
    pub shape: RetentionShape,
    pub bh: usize,
    pub scale: f32,
    pub chunk: usize,
    pub start: usize,
    pub end: usize,
    /// Whether `out` is streamed past the caches ([`yoco_core::simd::streams_past_cache`]).
    pub stream: bool,
}

impl<T: Element> SimdKernel for Segment<'_, T> {
    type Output = ();
    type Scratch = Scratch;

    /// `R` × `NV`, the register block: 8 rows × 2 vectors with AVX-512 (16 of its 32
    /// registers), 4 × 2 with AVX2's 16.
    #[inline(always)]
    fn run<V: Simd>(self, w: &mut Scratch) {
        if V::LANES >= 16 {
            self.walk::<V, 8, 2>(w)
        } else {
            self.walk::<V, 4, 2>(w)
        }
    }
}

impl<T: Element> Segment<'_, T> {
    #[inline(always)]
    fn walk<V: Simd, const R: usize, const NV: usize>(self, w: &mut Scratch) {
        let RetentionShape { seq, heads, dim, .. } = self.shape;
        let (b, h) = (self.bh / heads, self.bh % heads);
        let padded = self.chunk.next_multiple_of(PAD);
        w.state.copy_from_slice(self.state);
        let mut start = self.start;
        while start < self.end {
            let len = self.chunk.min(self.end - start);
            self.gather(w, start, len, padded);
            let next = start + len..(start + 2 * len).min(self.end);
            self.prefetch_part(&next, 0);
            // Floored gates (GATE_FLOOR) summed in f64: the differences b_t − b_u of an f32 sum
            // would lose digits to every large gate before them. Each is rounded to f32 once.
            let mut acc = 0.0f64;
            for t in 0..len {
                let g = self.gates[(b * seq + start + t) * heads + h];
                // Not f32::max, which would turn a NaN gate into the floor: NaN must show.
                acc += if g < GATE_FLOOR { GATE_FLOOR } else { g } as f64;
                w.cum[t] = acc;
            }
            let last = w.cum[len - 1];

            let qk = Term { a: &w.q, lda: dim, b: &w.kt, ldb: padded, depth: dim, lower: false };
            product::<V, R, NV>(&mut w.scores, padded, len, len.next_multiple_of(PAD), Start::Zero, &[qk], Blocks::OnOrBelowDiagonal);
            self.prefetch_part(&next, 1);
            decay_mask(&mut w.scores[..len * padded], &w.cum[..len], padded);
            // Q is not needed after this, so it is scaled in place.
            for (row, &bt) in w.q.chunks_exact_mut(dim).zip(&w.cum[..len]) {
                let f = bt.exp() as f32;
                row.iter_mut().for_each(|x| *x *= f);
            }
            let intra = Term { a: &w.scores, lda: padded, b: &w.v, ldb: dim, depth: len, lower: true };
            let inter = Term { a: &w.q, lda: dim, b: &w.state, ldb: dim, depth: dim, lower: false };
            product::<V, R, NV>(&mut w.out, dim, len, dim, Start::Zero, &[intra, inter], Blocks::All);
            self.prefetch_part(&next, 2);
            for (t, row) in w.out[..len * dim].chunks_exact(dim).enumerate() {
                self.write_row::<V>(start + t, row);
            }

            self.prefetch_part(&next, 3);
            for (f, &bu) in w.factor[..len].iter_mut().zip(&w.cum[..len]) {
                *f = (last - bu).exp() as f32;
            }
            for row in w.kt.chunks_exact_mut(padded) {
                row[..len].iter_mut().zip(&w.factor[..len]).for_each(|(x, f)| *x *= f);
            }
            let update = Term { a: &w.kt, lda: padded, b: &w.v, ldb: dim, depth: len, lower: false };
            product::<V, R, NV>(&mut w.state, dim, dim, dim, Start::Scaled(last.exp() as f32), &[update], Blocks::All);
            start += len;
        }
        if self.stream {
            stream_fence();
        }
        self.state.copy_from_slice(&w.state);
    }

    /// Token `n`'s output row of this head from `row` (f32), in vectors, narrowed to the
    /// storage type and streamed past the caches where the output is too large to stay there.
    /// Written an element at a time, these stores had waited on memory for a sixth of the prefill
    /// (each line read in before it was written; `perf` at 4K tokens, 8 heads of 128).
    #[inline(always)]
    fn write_row<V: Simd>(&self, n: usize, row: &[f32]) {
        let dim = self.shape.dim;
        // SAFETY: this task alone writes the elements of (b, h), and row(n) .. + dim is token n's
        // row of this head in o, which has q's shape.
        let out = unsafe { std::slice::from_raw_parts_mut(self.out.ptr().add(self.row(n)), dim) };
        // The head dims are multiples of PAD, so of every vector width. Indexed, not a zip of
        // `chunks_exact`: that zip's constructor was not inlined, and its two divisions (the
        // chunks' counts) took ~7% of a prefill at 4 heads of 64 (perf, one thread; 2-core Zen 5,
        // both threads, six rounds in turn: 2.76 → 2.25 ms at 4K tokens).
        for c in (0..dim).step_by(V::LANES) {
            let (to, from) = (&mut out[c..c + V::LANES], V::load(&row[c..]));
            if self.stream {
                stream_narrowed(from, to);
            } else {
                store_narrowed(from, to);
            }
        }
    }

    /// Part `part` of [`PREFETCH_PARTS`] of the rows of `next` (the next chunk), asked for ahead
    /// of their use. Each token's row of this head is on a page of its own at 8 heads of 128 f32,
    /// where the hardware prefetchers do not follow: without this the gathers waited on memory for
    /// a fifth of the prefill. The parts go out between the chunk's products: asked for all at
    /// once the rows came in later (measured at 4K tokens, 8 heads of 128: 11.4 ms, in parts 10.8).
    #[inline(always)]
    fn prefetch_part(&self, next: &Range<usize>, part: usize) {
        let dim = self.shape.dim;
        let per_part = next.len().div_ceil(PREFETCH_PARTS);
        for n in next.clone().skip(part * per_part).take(per_part) {
            let row = self.row(n);
            for x in [self.q, self.k, self.v] {
                prefetch(&x[row..][..dim]);
            }
        }
    }

    /// Where token `n`'s row of this (batch, head) starts in q, k, v and o.
    #[inline(always)]
    fn row(&self, n: usize) -> usize {
        let RetentionShape { seq, heads, dim, .. } = self.shape;
        ((self.bh / heads * seq + n) * heads + self.bh % heads) * dim
    }

    /// The chunk's rows of this head widened to f32: q and v as rows, k scaled and then
    /// transposed from the scratch (transposing as it was read, one scalar load per element, took
    /// a fifth of the prefill waiting on memory), 16 × 16 at a time in registers with AVX-512
    /// (an element at a time, the transpose's strided stores took a tenth of the prefill).
    #[inline(always)]
    fn gather(&self, w: &mut Scratch, start: usize, len: usize, padded: usize) {
        let dim = self.shape.dim;
        for t in 0..len {
            let src = self.row(start + t);
            for (dst, x) in w.q[t * dim..][..dim].iter_mut().zip(&self.q[src..][..dim]) {
                *dst = x.to_f32();
            }
            for (dst, x) in w.k[t * dim..][..dim].iter_mut().zip(&self.k[src..][..dim]) {
                *dst = x.to_f32() * self.scale;
            }
            for (dst, x) in w.v[t * dim..][..dim].iter_mut().zip(&self.v[src..][..dim]) {
                *dst = x.to_f32();
            }
        }
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if Isa::detect() == Isa::Avx512 {
            done = len - len % 16;
            for t0 in (0..done).step_by(16) {
                let rows: [&[f32]; 16] = std::array::from_fn(|r| &w.k[(t0 + r) * dim..][..dim]);
                // SAFETY: AVX-512F was detected; each row holds dim words (a multiple of 16, one
                // of SUPPORTED_HEAD_DIMS), and kt from column t0 dim rows of `padded`
                // (t0 + 16 <= len <= padded).
                unsafe { transpose_16_strip(&rows, dim / 16, &mut w.kt[t0..], padded, 16) };
            }
        }
        for (t, row) in w.k[..len * dim].chunks_exact(dim).enumerate().skip(done) {
            for (i, &x) in row.iter().enumerate() {
                w.kt[i * padded + t] = x;
            }
        }
    }
}

/// `A[t][u] *= e^(b_t − b_u)` for `u ≤ t`, 0 for `t < u < len`. The vectorisable exp: len² / 2
/// of them per chunk would otherwise cost a third of the time. It gives 0 below e^-87, where the
/// true weight is under f32's normal range.
#[inline(always)]
fn decay_mask(scores: &mut [f32], cum: &[f64], padded: usize) {
    let len = cum.len();
    for (t, row) in scores.chunks_exact_mut(padded).enumerate() {
        let bt = cum[t];
        for (x, &bu) in row[..=t].iter_mut().zip(&cum[..=t]) {
            *x *= exp((bt - bu) as f32);
        }
        row[t + 1..len].fill(0.0);
    }
}
