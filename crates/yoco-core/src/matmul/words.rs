//! 16 × 16 matrices of 32-bit words transposed in AVX-512 registers: how the packed products lay
//! out their operands (the f32 GEMM's panels and row groups, the bf16 pairs' panels) and the CPU
//! attention its keys. A word at a time took several instructions each, and packing was a sixth
//! of a 512-row product.

use std::arch::x86_64::*;

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

/// The first 64 bytes of each of `rows` as 16 words, transposed: word p of rows `0 .. width`
/// into `tile[p · stride ..][..width]`, for p in 0 .. 16. Rows from `width` on are read but not
/// stored (a group of fewer than 16 rows passes any 16).
///
/// # Safety
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn transpose_16<T: Copy, W: Copy>(rows: &[&[T]; 16], tile: &mut [W], stride: usize, width: usize) {
    assert!(size_of::<W>() == 4 && width <= 16, "16 words of 4 bytes");
    assert!(rows.iter().all(|r| size_of_val(*r) >= 64) && tile.len() >= 15 * stride + width, "a whole tile");
    // SAFETY: each load reads 64 bytes of a row, each store `width` words of the tile, all in
    // bounds (asserted).
    unsafe {
        let words = transpose_words(std::array::from_fn(|i| _mm512_loadu_si512(rows[i].as_ptr().cast())));
        for (p, words) in words.iter().enumerate() {
            let to = tile[p * stride..].as_mut_ptr();
            if width == 16 {
                _mm512_storeu_si512(to.cast(), *words);
            } else {
                _mm512_mask_storeu_epi32(to.cast(), ((1u32 << width) - 1) as __mmask16, *words);
            }
        }
    }
}
