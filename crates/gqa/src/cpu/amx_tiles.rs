//! The tiled path for bf16 on the AMX tile unit (Xeons with AMX-BF16): the blocks of up to
//! [`BR`] rows of [`super::tiles`], against tiles of [`BC`] keys (this path's own), both products
//! on tiles and the softmax in f32 between them:
//! * `S = Q Kᵀ` [rows][BC] in f32: Q's rows as stored (the scale is applied to S in f32, so the
//!   queries are not rounded twice), K as pairs of head dims in key order;
//! * per row of S: the scale, the mask, the running maximum and the exponentials, rounded to bf16
//!   into `P` [rows][BC] (as flash-attention and this project's CUDA kernel round them), the
//!   running sum taken over the rounded values, so that the weights the output is divided by are
//!   the weights it was summed with;
//! * `O += P V` on tiles of O loaded and stored as f32, V as pairs of keys.
//!
//! K and V are packed into those pair layouts once per call ([`Packed`], as large as K and V),
//! for every task: a task's tiles are then read where the packing left them, and a tile serves
//! every block of queries that sees it.
//!
//! O is rescaled only when a row's maximum rises more than [`RESCALE_MARGIN`] past the maximum
//! its sums are taken against (a lazy rescale: O and the running sum stay consistent, both taken
//! against the same maximum, and no probability passes e^8, far inside f32 and bf16). So O can
//! live in memory the tiles load and store, and the pass over a row of O that rescales it runs a
//! few times per row over a whole prefill instead of once per tile.

use std::arch::x86_64::*;

use rayon::prelude::*;
use yoco_core::aligned::AlignedVec;
use yoco_core::math::exp;
use yoco_core::matmul::amx::{self, Tiles, STEP, TILE_ROWS};
use yoco_core::matmul::transpose_words;
use yoco_core::{DType, Element};

use super::{Block, Inputs, OutRows, Scratch, BR};

/// Keys per tile: twice the f32 tiles' [`super::BC`], so that each load and store of O's tiles
/// serves twice the keys (N 4096, 4 heads, D 128, causal: 63 ms at 64 keys, 51 at 128).
pub(super) const BC: usize = 128;

/// The tile path's buffers in a thread's [`Scratch`], sized on their first use; aligned to cache
/// lines, as every operand the tiles load or store (a tile row split over two lines loads several
/// times slower: `yoco_core::aligned`).
#[derive(Default)]
pub(super) struct Buffers {
    /// The block's queries, bf16 bits: [BR][head_dim].
    q: AlignedVec<u16>,
    /// Scores of a tile, scaled and masked in place: [BR][BC].
    s: AlignedVec<f32>,
    /// Probabilities of a tile, bf16 bits: [BR][BC].
    p: AlignedVec<u16>,
}

impl Buffers {
    /// Sized for a head dim (once per thread's scratch: a call has one head dim).
    fn size_for(&mut self, head_dim: usize) {
        if self.q.len() != BR * head_dim {
            self.q = AlignedVec::zeroed(BR * head_dim);
        }
        if self.s.is_empty() {
            self.s = AlignedVec::zeroed(BR * BC);
            self.p = AlignedVec::zeroed(BR * BC);
        }
    }
}

/// How far (in units of the scaled scores) a row's maximum may rise past the maximum its sums
/// are taken against before O and the sum are rescaled to the new one: probabilities stay
/// below e^8 ≈ 3000.
const RESCALE_MARGIN: f32 = 8.0;

/// Rows (and columns) a block of 2 × 2 tiles covers.
const BLOCK: usize = 2 * TILE_ROWS;

/// Whether this call's bf16 tiles go to the tile unit: the CPU has AMX-BF16 (and this process
/// may use it), and the head dim is a whole number of tile steps.
pub(super) fn usable(dtype: DType, head_dim: usize) -> bool {
    dtype == DType::BF16 && head_dim.is_multiple_of(STEP) && amx::available()
}

