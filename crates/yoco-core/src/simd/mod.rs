//! The vectors the CPU micro-kernels are written in, and [`dispatch`], which runs a kernel on the
//! widest of them that the CPU has. LLVM did not keep plain-array accumulators in registers (the
//! first version of the attention tiles ran at 2% of the FMA ceiling with every FMA a scalar
//! load-modify-store), so register blocks are spelled out in explicit vectors.
//!
//! Soundness: the x86 types wrap intrinsics that need AVX-512F (or AVX2 + FMA). They are private
//! to this module; a kernel only ever sees them as the `V` of [`SimdKernel::run`], which
//! [`dispatch`] calls with `Avx512` (or `Avx2`) only after detecting AVX-512F, VL, BW and DQ (or
//! AVX2, FMA and F16C), inside a function compiled with those features; other CPUs get one lane
//! (`Scalar`). Loads and stores take fixed-size arrays, so they stay in bounds.

#[cfg(target_arch = "x86_64")]
pub mod bf16_pairs;

use std::sync::OnceLock;

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use crate::dtype::{as_mut_slice_of, as_slice_of};
use crate::Element;

/// A vector of `LANES` f32.
pub trait Simd: Copy {
    const LANES: usize;
    fn splat(x: f32) -> Self;
    fn load(s: &[f32]) -> Self;
    fn store(self, s: &mut [f32]);
    /// `a · b + self`, fused.
    fn fma(self, a: Self, b: Self) -> Self;
    fn mul(self, b: Self) -> Self;
    /// `self + b`.
    fn add(self, b: Self) -> Self;
    /// Lane-wise maximum (as `maxps`: `b` where either is NaN).
    fn max(self, b: Self) -> Self;
    /// The sum of the lanes.
    fn sum(self) -> f32;
    /// `LANES` bf16 values, given as their bits, widened to f32.
    fn load_bf16(s: &[u16]) -> Self;
    /// `LANES` f16 values, given as their bits, widened to f32.
    fn load_f16(s: &[u16]) -> Self;
    /// `2 · LANES` bf16 values, given as their bits, widened to f32 in pairs' order: the even
    /// elements, then the odd ones (see [`load_widened_pair`]).
    fn load_bf16_pairs(s: &[u16]) -> [Self; 2];
    /// The lanes rounded to bf16 (to nearest even, a NaN kept a quiet NaN: as `Element::from_f32`
    /// for bf16), stored as their bits in `s`'s first `LANES`.
    fn store_bf16(self, s: &mut [u16]);
    /// The lanes rounded to f16 (to nearest even, as `f16::from_f32`), stored as their bits.
    fn store_f16(self, s: &mut [u16]);
    /// As [`store`](Simd::store), but past the caches (a non-temporal store) where `s` starts on
    /// the store's width; an ordinary store elsewhere. Follow a task's streamed stores with
    /// [`stream_fence`].
    fn stream(self, s: &mut [f32]) {
        self.store(s)
    }
    /// As [`store_bf16`](Simd::store_bf16), streamed as [`stream`](Simd::stream) is.
    fn stream_bf16(self, s: &mut [u16]) {
        self.store_bf16(s)
    }
    /// As [`store_f16`](Simd::store_f16), streamed as [`stream`](Simd::stream) is.
    fn stream_f16(self, s: &mut [u16]) {
        self.store_f16(s)
    }
}

/// `V::LANES` elements of `s` (from its start) widened to f32, read where they lie: the
/// decode path streams the cache's rows in their storage type rather than copying them.
#[inline(always)]
pub fn load_widened<T: Element, V: Simd>(s: &[T]) -> V {
    if let Some(s) = as_slice_of::<T, f32>(s) {
        V::load(s)
    } else if let Some(s) = as_slice_of::<T, bf16>(s) {
        V::load_bf16(s.reinterpret_cast())
    } else if let Some(s) = as_slice_of::<T, f16>(s) {
        V::load_f16(s.reinterpret_cast())
    } else {
        let mut wide = [0f32; 16];
        for (w, v) in wide.iter_mut().zip(&s[..V::LANES]) {
            *w = v.to_f32();
        }
        V::load(&wide)
    }
}

/// `2 · V::LANES` elements of `s` (from its start) widened to f32 as two vectors: for bf16 in
/// pairs' order, the even elements in the first vector and the odd ones in the second (a shift
/// and a mask, where widening in the row's order takes a zero-extension and a shift a vector);
/// for the other types in the row's order. A computation that loads every operand of a chunk
/// this way and combines them lane by lane, or sums its lanes, does not see the order; [`unpair`]
/// puts a chunk of results back into the row's order.
#[inline(always)]
pub fn load_widened_pair<T: Element, V: Simd>(s: &[T]) -> [V; 2] {
    match as_slice_of::<T, bf16>(s) {
        Some(s) => V::load_bf16_pairs(s.reinterpret_cast()),
        None => [load_widened(s), load_widened(&s[V::LANES..])],
    }
}

