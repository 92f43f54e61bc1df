//! bf16 in pairs on AVX512-BF16, for elementwise kernels whose work per element is small: 32
//! elements to a 64-byte vector, widened as two f32 vectors, the even elements and the odd ones
//! (a shift and a mask), and narrowed by one `vcvtne2ps2bf16` and one word permute. Widening 16
//! at a time takes a zero-extension and a shift per 16, and the exact integer rounding of
//! [`Simd::store_bf16`] nine operations per 16: in the SwiGLU gate, whose
//! silu is ~25 vector operations, those were a third of the loop (on the Zen 4 VM, 0.28–0.29
//! ns an element on bf16 in the level-2 cache against 0.18–0.20 on f32; 0.24 in pairs).
//!
//! The lanes come out in pairs' order (the even elements, then the odd ones), which an
//! elementwise kernel does not see as long as every operand is loaded the same way and the
//! results are narrowed by [`narrow`].
//!
//! Rounding: `vcvtne2ps2bf16` rounds to nearest even and quiets a NaN exactly as `bf16::from_f32`
//! does, but flushes a denormal f32 to zero; a step whose results hold one (`vfpclassps`, rare)
//! takes `Simd::store_bf16`'s integer rounding instead, so that [`narrow`] always writes
//! `from_f32`'s bits.

use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::x86::{bf16_bits, Avx512};
use super::{Isa, Simd};

/// Elements a step: one 64-byte vector of bf16.
pub const STEP: usize = 32;

/// Whether the CPU runs this module's functions: [`Isa::detect`] chose AVX-512 (so
/// `YOCO_CPU_ISA=avx2` turns this off too) and it has AVX512-BF16.
pub fn available() -> bool {
    static DETECTED: OnceLock<bool> = OnceLock::new();
    *DETECTED.get_or_init(|| Isa::detect() == Isa::Avx512 && is_x86_feature_detected!("avx512bf16"))
}

/// `s`'s 32 bf16 widened to f32 in pairs' order (the even elements, then the odd ones),
/// exactly: a bf16 is the top half of its f32.
///
/// # Safety
/// [`available`] is true, and the caller is compiled with `avx512f` (inlined into it).
#[inline(always)]
pub unsafe fn widen(s: &[u16; STEP]) -> [f32; STEP] {
    // AVX-512F present (the caller's promise): the vectors' own widening.
    let pairs = <Avx512 as Simd>::load_bf16_pairs(s);
    // SAFETY: Avx512 is a transparent __m512, so two are the bits of 32 f32 (a value, which
    // LLVM keeps in registers).
    unsafe { std::mem::transmute::<[Avx512; 2], [f32; STEP]>(pairs) }
}

