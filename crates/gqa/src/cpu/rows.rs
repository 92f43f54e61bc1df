//! The row path: each of a few queries (a decode step, the tail of a prefill) streams over its
//! visible keys where they lie, in tiles of [`BC`]: dot products along the head dim with sixteen
//! partial sums, then the online-softmax update, then `o += p · v` along the head dim.
//!
//! It serves several query heads of one K/V head at once (a decode step's whole GQA group), so
//! that each key and value row is read from memory once for the group rather than once per query
//! head: a decode step is bound by reading K and V.

use std::ops::Range;

use yoco_core::math::exp;
use yoco_core::Element;

use super::{Inputs, OutRows, Scratch, BC};

/// Lanes of the partial sums: two AVX2 registers or one AVX-512 register; divides every
/// supported head dim.
const LANES: usize = 16;

/// Queries `i0 .. i0 + n` of sequence `b` for the query heads `heads`, which share one K/V head.
/// At most [`super::BR`] heads (the scratch's rows).
pub(super) fn attend<T: Element>(x: &Inputs<T>, s: &mut Scratch, b: usize, heads: Range<usize>, i0: usize, n: usize, out: OutRows<T>) {
    let p = &x.p;
    let (d, g) = (p.dims.head_dim, heads.len());
    let hk = heads.start / p.dims.group();
    debug_assert_eq!(hk, (heads.end - 1) / p.dims.group(), "the heads share one K/V head");
    // The scratch's tiles, reused, one row per head: queries, outputs, the tile's scores, and the
    // running max, sum and correction.
    let (q, o, sc) = (&mut s.qt[..g * d], &mut s.o[..g * d], &mut s.st[..g * BC]);
    let (m, l, corr) = (&mut s.m[..g], &mut s.l[..g], &mut s.corr[..g]);
    for i in i0..i0 + n {
        for (qh, h) in q.chunks_exact_mut(d).zip(heads.clone()) {
            for (dst, src) in qh.iter_mut().zip(x.q_row(b, i, h)) {
                *dst = src.to_f32() * p.scale;
            }
        }
        o.fill(0.0);
        m.fill(f32::NEG_INFINITY);
        l.fill(0.0);
        let (lo, hi) = p.mask.key_range(i, p.dims.q_len, p.dims.kv_len);
        let mut j0 = lo;
        while j0 < hi {
            let count = (hi - j0).min(BC);
            for jj in 0..count {
                if j0 + jj + PREFETCH_ROWS < hi {
                    prefetch(x.k_row(b, j0 + jj + PREFETCH_ROWS, hk));
                }
                let k = x.k_row(b, j0 + jj, hk);
                for (qh, sh) in q.chunks_exact(d).zip(sc.chunks_exact_mut(BC)) {
                    sh[jj] = dot(qh, k);
                }
            }
            // Every key in [lo, hi) is visible, so each tile max is finite.
            for (((sh, mh), lh), ch) in sc.chunks_exact(BC).zip(m.iter_mut()).zip(l.iter_mut()).zip(corr.iter_mut()) {
                let m_new = sh[..count].iter().fold(*mh, |a, &v| if v > a { v } else { a });
                *ch = exp(*mh - m_new);
                *lh *= *ch;
                *mh = m_new;
            }
            for (oh, &ch) in o.chunks_exact_mut(d).zip(corr.iter()) {
                for od in oh.iter_mut() {
                    *od *= ch;
                }
            }
            for jj in 0..count {
                if j0 + jj + PREFETCH_ROWS < hi {
                    prefetch(x.v_row(b, j0 + jj + PREFETCH_ROWS, hk));
                }
                let v = x.v_row(b, j0 + jj, hk);
                for (((oh, sh), &mh), lh) in o.chunks_exact_mut(d).zip(sc.chunks_exact(BC)).zip(m.iter()).zip(l.iter_mut()) {
                    let pj = exp(sh[jj] - mh);
                    *lh += pj;
                    for (od, vd) in oh.iter_mut().zip(v) {
                        *od = pj.mul_add(vd.to_f32(), *od);
                    }
                }
            }
            j0 += count;
        }
        for ((oh, &lh), h) in o.chunks_exact(d).zip(l.iter()).zip(heads.clone()) {
            out.write(b, i, h, oh, lh);
        }
    }
}

/// Rows of K (or V) requested ahead of their use. Consecutive positions of one K/V head lie
/// `kv_heads · head_dim` elements apart (4 KiB at 8 × 128 f32): each row on its own page, where
/// the hardware prefetchers do not follow, so without this every row waits on memory.
const PREFETCH_ROWS: usize = 8;

/// Asks for every cache line of `row` to be brought into the cache.
#[inline(always)]
fn prefetch<T>(row: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        let bytes = std::mem::size_of_val(row);
        let base = row.as_ptr().cast::<i8>();
        for line in (0..bytes).step_by(64) {
            // SAFETY: a prefetch is a hint that never faults; the address lies inside `row`.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(base.add(line)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// q · k in f32 with LANES independent partial sums.
#[inline(always)]
fn dot<T: Element>(q: &[f32], k: &[T]) -> f32 {
    let mut acc = [0f32; LANES];
    for (qc, kc) in q.chunks_exact(LANES).zip(k.chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] = qc[l].mul_add(kc[l].to_f32(), acc[l]);
        }
    }
    acc.iter().sum()
}