/// Puts a chunk of `2 · V::LANES` results laid out as [`load_widened_pair`] lays out T's
/// elements back into the row's order (for bf16: `[e0 .. e(L−1), o0 .. o(L−1)]` becomes
/// `[e0, o0, e1, o1, …]`; nothing to do for the other types).
#[inline(always)]
pub fn unpair<T: Element, V: Simd>(chunk: &mut [f32]) {
    if T::DTYPE != crate::DType::BF16 {
        return;
    }
    let lanes = V::LANES;
    let mut row_order = [0f32; 32];
    for k in 0..lanes {
        row_order[2 * k] = chunk[k];
        row_order[2 * k + 1] = chunk[lanes + k];
    }
    chunk[..2 * lanes].copy_from_slice(&row_order[..2 * lanes]);
}

/// `v` rounded to T (once, as `T::from_f32`) into `s`'s first `V::LANES` elements: the other
/// half of [`load_widened`], so that a kernel over 16-bit storage widens, computes and narrows in
/// vectors (written as scalar conversions, LLVM vectorised the loops only in part: RMSNorm on
/// bf16 ran at half the copy bandwidth that f32 reached).
#[inline(always)]
pub fn store_narrowed<T: Element, V: Simd>(v: V, s: &mut [T]) {
    narrow_into::<T, V, false>(v, s)
}

/// As [`store_narrowed`], streamed past the caches as [`Simd::stream`] is: for an output too
/// large to stay in the cache ([`streams_past_cache`]), whose ordinary stores would each first
/// read their line from memory.
#[inline(always)]
pub fn stream_narrowed<T: Element, V: Simd>(v: V, s: &mut [T]) {
    narrow_into::<T, V, true>(v, s)
}

#[inline(always)]
fn narrow_into<T: Element, V: Simd, const STREAM: bool>(v: V, s: &mut [T]) {
    if let Some(s) = as_mut_slice_of::<T, f32>(s) {
        if STREAM {
            v.stream(s)
        } else {
            v.store(s)
        }
    } else if let Some(s) = as_mut_slice_of::<T, bf16>(s) {
        if STREAM {
            v.stream_bf16(s.reinterpret_cast_mut())
        } else {
            v.store_bf16(s.reinterpret_cast_mut())
        }
    } else if let Some(s) = as_mut_slice_of::<T, f16>(s) {
        if STREAM {
            v.stream_f16(s.reinterpret_cast_mut())
        } else {
            v.store_f16(s.reinterpret_cast_mut())
        }
    } else {
        let mut wide = [0f32; 16];
        v.store(&mut wide);
        for (to, w) in s[..V::LANES].iter_mut().zip(wide) {
            *to = T::from_f32(w);
        }
    }
}

/// Whether an operation writing `output_bytes` should stream them past the caches: from half the
/// last-level cache (32 MiB where it cannot be read). An output that large pushes most of what
/// the cache held out, and ordinary stores read each line from memory before writing it (on the
/// Zen 4 VM, RMSNorm over 16384 × 768 f32 took 2.9–3.1 ms with them, 1.7–2.3 streamed); smaller
/// ones stay in the cache for the next operation to read.
pub fn streams_past_cache(output_bytes: usize) -> bool {
    static THRESHOLD: OnceLock<usize> = OnceLock::new();
    output_bytes >= *THRESHOLD.get_or_init(|| crate::ceiling::last_level_cache_bytes().unwrap_or(32 << 20) / 2)
}

/// Orders the streamed stores before the stores that follow (`sfence`): streamed stores are
/// weakly ordered, so a task that used them ends with this before it hands its output over.
#[inline(always)]
pub fn stream_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of x86-64.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

