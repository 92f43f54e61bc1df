//! What every crate's tests share: error measures, the tolerance rules of DESIGN.md, and the
//! list of devices a test body runs on. Public so that users can check their own paths the same way.

use crate::{Device, DType};

/// Relative L2 error ‖out − ref‖ / ‖ref‖ (absolute when ‖ref‖ = 0). A NaN or infinity anywhere in
/// `out`, or a length mismatch, gives +∞, so no comparison can pass by accident.
pub fn rel_l2(out: &[f64], reference: &[f64]) -> f64 {
    if out.len() != reference.len() || out.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let num: f64 = out.iter().zip(reference).map(|(a, b)| (a - b) * (a - b)).sum();
    let den: f64 = reference.iter().map(|b| b * b).sum();
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// Fails unless `rel_l2(out, reference) <= bound`; the message prints both numbers.
pub fn check_rel_l2(label: &str, out: &[f64], reference: &[f64], bound: f64) -> Result<f64, String> {
    let err = rel_l2(out, reference);
    if err <= bound {
        Ok(err)
    } else {
        Err(format!("{label}: relative L2 error {err:.3e} exceeds the bound {bound:.3e}"))
    }
}

/// The bound for an f32 path against the f64 reference (DESIGN.md: well under 1e-4); bf16/f16
/// paths are judged by [`judge`].
pub const F32_REL_L2_BOUND: f64 = 1e-5;

/// Cap on the relative error of a bf16/f16 path (DESIGN.md: under 1e-2), relaxed only where the
/// plain implementation itself comes near it (see [`half_bound`]).
pub const HALF_REL_L2_CAP: f64 = 1e-2;

/// How much worse than the plain implementation a bf16/f16 path may be where the plain
/// implementation's own error is within `1 / ILL_CONDITIONED_FACTOR` of [`HALF_REL_L2_CAP`].
pub const ILL_CONDITIONED_FACTOR: f64 = 1.25;

/// The most a bf16/f16 path may be off, however ill-conditioned the draw (5 × the cap; the worst
/// plain implementation of 20,000 one-token FFN draws was at 1.8e-2): beyond it the case, or the
/// plain model it is judged by, is wrong, not merely ill-conditioned.
pub const HALF_REL_L2_CEILING: f64 = 5e-2;

/// Rounds every value to `dtype` and back (the "plain implementation" building block).
pub fn round_all(dtype: DType, values: &mut [f64]) {
    for v in values {
        *v = dtype.round(*v);
    }
}

/// The verdict on one output of one case: its error against the reference and the bound it had.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// What ran: primitive, device, dtype, shape.
    pub label: String,
    /// Relative L2 error against the f64 reference.
    pub error: f64,
    /// Relative L2 error of a plain implementation in the same precision (bf16/f16 only).
    pub plain_error: Option<f64>,
    /// The bound `error` had to meet.
    pub bound: f64,
}

impl Outcome {
    /// Whether `error` is finite and within `bound` (a non-finite error never passes, whatever
    /// the bound).
    pub fn passed(&self) -> bool {
        self.error.is_finite() && self.error <= self.bound
    }

    /// One line for logs: label, error, bound, verdict.
    pub fn line(&self) -> String {
        let plain = self.plain_error.map(|p| format!(" (plain {p:.2e})")).unwrap_or_default();
        let verdict = if self.passed() { "ok" } else { "FAILED" };
        format!("{verdict:6} {}: error {:.2e}{plain}, bound {:.2e}", self.label, self.error, self.bound)
    }
}

/// Applies DESIGN.md's rule for a path in `dtype`, with the one relaxation [`half_bound`]
/// documents: f32 paths under [`F32_REL_L2_BOUND`]; bf16 and f16 paths under [`half_bound`] of
/// the plain implementation's error. `plain` is ignored for f32.
pub fn judge(label: String, dtype: DType, out: &[f64], plain: &[f64], reference: &[f64]) -> Outcome {
    let error = rel_l2(out, reference);
    match dtype {
        DType::F32 => Outcome { label, error, plain_error: None, bound: F32_REL_L2_BOUND },
        _ => {
            let plain_error = rel_l2(plain, reference);
            Outcome { label, error, plain_error: Some(plain_error), bound: half_bound(dtype, plain_error) }
        }
    }
}

