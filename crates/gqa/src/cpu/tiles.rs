//! The tiled path: a block of up to [`BR`] rows ((query, head) pairs of one K/V head's group)
//! against tiles of `KEYS` keys ([`BC_WIDE`](super::BC_WIDE), or [`BC`](super::BC) under a window
//! mask), in f32.
//!
//! Layouts are chosen so that every inner loop is contiguous and vectorises along queries or
//! along the head dim, never along a reduction (which would need horizontal sums):
//! `Qᵀ [D][BR]`, `K [KEYS][D]`, V in column panels `[D / C][KEYS][C]` (`C` the columns of a
//! register block), scores and then probabilities transposed `Sᵀ [KEYS][BR]`, output `O [BR][D]`
//! (the rows of Qᵀ and Sᵀ [`ROW_STRIDE`] floats apart). Then
//! * `Sᵀ = K Qᵀ`: broadcast `K[j][d]`, multiply the vector `Qᵀ[d][i..i+C]`;
//! * the softmax statistics per query are element-wise maxima and sums over the rows of `Sᵀ`,
//!   the scale applied to the scores there (the exponents are `s · scale − max`), not folded
//!   into the queries: a product of scaled queries could pass f32's range part way through a dot
//!   product whose whole does not;
//! * `O = corr ⊙ O + Pᵀᵀ V`: broadcast `Sᵀ[j][i]`, multiply the vector `V[j][c..c+C]`.
//!
//! Each micro-kernel keeps an `R × NV` block of vector accumulators in registers over its whole
//! reduction (8 × 2 with AVX-512: 16 of the 32 zmm registers; 6 × 2 with AVX2: 12 of its 16, the
//! two vectors and the broadcast taking three more).

use yoco_core::math::exp;
#[cfg(target_arch = "x86_64")]
use yoco_core::{matmul::transpose_16_strip, simd::Isa};
use yoco_core::simd::{fma_block, prefetch, Simd};
use yoco_core::dtype::as_slice_of;
use yoco_core::Element;

use super::{exponent_base, Block, Inputs, OutRows, Scratch, BR, ROW_STRIDE};

/// Inlined into the caller, so that it is compiled with the caller's target features (the
/// AVX-512 intrinsics are only inlined into functions that have them).
#[inline(always)]
pub(super) fn attend<T: Element, V: Simd, const R: usize, const NV: usize, const KEYS: usize>(x: &Inputs<T>, s: &mut Scratch, block: Block, out: OutRows<T>) {
    let p = &x.p;
    let (d, b, n) = (p.dims.head_dim, block.b, block.rows());
    let hk = block.h0 / p.dims.group();
    pack_queries(x, s, block);
    // Key ranges per row; padding rows copy the last real one, so that classifying a tile over
    // all BR rows is the same as over the real rows. Rows go query by query, so both bounds are
    // monotone in the row.
    for r in 0..BR {
        let (lo, hi) = p.mask.key_range(block.row(r.min(n - 1)).0, p.dims.q_len, p.dims.kv_len);
        (s.lo[r], s.hi[r]) = (lo, hi);
    }
    s.m.fill(f32::NEG_INFINITY);
    s.l.fill(0.0);
    s.o.fill(0.0);
    // The block needs keys [lo of its first row, hi of its last); tiles outside the mask are
    // never visited.
    let (first, end) = (s.lo[0], s.hi[BR - 1]);
    let mut j0 = first;
    while j0 < end {
        let count = (end - j0).min(KEYS);
        // Asked for now, to be in level 2 when they are read: this tile's values, read after
        // its scores, and the next tile's keys. Without it, packing the values (their first
        // touch) had taken a fifth of the path's samples, most of them on the rows' loads (perf,
        // AVX2, 4096 tokens, 8 heads of 64).
        for jj in j0..j0 + count {
            prefetch(x.v_row(b, jj, hk));
        }
        for jj in j0 + count..(j0 + count + KEYS).min(end) {
            prefetch(x.k_row(b, jj, hk));
        }
        let keys = key_rows(x, &mut s.k, b, hk, j0, count);
        let st = &mut s.st[..KEYS * ROW_STRIDE];
        scores::<V, R, NV, KEYS>(&s.qt, &keys.rows::<KEYS>(), st, &mut s.tile_max, d);
        // Every key of the tile visible to every query: no per-element mask.
        let full = j0 + KEYS <= s.hi[0] && j0 >= s.lo[BR - 1];
        if !full {
            mask_tile(st, j0, &s.lo, &s.hi);
            // The maxima `scores` took include masked keys: an upper bound, but one that could
            // sit far above every visible score and underflow their exponentials. Retaken.
            masked_tile_max(st, &mut s.tile_max);
        }
        softmax_update::<KEYS>(s, p.scale);
        let width = NV * V::LANES;
        pack_value_panels::<T, KEYS>(x, &mut s.v, b, hk, j0, count, width);
        accumulate::<V, R, NV>(&s.st[..count * ROW_STRIDE], Panels { data: &s.v, keys: count, stride: KEYS * width }, &mut s.o, &s.corr, d);
        j0 += count;
    }
    for r in 0..n {
        let (i, h) = block.row(r);
        out.write(b, i, h, &s.o[r * d..][..d], s.l[r]);
    }
}