#[cfg(target_arch = "x86_64")]
use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    use super::Simd;

    /// Transparent, so that `bf16_pairs` may take two of them as the 32 f32 they hold.
    #[derive(Clone, Copy)]
    #[repr(transparent)]
    pub(super) struct Avx512(__m512);

    impl Simd for Avx512 {
        const LANES: usize = 16;
        #[inline(always)]
        fn splat(x: f32) -> Self {
            // SAFETY: AVX-512F present (module comment).
            Avx512(unsafe { _mm512_set1_ps(x) })
        }
        #[inline(always)]
        fn load(s: &[f32]) -> Self {
            let s: &[f32; 16] = s[..16].try_into().expect("16 lanes");
            // SAFETY: AVX-512F present; s holds 16 floats (unaligned load).
            Avx512(unsafe { _mm512_loadu_ps(s.as_ptr()) })
        }
        #[inline(always)]
        fn store(self, s: &mut [f32]) {
            let s: &mut [f32; 16] = (&mut s[..16]).try_into().expect("16 lanes");
            // SAFETY: AVX-512F present; s holds 16 floats (unaligned store).
            unsafe { _mm512_storeu_ps(s.as_mut_ptr(), self.0) }
        }
        #[inline(always)]
        fn fma(self, a: Self, b: Self) -> Self {
            // SAFETY: AVX-512F present.
            Avx512(unsafe { _mm512_fmadd_ps(a.0, b.0, self.0) })
        }
        #[inline(always)]
        fn mul(self, b: Self) -> Self {
            // SAFETY: AVX-512F present.
            Avx512(unsafe { _mm512_mul_ps(self.0, b.0) })
        }
        #[inline(always)]
        fn add(self, b: Self) -> Self {
            // SAFETY: AVX-512F present.
            Avx512(unsafe { _mm512_add_ps(self.0, b.0) })
        }
        #[inline(always)]
        fn max(self, b: Self) -> Self {
            // SAFETY: AVX-512F present.
            Avx512(unsafe { _mm512_max_ps(self.0, b.0) })
        }
        #[inline(always)]
        fn sum(self) -> f32 {
            // SAFETY: AVX-512F present.
            unsafe { _mm512_reduce_add_ps(self.0) }
        }
        #[inline(always)]
        fn load_bf16(s: &[u16]) -> Self {
            let s: &[u16; 16] = s[..16].try_into().expect("16 lanes");
            // SAFETY: AVX-512F present; s holds 16 u16 (unaligned load). bf16 is the top half
            // of an f32: zero-extend, shift into place.
            Avx512(unsafe { _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm256_loadu_si256(s.as_ptr().cast())))) })
        }
        #[inline(always)]
        fn load_bf16_pairs(s: &[u16]) -> [Self; 2] {
            let s: &[u16; 32] = s[..32].try_into().expect("32 elements");
            // SAFETY: AVX-512F present; s holds 32 u16 (unaligned load). Each 32-bit word holds
            // an even element in its low half and the next, odd one in its high half: the odd
            // one is an f32 once the low half is cleared, the even one once shifted up.
            unsafe {
                let words = _mm512_loadu_si512(s.as_ptr().cast());
                let even = _mm512_slli_epi32::<16>(words);
                let odd = _mm512_and_si512(words, _mm512_set1_epi32(0xFFFF_0000u32 as i32));
                [Avx512(_mm512_castsi512_ps(even)), Avx512(_mm512_castsi512_ps(odd))]
            }
        }
        #[inline(always)]
        fn load_f16(s: &[u16]) -> Self {
            let s: &[u16; 16] = s[..16].try_into().expect("16 lanes");
            // SAFETY: AVX-512F present; s holds 16 u16 (unaligned load).
            Avx512(unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(s.as_ptr().cast())) })
        }
        #[inline(always)]
        fn store_bf16(self, s: &mut [u16]) {
            let s: &mut [u16; 16] = (&mut s[..16]).try_into().expect("16 lanes");
            // SAFETY: AVX-512F present; s holds 16 u16 (unaligned store).
            unsafe { _mm256_storeu_si256(s.as_mut_ptr().cast(), bf16_bits(self.0)) }
        }
        #[inline(always)]
        fn store_f16(self, s: &mut [u16]) {
            let s: &mut [u16; 16] = (&mut s[..16]).try_into().expect("16 lanes");
            // SAFETY: AVX-512F present; s holds 16 u16 (unaligned store).
            unsafe { _mm256_storeu_si256(s.as_mut_ptr().cast(), _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(self.0)) }
        }
        #[inline(always)]
        fn stream(self, s: &mut [f32]) {
            let s: &mut [f32; 16] = (&mut s[..16]).try_into().expect("16 lanes");
            // SAFETY: AVX-512F present; s holds 16 floats, and the streaming store is taken only
            // where they start on 64 bytes, as it requires.
            unsafe {
                if s.as_ptr().addr().is_multiple_of(64) {
                    _mm512_stream_ps(s.as_mut_ptr(), self.0)
                } else {
                    _mm512_storeu_ps(s.as_mut_ptr(), self.0)
                }
            }
        }
        #[inline(always)]
        fn stream_bf16(self, s: &mut [u16]) {
            // SAFETY: AVX-512F present.
            stream_sixteen_words(s, unsafe { bf16_bits(self.0) })
        }
        #[inline(always)]
        fn stream_f16(self, s: &mut [u16]) {
            // SAFETY: AVX-512F present.
            stream_sixteen_words(s, unsafe { _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(self.0) })
        }
    }

    /// 16 words into `s`'s first 16, streamed where they start on 32 bytes.
    #[inline(always)]
    fn stream_sixteen_words(s: &mut [u16], words: __m256i) {
        let s: &mut [u16; 16] = (&mut s[..16]).try_into().expect("16 lanes");
        // SAFETY: AVX present (inside the AVX-512 entry); s holds 16 u16, and the streaming
        // store is taken only where they start on 32 bytes, as it requires.
        unsafe {
            if s.as_ptr().addr().is_multiple_of(32) {
                _mm256_stream_si256(s.as_mut_ptr().cast(), words)
            } else {
                _mm256_storeu_si256(s.as_mut_ptr().cast(), words)
            }
        }
    }

    /// The 16 lanes of `v` rounded to bf16 as `bf16_from_f32` (dtype.rs) rounds one: add 0x7FFF
    /// plus the kept part's lowest bit, keep the top half; a NaN keeps its top half with the quiet
    /// bit set. Also for kernels that hold their results in AVX-512 registers
    /// (`matmul/bf16_pairs.rs`).
    ///
    /// # Safety
    /// The CPU has AVX-512F (inlined into callers compiled with it).
    #[inline(always)]
    pub(crate) unsafe fn bf16_bits(v: __m512) -> __m256i {
        // SAFETY: AVX-512F present (the caller's promise).
        unsafe {
            let bits = _mm512_castps_si512(v);
            let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(bits), _mm512_set1_epi32(1));
            let rounded = _mm512_srli_epi32::<16>(_mm512_add_epi32(bits, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF))));
            let quiet_nan = _mm512_or_si512(_mm512_srli_epi32::<16>(bits), _mm512_set1_epi32(0x40));
            let nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(bits, _mm512_set1_epi32(0x7FFF_FFFF)), _mm512_set1_epi32(0x7F80_0000));
            _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, rounded, quiet_nan))
        }
    }

    #[derive(Clone, Copy)]
    pub(super) struct Avx2(__m256);

    impl Simd for Avx2 {
        const LANES: usize = 8;
        #[inline(always)]
        fn splat(x: f32) -> Self {
            // SAFETY: AVX present (module comment).
            Avx2(unsafe { _mm256_set1_ps(x) })
        }
        #[inline(always)]
        fn load(s: &[f32]) -> Self {
            let s: &[f32; 8] = s[..8].try_into().expect("8 lanes");
            // SAFETY: AVX present; s holds 8 floats (unaligned load).
            Avx2(unsafe { _mm256_loadu_ps(s.as_ptr()) })
        }
        #[inline(always)]
        fn store(self, s: &mut [f32]) {
            let s: &mut [f32; 8] = (&mut s[..8]).try_into().expect("8 lanes");
            // SAFETY: AVX present; s holds 8 floats (unaligned store).
            unsafe { _mm256_storeu_ps(s.as_mut_ptr(), self.0) }
        }
        #[inline(always)]
        fn fma(self, a: Self, b: Self) -> Self {
            // SAFETY: FMA present (module comment).
            Avx2(unsafe { _mm256_fmadd_ps(a.0, b.0, self.0) })
        }
        #[inline(always)]
        fn mul(self, b: Self) -> Self {
            // SAFETY: AVX present.
            Avx2(unsafe { _mm256_mul_ps(self.0, b.0) })
        }
        #[inline(always)]
        fn add(self, b: Self) -> Self {
            // SAFETY: AVX present.
            Avx2(unsafe { _mm256_add_ps(self.0, b.0) })
        }
        #[inline(always)]
        fn max(self, b: Self) -> Self {
            // SAFETY: AVX present.
            Avx2(unsafe { _mm256_max_ps(self.0, b.0) })
        }
        #[inline(always)]
        fn sum(self) -> f32 {
            // SAFETY: AVX present (module comment).
            unsafe {
                let halves = _mm_add_ps(_mm256_castps256_ps128(self.0), _mm256_extractf128_ps::<1>(self.0));
                let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
                _mm_cvtss_f32(_mm_add_ss(pairs, _mm_movehdup_ps(pairs)))
            }
        }
        #[inline(always)]
        fn load_bf16(s: &[u16]) -> Self {
            let s: &[u16; 8] = s[..8].try_into().expect("8 lanes");
            // SAFETY: AVX2 present (module comment); s holds 8 u16 (unaligned load). bf16 is the top
            // half of an f32: zero-extend, shift into place.
            Avx2(unsafe { _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(_mm_loadu_si128(s.as_ptr().cast())))) })
        }
        #[inline(always)]
        fn load_bf16_pairs(s: &[u16]) -> [Self; 2] {
            let s: &[u16; 16] = s[..16].try_into().expect("16 elements");
            // SAFETY: AVX2 present (module comment); s holds 16 u16 (unaligned load). As on
            // AVX-512: the even element shifted up, the odd one with the low half cleared.
            unsafe {
                let words = _mm256_loadu_si256(s.as_ptr().cast());
                let even = _mm256_slli_epi32::<16>(words);
                let odd = _mm256_and_si256(words, _mm256_set1_epi32(0xFFFF_0000u32 as i32));
                [Avx2(_mm256_castsi256_ps(even)), Avx2(_mm256_castsi256_ps(odd))]
            }
        }
        #[inline(always)]
        fn load_f16(s: &[u16]) -> Self {
            let s: &[u16; 8] = s[..8].try_into().expect("8 lanes");
            // SAFETY: F16C present (module comment); s holds 8 u16 (unaligned load).
            Avx2(unsafe { _mm256_cvtph_ps(_mm_loadu_si128(s.as_ptr().cast())) })
        }
        #[inline(always)]
        fn store_bf16(self, s: &mut [u16]) {
            let s: &mut [u16; 8] = (&mut s[..8]).try_into().expect("8 lanes");
            // SAFETY: AVX2 present (module comment); s holds 8 u16 (unaligned store).
            unsafe { _mm_storeu_si128(s.as_mut_ptr().cast(), self.bf16_words()) }
        }
        #[inline(always)]
        fn store_f16(self, s: &mut [u16]) {
            let s: &mut [u16; 8] = (&mut s[..8]).try_into().expect("8 lanes");
            // SAFETY: F16C present (module comment); s holds 8 u16 (unaligned store).
            unsafe { _mm_storeu_si128(s.as_mut_ptr().cast(), _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(self.0)) }
        }
        #[inline(always)]
        fn stream(self, s: &mut [f32]) {
            let s: &mut [f32; 8] = (&mut s[..8]).try_into().expect("8 lanes");
            // SAFETY: AVX present (module comment); s holds 8 floats, and the streaming store is
            // taken only where they start on 32 bytes, as it requires.
            unsafe {
                if s.as_ptr().addr().is_multiple_of(32) {
                    _mm256_stream_ps(s.as_mut_ptr(), self.0)
                } else {
                    _mm256_storeu_ps(s.as_mut_ptr(), self.0)
                }
            }
        }
        #[inline(always)]
        fn stream_bf16(self, s: &mut [u16]) {
            stream_eight_words(s, self.bf16_words())
        }
        #[inline(always)]
        fn stream_f16(self, s: &mut [u16]) {
            // SAFETY: F16C present (module comment).
            stream_eight_words(s, unsafe { _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(self.0) })
        }
    }

    impl Avx2 {
        /// The 8 lanes rounded to bf16 as the AVX-512 form rounds, as words. The NaN test is a
        /// signed compare, which holds because both sides are below 2^31.
        #[inline(always)]
        fn bf16_words(self) -> __m128i {
            // SAFETY: AVX2 present (module comment).
            unsafe {
                let bits = _mm256_castps_si256(self.0);
                let odd = _mm256_and_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(1));
                let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(bits, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7FFF))));
                let quiet_nan = _mm256_or_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(0x40));
                let nan = _mm256_cmpgt_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x7FFF_FFFF)), _mm256_set1_epi32(0x7F80_0000));
                let words = _mm256_blendv_epi8(rounded, quiet_nan, nan);
                // Each word fits 16 bits, so the saturating pack keeps it; the pack works within
                // 128-bit lanes, and the permute brings the two lanes' halves together.
                let packed = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi32(words, words));
                _mm256_castsi256_si128(packed)
            }
        }
    }

    /// `s`'s first 8 elements widened to f32 ([`super::load_widened`] on AVX2), as a register:
    /// for kernels written in AVX2's intrinsics rather than in [`Simd`]
    /// (`matmul/words.rs`, which transposes them).
    ///
    /// # Safety
    /// The CPU has AVX2 and F16C (inlined into callers compiled with them).
    #[inline(always)]
    pub(crate) unsafe fn load_8_widened<T: crate::Element>(s: &[T]) -> __m256 {
        super::load_widened::<T, Avx2>(s).0
    }

    /// 8 words into `s`'s first 8, streamed where they start on 16 bytes.
    #[inline(always)]
    fn stream_eight_words(s: &mut [u16], words: __m128i) {
        let s: &mut [u16; 8] = (&mut s[..8]).try_into().expect("8 lanes");
        // SAFETY: SSE2 is part of x86-64; s holds 8 u16, and the streaming store is taken only
        // where they start on 16 bytes, as it requires.
        unsafe {
            if s.as_ptr().addr().is_multiple_of(16) {
                _mm_stream_si128(s.as_mut_ptr().cast(), words)
            } else {
                _mm_storeu_si128(s.as_mut_ptr().cast(), words)
            }
        }
    }
}