/// K and V of every (sequence, K/V head) in the layouts the tiles read, a tile of [`BC`] keys
/// at a time, zero past the last key:
/// * K as `[head_dim / 2][BC]` pairs: row `w` holds dims `2w, 2w + 1` of each key, the second
///   operand of `Q Kᵀ`;
/// * V as `[BC / 2][head_dim]` pairs: row `t` holds keys `2t, 2t + 1` of each dim, the second
///   operand of `P V`.
pub(super) struct Packed {
    k: AlignedVec<u32>,
    v: AlignedVec<u32>,
    /// Tiles per (sequence, K/V head).
    tiles: usize,
    /// Pairs in one tile of K (and of V): `BC × head_dim / 2`.
    tile_len: usize,
    kv_heads: usize,
}

impl Packed {
    /// Packs the keys and values of `x` (whose dtype is bf16: see [`usable`]).
    pub(super) fn new<T: Element>(x: &Inputs<T>) -> Packed {
        debug_assert_eq!(T::DTYPE, DType::BF16);
        let d = x.p.dims;
        let hd = d.head_dim;
        let tiles = d.kv_len.div_ceil(BC);
        let tile_len = BC * hd / 2;
        let mut k = AlignedVec::zeroed(d.batch * d.kv_heads * tiles * tile_len);
        let mut v = AlignedVec::zeroed(k.len());
        k.par_chunks_mut(tile_len).zip(v.par_chunks_mut(tile_len)).enumerate().for_each(|(index, (kt, vt))| {
            let (b, hk, t) = (index / tiles / d.kv_heads, index / tiles % d.kv_heads, index % tiles);
            let keys = BC.min(d.kv_len - t * BC);
            let k_rows: [&[u16]; BC] = std::array::from_fn(|jj| if jj < keys { bf16_bits(x.k_row(b, t * BC + jj, hk)) } else { &[] });
            let v_rows: [&[u16]; BC] = std::array::from_fn(|jj| if jj < keys { bf16_bits(x.v_row(b, t * BC + jj, hk)) } else { &[] });
            // SAFETY: a `Packed` is built only where `usable` found AMX, hence AVX-512F and BW.
            unsafe {
                pack_keys(kt, &k_rows[..keys], hd);
                pack_values(vt, &v_rows[..keys], hd);
            }
        });
        Packed { k, v, tiles, tile_len, kv_heads: d.kv_heads }
    }

    /// Tile `t` of K and of V for sequence `b`, K/V head `hk`.
    fn tile(&self, b: usize, hk: usize, t: usize) -> (&[u32], &[u32]) {
        let start = ((b * self.kv_heads + hk) * self.tiles + t) * self.tile_len;
        (&self.k[start..][..self.tile_len], &self.v[start..][..self.tile_len])
    }
}

/// A row of bf16 values (T is bf16 where the tiles run: [`usable`]) as their bits.
fn bf16_bits<T: Element>(row: &[T]) -> &[u16] {
    use yoco_core::half::slice::HalfFloatSliceExt;
    yoco_core::dtype::as_slice_of::<T, yoco_core::half::bf16>(row).expect("bf16 rows on the tile path").reinterpret_cast()
}

/// Keys `rows` (a tile's, up to [`BC`]) into K's pair layout `[head_dim / 2][BC]`: 16 keys × 16
/// pairs at a time transposed in registers (a word at a time, the packing of K and V took about
/// a tenth of the attention), the keys past the last 16 word by word.
///
/// # Safety
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn pack_keys(kt: &mut [u32], rows: &[&[u16]], hd: usize) {
    assert!(kt.len() == hd / 2 * BC && rows.len() <= BC && rows.iter().all(|r| r.len() == hd) && hd.is_multiple_of(32), "a tile of keys");
    let whole = rows.len() - rows.len() % 16;
    for j0 in (0..whole).step_by(16) {
        for w0 in (0..hd / 2).step_by(16) {
            // SAFETY: each load reads 16 words (32 values) of a row from value 2·w0 < hd − 31;
            // each store writes 16 words of row w0 + w of kt from key j0 ≤ BC − 16 (asserted).
            unsafe {
                let words = transpose_words(std::array::from_fn(|i| _mm512_loadu_si512(rows[j0 + i][2 * w0..].as_ptr().cast())));
                for (w, words) in words.iter().enumerate() {
                    _mm512_storeu_si512(kt[(w0 + w) * BC + j0..].as_mut_ptr().cast(), *words);
                }
            }
        }
    }
    for (jj, row) in rows.iter().enumerate().skip(whole) {
        for (w, pair) in row.chunks_exact(2).enumerate() {
            kt[w * BC + jj] = pair[0] as u32 | (pair[1] as u32) << 16;
        }
    }
}

