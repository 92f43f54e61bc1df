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
//!
//! Within a range, tiles of [`TILE`] positions, each in three steps written in explicit vectors
//! ([`yoco_core::simd`]), with the keys and values read in their storage type:
//! * scores: two positions at a time, every K/V head's two keys against the query rows of its
//!   group, a few rows at a time, so that every vector of a key is loaded once for those rows
//!   and every vector of a query row once for both keys; the dot products are independent
//!   accumulators, and the next head's run beside a head's sums;
//! * the online-softmax update of each row over the tile, with the exponentials in a plain loop
//!   over the tile's scores (it vectorises);
//! * `o += p · v`: a few rows' outputs held in registers across the tile's values, each vector
//!   of a value loaded once for those rows, the tile's values first read once in order
//!   ([`yoco_core::simd::touch`]).
//!
//! The head dim goes in spans of two vectors, each key's, value's and query's span widened by
//! one [`load_widened_pair`]: bf16 comes out in pairs' order (the even elements, then the odd
//! ones: a shift and a mask a vector, where the row's order takes a zero-extension and a shift),
//! which the dot products do not see, and the outputs stay in that order until the range is
//! done ([`unpair`]). On the 2-core Zen 5, with the cache in cache, one thread, alternating,
//! five rounds: 24/8 heads of 128 over 512 keys 0.120 → 0.104 ms (f32, the queries no longer
//! collected through a flattened iterator) and 0.087 → 0.083 (bf16); 5 × 4/2 heads of 64,
//! 0.076 → 0.071 and 0.063 → 0.060.
//!
//! Why the keys position by position and the values read in order first: memory is read fastest
//! front to back, one position's row of every head after the other, its arithmetic interleaved,
//! where the hardware prefetchers keep ahead of the loads. Scoring four positions at once (each
//! head's four keys, 4 KiB apart, for independent accumulators) and adding up the values a slice
//! of the head dim across the tile's 32 positions read memory in pieces 512 and 128 bytes long
//! from 4 and 32 rows at once: on the 2-core Zen 4, a read in those patterns moved 24 and 16.5
//! GB/s where one front to back moved 31–35. Two neighbouring positions read as one stream, and
//! scoring them together halves the loads of query vectors. The values were at first copied to a
//! buffer (a `memcpy`, front to back) and summed from there; a read of one element per cache
//! line brings them in the same order without the copy's stores (a quarter of the step with the
//! data in cache), and the sums then read the tile from the level-2 cache in any order. A
//! software prefetch of the values ahead, as of the keys, only added to the misses in flight
//! (no faster in f32, 0.49 against 0.53 of the read pass in bf16).
//!
//! Measured on the 2-core Zen 4 against the design before (one position at a time, the values
//! copied), alternating, five rounds, medians (`cargo run --release -p yoco-gqa --example
//! decode_probe`; `DTYPE=bf16`; `IN_CACHE=1` with `SHAPES` that fit the level-3 cache): with the
//! K/V cache in cache, 18–25% faster (24/8 heads of 128 over 2048 keys: 0.489 → 0.367 ms in f32,
//! 0.394 → 0.294 in bf16; 5 × 4/2 heads of 64 over 1024 keys: 0.178 → 0.145 and 0.159 → 0.131);
//! from memory, in minutes when it gave 35 GB/s, the same (0.70–0.73 of the read pass, both), in
//! others 0.68 → 0.77 (f32, 24/8 heads of 128 over 32768 keys). The step is held by memory or by
//! its arithmetic as the bandwidth of the minute decides; the arithmetic now holds it at 45 GB/s
//! (f32) where it held it at 35.
//!
//! A scalar version of the same loops ran at 0.25 ns per (row, key, dimension), a multiply-add
//! a cycle (the first design: 45% of copy bandwidth at 24/8 heads of 128).
//!
//! Tried on the 2-core Zen 5 and not kept (`decode_probe`, from memory, fractions of the read
//! pass beside each call, alternating, four or five rounds; 24/8 heads of 128 over 32768 keys
//! and 5 × 4/2 of 64 over 16384, f32): the values summed a tile behind the keys, in the same
//! loop, a few positions at a time, so that both streams overlap the arithmetic (8 positions:
//! slower in cache; 16 or 32: 0.53–0.49 and 0.68–0.64 against 0.65 and 0.81); the values asked
//! for a tile ahead beside the keys with the pass in order dropped (0.56 against 0.68) or kept
//! (level to slightly slower); tiles of 16 or 64 positions and requests 8 or 32 positions ahead (the same or
//! slower); the tile's maximum a vector at a time (the same, within the noise). The scores'
//! lane sums are not what holds the scores back: a build without them ran no faster. With the
//! cache in cache, the scores are ~40% of a step, the sums of the values ~25%, and the softmax's
//! bookkeeping most of the rest.
//!
//! Also tried there and not kept: bf16 scores by AVX512-BF16's pair product (`vdpbf16ps`, keys
//! and query rows read as they lie, half the instructions of widening and FMA; the kernel run
//! inside a function compiled with the feature). One thread, with the cache in cache, three
//! rounds: 24/8 heads of 128 over 512 keys 0.078–0.083 → 0.076–0.078 ms, 5 × 4/2 of 64
//! 0.056–0.058 → 0.058–0.060; from memory, 0.565–0.574 → 0.565–0.581 and 0.696–0.703 →
//! 0.679–0.733 of the read pass. The scores' 16-lane sums, one per score, were then a tenth of
//! the step, and the sums of the values and the in-order read of them the most of it.