/// Qᵀ of the block's rows, zero in the padding columns. With AVX-512, 16 rows at a time are
/// transposed 16 × 16 words in registers (`transpose_16_strip`; 16-bit rows widened first, into
/// the key tile's scratch, free until the tiles start): a word at a time, each query row's loads
/// waited on its first touch (the rows are `heads · d` values apart), ~6% of a causal prefill's
/// samples in f32 and 5% in bf16 (perf, 2-core Zen 5, N 4096, 8 heads of 64).
#[inline(always)]
fn pack_queries<T: Element>(x: &Inputs<T>, s: &mut Scratch, block: Block) {
    let (d, n) = (x.p.dims.head_dim, block.rows());
    debug_assert_eq!(s.qt.len(), d * ROW_STRIDE);
    if n < BR {
        s.qt.fill(0.0);
    }
    let mut done = 0;
    // Every supported head dim is a whole number of tiles.
    #[cfg(target_arch = "x86_64")]
    if Isa::detect() == Isa::Avx512 && d.is_multiple_of(16) {
        done = n - n % 16;
        for r0 in (0..done).step_by(16) {
            let rows: [&[f32]; 16] = match as_slice_of::<T, f32>(x.q) {
                Some(q) => std::array::from_fn(|r| {
                    let (i, h) = block.row(r0 + r);
                    &q[x.q_offset(block.b, i, h)..][..d]
                }),
                None => {
                    for (r, widened) in s.k[..16 * d].chunks_exact_mut(d).enumerate() {
                        let (i, h) = block.row(r0 + r);
                        widen(x.q_row(block.b, i, h), widened);
                    }
                    std::array::from_fn(|r| &s.k[r * d..][..d])
                }
            };
            // SAFETY: AVX-512F was detected; each row holds d words, d / 16 tiles, and Qᵀ from
            // column r0 holds d rows of ROW_STRIDE ≥ r0 + 16 words.
            unsafe { transpose_16_strip(&rows, d / 16, &mut s.qt[r0..], ROW_STRIDE, 16) };
        }
    }
    for r in done..n {
        let (i, h) = block.row(r);
        for (c, v) in x.q_row(block.b, i, h).iter().enumerate() {
            s.qt[c * ROW_STRIDE + r] = v.to_f32();
        }
    }
}

/// Rows of one tile's keys as f32: row `jj` at `data[jj · stride ..][..d]`, of which
/// `count` are real; the rows past them repeat the last real one, whose finite values the mask
/// gives weight 0.
struct TileRows<'a> {
    data: &'a [f32],
    stride: usize,
    d: usize,
    count: usize,
}

impl<'a> TileRows<'a> {
    /// The tile's `KEYS` rows as slices, looked up once per tile rather than in the products'
    /// inner loops.
    #[inline(always)]
    fn rows<const KEYS: usize>(&self) -> [&'a [f32]; KEYS] {
        std::array::from_fn(|jj| &self.data[jj.min(self.count - 1) * self.stride..][..self.d])
    }
}

/// Rows `j0 .. j0 + count` of K head `hk` as f32: where they lie when the inputs are f32 (a
/// tile's rows are a stride of `kv_heads · d` apart, each contiguous: copying them had been ~4%
/// of a causal prefill's samples), else widened into the scratch's `tile`.
#[inline(always)]
fn key_rows<'s, T: Element>(x: &'s Inputs<T>, tile: &'s mut [f32], b: usize, hk: usize, j0: usize, count: usize) -> TileRows<'s> {
    let (d, source) = (x.p.dims.head_dim, x.k);
    if let Some(source) = as_slice_of::<T, f32>(source) {
        return TileRows { data: &source[x.kv_offset(b, j0, hk)..], stride: x.p.dims.kv_heads * d, d, count };
    }
    for jj in 0..count {
        widen(&source[x.kv_offset(b, j0 + jj, hk)..][..d], &mut tile[jj * d..][..d]);
    }
    TileRows { data: &tile[..count * d], stride: d, d, count }
}