/// Keys `rows` (a tile's, up to [`BC`]) into V's pair layout `[BC / 2][head_dim]`: two keys'
/// rows interleaved value by value, 32 values at a time; an odd last key pairs with zeros.
///
/// # Safety
/// The CPU has AVX-512F and BW.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn pack_values(vt: &mut [u32], rows: &[&[u16]], hd: usize) {
    assert!(vt.len() == BC / 2 * hd && rows.len() <= BC && rows.iter().all(|r| r.len() == hd) && hd.is_multiple_of(32), "a tile of values");
    // Word i of the result's first half is (first[i], second[i]), of its second half
    // (first[16 + i], second[16 + i]): indices past 31 pick from the second operand.
    let first_half = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    let second_half = _mm512_add_epi16(first_half, _mm512_set1_epi16(16));
    for (t, pair) in rows.chunks_exact(2).enumerate() {
        for d0 in (0..hd).step_by(32) {
            // SAFETY: 32 values of each row from d0 ≤ hd − 32; 32 words of vt's row t from d0
            // (t < BC / 2; asserted).
            unsafe {
                let (a, b) = (_mm512_loadu_si512(pair[0][d0..].as_ptr().cast()), _mm512_loadu_si512(pair[1][d0..].as_ptr().cast()));
                let to = vt[t * hd + d0..].as_mut_ptr();
                _mm512_storeu_si512(to.cast(), _mm512_permutex2var_epi16(a, first_half, b));
                _mm512_storeu_si512(to.add(16).cast(), _mm512_permutex2var_epi16(a, second_half, b));
            }
        }
    }
    if rows.len() % 2 == 1 {
        let (t, last) = (rows.len() / 2, rows[rows.len() - 1]);
        for (slot, &value) in vt[t * hd..][..hd].iter_mut().zip(last) {
            *slot = value as u32;
        }
    }
}

/// One task's block on the tile unit.
///
/// # Safety
/// [`usable`] returned true for this call (so the CPU has AMX-BF16, AVX512-BF16 and AVX-512
/// F/BW/VL), and `packed` is this call's.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
pub(super) unsafe fn attend<T: Element>(x: &Inputs<T>, s: &mut Scratch, packed: &Packed, block: Block, out: OutRows<T>) {
    let p = &x.p;
    let (hd, b, n) = (p.dims.head_dim, block.b, block.rows());
    let hk = block.h0 / p.dims.group();
    // The rows the tiles cover: the block's, then zero queries up to a whole block of tiles.
    let rows = n.next_multiple_of(BLOCK);
    pack_queries(x, s, block, rows);
    // As in the f32 tiles: padding rows take the last real row's key range, and both bounds are
    // monotone in the row.
    for r in 0..BR {
        (s.lo[r], s.hi[r]) = p.mask.key_range(block.row(r.min(n - 1)).0, p.dims.q_len, p.dims.kv_len);
    }
    s.m.fill(f32::NEG_INFINITY);
    s.l.fill(0.0);
    s.o[..rows * hd].fill(0.0);
    // SAFETY: AMX is there and this process may use it (`usable`, the caller's promise).
    let mut tiles = unsafe { Tiles::configure() };
    // Tiles of the packing (multiples of BC), from the one holding the block's first visible key.
    let (first, end) = (s.lo[0], s.hi[BR - 1]);
    for t in first / BC..end.div_ceil(BC) {
        let j0 = t * BC;
        let (k, v) = packed.tile(b, hk, t);
        // SAFETY: every operand is as long as the products read (see `scores` and `accumulate`).
        unsafe { scores(&mut tiles, &s.bf16_tiles.q, k, &mut s.bf16_tiles.s, rows, hd) };
        // Every key of the tile visible to every row: no mask to apply.
        let full = j0 >= s.lo[BR - 1] && j0 + BC <= s.hi[0];
        probabilities(s, j0, rows, full, p.scale);
        // SAFETY: as above.
        unsafe { accumulate(&mut tiles, &s.bf16_tiles.p, v, &mut s.o, rows, hd) };
    }
    drop(tiles);
    for r in 0..n {
        let (i, h) = block.row(r);
        out.write(b, i, h, &s.o[r * hd..][..hd], s.l[r]);
    }
}