use std::ops::Range;

use rayon::prelude::*;
use yoco_core::math::exp;
use yoco_core::Element;

use yoco_core::simd::{dispatch, load_widened_pair, prefetch, touch, unpair, Simd, SimdKernel};

use super::{exponent_base, Inputs, OutRows};

/// Keys per tile: scores for a tile of keys, then their values.
const TILE: usize = 32;
/// Keys of one range at the least: fewer would spend more on merging than on reading.
const MIN_RANGE: usize = 512;
/// Positions requested ahead of their use.
const PREFETCH: usize = 16;
/// Query rows served together: their dot products share each load of a key vector, their
/// outputs each load of a value vector. Four rows' outputs over a span of the head dim (two
/// vectors, one [`load_widened_pair`]) are 8 of the 16 (AVX2) or 32 (AVX-512) vector registers.
const ROW_BLOCK: usize = 4;

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
    let ranges = ranges_per_sequence(keys, d.batch, rayon::current_num_threads());
    let per_range = keys.div_ceil(ranges);
    let partials: Vec<Partial> = (0..d.batch * ranges)
        .into_par_iter()
        .map(|t| {
            let (b, r) = (t / ranges, t % ranges);
            let start = (lo + r * per_range).min(hi);
            dispatch(KeyRange { x, b, keys: start..(start + per_range).min(hi) }, &mut ())
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

/// Key ranges per sequence: enough for two tasks per thread, and a count of tasks (sequences ×
/// ranges) that the threads divide evenly, since the tasks are of equal size: 5 sequences on 2
/// threads as 5 tasks kept one thread idle for a fifth of the step (3 tasks against 2), as 10
/// they finish together. Never ranges of fewer than [`MIN_RANGE`] keys, whose merging would cost
/// more than their reading.
fn ranges_per_sequence(keys: usize, batch: usize, threads: usize) -> usize {
    let most = (keys / MIN_RANGE).max(1);
    let mut ranges = (2 * threads).div_ceil(batch).min(most);
    while !(batch * ranges).is_multiple_of(threads) && ranges < most && ranges < 2 * threads {
        ranges += 1;
    }
    ranges
}

/// The partial softmax of every query and head of sequence `b` over the keys `keys`.
struct KeyRange<'a, T> {
    x: &'a Inputs<'a, T>,
    b: usize,
    keys: Range<usize>,
}

impl<T: Element> SimdKernel for KeyRange<'_, T> {
    type Output = Partial;
    type Scratch = ();

    #[inline(always)]
    fn run<V: Simd>(self, _: &mut ()) -> Partial {
        range_body::<T, V>(self.x, self.b, self.keys)
    }
}