/// Rows `j0 .. j0 + count` of V head `hk` as f32 in panels of `width` columns: panel `c` holds
/// columns `c · width ..` of every row, `width` floats a row, panels `KEYS · width` apart. The
/// output block of [`accumulate`] walks one panel down the tile's keys, for every block of
/// queries: contiguous, a panel stays in the level-1 cache from one block to the next, where the
/// rows read in place (f32 V is `kv_heads · d` floats a row, 2 KiB at 8 heads of 64) fell in two
/// of its sets and were read from level 2 every time (half of the path's level-1 misses).
#[inline(always)]
fn pack_value_panels<T: Element, const KEYS: usize>(x: &Inputs<T>, panels: &mut [f32], b: usize, hk: usize, j0: usize, count: usize, width: usize) {
    for jj in 0..count {
        let row = x.v_row(b, j0 + jj, hk);
        if let Some(row) = as_slice_of::<T, f32>(row) {
            // A copy, in vectors (the conversion below is not vectorised for f32). Every type
            // through `simd::load_widened` and a store instead measured slower on the whole
            // prefill (N 4096 causal, 0.64–0.76 → 0.55–0.65 of the FMA round, 2-core Zen 4).
            for (c, columns) in row.chunks_exact(width).enumerate() {
                panels[(c * KEYS + jj) * width..][..width].copy_from_slice(columns);
            }
            continue;
        }
        for (c, columns) in row.chunks_exact(width).enumerate() {
            widen(columns, &mut panels[(c * KEYS + jj) * width..][..width]);
        }
    }
}

/// `src` widened to f32 into `dst` (as long), an element at a time: the queries', keys' and
/// values' 16-bit rows (f32 ones are read in place or copied).
#[inline(always)]
fn widen<T: Element>(src: &[T], dst: &mut [f32]) {
    for (dst, src) in dst.iter_mut().zip(src) {
        *dst = src.to_f32();
    }
}

/// Sᵀ[KEYS][BR] = K[KEYS][D] · Qᵀ[D][BR]: blocks of R keys × NV vectors of queries (the keys
/// past the last whole block of R one at a time), a column of blocks (one block of queries down
/// the tile's keys) at a time, so that the block's slice of Qᵀ stays in the level-1 cache while
/// the keys stream past (over the keys first, the whole of Qᵀ had been read again for each block
/// of keys, from level 2); and each query's maximum over the tile into `tile_max` [BR], taken
/// from the accumulators while they are in registers (a pass of its own over Sᵀ cost a tenth of
/// the prefill).
#[inline(always)]
fn scores<V: Simd, const R: usize, const NV: usize, const KEYS: usize>(qt: &[f32], k: &[&[f32]; KEYS], st: &mut [f32], tile_max: &mut [f32], d: usize) {
    tile_max.fill(f32::NEG_INFINITY);
    let whole = KEYS - KEYS % R;
    for ib in (0..BR).step_by(NV * V::LANES) {
        for jb in (0..whole).step_by(R) {
            score_block::<V, R, NV>(qt, &k[jb..], jb, ib, st, tile_max, d);
        }
        for jb in whole..KEYS {
            score_block::<V, 1, NV>(qt, &k[jb..], jb, ib, st, tile_max, d);
        }
    }
}

/// Rows `jb .. jb + R`, columns `ib ..` (NV vectors) of Sᵀ, from the key rows `k[..R]`, and
/// their part of those queries' maxima.
#[inline(always)]
fn score_block<V: Simd, const R: usize, const NV: usize>(qt: &[f32], k: &[&[f32]], jb: usize, ib: usize, st: &mut [f32], tile_max: &mut [f32], d: usize) {
    // A view of the rows, not `array::from_fn`, which was a call per block, not inlined.
    let krows: &[&[f32]; R] = k[..R].try_into().expect("R key rows");
    let mut acc = [[V::splat(0.0); NV]; R];
    fma_block::<V, R, NV>(&mut acc, krows, &qt[ib..], ROW_STRIDE, d);
    for r in 0..R {
        for n in 0..NV {
            acc[r][n].store(&mut st[(jb + r) * ROW_STRIDE + ib + n * V::LANES..]);
        }
    }
    for n in 0..NV {
        let mut most = acc[0][n];
        for row in &acc[1..] {
            most = most.max(row[n]);
        }
        let slot = &mut tile_max[ib + n * V::LANES..];
        V::load(slot).max(most).store(slot);
    }
}

/// Each query's maximum over a masked tile's scores Sᵀ [KEYS][BR] (−∞ where masked).
#[inline(always)]
fn masked_tile_max(st: &[f32], tile_max: &mut [f32]) {
    tile_max.fill(f32::NEG_INFINITY);
    for row in st.chunks_exact(ROW_STRIDE) {
        for (t, &v) in tile_max.iter_mut().zip(row) {
            *t = if v > *t { v } else { *t };
        }
    }
}