/// The block's queries as bf16 bits, row-major `[rows][head_dim]`, zero past the block's rows.
#[inline(always)]
fn pack_queries<T: Element>(x: &Inputs<T>, s: &mut Scratch, block: Block, rows: usize) {
    let hd = x.p.dims.head_dim;
    let buffers = &mut s.bf16_tiles;
    buffers.size_for(hd);
    for r in 0..rows {
        let dst = &mut buffers.q[r * hd..][..hd];
        if r < block.rows() {
            let (i, h) = block.row(r);
            dst.copy_from_slice(bf16_bits(x.q_row(block.b, i, h)));
        } else {
            dst.fill(0);
        }
    }
}

/// `S [rows][BC] = Q [rows][head_dim] · Kᵀ` in f32, 2 × 2 tiles at a time (32 rows × 32 keys)
/// over the head dim's steps.
///
/// # Safety
/// `q` holds `rows × head_dim` values, `k` a packed tile (`head_dim / 2 × BC`), `s`
/// `rows × BC`; `rows` and `head_dim` are multiples of [`BLOCK`] and [`STEP`].
#[inline(always)]
unsafe fn scores(tiles: &mut Tiles, q: &[u16], k: &[u32], s: &mut [f32], rows: usize, hd: usize) {
    debug_assert!(q.len() >= rows * hd && k.len() == hd / 2 * BC && s.len() >= rows * BC);
    let (q_stride, k_stride, s_stride) = (hd * 2, BC * 4, BC * 4);
    for r0 in (0..rows).step_by(BLOCK) {
        for j in (0..BC).step_by(BLOCK) {
            tiles.zero_sums();
            for step in 0..hd / STEP {
                // SAFETY: rows r0 .. r0 + 32 of q, dims of this step; K's pair rows of this step
                // (16 of them), keys j .. j + 32: all inside the slices (the caller's promise).
                unsafe { tiles.multiply_add_2x2(q[r0 * hd + step * STEP..].as_ptr(), q_stride, k[step * STEP / 2 * BC + j..].as_ptr(), k_stride) };
            }
            // SAFETY: rows r0 .. r0 + 32, columns j .. j + 32 of s (the caller's promise).
            unsafe { tiles.store_sums_at(s[r0 * BC + j..].as_mut_ptr(), s_stride) };
        }
    }
}

/// `O [rows][head_dim] += P [rows][BC] · V`, 2 × 2 tiles of O at a time (32 rows × 32 dims),
/// loaded, summed into over the tile's keys and stored back.
///
/// # Safety
/// `p` holds `rows × BC` values, `v` a packed tile (`BC / 2 × head_dim`), `o`
/// `rows × head_dim`; `rows` and `head_dim` are multiples of [`BLOCK`].
#[inline(always)]
unsafe fn accumulate(tiles: &mut Tiles, p: &[u16], v: &[u32], o: &mut [f32], rows: usize, hd: usize) {
    debug_assert!(p.len() >= rows * BC && v.len() == BC / 2 * hd && o.len() >= rows * hd);
    let (p_stride, v_stride, o_stride) = (BC * 2, hd * 4, hd * 4);
    for r0 in (0..rows).step_by(BLOCK) {
        for c in (0..hd).step_by(BLOCK) {
            let ot = o[r0 * hd + c..].as_mut_ptr();
            // SAFETY: rows r0 .. r0 + 32, dims c .. c + 32 of o (the caller's promise).
            unsafe { tiles.load_sums(ot, o_stride) };
            for step in 0..BC / STEP {
                // SAFETY: rows r0 .. r0 + 32 of p, keys of this step; V's pair rows of this step
                // (16), dims c .. c + 32: inside the slices (the caller's promise).
                unsafe { tiles.multiply_add_2x2(p[r0 * BC + step * STEP..].as_ptr(), p_stride, v[step * STEP / 2 * hd + c..].as_ptr(), v_stride) };
            }
            // SAFETY: as the load.
            unsafe { tiles.store_sums_at(ot, o_stride) };
        }
    }
}