/// The portable fallback: one lane.
#[derive(Clone, Copy)]
struct Scalar(f32);

impl Simd for Scalar {
    const LANES: usize = 1;
    #[inline(always)]
    fn splat(x: f32) -> Self {
        Scalar(x)
    }
    #[inline(always)]
    fn load(s: &[f32]) -> Self {
        Scalar(s[0])
    }
    #[inline(always)]
    fn store(self, s: &mut [f32]) {
        s[0] = self.0;
    }
    #[inline(always)]
    fn fma(self, a: Self, b: Self) -> Self {
        Scalar(a.0.mul_add(b.0, self.0))
    }
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        Scalar(self.0 * b.0)
    }
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        Scalar(self.0 + b.0)
    }
    #[inline(always)]
    fn max(self, b: Self) -> Self {
        Scalar(if self.0 > b.0 { self.0 } else { b.0 })
    }
    #[inline(always)]
    fn sum(self) -> f32 {
        self.0
    }
    #[inline(always)]
    fn load_bf16(s: &[u16]) -> Self {
        Scalar(bf16::from_bits(s[0]).to_f32())
    }
    #[inline(always)]
    fn load_f16(s: &[u16]) -> Self {
        Scalar(f16::from_bits(s[0]).to_f32())
    }
    #[inline(always)]
    fn load_bf16_pairs(s: &[u16]) -> [Self; 2] {
        [Self::load_bf16(s), Self::load_bf16(&s[1..])]
    }
    #[inline(always)]
    fn store_bf16(self, s: &mut [u16]) {
        s[0] = bf16::from_f32(self.0).to_bits();
    }
    #[inline(always)]
    fn store_f16(self, s: &mut [u16]) {
        s[0] = f16::from_f32(self.0).to_bits();
    }
}

