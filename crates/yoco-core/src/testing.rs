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

/// The reduced-precision rule (flash-attention's): the error of `out` against the f64 reference
/// must be at most twice the error of a plain implementation in the same storage precision
/// (`plain`, the reference with its intermediates and output rounded as such an implementation
/// would round them), with a floor for cases where the plain error is near zero, and under
/// `absolute_cap` whatever the plain error (1e-2 for bf16/f16 in DESIGN.md). Prints both numbers.
pub fn check_against_plain(label: &str, out: &[f64], plain: &[f64], reference: &[f64], floor: f64, absolute_cap: f64) -> Result<f64, String> {
    let err = rel_l2(out, reference);
    let plain_err = rel_l2(plain, reference);
    let bound = (2.0 * plain_err).max(floor);
    if err <= bound && err <= absolute_cap {
        Ok(err)
    } else {
        Err(format!(
            "{label}: relative L2 error {err:.3e}; plain same-precision implementation {plain_err:.3e}, \
             bound max(2 × plain, {floor:.1e}) = {bound:.3e}, cap {absolute_cap:.1e}"
        ))
    }
}

/// The bound for a fast path whose storage is `dtype` against the f64 reference (DESIGN.md):
/// f32 paths must be well under 1e-4; reduced precision paths use [`check_against_plain`].
pub const F32_REL_L2_BOUND: f64 = 1e-5;

/// Cap on the relative error of any bf16/f16 path, whatever the plain implementation's error.
pub const HALF_REL_L2_CAP: f64 = 1e-2;

/// Rounds every value to `dtype` and back (the "plain implementation" building block).
pub fn round_all(dtype: DType, values: &mut [f64]) {
    for v in values {
        *v = dtype.round(*v);
    }
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
pub fn cuda_device_or_skip(test: &str) -> Option<Device> {
    match Device::cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("{test}: CUDA part skipped: {e}");
            None
        }
    }
}

/// The base seed of this test run: `YOCO_TEST_SEED` if set, otherwise drawn from the clock so
/// every run sees fresh inputs. Failure messages print it; set the variable to replay a failure.
pub fn run_seed() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| {
        std::env::var("YOCO_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
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

/// The floor of the reduced-precision rule for `dtype`: half its unit roundoff (relative errors
/// below this are rounding noise whatever the algorithm).
pub fn rounding_floor(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 1e-7,
        DType::BF16 => 0.5 * 2f64.powi(-8),
        DType::F16 => 0.5 * 2f64.powi(-11),
    }
}
