//! The row path: each of a few queries at the end of a prefill (a block of at most
//! [`super::ROWS_PATH_MAX`]) streams over its own visible keys where they lie, in tiles of
//! [`BC`]: dot products along the head dim, then the online-softmax update, then `o += p · v`
//! along the head dim. A query-wide tile would be mostly padding there.

use yoco_core::math::{dot, exp};
use yoco_core::simd::prefetch;
use yoco_core::Element;

use super::{exponent_base, Inputs, OutRows, Scratch, BC};

/// Rows of K (or V) requested ahead of their use: consecutive positions of one K/V head lie
/// `kv_heads · head_dim` elements apart (4 KiB at 8 × 128 f32), each row on its own page, where
/// the hardware prefetchers do not follow.
const PREFETCH_ROWS: usize = 8;

pub(super) fn attend<T: Element>(x: &Inputs<T>, s: &mut Scratch, b: usize, h: usize, i0: usize, n: usize, out: OutRows<T>) {
    let p = &x.p;
    let (d, hk) = (p.dims.head_dim, h / p.dims.group());
    // The scratch's tiles, reused: the query row, the output row, the tile's scores.
    let (q, o, sc) = (&mut s.qt[..d], &mut s.o[..d], &mut s.st[..BC]);
    for i in i0..i0 + n {
        for (dst, src) in q.iter_mut().zip(x.q_row(b, i, h)) {
            *dst = src.to_f32();
        }
        o.fill(0.0);
        let (lo, hi) = p.mask.key_range(i, p.dims.q_len, p.dims.kv_len);
        let (mut m, mut l) = (f32::NEG_INFINITY, 0.0f32);
        let mut j0 = lo;
        while j0 < hi {
            let count = (hi - j0).min(BC);
            for (jj, s) in sc[..count].iter_mut().enumerate() {
                if j0 + jj + PREFETCH_ROWS < hi {
                    prefetch(x.k_row(b, j0 + jj + PREFETCH_ROWS, hk));
                }
                *s = dot(q, x.k_row(b, j0 + jj, hk));
            }
            // Every key in [lo, hi) is visible, so the tile's raw max is finite; scaled, it can
            // pass f32's range (see `exponent_base`).
            let tile_max = p.scale * sc[..count].iter().fold(f32::NEG_INFINITY, |a, &v| if v > a { v } else { a });
            let m_new = if tile_max > m { tile_max } else { m };
            let base = exponent_base(m_new);
            let corr = exp(m - base);
            l *= corr;
            for od in o.iter_mut() {
                *od *= corr;
            }
            for (jj, &sj) in sc[..count].iter().enumerate() {
                if j0 + jj + PREFETCH_ROWS < hi {
                    prefetch(x.v_row(b, j0 + jj + PREFETCH_ROWS, hk));
                }
                // −∞ (a score below f32's range once scaled) weighs 0, as `exp` gives it.
                let pj = exp(sj * p.scale - base);
                l += pj;
                for (od, vd) in o.iter_mut().zip(x.v_row(b, j0 + jj, hk)) {
                    *od = pj.mul_add(vd.to_f32(), *od);
                }
            }
            m = m_new;
            j0 += count;
        }
        out.write(b, i, h, o, l);
    }
}