/// The register block of the CPU micro-kernels: `acc[r][n] += Σ_{p < depth} a[r][p] · b[p][n]`,
/// `b`'s rows `ldb` apart, `NV` vectors of each (from its start) against `R` rows of `a`, each
/// element of `a` broadcast. `R × NV` accumulators stay in registers across the whole depth: 8 × 2
/// on AVX-512 (16 of 32 registers), 4 × 2 on AVX2 (8 of 16). Call it from a [`SimdKernel`],
/// inlined.
#[inline(always)]
pub fn fma_block<V: Simd, const R: usize, const NV: usize>(acc: &mut [[V; NV]; R], a: &[&[f32]; R], b: &[f32], ldb: usize, depth: usize) {
    let mut rows: [&[f32]; R] = [&[]; R];
    for (row, a) in rows.iter_mut().zip(a) {
        *row = &a[..depth];
    }
    for p in 0..depth {
        let b_row = &b[p * ldb..][..NV * V::LANES];
        let mut b = [V::splat(0.0); NV];
        for (n, x) in b.iter_mut().enumerate() {
            *x = V::load(&b_row[n * V::LANES..]);
        }
        let a = &rows;
        for r in 0..R {
            let x = V::splat(a[r][p]);
            for n in 0..NV {
                acc[r][n] = acc[r][n].fma(x, b[n]);
            }
        }
    }
}

