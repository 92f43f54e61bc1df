//! Elementwise f32 math that LLVM can vectorise. `f32::exp` is a libm call per element, which
//! stops the loops around it from vectorising and left the CPU SwiGLU gate at a fifth of memory
//! speed; [`exp`] is branch-free arithmetic that compiles to AVX2 in a plain loop, and so is
//! [`sin_cos`] (libm's `sincosf`, a call per pair, was most of the CPU RoPE).

/// e^x in f32, relative error under 2e-7 over [-87, 88] (Cephes' `expf` polynomial after
/// reduction by ln 2); 0 below −87 (−∞ included), where e^x is under 1.7e-38; and above 88
/// e^88 (~1.7e38) rather than ∞ (2ⁿ's bits need n ≤ 127). The callers take exponentials of
/// numbers at most 0 (softmax with its maximum subtracted, decays) or, in [`silu`], of −x.
///
/// The flush to 0 below the range is what a weight `e^(s − max)` of a score far below the
/// maximum must be: clamped to e^−87 instead, such a key kept a weight of 1.6e-38, which a value
/// of 3e38 turned into 4.9 of an output whose exact value is 0.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let e = exp_clamped(x);
    // A select, not a branch: the loops around it still vectorise. NaN is not below, and stays.
    if x < EXP_LOWEST {
        0.0
    } else {
        e
    }
}

/// The lowest input [`exp`] computes; below it, 0.
const EXP_LOWEST: f32 = -87.0;

/// [`exp`] without its flush to 0: e^x of x clamped to [−87, 88], for [`silu`], whose quotient
/// x / (1 + e^−x) is x either way where −x is below −87.
///
/// Written for the vectoriser: the reduction as fused multiply-adds, and n = round(x · log2 e)
/// taken by adding 1.5 · 2²³, whose sum holds n in its low mantissa bits, so that 2ⁿ is those bits
/// shifted into the exponent: no floor, no float-to-int conversion and no NaN select (a NaN input
/// stays NaN through the polynomial, whatever the bits of 2ⁿ). 27–30% faster per element than
/// `floor` and a converted n in the SwiGLU gate (0.40–0.58 against 0.55–0.77 ns, in the level-1
/// cache, interleaved in one process).
#[inline(always)]
fn exp_clamped(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that n·ln2 is exact in the first part.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 · 2²³ rounds |y| < 2²² to an integer (to nearest, the default rounding) held in
    // the sum's low mantissa bits; the 1.5 keeps negative y from borrowing out of the exponent.
    const SHIFTER: f32 = 12_582_912.0;
    let x = x.clamp(EXP_LOWEST, 88.0);
    let shifted = x.mul_add(LOG2E, SHIFTER);
    let n = shifted - SHIFTER;
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, x));
    let mut p = 1.987_569_1e-4f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 5e-1);
    let e = (p * r).mul_add(r, r) + 1.0;
    // n is in [-126, 127] after the clamp: its bits plus the bias, shifted into the exponent
    // field (the shift drops the sum's own exponent bits), are exactly 2ⁿ.
    e * f32::from_bits(shifted.to_bits().wrapping_add(127) << 23)
}

/// (sin x, cos x) of an f32 angle, branch-free so that a loop over angles vectorises: each
/// within one f32 ulp of the exact value for |x| ≤ 2^20 (checked over every such float: at most
/// 0.53 ulp), and within 3.2e-8 absolutely up to 2^24, RoPE's largest angle (its positions are
/// below 2^24, its frequencies at most 1), where the reduction is no longer exact. Computed in f64: x − n·π/2 with π/2 in two parts (fdlibm's
/// `pio2_1` has 33 significant bits, so n·pio2_1 is exact for n < 2^20), Taylor polynomials on
/// the remainder (|r| ≤ π/4; the first omitted terms, r¹¹/11! and r¹²/12!, are under 2e-9), and
/// the quadrant n mod 4 choosing signs and which is which.
#[inline(always)]
pub fn sin_cos(x: f32) -> (f32, f32) {
    const PIO2_HI: f64 = 1.570_796_326_734_125_6;
    const PIO2_LO: f64 = 6.077_100_506_506_192e-11;
    // 1.5 · 2^52: adding it rounds to an integer whose low bits are the integer's (the sum lies
    // in [2^52, 2^53), where the float spacing is 1).
    const SHIFTER: f64 = 6_755_399_441_055_744.0;
    let x = x as f64;
    let shifted = x * std::f64::consts::FRAC_2_PI + SHIFTER;
    let quadrant = shifted.to_bits();
    let n = shifted - SHIFTER;
    let r = (x - n * PIO2_HI) - n * PIO2_LO;
    let r2 = r * r;
    let mut sp: f64 = 1.0 / 362_880.0;
    sp = sp.mul_add(r2, -1.0 / 5_040.0);
    sp = sp.mul_add(r2, 1.0 / 120.0);
    sp = sp.mul_add(r2, -1.0 / 6.0);
    let sin_r = (sp * r2).mul_add(r, r);
    let mut cp: f64 = 1.0 / 3_628_800.0;
    cp = cp.mul_add(r2, -1.0 / 40_320.0);
    cp = cp.mul_add(r2, 1.0 / 720.0);
    cp = cp.mul_add(r2, -1.0 / 24.0);
    cp = cp.mul_add(r2, 0.5);
    let cos_r = (-cp).mul_add(r2, 1.0);
    // x = n·π/2 + r: quadrant 1 swaps sin and cos, quadrants 1 and 2 negate the sine's source…
    // by the table (sin, cos) = (s, c), (c, −s), (−s, −c), (−c, s) for n mod 4 = 0, 1, 2, 3.
    let (s, c) = if quadrant & 1 == 0 { (sin_r, cos_r) } else { (cos_r, sin_r) };
    let s = if quadrant & 2 == 0 { s } else { -s };
    let c = if (quadrant + 1) & 2 == 0 { c } else { -c };
    (s as f32, c as f32)
}

