//! The decode path (at most [`super::ROWS_PATH_MAX`] queries per sequence): the visible keys of
//! each sequence split into contiguous ranges, one task per (sequence, range) serving every
//! query head, then the ranges' partial softmaxes merged.
//!
//! Why by key range and not by head: position `j` of the cache holds every K/V head's row
//! side by side (`[batch, capacity, kv_heads, head_dim]`), so a task that walks positions reads
//! memory front to back, where the hardware prefetchers keep up, and reads each key and value
//! once for all the query heads of its group. A task per head would read one row per page
//! (4 KiB apart at 8 heads × 128 f32) and wait on memory for each (measured: 2.5× slower). Ranges
//! also keep every thread busy when there are fewer sequences × heads than threads.

use std::ops::Range;

use rayon::prelude::*;
use yoco_core::math::{dot, exp};
use yoco_core::Element;

use super::{prefetch, Inputs, OutRows};

/// Keys per tile: scores for a tile of keys, then their values.
const TILE: usize = 32;
/// Keys of one range at the least: fewer would spend more on merging than on reading.
const MIN_RANGE: usize = 512;
/// Positions requested ahead of their use.
const PREFETCH: usize = 4;

/// The running softmax of every (query, head) over one key range: max, sum and unnormalised
/// output, `[q_len][heads]` (`o`: `[q_len][heads][head_dim]`).
struct Partial {
    m: Vec<f32>,
    l: Vec<f32>,
    o: Vec<f32>,
}

pub(super) fn attend<T: Element>(x: &Inputs<T>, out: OutRows<T>) {
    let d = x.p.dims;
    // The keys any query of a sequence sees (every sequence has the same ranges).
    let (lo, hi) = (0..d.q_len).map(|i| x.p.mask.key_range(i, d.q_len, d.kv_len)).fold((usize::MAX, 0), |(lo, hi), (l, h)| (lo.min(l), hi.max(h)));
    let keys = hi.saturating_sub(lo);
    let threads = rayon::current_num_threads();
    let ranges = (keys / MIN_RANGE).clamp(1, (2 * threads).div_ceil(d.batch));
    let per_range = keys.div_ceil(ranges);
    let partials: Vec<Partial> = (0..d.batch * ranges)
        .into_par_iter()
        .map(|t| {
            let (b, r) = (t / ranges, t % ranges);
            let start = (lo + r * per_range).min(hi);
            range(x, b, start..(start + per_range).min(hi))
        })
        .collect();
    let (rows, dim) = (d.q_len * d.heads, d.head_dim);
    (0..d.batch).into_par_iter().for_each(|b| {
        let mine = &partials[b * ranges..(b + 1) * ranges];
        let mut o = vec![0f32; dim];
        for row in 0..rows {
            // Every query sees at least its own key, so some range has a finite max.
            let m = mine.iter().map(|p| p.m[row]).fold(f32::NEG_INFINITY, f32::max);
            let mut l = 0.0;
            o.fill(0.0);
            for p in mine.iter().filter(|p| p.m[row] > f32::NEG_INFINITY) {
                let c = exp(p.m[row] - m);
                l += c * p.l[row];
                for (od, pd) in o.iter_mut().zip(&p.o[row * dim..(row + 1) * dim]) {
                    *od = c.mul_add(*pd, *od);
                }
            }
            out.write(b, row / d.heads, row % d.heads, &o, l);
        }
    });
}

/// The partial softmax of every query and head of sequence `b` over the keys `keys`.
fn range<T: Element>(x: &Inputs<T>, b: usize, keys: Range<usize>) -> Partial {
    let p = &x.p;
    let d = p.dims;
    let (dim, group, rows) = (d.head_dim, d.group(), d.q_len * d.heads);
    let q: Vec<f32> = (0..rows).flat_map(|row| x.q_row(b, row / d.heads, row % d.heads).iter().map(|v| v.to_f32() * p.scale)).collect();
    let visible: Vec<(usize, usize)> = (0..d.q_len).map(|i| p.mask.key_range(i, d.q_len, d.kv_len)).collect();
    let mut part = Partial { m: vec![f32::NEG_INFINITY; rows], l: vec![0.0; rows], o: vec![0.0; rows * dim] };
    // Scores of the tile, [rows][TILE]; −∞ where a query does not see the key.
    let mut scores = vec![f32::NEG_INFINITY; rows * TILE];
    let mut corr = vec![0f32; rows];
    let mut t0 = keys.start;
    while t0 < keys.end {
        let count = (keys.end - t0).min(TILE);
        for jj in 0..count {
            let j = t0 + jj;
            if j + PREFETCH < keys.end {
                prefetch_position(x, b, j + PREFETCH);
            }
            for hk in 0..d.kv_heads {
                let k = x.k_row(b, j, hk);
                for h in hk * group..(hk + 1) * group {
                    for (i, &(lo, hi)) in visible.iter().enumerate() {
                        let row = i * d.heads + h;
                        scores[row * TILE + jj] = if (lo..hi).contains(&j) { dot(&q[row * dim..(row + 1) * dim], k) } else { f32::NEG_INFINITY };
                    }
                }
            }
        }
        for row in 0..rows {
            let tile_max = scores[row * TILE..row * TILE + count].iter().fold(f32::NEG_INFINITY, |a, &v| if v > a { v } else { a });
            let m_new = part.m[row].max(tile_max);
            // A row that has seen nothing yet has l = 0 and o = 0: any finite correction will do.
            corr[row] = if part.m[row] == f32::NEG_INFINITY { 0.0 } else { exp(part.m[row] - m_new) };
            part.l[row] *= corr[row];
            part.m[row] = m_new;
        }
        for (o, &c) in part.o.chunks_exact_mut(dim).zip(&corr) {
            if c != 1.0 {
                o.iter_mut().for_each(|v| *v *= c);
            }
        }
        for jj in 0..count {
            let j = t0 + jj;
            for hk in 0..d.kv_heads {
                let v = x.v_row(b, j, hk);
                for h in hk * group..(hk + 1) * group {
                    for i in 0..d.q_len {
                        let row = i * d.heads + h;
                        let s = scores[row * TILE + jj];
                        if s == f32::NEG_INFINITY {
                            continue;
                        }
                        let pj = exp(s - part.m[row]);
                        part.l[row] += pj;
                        for (od, vd) in part.o[row * dim..(row + 1) * dim].iter_mut().zip(v) {
                            *od = pj.mul_add(vd.to_f32(), *od);
                        }
                    }
                }
            }
        }
        t0 += count;
    }
    part
}

/// Asks for position `j`'s keys and values (every K/V head's row) to be brought into the cache.
#[inline(always)]
fn prefetch_position<T: Element>(x: &Inputs<T>, b: usize, j: usize) {
    let width = x.p.dims.kv_heads * x.p.dims.head_dim;
    let start = x.kv_offset(b, j, 0);
    prefetch(&x.k[start..start + width]);
    prefetch(&x.v[start..start + width]);
}