/// The bound on a bf16/f16 path whose plain implementation has relative error `plain_error`:
/// max(2 × `plain_error`, the rounding floor), and under [`HALF_REL_L2_CAP`] where the plain
/// implementation meets the cap with room.
///
/// Where it does not, the cap gives way to [`ILL_CONDITIONED_FACTOR`] × `plain_error` (still
/// tighter than the 2× rule). Such a draw is ill-conditioned, not a poor kernel: a few outputs
/// that nearly cancel, so one rounding of each intermediate is already a percent of their norm.
/// The FFN's one-token case (8 outputs) draws it about once in 350 runs, and a plain bf16
/// implementation there reached 1.8e-2; a fixed cap failed the CUDA FFN at error 1.03e-2, equal
/// to the plain implementation's, in a CI run. Relaxing it from 0.8 × the cap on keeps the bound
/// continuous, so no draw just under the cap asks a path to beat the plain implementation. It
/// stops at [`HALF_REL_L2_CEILING`]; a plain error that is not finite (a broken plain model)
/// relaxes nothing.
pub fn half_bound(dtype: DType, plain_error: f64) -> f64 {
    if !plain_error.is_finite() {
        return HALF_REL_L2_CAP;
    }
    let cap = HALF_REL_L2_CAP.max(ILL_CONDITIONED_FACTOR * plain_error).min(HALF_REL_L2_CEILING);
    (2.0 * plain_error).max(rounding_floor(dtype)).min(cap)
}

/// Panics with every failed outcome's line (and the seed to replay it) if any failed.
pub fn assert_all_passed(outcomes: &[Outcome]) {
    let failed: Vec<String> = outcomes.iter().filter(|o| !o.passed()).map(Outcome::line).collect();
    assert!(failed.is_empty(), "{} of {} cases failed (YOCO_TEST_SEED={}):\n{}", failed.len(), outcomes.len(), run_seed(), failed.join("\n"));
}

/// The devices one test body runs on: the CPU always, and CUDA device 0 when this build has the
/// `cuda` feature and the machine has a GPU. When CUDA is skipped, says why on stderr, once per
/// call, so a test log shows that the GPU half did not run.
pub fn test_devices(test: &str) -> Vec<Device> {
    let mut devices = vec![Device::cpu()];
    if let Some(cuda) = cuda_device_or_skip(test) {
        devices.push(cuda);
    }
    devices
}

/// CUDA device 0, or `None` with a printed reason ("skipped: ...").
///
/// # Panics
/// With `YOCO_REQUIRE_CUDA` set (CI sets it where the emulator stands in for a GPU), a skip is a
/// failure: a run meant to cover the CUDA cases cannot pass without them.
pub fn cuda_device_or_skip(test: &str) -> Option<Device> {
    match Device::cuda(0) {
        Ok(d) => Some(d),
        Err(e) if std::env::var_os("YOCO_REQUIRE_CUDA").is_some() => panic!("{test}: CUDA required (YOCO_REQUIRE_CUDA) but unavailable: {e}"),
        Err(e) => {
            eprintln!("{test}: CUDA part skipped: {e}");
            None
        }
    }
}

/// `YOCO_TEST_SEED` as a seed: `None` where it is not set, an error where it is set to anything
/// but a decimal u64 (a replay that silently drew a fresh seed would replay nothing).
pub fn seed_from_env() -> crate::Result<Option<u64>> {
    match std::env::var("YOCO_TEST_SEED") {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Ok(text) => text.trim().parse().map(Some).map_err(|_| crate::Error::invalid("YOCO_TEST_SEED", "seed", format!("'{text}': expected a decimal number in 0..={}", u64::MAX))),
        Err(std::env::VarError::NotUnicode(text)) => Err(crate::Error::invalid("YOCO_TEST_SEED", "seed", format!("{text:?}: expected a decimal number"))),
    }
}

