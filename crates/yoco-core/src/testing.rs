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