#[inline(always)]
fn range_body<T: Element, V: Simd>(x: &Inputs<T>, b: usize, keys: Range<usize>) -> Partial {
    let p = &x.p;
    let d = p.dims;
    let (dim, group, rows) = (d.head_dim, d.group(), d.q_len * d.heads);
    // The query rows widened as the keys and values are (`load_widened_pair`): in pairs' order
    // for bf16, the outputs laid out so too until the end.
    let span = 2 * V::LANES;
    debug_assert_eq!(dim % span, 0, "head dim {dim} not a multiple of {span}");
    let mut q = vec![0f32; rows * dim];
    for (row, widened) in q.chunks_exact_mut(dim).enumerate() {
        let from = x.q_row(b, row / d.heads, row % d.heads);
        for c in (0..dim).step_by(span) {
            let [first, second] = load_widened_pair::<T, V>(&from[c..]);
            first.store(&mut widened[c..]);
            second.store(&mut widened[c + V::LANES..]);
        }
    }
    let visible: Vec<(usize, usize)> = (0..d.q_len).map(|i| p.mask.key_range(i, d.q_len, d.kv_len)).collect();
    // Keys every query sees: a tile inside them needs no mask.
    let (seen_by_all_lo, seen_by_all_hi) = visible.iter().fold((0, usize::MAX), |(lo, hi), &(l, h)| (lo.max(l), hi.min(h)));
    // The rows (`i · heads + h`) of each K/V head's group.
    let group_rows: Vec<Vec<usize>> = (0..d.kv_heads).map(|hk| (hk * group..(hk + 1) * group).flat_map(|h| (0..d.q_len).map(move |i| i * d.heads + h)).collect()).collect();
    let mut part = Partial { m: vec![f32::NEG_INFINITY; rows], l: vec![0.0; rows], o: vec![0.0; rows * dim] };
    // Scores, then probabilities, of the tile: [rows][TILE].
    let mut scores = vec![0f32; rows * TILE];
    let mut t0 = keys.start;
    while t0 < keys.end {
        let count = (keys.end - t0).min(TILE);
        let mut jj = 0;
        while jj < count {
            let j = t0 + jj;
            // Two positions at once where the tile has two left: each load of a query vector
            // then serves both keys.
            let pair = jj + 1 < count;
            for ahead in j + PREFETCH..(j + PREFETCH + 1 + usize::from(pair)).min(keys.end) {
                prefetch_position(x, b, ahead);
            }
            for (hk, members) in group_rows.iter().enumerate() {
                if pair {
                    let keys = [x.k_row(b, j, hk), x.k_row(b, j + 1, hk)];
                    for block in members.chunks(ROW_BLOCK) {
                        score_block::<T, V, 2>(&q, block, keys, dim, &mut scores[jj..]);
                    }
                } else {
                    let keys = [x.k_row(b, j, hk)];
                    for block in members.chunks(ROW_BLOCK) {
                        score_block::<T, V, 1>(&q, block, keys, dim, &mut scores[jj..]);
                    }
                }
            }
            jj += 1 + usize::from(pair);
        }
        if t0 < seen_by_all_lo || t0 + count > seen_by_all_hi {
            for (row, row_scores) in scores.chunks_exact_mut(TILE).enumerate() {
                let (lo, hi) = visible[row / d.heads];
                for (jj, s) in row_scores[..count].iter_mut().enumerate() {
                    if !(lo..hi).contains(&(t0 + jj)) {
                        *s = f32::NEG_INFINITY;
                    }
                }
            }
        }
        for row in 0..rows {
            softmax_update::<V>(&mut part, row, &mut scores[row * TILE..][..count], dim, p.scale);
        }
        // The tile's values are read in any order below, 32 rows at a time: read them in
        // order first, so that they are in cache when the sums ask for them.
        touch(&x.v[x.kv_offset(b, t0, 0)..x.kv_offset(b, t0 + count, 0)]);
        let mut values: [&[T]; TILE] = [&[]; TILE];
        for (hk, members) in group_rows.iter().enumerate() {
            for (jj, v) in values[..count].iter_mut().enumerate() {
                *v = x.v_row(b, t0 + jj, hk);
            }
            for block in members.chunks(ROW_BLOCK) {
                accumulate_block::<T, V>(&mut part.o, block, &scores, &values[..count], dim);
            }
        }
        t0 += count;
    }
    for chunk in part.o.chunks_exact_mut(span) {
        unpair::<T, V>(chunk);
    }
    part
}