/// `v`, in pairs' order (as [`widen`] gives them), rounded to bf16 as `bf16::from_f32` rounds
/// and stored in the row's order into `s`.
///
/// # Safety
/// [`available`] is true, and the caller is compiled with `avx512f,avx512bw,avx512dq,avx512bf16`
/// (`vfpclassps` is AVX512DQ), inlined into it.
#[inline(always)]
pub unsafe fn narrow(v: &[f32; STEP], s: &mut [u16; STEP]) {
    // Word j of the result: element j of the row, from word j/2 of the even half (words 0..16 of
    // the conversion) or of the odd half (words 16..32).
    const INTERLEAVE: [i16; 32] = {
        let mut index = [0i16; 32];
        let mut j = 0;
        while j < 32 {
            index[j] = (j / 2 + (j % 2) * 16) as i16;
            j += 1;
        }
        index
    };
    // SAFETY: AVX-512F, BW, DQ and BF16 present (the caller's promise); s holds 64 bytes
    // (unaligned store); 32 f32 are two __m512, and __m512bh and __m512i 64 bytes of plain bits.
    unsafe {
        let [even, odd] = std::mem::transmute::<[f32; STEP], [__m512; 2]>(*v);
        const DENORMAL: i32 = 0x20;
        // The halves in the conversion's order: the even elements' bf16 in words 0..16, the odd
        // ones' in 16..32. A step with a denormal takes the exact integer rounding, in
        // registers: an out-of-line fallback had made the rotate-half RoPE keep its results in
        // memory around the call, and reload them misaligned on the common path.
        let halves: __m512i = if _mm512_fpclass_ps_mask::<DENORMAL>(even) | _mm512_fpclass_ps_mask::<DENORMAL>(odd) != 0 {
            _mm512_inserti64x4::<1>(_mm512_castsi256_si512(bf16_bits(even)), bf16_bits(odd))
        } else {
            std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(odd, even))
        };
        let index = _mm512_loadu_si512(INTERLEAVE.as_ptr().cast());
        _mm512_storeu_si512(s.as_mut_ptr().cast(), _mm512_permutexvar_epi16(index, halves));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::bf16;

    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512bf16")]
    unsafe fn round_trip(values: &[f32], widened: &mut [f32], narrowed: &mut [u16]) {
        for ((from, wide), to) in values.chunks_exact(STEP).zip(widened.chunks_exact_mut(STEP)).zip(narrowed.chunks_exact_mut(STEP)) {
            // Lanes in pairs' order: element 2i of the row in lane i, 2i + 1 in lane 16 + i.
            let mut pairs = [0f32; STEP];
            for i in 0..16 {
                (pairs[i], pairs[16 + i]) = (from[2 * i], from[2 * i + 1]);
            }
            let to: &mut [u16; STEP] = to.try_into().unwrap();
            // SAFETY: available() (the caller checked), compiled with the features.
            let back = unsafe {
                narrow(&pairs, to);
                widen(to)
            };
            for i in 0..16 {
                (wide[2 * i], wide[2 * i + 1]) = (back[i], back[16 + i]);
            }
        }
    }

    /// The pair narrowing gives `from_f32`'s bits in row order on ties both ways, carries,
    /// overflow, infinities, NaNs, denormals (alone in a step and among normal values) and random
    /// patterns; the widening gives back exactly the f32 of each bf16.
    #[test]
    fn pairs_round_as_from_f32_and_widen_exactly() {
        if !available() {
            eprintln!("skipped: no AVX512-BF16 here");
            return;
        }
        let mut patterns: Vec<u32> = vec![0, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7F7F_FFFF, 0xFF7F_FFFF, 0x7FC0_0000, 0x7F80_0001, 0xFFFF_FFFF, 0x477F_F000, 0x3880_0000];
        for base in [0x3F80_0000u32, 0x3F81_0000, 0xBF80_0000, 0x0080_0000, 0x3FFF_0000, 0x7F7F_0000] {
            for low in [0u32, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF] {
                patterns.push(base | low);
            }
        }
        patterns.resize(patterns.len().next_multiple_of(STEP), 0x4000_0000);
        // A step with one denormal among normal values, and one of denormals only.
        patterns.extend((0..STEP as u32).map(|i| if i == 7 { 0x0000_8001 } else { 0x3F80_8000 + i }));
        patterns.extend((0..STEP as u32).map(|i| 0x8000_0000 * (i % 2) + 0x0000_7FFF + i * 0x1_0000));
        let mut rng = crate::rng::Rng::new(0xb16);
        patterns.extend((0..STEP * 3_000).map(|_| rng.next_u64() as u32));
        let values: Vec<f32> = patterns.iter().map(|&b| f32::from_bits(b)).collect();
        let (mut widened, mut narrowed) = (vec![0f32; values.len()], vec![0u16; values.len()]);
        // SAFETY: available() is true.
        unsafe { round_trip(&values, &mut widened, &mut narrowed) };
        for ((v, &b), w) in values.iter().zip(&narrowed).zip(&widened) {
            let want = bf16::from_f32(*v);
            assert_eq!(b, want.to_bits(), "bf16 of {:#010x}", v.to_bits());
            assert_eq!(w.to_bits(), (b as u32) << 16, "widened {b:#06x}");
        }
    }
}
