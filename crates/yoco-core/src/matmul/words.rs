//! 16 × 16 matrices of 32-bit words transposed in AVX-512 registers, and 8 × 8 in AVX2's: how the
//! packed products lay out their operands (the f32 GEMM's panels and row groups, the bf16 pairs'
//! panels) and the CPU attention its keys. A word at a time took several instructions each, and
//! packing was a sixth of a 512-row product (a quarter on the Zen 3 with AVX2).

use std::arch::x86_64::*;

use half::bf16;

use super::shared_out::SharedOut;
use crate::simd::x86::{bf16_bits, load_8_widened};
use crate::Element;

/// The 16 × 16 matrix of 32-bit words whose rows are `r`, transposed in registers: row p of the
/// result holds word p of every row. Interleaves words, then pairs of words, then quarters of
/// the vectors twice: 64 shuffles for 256 words.
///
/// Public for the other crates' packing (the CPU attention's tiled path packs its keys with it).
///
/// # Safety
/// The CPU has AVX-512F (the caller is compiled with it).
#[inline(always)]
pub unsafe fn transpose_words(r: [__m512i; 16]) -> [__m512i; 16] {
    // SAFETY: AVX-512F (the caller's promise); no memory is touched.
    unsafe {
        let mut t = [_mm512_setzero_si512(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
        }
        let mut u = [_mm512_setzero_si512(); 16];
        for i in 0..4 {
            u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
            u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
            u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
            u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
        }
        let mut v = [_mm512_setzero_si512(); 16];
        for i in 0..4 {
            v[i] = _mm512_shuffle_i32x4::<0x88>(u[i], u[i + 4]);
            v[i + 4] = _mm512_shuffle_i32x4::<0xDD>(u[i], u[i + 4]);
            v[i + 8] = _mm512_shuffle_i32x4::<0x88>(u[i + 8], u[i + 12]);
            v[i + 12] = _mm512_shuffle_i32x4::<0xDD>(u[i + 8], u[i + 12]);
        }
        let mut out = [_mm512_setzero_si512(); 16];
        for j in 0..8 {
            out[j] = _mm512_shuffle_i32x4::<0x88>(v[j], v[j + 8]);
            out[j + 8] = _mm512_shuffle_i32x4::<0xDD>(v[j], v[j + 8]);
        }
        out
    }
}

/// The first `64 · tiles` bytes of each of `rows` as 16 words a tile, transposed: word p of rows
/// `0 .. width` into `to[p · stride ..][..width]`, for p in 0 .. 16 · tiles (tile t's 16 × 16
/// words from `to[16 t · stride ..]`). Rows from `width` on are read but not stored (a group of
/// fewer than 16 rows passes any 16). Public for the other crates' packing (the CPU gated
/// retention transposes its chunk's keys with it).
///
/// A strip of tiles a call: a call a tile had cost about as much again as the tile's shuffles
/// (the call, its checks, and the 16 slices built for it, whose stores the function read back as
/// vectors and waited on; `perf` of the packed GEMM on the 2-core Zen 5). No tiles, no work.
///
/// # Safety
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn transpose_16_strip<T: Copy, W: Copy>(rows: &[&[T]; 16], tiles: usize, to: &mut [W], stride: usize, width: usize) {
    assert!(size_of::<W>() == 4 && width <= 16, "16 words of 4 bytes");
    if tiles == 0 {
        return;
    }
    assert!(rows.iter().all(|r| size_of_val(*r) >= 64 * tiles) && to.len() >= (16 * tiles - 1) * stride + width, "whole tiles");
    let mask = ((1u32 << width) - 1) as __mmask16;
    let rows: [*const u8; 16] = std::array::from_fn(|i| rows[i].as_ptr().cast());
    let to = to.as_mut_ptr();
    for t in 0..tiles {
        // SAFETY: each load reads bytes 64 t .. 64 (t + 1) of a row, each store `width` words
        // from word (16 t + p) · stride of `to`, all in bounds (asserted).
        unsafe {
            let words = transpose_words(std::array::from_fn(|i| _mm512_loadu_si512(rows[i].add(64 * t).cast())));
            for (p, words) in words.iter().enumerate() {
                let at = to.add((16 * t + p) * stride);
                if width == 16 {
                    _mm512_storeu_si512(at.cast(), *words);
                } else {
                    _mm512_mask_storeu_epi32(at.cast(), mask, *words);
                }
            }
        }
    }
}

/// The 8 × 8 matrix of f32 lanes whose rows are `r`, transposed in AVX registers: row p of the
/// result holds lane p of every row. Interleaves lanes, then pairs of lanes, then halves: 24
/// shuffles for 64 words.
///
/// # Safety
/// The CPU has AVX (the caller is compiled with it).
#[inline(always)]
unsafe fn transpose_lanes_8(r: [__m256; 8]) -> [__m256; 8] {
    // SAFETY: AVX (the caller's promise); no memory is touched.
    unsafe {
        let t: [__m256; 8] = std::array::from_fn(|i| {
            let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
            if i % 2 == 0 { _mm256_unpacklo_ps(a, b) } else { _mm256_unpackhi_ps(a, b) }
        });
        // u[4q + j]: lanes j (of each 128-bit half) of rows 4q .. 4q + 4.
        let u: [__m256; 8] = std::array::from_fn(|i| {
            let (q, j) = (i / 4, i % 4);
            let (a, b) = (t[4 * q + j / 2], t[4 * q + 2 + j / 2]);
            if j % 2 == 0 { _mm256_shuffle_ps::<0x44>(a, b) } else { _mm256_shuffle_ps::<0xEE>(a, b) }
        });
        std::array::from_fn(|p| if p < 4 { _mm256_permute2f128_ps::<0x20>(u[p], u[p + 4]) } else { _mm256_permute2f128_ps::<0x31>(u[p - 4], u[p]) })
    }
}

/// The first 8 elements of each of `rows`, widened to f32 and transposed: element p of every row
/// into `tile[p · stride ..][..8]`, for p in 0 .. 8. How the packed f32 GEMM lays out op(b)
/// stored `[n, k]` in 16-bit or f32 storage where the 16 × 16 transpose of f32 words does not
/// serve it (AVX2; or 16-bit storage): a word at a time, each column's steps were read from a
/// line of its own in turn, and packing the weights took a quarter of a 512 × 768 × 2048 product
/// on one thread of the Zen 3.
///
/// # Safety
/// The CPU has AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
pub(super) unsafe fn transpose_8_widened<T: Element>(rows: &[&[T]; 8], tile: &mut [f32], stride: usize) {
    assert!(tile.len() >= 7 * stride + 8, "a whole tile");
    // SAFETY: AVX2 and F16C (the caller's promise); each load reads a row's first 8 elements
    // (`load_widened` slices them, checked), each store writes 8 words of the tile, in bounds
    // (asserted).
    unsafe {
        let words = transpose_lanes_8(std::array::from_fn(|i| load_8_widened(rows[i])));
        for (p, words) in words.iter().enumerate() {
            _mm256_storeu_ps(tile[p * stride..].as_mut_ptr(), *words);
        }
    }
}

/// How [`store_rows_of_columns`] rounds f32 sums to bf16.
#[derive(Clone, Copy)]
pub(super) enum Rounding {
    /// As `bf16_from_f32` (dtype.rs), denormals kept: `simd::x86::bf16_bits` (the pair forms).
    Exact,
    /// `vcvtneps2bf16` (AVX512-BF16): to nearest even, denormals flushed to zero (the AMX forms).
    Instruction,
}

/// Sixteen columns of a block of c, `columns[j]` holding c[r0 + lane, c0 + j] in f32, transposed
/// in registers and stored as rows: of the 16 rows those below `rows`, each rounded to bf16 as
/// `rounding` says, its first `count` (≤ 16) columns under a mask. How the in-place forms, whose
/// registers hold blocks of cᵀ, write c (`bf16_amx_in_place.rs`, `bf16_pairs_in_place.rs`).
///
/// Callers pass a count that is not a constant of 1: LLVM (Rust 1.95) compiled the masked store
/// of one lane, constant, of a narrowed vector as a 4-byte store of the lane before narrowing,
/// which wrote a zero over the next element of c (caught by the bf16 forms' f64 test when the
/// pair form had blocks of one column).
///
/// # Safety
/// The CPU has AVX-512F, BW and VL, and BF16 for [`Rounding::Instruction`] (inlined into callers
/// compiled with them; the rounding is an enum, not a closure, because a closure was compiled
/// without them and called for every row); rows r0 .. r0 + min(rows, 16) and columns c0 .. c0 +
/// count of c (`n` columns) belong to the caller's task alone.
#[inline(always)]
pub(super) unsafe fn store_rows_of_columns(out: &SharedOut<bf16>, n: usize, columns: [__m512i; 16], (r0, rows): (usize, usize), (c0, count): (usize, usize), rounding: Rounding) {
    let mask = ((1u32 << count) - 1) as __mmask16;
    // SAFETY: AVX-512F (the caller's promise); no memory is touched.
    let rows_of_c = unsafe { transpose_words(columns) };
    for (i, row) in rows_of_c.iter().enumerate().take(rows) {
        // SAFETY: row r0 + i and its `count` columns from c0 are the caller's (its promise); the
        // masked store writes those elements only; AVX-512BW and VL.
        unsafe {
            let to = out.slice((r0 + i) * n + c0, count).as_mut_ptr();
            let sums = _mm512_castsi512_ps(*row);
            let rounded = match rounding {
                Rounding::Exact => bf16_bits(sums),
                Rounding::Instruction => std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(sums)),
            };
            _mm256_mask_storeu_epi16(to.cast(), mask, rounded);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// A strip of tiles puts word p of row r at `to[p · stride + r]`, for the rows below the
    /// width and the strip's words only: the words of the rows past the width, of the gaps
    /// between steps and of the rows' tails past the strip are not written, and no tiles write
    /// nothing.
    #[test]
    fn a_strip_is_the_transpose_of_its_rows() {
        if !is_x86_feature_detected!("avx512f") {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        let mut rng = Rng::new(61);
        for (tiles, stride, width) in [(0, 16, 16), (1, 16, 16), (3, 12, 12), (2, 32, 16), (4, 20, 7)] {
            let rows: Vec<Vec<f32>> = (0..16).map(|_| (0..16 * tiles + 5).map(|_| rng.normal() as f32).collect()).collect();
            let mut to = vec![f32::NAN; 16 * tiles * stride + 16];
            let slices: [&[f32]; 16] = std::array::from_fn(|r| rows[r].as_slice());
            // SAFETY: AVX-512F was detected.
            unsafe { transpose_16_strip(&slices, tiles, &mut to, stride, width) };
            for (i, got) in to.iter().enumerate() {
                let (p, r) = (i / stride, i % stride);
                let want = if p < 16 * tiles && r < width { rows[r][p] } else { f32::NAN };
                assert_eq!(got.to_bits(), want.to_bits(), "{tiles} tiles, stride {stride}, width {width}: word {i}");
            }
        }
    }
}