/// The scores of one key for the query rows `block` (at most [`ROW_BLOCK`]), into
/// `scores[row · TILE]` (`scores` starts at the key's column of the tile).
#[inline(always)]
fn score_block<T: Element, V: Simd, const P: usize>(q: &[f32], block: &[usize], keys: [&[T]; P], dim: usize, scores: &mut [f32]) {
    match block.len() {
        1 => score_rows::<T, V, 1, P>(q, block, keys, dim, scores),
        2 => score_rows::<T, V, 2, P>(q, block, keys, dim, scores),
        3 => score_rows::<T, V, 3, P>(q, block, keys, dim, scores),
        _ => score_rows::<T, V, ROW_BLOCK, P>(q, block, keys, dim, scores),
    }
}

/// [`score_block`] for exactly `R` rows and `P` keys: `R × P` accumulators along the head dim,
/// each reduced once at the end.
#[inline(always)]
fn score_rows<T: Element, V: Simd, const R: usize, const P: usize>(q: &[f32], block: &[usize], keys: [&[T]; P], dim: usize, scores: &mut [f32]) {
    let mut rows: [&[f32]; R] = [&[]; R];
    for (r, row) in rows.iter_mut().enumerate() {
        *row = &q[block[r] * dim..][..dim];
    }
    let mut acc = [[V::splat(0.0); P]; R];
    for c in (0..dim).step_by(2 * V::LANES) {
        let mut kv = [[V::splat(0.0); 2]; P];
        for p in 0..P {
            kv[p] = load_widened_pair::<T, V>(&keys[p][c..]);
        }
        for r in 0..R {
            let qv = [V::load(&rows[r][c..]), V::load(&rows[r][c + V::LANES..])];
            for p in 0..P {
                acc[r][p] = acc[r][p].fma(qv[0], kv[p][0]).fma(qv[1], kv[p][1]);
            }
        }
    }
    for r in 0..R {
        for p in 0..P {
            scores[block[r] * TILE + p] = acc[r][p].sum();
        }
    }
}

/// One row's online-softmax step over a tile of raw scores: the new running max (in scaled
/// units: the scale times the raw maximum), the correction of what the row accumulated so far,
/// and the tile's probabilities `e^(score · scale − base)` in place of its scores, `base` as
/// [`exponent_base`] says. An exponent of −∞ (a masked score, or one below f32's range once
/// scaled) weighs exactly 0, as `exp` gives it. A row that has seen no visible key yet keeps
/// m = −∞, l = 0, o = 0.
#[inline(always)]
fn softmax_update<V: Simd>(part: &mut Partial, row: usize, scores: &mut [f32], dim: usize, scale: f32) {
    let tile_max = scale * scores.iter().fold(f32::NEG_INFINITY, |a, &v| if v > a { v } else { a });
    let m_old = part.m[row];
    let m_new = if tile_max > m_old { tile_max } else { m_old };
    let base = exponent_base(m_new);
    for s in scores.iter_mut() {
        *s = exp(*s * scale - base);
    }
    // Summed apart from the exponentials, an explicit vector at a time: an in-order sum in the
    // same loop would keep that loop from vectorising, and partial sums left to the compiler went
    // through the stack by a masked store that the scalar loads after it could not forward from
    // (8% of the step with the data in cache).
    let mut whole = scores.chunks_exact(V::LANES);
    let mut lanes = V::splat(0.0);
    for chunk in whole.by_ref() {
        lanes = lanes.add(V::load(chunk));
    }
    let sum = whole.remainder().iter().fold(lanes.sum(), |a, &e| a + e);
    // 0 where the row had no visible key yet (m_old = −∞).
    let corr = exp(m_old - base);
    if corr != 1.0 {
        part.o[row * dim..][..dim].iter_mut().for_each(|v| *v *= corr);
    }
    part.l[row] = part.l[row] * corr + sum;
    part.m[row] = m_new;
}

