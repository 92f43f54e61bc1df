//! The vectors the micro-kernels are written in. LLVM did not keep plain-array accumulators in
//! registers (the first version of `tiles` ran at 2% of the FMA ceiling with every FMA a scalar
//! load-modify-store), so the register blocks are spelled out in explicit vectors.
//!
//! Safety: the x86 types wrap intrinsics that need AVX-512F (or AVX2 + FMA). [`Avx512`] is only
//! used inside `task_avx512`, which runs only after `Isa::detect` saw AVX-512F and AVX-512VL;
//! [`Avx2`] needs AVX2 + FMA, the build's baseline (`target-cpu=x86-64-v3` in
//! .cargo/config.toml). Loads and stores take fixed-size arrays, so they stay in bounds.

/// A vector of `LANES` f32.
pub(super) trait Simd: Copy {
    const LANES: usize;
    fn splat(x: f32) -> Self;
    fn load(s: &[f32]) -> Self;
    fn store(self, s: &mut [f32]);
    /// `a · b + self`, fused.
    fn fma(self, a: Self, b: Self) -> Self;
    fn mul(self, b: Self) -> Self;
}

#[cfg(target_arch = "x86_64")]
pub(super) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Simd;

    #[derive(Clone, Copy)]
    pub(in super::super) struct Avx512(__m512);

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
    }

    #[derive(Clone, Copy)]
    pub(in super::super) struct Avx2(__m256);

    impl Simd for Avx2 {
        const LANES: usize = 8;
        #[inline(always)]
        fn splat(x: f32) -> Self {
            // SAFETY: AVX present (baseline, module comment).
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
            // SAFETY: FMA present (baseline).
            Avx2(unsafe { _mm256_fmadd_ps(a.0, b.0, self.0) })
        }
        #[inline(always)]
        fn mul(self, b: Self) -> Self {
            // SAFETY: AVX present.
            Avx2(unsafe { _mm256_mul_ps(self.0, b.0) })
        }
    }
}

/// The portable fallback: one lane.
#[cfg(not(target_arch = "x86_64"))]
#[derive(Clone, Copy)]
pub(super) struct Scalar(f32);

#[cfg(not(target_arch = "x86_64"))]
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
}