/// Row by row of the scores of a tile (keys `j0 ..`): scale, mask, the lazy rescale, and the
/// probabilities rounded to bf16, their sum added to the row's.
/// A row that has seen no visible key keeps m = −∞ and gets probabilities 0 (taken against 0,
/// not −∞, to avoid −∞ − −∞).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
#[inline]
fn probabilities(s: &mut Scratch, j0: usize, rows: usize, full: bool, scale: f32) {
    let hd = s.o.len() / BR;
    for r in 0..rows {
        let row = &mut s.bf16_tiles.s[r * BC..][..BC];
        // The row's visible keys as offsets into the tile, within 0 ..= BC.
        let visible = (s.lo[r].saturating_sub(j0).min(BC), s.hi[r].saturating_sub(j0).min(BC));
        let row: &mut [f32; BC] = row.try_into().expect("a row of BC scores");
        // A row that sees every key of the tile is left unscaled: its maximum is the scale times
        // the raw one (the rounding is monotone), and its exponentials scale as they subtract.
        let unmasked = full || visible == (0, BC);
        let (most, row_scale) = if unmasked { (scale * row_max(row), scale) } else { (scale_mask_max(row, scale, visible), 1.0) };
        if most > s.m[r] + RESCALE_MARGIN {
            let corr = exp(s.m[r] - most);
            s.l[r] *= corr;
            for o in &mut s.o[r * hd..][..hd] {
                *o *= corr;
            }
            s.m[r] = most;
        }
        let base = if s.m[r] == f32::NEG_INFINITY { 0.0 } else { s.m[r] };
        let row = &s.bf16_tiles.s[r * BC..][..BC];
        s.l[r] += exponentials_to_bf16(row.try_into().expect("a row of BC scores"), row_scale, base, &mut s.bf16_tiles.p[r * BC..][..BC]);
    }
}

/// `e^(x · scale − base)` of a row of scores (`scale` 1 where the row was scaled already), 0
/// where a score is −∞ (masked), rounded to bf16 (to nearest even) into `out`; returns the sum of
/// the rounded values. A fused multiply-add, unlike the f32 paths (`super::exponent_base`): the
/// maximum's exponent is the product's rounding error, under 4e-6 for scaled scores below 100,
/// and at a scale near 1e37 large enough to make the row ∞ or 0, hence NaN, for `exact.rs`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
#[inline]
fn exponentials_to_bf16(row: &[f32; BC], scale: f32, base: f32, out: &mut [u16]) -> f32 {
    assert_eq!(out.len(), BC);
    let (scale, minus_base, minus_infinity) = (_mm512_set1_ps(scale), _mm512_set1_ps(-base), _mm512_set1_ps(f32::NEG_INFINITY));
    let exponential = |c: usize| {
        // SAFETY: 16 values at c < BC, inside the row.
        let x = unsafe { _mm512_loadu_ps(row[c..].as_ptr()) };
        let masked = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(x, minus_infinity);
        _mm512_maskz_mov_ps(!masked, exp_lanes(_mm512_fmadd_ps(x, scale, minus_base)))
    };
    let mut sum = _mm512_setzero_ps();
    for c in (0..BC).step_by(32) {
        // SAFETY: transmutes between vectors of the same size.
        let rounded: __m512i = unsafe { std::mem::transmute(_mm512_cvtne2ps_pbh(exponential(c + 16), exponential(c))) };
        // SAFETY: 32 values at c < BC, inside `out`.
        unsafe { _mm512_storeu_si512(out[c..].as_mut_ptr().cast(), rounded) };
        // Back to f32: a bf16's bits are the top half of its f32's.
        let low = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(rounded)));
        let high = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64::<1>(rounded)));
        sum = _mm512_add_ps(sum, _mm512_add_ps(_mm512_castsi512_ps(low), _mm512_castsi512_ps(high)));
    }
    _mm512_reduce_add_ps(sum)
}