/// Asks for every cache line of `row` to be brought into the (level 2) cache ahead of its use.
#[inline(always)]
pub fn prefetch<T>(row: &[T]) {
    #[cfg(target_arch = "x86_64")]
    prefetch_lines::<T, { std::arch::x86_64::_MM_HINT_T1 }>(row);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// Asks for every cache line of `row` to be brought into the (level 1) cache to be written
/// (`prefetchw`): the core then owns the lines before its stores reach them, where a store to a
/// line not in cache waits for the line to be read first.
#[inline(always)]
pub fn prefetch_for_write<T>(row: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    prefetch_lines::<T, { std::arch::x86_64::_MM_HINT_ET0 }>(row);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// `_mm_prefetch` with `HINT` for every cache line of `row`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_lines<T, const HINT: i32>(row: &[T]) {
    let bytes = std::mem::size_of_val(row);
    let base = row.as_ptr().cast::<i8>();
    for line in (0..bytes).step_by(64) {
        // SAFETY: a prefetch is a hint that never faults; the address lies inside `row`.
        unsafe { std::arch::x86_64::_mm_prefetch::<HINT>(base.add(line)) };
    }
}

/// Reads one element of every cache line of `span`, front to back, and discards it: the lines
/// are then in cache for reads in any order. Unlike [`prefetch`], these are loads the core waits
/// for, issued in address order, where the hardware prefetchers run ahead of them; a prefetch is
/// a hint that a full queue of misses may drop.
#[inline(always)]
pub fn touch<T: Copy>(span: &[T]) {
    const LINE_BYTES: usize = 64;
    let step = (LINE_BYTES / std::mem::size_of::<T>().max(1)).max(1);
    for i in (0..span.len()).step_by(step) {
        // SAFETY: `i` lies inside `span`, which is valid for reads; a volatile read is one the
        // compiler keeps although its value is unused.
        unsafe { std::ptr::read_volatile(span.as_ptr().add(i)) };
    }
}

/// A computation written once over any [`Simd`] type, run by [`dispatch`].
pub trait SimdKernel {
    type Output;
    /// What the computation writes besides its output. It travels as a `&mut` argument of its
    /// own, not inside `self`: a reference argument tells the compiler that nothing else aliases
    /// it, a reference inside a struct does not, and without that the micro-kernels reload
    /// from memory after each store (measured: the attention tiles 3–9% slower).
    type Scratch: ?Sized;
    /// The computation on vectors `V`. Mark it `#[inline(always)]`, and everything it calls that
    /// touches `V` too: only code inlined into [`dispatch`]'s AVX-512 entry is compiled with
    /// AVX-512 enabled (elsewhere every vector operation would be a function call).
    fn run<V: Simd>(self, scratch: &mut Self::Scratch) -> Self::Output;
}

/// The vector ISA the micro-kernels run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// 16 f32 lanes, 32 registers.
    Avx512,
    /// 8 f32 lanes, 16 registers, with FMA (x86-64-v3, the build's baseline).
    Avx2,
    /// One lane: a CPU without AVX2 and FMA, or not x86.
    Scalar,
}

