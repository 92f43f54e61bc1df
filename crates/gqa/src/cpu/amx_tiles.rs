//! The tiled path for bf16 on the AMX tile unit (Xeons with AMX-BF16): the blocks of up to
//! [`BR`] rows of [`super::tiles`], against tiles of [`BC`] keys, both products on tiles and the
//! softmax in f32 between them:
//! * `S = Q Kᵀ` [rows][BC] in f32: Q's rows as stored (the scale is applied to S in f32, so the
//!   queries are not rounded twice), K as pairs of head dims in key order;
//! * per row of S: the scale, the mask, the running maximum and the exponentials, rounded to bf16
//!   into `P` [rows][BC] (as flash-attention and this project's CUDA kernel round them), the
//!   running sum taken over the rounded values, so that the weights the output is divided by are
//!   the weights it was summed with;
//! * `O += P V` on tiles of O loaded and stored as f32, V as pairs of keys.
//!
//! K and V are packed into those pair layouts once per call ([`Packed`]), for every task: a
//! task's tiles are then read where the packing left them, and a tile serves every block of
//! queries that sees it.
//!
//! O is rescaled only when a row's maximum rises more than [`RESCALE_MARGIN`] past the maximum
//! its sums are taken against (a lazy rescale: O and the running sum stay consistent, both taken
//! against the same maximum, and no probability passes e^8, far inside f32 and bf16). So O can
//! live in memory the tiles load and store, and the pass over a row of O that rescales it runs a
//! few times per row over a whole prefill instead of once per tile.

use std::arch::x86_64::*;

use rayon::prelude::*;
use yoco_core::math::exp;
use yoco_core::matmul::amx::{self, Tiles, ROW_BYTES, STEP, TILE_ROWS};
use yoco_core::{DType, Element};