/// `o[row] += Σ_jj p[row][jj] · values[jj]` for the query rows `block` (at most [`ROW_BLOCK`]).
#[inline(always)]
fn accumulate_block<T: Element, V: Simd>(o: &mut [f32], block: &[usize], probs: &[f32], values: &[&[T]], dim: usize) {
    match block.len() {
        1 => accumulate_rows::<T, V, 1>(o, block, probs, values, dim),
        2 => accumulate_rows::<T, V, 2>(o, block, probs, values, dim),
        3 => accumulate_rows::<T, V, 3>(o, block, probs, values, dim),
        _ => accumulate_rows::<T, V, ROW_BLOCK>(o, block, probs, values, dim),
    }
}

/// [`accumulate_block`] for exactly `R` rows: the head dim in spans of two vectors, one
/// [`load_widened_pair`] of each value (the supported head dims, 64, 128 and 256, are multiples
/// of every span), each span's `R` outputs held in registers across the tile's values.
#[inline(always)]
fn accumulate_rows<T: Element, V: Simd, const R: usize>(o: &mut [f32], block: &[usize], probs: &[f32], values: &[&[T]], dim: usize) {
    for c in (0..dim).step_by(2 * V::LANES) {
        accumulate_span::<T, V, R>(o, block, probs, values, dim, c);
    }
}

/// Dims `c .. c + 2 · LANES` of the `R` rows' outputs, laid out as [`load_widened_pair`] lays
/// out the values.
#[inline(always)]
fn accumulate_span<T: Element, V: Simd, const R: usize>(o: &mut [f32], block: &[usize], probs: &[f32], values: &[&[T]], dim: usize, c: usize) {
    let mut acc = [[V::splat(0.0); 2]; R];
    for r in 0..R {
        for n in 0..2 {
            acc[r][n] = V::load(&o[block[r] * dim + c + n * V::LANES..]);
        }
    }
    for (jj, v) in values.iter().enumerate() {
        let vv = load_widened_pair::<T, V>(&v[c..]);
        for r in 0..R {
            let pj = V::splat(probs[block[r] * TILE + jj]);
            for n in 0..2 {
                acc[r][n] = acc[r][n].fma(pj, vv[n]);
            }
        }
    }
    for r in 0..R {
        for n in 0..2 {
            acc[r][n].store(&mut o[block[r] * dim + c + n * V::LANES..]);
        }
    }
}

/// Asks for position `j`'s keys (every K/V head's row) to be brought into the cache: every line
/// of them, or, where they fill a page or more, the first line of each page, the hardware
/// prefetchers following within a page once it is touched. Measured (keys and values then both
/// prefetched; 24/8 heads × 128, f32: 4 KiB a position): 25 GB/s with every line asked for, 32
/// with a line a page; at 512 bytes a position (4/2 × 64) a line a position ran at half the speed
/// of every line. The values are read in order at the end of their tile instead (see the module
/// documentation).
#[inline(always)]
fn prefetch_position<T: Element>(x: &Inputs<T>, b: usize, j: usize) {
    const PAGE_BYTES: usize = 4096;
    let width = x.p.dims.kv_heads * x.p.dims.head_dim;
    let start = x.kv_offset(b, j, 0);
    if width * std::mem::size_of::<T>() < PAGE_BYTES {
        prefetch(&x.k[start..start + width]);
    } else {
        for offset in (0..width).step_by(PAGE_BYTES / std::mem::size_of::<T>()) {
            prefetch(&x.k[start + offset..start + offset + 1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ranges_per_sequence;

    #[test]
    fn ranges_divide_evenly_among_the_threads() {
        // One sequence: two ranges per thread.
        assert_eq!(ranges_per_sequence(65536, 1, 2), 4);
        // Odd batches on 2 threads: an even count of tasks.
        assert_eq!(ranges_per_sequence(65536, 5, 2), 2);
        assert_eq!(ranges_per_sequence(65536, 3, 2), 2);
        // Enough sequences already: one range each.
        assert_eq!(ranges_per_sequence(65536, 16, 2), 1);
        assert_eq!(ranges_per_sequence(65536, 7, 8), 8);
        // Short caches are not split below MIN_RANGE keys.
        assert_eq!(ranges_per_sequence(700, 5, 2), 1);
        assert_eq!(ranges_per_sequence(100, 1, 16), 1);
    }
}