/// silu(x) = x · sigmoid(x) = x / (1 + e^-x), vectorisable. Below −88 it is x · e^x, under
/// 5.3e-37 in magnitude, as silu(−88) is: x is held at −88 there, so that the quotient vanishes
/// as it should, where x / (1 + e^88) (the top of [`exp`]) did not for large x: silu(−3e38) came
/// out −1.8.
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    // One max (`vmaxps`), not a select after the division, which made the bf16 gate ~10% slower;
    // NaN is not below, and stays NaN.
    let x = if x < -88.0 { -88.0 } else { x };
    x / (1.0 + exp_clamped(-x))
}

/// `a · b` in f32, b widened element by element: sixteen independent partial sums (two AVX2
/// registers or one AVX-512), so the loop vectorises into fused multiply-adds; a tail shorter
/// than sixteen is summed after them.
///
/// # Panics
/// If the lengths differ (as `copy_from_slice` does): a slice-level kernel with no error type,
/// whose callers pass rows of one length; a shorter one would otherwise be summed in part.
#[inline(always)]
pub fn dot<T: crate::Element>(a: &[f32], b: &[T]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: the two rows' lengths differ");
    const LANES: usize = 16;
    let mut acc = [0f32; LANES];
    let (a_body, b_body) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (a_tail, b_tail) = (a_body.remainder(), b_body.remainder());
    for (ac, bc) in a_body.zip(b_body) {
        for l in 0..LANES {
            acc[l] = ac[l].mul_add(bc[l].to_f32(), acc[l]);
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(x, y)| x * y.to_f32()).sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_sums_body_and_tail() {
        for len in [0, 1, 15, 16, 17, 64, 100] {
            let a: Vec<f32> = (0..len).map(|i| i as f32 * 0.5 - 3.0).collect();
            let b: Vec<half::bf16> = (0..len).map(|i| half::bf16::from_f32(1.0 + (i % 7) as f32)).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * y.to_f64()).sum();
            assert!((dot(&a, &b) as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()), "len {len}");
        }
    }

    #[test]
    fn exp_is_accurate_over_its_range() {
        let mut worst = 0.0f64;
        let mut x = -87.0f64;
        while x <= 88.0 {
            let got = exp(x as f32) as f64;
            let want = (x as f32 as f64).exp();
            worst = worst.max(((got - want) / want).abs());
            x += 0.001_7;
        }
        assert!(worst < 2e-7, "worst relative error {worst:e}");
    }

    #[test]
    fn sin_cos_is_within_an_ulp_of_the_exact_values() {
        // Fresh random angles over the whole range, plus the multiples of π/2 and their
        // neighbours (where the quadrant changes) and the edges.
        let mut rng = crate::rng::Rng::new(0x51c05);
        let mut angles: Vec<f32> = (0..200_000).map(|_| ((rng.uniform() * 2.0 - 1.0) * (1 << 20) as f64) as f32).collect();
        angles.extend((0..2_000).map(|_| (rng.uniform() * 20.0 - 10.0) as f32));
        for k in (-1000i32..1000).filter(|&k| k != 0) {
            let edge = (k as f64 * std::f64::consts::FRAC_PI_2) as f32;
            angles.extend([edge, f32::from_bits(edge.to_bits() + 1), f32::from_bits(edge.to_bits().wrapping_sub(1))]);
        }
        angles.extend([0.0, -0.0, 1e-30, (1 << 20) as f32, -((1 << 20) as f32)]);
        for &x in &angles {
            let (s, c) = sin_cos(x);
            let (want_s, want_c) = (x as f64).sin_cos();
            for (got, want, what) in [(s, want_s, "sin"), (c, want_c, "cos")] {
                let ulp = f32::from_bits((want as f32).abs().to_bits() + 1) as f64 - (want as f32).abs() as f64;
                // Within one ulp of the f32 nearest the exact value, or of absolute error 2⁻²⁶
                // near a zero (where an ulp vanishes).
                assert!((got as f64 - want).abs() <= ulp.max(1.5e-8), "{what}({x}) = {got}, exact {want}");
            }
        }
    }

    #[test]
    fn exp_flushes_below_its_range_and_saturates_above() {
        for x in [-87.001, -100.0, -1000.0, -1.25e29, f32::MIN, f32::NEG_INFINITY] {
            assert_eq!(exp(x), 0.0, "exp({x})");
        }
        assert!(exp(-87.0) > 1e-38);
        assert!(exp(1000.0).is_finite() && exp(1000.0) > 1e38 && exp(f32::INFINITY).is_finite());
        // NaN stays NaN (the integer part takes no undefined conversion).
        assert!(exp(f32::NAN).is_nan() && silu(f32::NAN).is_nan());
    }

    /// silu against f64 over the whole f32 range, its large negative inputs included (where
    /// e^−x passes exp's top): within 2e-7 relatively, or 2e-36 absolutely where it vanishes.
    #[test]
    fn silu_matches_f64_everywhere() {
        let mut xs: Vec<f32> = (-120 * 64..100 * 64).map(|i| i as f32 / 64.0).collect();
        xs.extend([-3.0e38, -1e30, -1e20, -1e10, -1e3, 1e3, 1e10, 1e30, 3.0e38, f32::MIN, f32::MAX, 0.0, -0.0]);
        for x in xs {
            let x64 = f64::from(x);
            let want = x64 / (1.0 + (-x64).exp());
            let got = f64::from(silu(x));
            assert!((got - want).abs() <= 2e-7 * want.abs() + 2e-36, "silu({x}) = {got}, want {want}");
        }
    }
}