/// −∞ where key `j0 + jj` is outside query `i`'s range (the diagonal and window-edge tiles).
#[inline(always)]
fn mask_tile(st: &mut [f32], j0: usize, lo: &[usize], hi: &[usize]) {
    for (jj, row) in st.chunks_exact_mut(ROW_STRIDE).enumerate() {
        let j = j0 + jj;
        for ((v, &l), &h) in row.iter_mut().zip(lo).zip(hi) {
            if j < l || j >= h {
                *v = f32::NEG_INFINITY;
            }
        }
    }
}

/// Online softmax over one tile of raw scores: new running max per query (in scaled units: the
/// scale times the raw maximum, the rounding being monotone and the scale positive), the
/// correction of what was accumulated so far, and the probabilities `e^(score · scale − base)`
/// in place of the scores, `base` as [`exponent_base`] says. An exponent of −∞ (a masked score,
/// or one whose scaled value passes f32's range below) weighs exactly 0, as [`exp`] gives it.
#[inline(always)]
fn softmax_update<const KEYS: usize>(s: &mut Scratch, scale: f32) {
    let mut base = [0f32; BR];
    for (i, base) in base.iter_mut().enumerate() {
        let tile_max = scale * s.tile_max[i];
        let m_new = if tile_max > s.m[i] { tile_max } else { s.m[i] };
        *base = exponent_base(m_new);
        s.corr[i] = exp(s.m[i] - *base);
        s.l[i] *= s.corr[i];
        s.m[i] = m_new;
    }
    let mut sums = [0f32; BR];
    for row in s.st[..KEYS * ROW_STRIDE].chunks_exact_mut(ROW_STRIDE) {
        for ((v, &m), sum) in row.iter_mut().zip(&base).zip(sums.iter_mut()) {
            let e = exp(*v * scale - m);
            *v = e;
            *sum += e;
        }
    }
    for (l, sum) in s.l.iter_mut().zip(sums) {
        *l += sum;
    }
}

/// A tile's values in column panels ([`pack_value_panels`]): `keys` rows of panel `c` from
/// `data[c · stride ..]`.
#[derive(Clone, Copy)]
struct Panels<'a> {
    data: &'a [f32],
    keys: usize,
    stride: usize,
}

/// O[BR][D] = corr ⊙ O + Pᵀᵀ · V, with Pᵀ = `pt` [keys][BR] and V in `values`' panels: blocks of
/// R queries × NV vectors of the head dim (one panel; the queries past the last whole block of R
/// one at a time), a panel at a time.
#[inline(always)]
fn accumulate<V: Simd, const R: usize, const NV: usize>(pt: &[f32], values: Panels, o: &mut [f32], corr: &[f32], d: usize) {
    let width = NV * V::LANES;
    let whole = BR - BR % R;
    for cb in (0..d).step_by(width) {
        let panel = &values.data[(cb / width) * values.stride..][..values.keys * width];
        for ib in (0..whole).step_by(R) {
            accumulate_block::<V, R, NV>(pt, panel, o, corr, d, ib, cb);
        }
        for ib in whole..BR {
            accumulate_block::<V, 1, NV>(pt, panel, o, corr, d, ib, cb);
        }
    }
}

/// Rows `ib .. ib + R`, columns `cb ..` (NV vectors, the columns of `panel`) of [`accumulate`]'s O.
#[inline(always)]
fn accumulate_block<V: Simd, const R: usize, const NV: usize>(pt: &[f32], panel: &[f32], o: &mut [f32], corr: &[f32], d: usize, ib: usize, cb: usize) {
    let width = NV * V::LANES;
    let mut acc = [[V::splat(0.0); NV]; R];
    for r in 0..R {
        let c = V::splat(corr[ib + r]);
        for n in 0..NV {
            acc[r][n] = V::load(&o[(ib + r) * d + cb + n * V::LANES..]).mul(c);
        }
    }
    // Indexed, not a zip of `chunks_exact`, whose constructor (two divisions) was not inlined.
    for j in 0..panel.len() / width {
        let vrow = &panel[j * width..][..width];
        let mut vv = [V::splat(0.0); NV];
        for n in 0..NV {
            vv[n] = V::load(&vrow[n * V::LANES..]);
        }
        let pv = &pt[j * ROW_STRIDE + ib..][..R];
        for r in 0..R {
            let p = V::splat(pv[r]);
            for n in 0..NV {
                acc[r][n] = acc[r][n].fma(p, vv[n]);
            }
        }
    }
    for r in 0..R {
        for n in 0..NV {
            acc[r][n].store(&mut o[(ib + r) * d + cb + n * V::LANES..]);
        }
    }
}