use super::{Block, Inputs, OutRows, Scratch, BC, BR};

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
    k: Vec<u32>,
    v: Vec<u32>,
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
        let mut k = vec![0u32; d.batch * d.kv_heads * tiles * tile_len];
        let mut v = vec![0u32; k.len()];
        k.par_chunks_mut(tile_len).zip(v.par_chunks_mut(tile_len)).enumerate().for_each(|(index, (kt, vt))| {
            let (b, hk, t) = (index / tiles / d.kv_heads, index / tiles % d.kv_heads, index % tiles);
            for jj in 0..BC.min(d.kv_len - t * BC) {
                let j = t * BC + jj;
                for (w, pair) in x.k_row(b, j, hk).chunks_exact(2).enumerate() {
                    kt[w * BC + jj] = bits(pair[0]) | bits(pair[1]) << 16;
                }
                let half = 16 * (jj % 2);
                for (slot, &value) in vt[jj / 2 * hd..][..hd].iter_mut().zip(x.v_row(b, j, hk)) {
                    *slot |= bits(value) << half;
                }
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

/// A bf16 value's bits (bf16 is the top half of the f32 it widens to, exactly).
#[inline(always)]
fn bits<T: Element>(value: T) -> u32 {
    value.to_f32().to_bits() >> 16
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
        unsafe { scores(&mut tiles, &s.q_bits, k, &mut s.st, rows, hd) };
        // Every key of the tile visible to every row: no mask to apply.
        let full = j0 >= s.lo[BR - 1] && j0 + BC <= s.hi[0];
        probabilities(s, j0, rows, full, p.scale);
        // SAFETY: as above.
        unsafe { accumulate(&mut tiles, &s.p_bits, v, &mut s.o, rows, hd) };
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
    s.q_bits.resize(BR * hd, 0);
    s.p_bits.resize(BR * BC, 0);
    for r in 0..rows {
        let dst = &mut s.q_bits[r * hd..][..hd];
        if r < block.rows() {
            let (i, h) = block.row(r);
            for (d, &q) in dst.iter_mut().zip(x.q_row(block.b, i, h)) {
                *d = bits(q) as u16;
            }
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
            tiles.zero::<0>();
            tiles.zero::<1>();
            tiles.zero::<2>();
            tiles.zero::<3>();
            for step in 0..hd / STEP {
                // SAFETY: rows r0 .. r0 + 32 of q, dims of this step; K's pair rows of this step
                // (16 of them), keys j .. j + 32: all inside the slices (the caller's promise).
                unsafe {
                    let qa = q.as_ptr().add(r0 * hd + step * STEP).cast::<u8>();
                    tiles.load::<4>(qa, q_stride);
                    tiles.load::<5>(qa.add(TILE_ROWS * q_stride), q_stride);
                    let kb = k.as_ptr().add(step * STEP / 2 * BC + j).cast::<u8>();
                    tiles.load::<6>(kb, k_stride);
                    tiles.load::<7>(kb.add(ROW_BYTES), k_stride);
                }
                tiles.dot::<0, 4, 6>();
                tiles.dot::<1, 4, 7>();
                tiles.dot::<2, 5, 6>();
                tiles.dot::<3, 5, 7>();
            }
            // SAFETY: rows r0 .. r0 + 32, columns j .. j + 32 of s (the caller's promise).
            unsafe {
                let out = s.as_mut_ptr().add(r0 * BC + j).cast::<u8>();
                tiles.store::<0>(out, s_stride);
                tiles.store::<1>(out.add(ROW_BYTES), s_stride);
                tiles.store::<2>(out.add(TILE_ROWS * s_stride), s_stride);
                tiles.store::<3>(out.add(TILE_ROWS * s_stride + ROW_BYTES), s_stride);
            }
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
            // SAFETY: rows r0 .. r0 + 32, dims c .. c + 32 of o (the caller's promise).
            let ot = unsafe { o.as_mut_ptr().add(r0 * hd + c).cast::<u8>() };
            unsafe {
                tiles.load::<0>(ot, o_stride);
                tiles.load::<1>(ot.add(ROW_BYTES), o_stride);
                tiles.load::<2>(ot.add(TILE_ROWS * o_stride), o_stride);
                tiles.load::<3>(ot.add(TILE_ROWS * o_stride + ROW_BYTES), o_stride);
            }
            for step in 0..BC / STEP {
                // SAFETY: rows r0 .. r0 + 32 of p, keys of this step; V's pair rows of this step
                // (16), dims c .. c + 32: inside the slices (the caller's promise).
                unsafe {
                    let pa = p.as_ptr().add(r0 * BC + step * STEP).cast::<u8>();
                    tiles.load::<4>(pa, p_stride);
                    tiles.load::<5>(pa.add(TILE_ROWS * p_stride), p_stride);
                    let vb = v.as_ptr().add(step * STEP / 2 * hd + c).cast::<u8>();
                    tiles.load::<6>(vb, v_stride);
                    tiles.load::<7>(vb.add(ROW_BYTES), v_stride);
                }
                tiles.dot::<0, 4, 6>();
                tiles.dot::<1, 4, 7>();
                tiles.dot::<2, 5, 6>();
                tiles.dot::<3, 5, 7>();
            }
            // SAFETY: as the loads of O above.
            unsafe {
                tiles.store::<0>(ot, o_stride);
                tiles.store::<1>(ot.add(ROW_BYTES), o_stride);
                tiles.store::<2>(ot.add(TILE_ROWS * o_stride), o_stride);
                tiles.store::<3>(ot.add(TILE_ROWS * o_stride + ROW_BYTES), o_stride);
            }
        }
    }
}

/// Row by row of the scores in `s.st` ([rows][BC], keys `j0 ..`): scale, mask, the lazy
/// rescale, and the probabilities rounded to bf16 into `s.p_bits`, their sum added to the row's.
/// A row that has seen no visible key keeps m = −∞ and gets probabilities 0 (taken against 0,
/// not −∞, to avoid −∞ − −∞).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
#[inline]
fn probabilities(s: &mut Scratch, j0: usize, rows: usize, full: bool, scale: f32) {
    let hd = s.o.len() / BR;
    for r in 0..rows {
        let row = &mut s.st[r * BC..][..BC];
        let (lo, hi) = (s.lo[r], s.hi[r]);
        let mut most = f32::NEG_INFINITY;
        for (jj, v) in row.iter_mut().enumerate() {
            let j = j0 + jj;
            let x = if full || (lo <= j && j < hi) { *v * scale } else { f32::NEG_INFINITY };
            *v = x;
            most = if x > most { x } else { most };
        }
        if most > s.m[r] + RESCALE_MARGIN {
            let corr = exp(s.m[r] - most);
            s.l[r] *= corr;
            for o in &mut s.o[r * hd..][..hd] {
                *o *= corr;
            }
            s.m[r] = most;
        }
        let base = if s.m[r] == f32::NEG_INFINITY { 0.0 } else { s.m[r] };
        let mut e = [0f32; BC];
        for (e, &v) in e.iter_mut().zip(row.iter()) {
            // exp saturates at ~1e-38 rather than 0; masked keys must weigh exactly nothing.
            *e = if v == f32::NEG_INFINITY { 0.0 } else { exp(v - base) };
        }
        s.l[r] += round_to_bf16(&e, &mut s.p_bits[r * BC..][..BC]);
    }
}

/// `e` rounded to bf16 (to nearest even) into `out`; returns the sum of the rounded values.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
#[inline]
fn round_to_bf16(e: &[f32; BC], out: &mut [u16]) -> f32 {
    assert_eq!(out.len(), BC);
    // SAFETY: every load and store is inside `e` and `out` (BC is a multiple of 32).
    unsafe {
        let mut sum = _mm512_setzero_ps();
        for c in (0..BC).step_by(32) {
            let rounded: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(_mm512_loadu_ps(e[c + 16..].as_ptr()), _mm512_loadu_ps(e[c..].as_ptr())));
            _mm512_storeu_si512(out[c..].as_mut_ptr().cast(), rounded);
            // Back to f32: a bf16's bits are the top half of its f32's.
            let low = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(rounded)));
            let high = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64::<1>(rounded)));
            sum = _mm512_add_ps(sum, _mm512_add_ps(_mm512_castsi512_ps(low), _mm512_castsi512_ps(high)));
        }
        _mm512_reduce_add_ps(sum)
    }
}