/// e^x in each lane, as 2^n · 2^f with n = x log₂e rounded and f = x log₂e − n in [−½, ½], 2^f by
/// Cephes' `exp2f` polynomial and 2^n by `vscalefps`: relative error under 3e-7 + 8e-8·|x| (the
/// rounding of x log₂e) where e^x is a normal float (checked below), 0 below about −104 (where
/// 2^n underflows); −∞ gives NaN (the caller masks it). Half the instructions of the clamped scalar `exp` the f32 tiles vectorise,
/// which the probabilities' bf16 rounding (4e-3) would not notice the precision of.
#[target_feature(enable = "avx512f")]
#[inline]
fn exp_lanes(x: __m512) -> __m512 {
    let t = _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(t);
    let f = _mm512_sub_ps(t, n);
    let mut p = _mm512_set1_ps(1.535_336_2e-4);
    for c in [1.339_887_4e-3, 9.618_437e-3, 5.550_332_5e-2, 2.402_264_8e-1, 6.931_472e-1, 1.0] {
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c));
    }
    _mm512_scalef_ps(p, n)
}

/// The maximum of a row of scores.
#[target_feature(enable = "avx512f")]
#[inline]
fn row_max(row: &[f32; BC]) -> f32 {
    // SAFETY: 16 values at each c < BC, inside the row.
    let lanes = |c: usize| unsafe { _mm512_loadu_ps(row[c..].as_ptr()) };
    let mut most = [lanes(0), lanes(16), lanes(32), lanes(48)];
    for c in (64..BC).step_by(64) {
        for (i, m) in most.iter_mut().enumerate() {
            *m = _mm512_max_ps(*m, lanes(c + 16 * i));
        }
    }
    _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(most[0], most[1]), _mm512_max_ps(most[2], most[3])))
}

/// A row of scores times `scale`, −∞ outside the keys `visible.0 .. visible.1` of the tile;
/// returns its maximum.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
#[inline]
fn scale_mask_max(row: &mut [f32; BC], scale: f32, visible: (usize, usize)) -> f32 {
    // Offsets into the tile: below BC, so i32 holds them.
    let (lo, hi) = (_mm512_set1_epi32(visible.0 as i32), _mm512_set1_epi32(visible.1 as i32));
    let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let (scale, minus_infinity) = (_mm512_set1_ps(scale), _mm512_set1_ps(f32::NEG_INFINITY));
    let mut most = minus_infinity;
    for c in (0..BC).step_by(16) {
        // SAFETY: 16 values at c < BC, inside the row.
        let scores = unsafe { _mm512_loadu_ps(row[c..].as_ptr()) };
        let key = _mm512_add_epi32(lanes, _mm512_set1_epi32(c as i32));
        let seen = _mm512_cmpge_epi32_mask(key, lo) & _mm512_cmplt_epi32_mask(key, hi);
        let x = _mm512_mask_blend_ps(seen, minus_infinity, _mm512_mul_ps(scores, scale));
        // SAFETY: as the load.
        unsafe { _mm512_storeu_ps(row[c..].as_mut_ptr(), x) };
        most = _mm512_max_ps(most, x);
    }
    _mm512_reduce_max_ps(most)
}


#[cfg(test)]
mod tests {
    use super::*;

    /// `exp_lanes` against f64's exp over [−110, 12] (past the probabilities' range at both
    /// ends), every 1/1024: within 3e-7 + 8e-8·|x| relatively where the result is a normal
    /// float, and 0 or tiny below.
    #[test]
    fn exp_lanes_matches_f64() {
        if !is_x86_feature_detected!("avx512f") {
            return;
        }
        let xs: Vec<f32> = (-110 * 1024..12 * 1024).map(|i| i as f32 / 1024.0).collect();
        for chunk in xs.chunks_exact(16) {
            let mut got = [0f32; 16];
            // SAFETY: AVX-512F is there (checked above); 16 values in and out.
            unsafe { _mm512_storeu_ps(got.as_mut_ptr(), exp_lanes(_mm512_loadu_ps(chunk.as_ptr()))) };
            for (&x, &e) in chunk.iter().zip(&got) {
                let want = f64::from(x).exp();
                if want >= f64::from(f32::MIN_POSITIVE) {
                    assert!(((f64::from(e) - want) / want).abs() < 3e-7 + 8e-8 * f64::from(x.abs()), "e^{x}: {e}, want {want}");
                } else {
                    assert!(f64::from(e) <= 2.0 * want + 1e-45, "e^{x}: {e}, want {want}");
                }
            }
        }
    }
}