/// The values `YOCO_CPU_ISA` may take.
const ISA_REQUESTS: [&str; 2] = ["avx2", "scalar"];

impl Isa {
    /// An error naming `YOCO_CPU_ISA`'s value if it is set to one [`Isa::detect`] does not know
    /// (a typo, `AVX2`), which would otherwise run the widest instruction set without a word: the
    /// `yoco` command checks it before anything runs.
    pub fn check_request() -> crate::Result<()> {
        match std::env::var("YOCO_CPU_ISA") {
            Ok(asked) if !asked.is_empty() && !ISA_REQUESTS.contains(&asked.as_str()) => {
                Err(crate::Error::invalid("YOCO_CPU_ISA", "value", format!("'{asked}': expected {} (or unset: the widest this CPU has)", ISA_REQUESTS.join(" or "))))
            }
            _ => Ok(()),
        }
    }

    /// The widest the CPU has, detected once per process, unless `YOCO_CPU_ISA` asks for a
    /// narrower one (`avx2` or `scalar`: how those kernels are tested on an AVX-512 machine;
    /// [`Isa::check_request`] refuses other values).
    pub fn detect() -> Isa {
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            let asked = std::env::var("YOCO_CPU_ISA").unwrap_or_default();
            #[cfg(target_arch = "x86_64")]
            {
                let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c");
                if avx2 && asked != "scalar" {
                    // Every feature run_avx512 enables, so that its code never meets a CPU without one.
                    let avx512 = is_x86_feature_detected!("avx512f")
                        && is_x86_feature_detected!("avx512vl")
                        && is_x86_feature_detected!("avx512bw")
                        && is_x86_feature_detected!("avx512dq");
                    if avx512 && asked != "avx2" {
                        return Isa::Avx512;
                    }
                    return Isa::Avx2;
                }
            }
            let _ = asked;
            Isa::Scalar
        })
    }
}

/// Runs `kernel` on the vectors of [`Isa::detect`], inside a function compiled for them.
pub fn dispatch<K: SimdKernel>(kernel: K, scratch: &mut K::Scratch) -> K::Output {
    match Isa::detect() {
        // SAFETY: the CPU has AVX-512F, VL, BW and DQ (Isa::detect).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { run_avx512(kernel, scratch) },
        // SAFETY: the CPU has AVX2, FMA and F16C (Isa::detect).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { run_avx2(kernel, scratch) },
        _ => kernel.run::<Scalar>(scratch),
    }
}

/// The kernel compiled with AVX-512 enabled.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,f16c")]
unsafe fn run_avx512<K: SimdKernel>(kernel: K, scratch: &mut K::Scratch) -> K::Output {
    kernel.run::<Avx512>(scratch)
}