/// The base seed of this test run: `YOCO_TEST_SEED` if set, otherwise drawn from the clock so
/// every run sees fresh inputs. Failure messages print it; set the variable to replay a failure.
///
/// # Panics
/// Where `YOCO_TEST_SEED` is not a seed ([`seed_from_env`], which `yoco check` calls first to
/// say so as an error).
pub fn run_seed() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| {
        seed_from_env().unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
        })
    })
}

/// A generator for one test case, derived from the run seed and the case's name.
pub fn case_rng(case: &str) -> crate::rng::Rng {
    // FNV-1a of the case name, so that cases draw different inputs from the same run seed.
    let h = case.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x1000_0000_01b3));
    crate::rng::Rng::new(run_seed() ^ h)
}

/// The bound for a path that computes a result exactly (in f64, or with f32 far inside the
/// rounding) and rounds it once to `dtype`: [`F32_REL_L2_BOUND`] in f32, the unit roundoff
/// ([`rounding_floor`]) in bf16 and f16. For cases a plain implementation cannot judge (it
/// overflows where the path must not).
pub fn once_rounded_bound(dtype: DType) -> f64 {
    if dtype == DType::F32 {
        F32_REL_L2_BOUND
    } else {
        rounding_floor(dtype)
    }
}

/// The floor of the reduced-precision rule for `dtype`: its unit roundoff 2^-p (p significant
/// bits), the largest relative error of one rounding to nearest. A path that computes exactly
/// and rounds its output once can reach it, so no bound below it is fair.
///
/// Half of it, the floor before, failed the fused residual RMSNorm at 3 rows × width 7
/// about once in 10,000 draws per dtype (20,000 draws each). Its y is rounded once against the
/// plain implementation's three roundings, and over 21 outputs the plain error can come out
/// small by luck (1.17e-3, against the path's 2.72e-3 in bf16).
pub fn rounding_floor(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 2f64.powi(-24),
        DType::BF16 => 2f64.powi(-8),
        DType::F16 => 2f64.powi(-11),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_half_precision_bound_is_twice_plain_under_the_cap() {
        assert_eq!(half_bound(DType::BF16, 3e-3), 6e-3);
        assert_eq!(half_bound(DType::BF16, 7e-3), HALF_REL_L2_CAP);
        assert_eq!(half_bound(DType::BF16, 0.0), rounding_floor(DType::BF16));
    }

    #[test]
    fn the_cap_gives_way_continuously_where_plain_comes_near_it() {
        let knee = HALF_REL_L2_CAP / ILL_CONDITIONED_FACTOR;
        assert!((half_bound(DType::BF16, knee) - HALF_REL_L2_CAP).abs() < 1e-15);
        // The CI failure: CUDA FFN error 1.03e-2, equal to its plain implementation's.
        let plain = 1.03e-2;
        let failed_in_ci = judge("ffn".into(), DType::BF16, &[1.0 + plain], &[1.0 + plain], &[1.0]);
        assert!(failed_in_ci.passed(), "{}", failed_in_ci.line());
        // Still tighter than the 2× rule there.
        let worse = judge("ffn".into(), DType::BF16, &[1.0 + 1.5 * plain], &[1.0 + plain], &[1.0]);
        assert!(!worse.passed(), "{}", worse.line());
    }

    #[test]
    fn the_relaxation_stops_at_the_ceiling() {
        assert_eq!(half_bound(DType::BF16, 1.0), HALF_REL_L2_CEILING);
        assert_eq!(half_bound(DType::BF16, f64::INFINITY), HALF_REL_L2_CAP);
        assert_eq!(half_bound(DType::BF16, f64::NAN), HALF_REL_L2_CAP);
    }

    #[test]
    fn non_finite_output_never_passes() {
        let nan = judge("nan".into(), DType::F16, &[f64::NAN], &[1.5], &[1.0]);
        assert!(nan.error.is_infinite() && !nan.passed());
        // Not even beside a plain implementation that is not finite either.
        let both = judge("both".into(), DType::BF16, &[f64::NAN], &[f64::INFINITY], &[1.0]);
        assert!(!both.passed(), "{}", both.line());
        let unbounded = Outcome { label: "∞ bound".into(), error: f64::INFINITY, plain_error: None, bound: f64::INFINITY };
        assert!(!unbounded.passed());
    }
}