/// The kernel compiled with AVX2 enabled: the build's baseline already, but a build without
/// `.cargo/config.toml` (this crate as another project's dependency) would not have it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn run_avx2<K: SimdKernel>(kernel: K, scratch: &mut K::Scratch) -> K::Output {
    kernel.run::<Avx2>(scratch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Widens then narrows `values` through [`load_widened`] and [`store_narrowed`] on the
    /// detected vectors (CI runs this under `YOCO_CPU_ISA=avx2` and `scalar` too).
    struct RoundTrip<'a, T> {
        values: &'a [f32],
        _t: std::marker::PhantomData<T>,
    }

    impl<T: Element> SimdKernel for RoundTrip<'_, T> {
        type Output = Vec<T>;
        type Scratch = ();
        #[inline(always)]
        fn run<V: Simd>(self, _: &mut ()) -> Vec<T> {
            let mut out = vec![T::from_f32(0.0); self.values.len()];
            for (from, to) in self.values.chunks_exact(V::LANES).zip(out.chunks_exact_mut(V::LANES)) {
                store_narrowed::<T, V>(V::load(from), to);
            }
            out
        }
    }

    /// Widens `row` a pair of vectors at a time through [`load_widened_pair`], then puts each
    /// chunk back in order with [`unpair`].
    struct PairsInOrder<'a, T> {
        row: &'a [T],
    }

    impl<T: Element> SimdKernel for PairsInOrder<'_, T> {
        type Output = Vec<f32>;
        type Scratch = ();
        #[inline(always)]
        fn run<V: Simd>(self, _: &mut ()) -> Vec<f32> {
            let mut out = vec![0f32; self.row.len()];
            for (from, to) in self.row.chunks_exact(2 * V::LANES).zip(out.chunks_exact_mut(2 * V::LANES)) {
                let [first, second] = load_widened_pair::<T, V>(from);
                first.store(to);
                second.store(&mut to[V::LANES..]);
                unpair::<T, V>(to);
            }
            out
        }
    }

    /// A pair of vectors widened and put back in order is the row, exactly, in every type (on
    /// every ISA, as CI runs it): the pairs' order of bf16 is undone by `unpair` alone.
    #[test]
    fn widened_pairs_unpair_to_the_row() {
        let mut rng = crate::rng::Rng::new(9);
        let row: Vec<f32> = (0..256).map(|_| f32::from_bits(rng.next_u64() as u32 & 0x3FFF_FFFF | 0x3000_0000)).collect();
        let bf16s: Vec<bf16> = row.iter().map(|&v| bf16::from_f32(v)).collect();
        let f16s: Vec<f16> = row.iter().map(|&v| f16::from_f32(v)).collect();
        assert_eq!(dispatch(PairsInOrder { row: &row }, &mut ()), row);
        assert_eq!(dispatch(PairsInOrder { row: &bf16s }, &mut ()), bf16s.iter().map(|v| v.to_f32()).collect::<Vec<_>>());
        assert_eq!(dispatch(PairsInOrder { row: &f16s }, &mut ()), f16s.iter().map(|v| v.to_f32()).collect::<Vec<_>>());
    }

    /// The vector roundings give `from_f32`'s bits on ties both ways, carries into the exponent,
    /// overflow to infinity, denormals, infinities, NaNs with and without payload, and random
    /// bit patterns.
    #[test]
    fn narrowing_stores_round_as_from_f32() {
        let mut patterns: Vec<u32> = vec![0, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7F7F_FFFF, 0xFF7F_FFFF, 0x7FC0_0000, 0x7F80_0001, 0xFFFF_FFFF, 0x0000_0001, 0x477F_F000, 0x3880_0000, 0x3300_0000];
        for base in [0x3F80_0000u32, 0x3F81_0000, 0xBF80_0000, 0x0080_0000, 0x3FFF_0000, 0x7F7F_0000, 0x3F80_1000, 0x3F80_3000] {
            for low in [0u32, 1, 0x0FFF, 0x1000, 0x1001, 0x7FFF, 0x8000, 0x8001, 0xFFFF] {
                patterns.push(base | low);
            }
        }
        let mut rng = crate::rng::Rng::new(5);
        patterns.extend((0..100_000).map(|_| rng.next_u64() as u32));
        patterns.resize(patterns.len().next_multiple_of(16), 0);
        let values: Vec<f32> = patterns.iter().map(|&b| f32::from_bits(b)).collect();
        let bf16s = dispatch(RoundTrip::<bf16> { values: &values, _t: std::marker::PhantomData }, &mut ());
        let f16s = dispatch(RoundTrip::<f16> { values: &values, _t: std::marker::PhantomData }, &mut ());
        for ((v, b), h) in values.iter().zip(&bf16s).zip(&f16s) {
            assert_eq!(b.to_bits(), bf16::from_f32(*v).to_bits(), "bf16 of {:#010x}", v.to_bits());
            // f16 NaN payloads may differ between conversions; NaN must stay NaN.
            if v.is_nan() {
                assert!(h.is_nan(), "f16 of {:#010x}", v.to_bits());
            } else {
                assert_eq!(h.to_bits(), f16::from_f32(*v).to_bits(), "f16 of {:#010x}", v.to_bits());
            }
        }
    }
}
