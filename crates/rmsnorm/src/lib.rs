//! RMSNorm: `y = x * rsqrt(mean(x²) + eps) * w` over the last dimension, statistics in f32
//! whatever the storage dtype; and the fused residual variant every pre-norm block uses,
//! `h = x + r; y = RMSNorm(h)`, which returns both `h` (the new residual stream) and `y`.
//!
//! The rooms, as in every primitive crate: this file is the API (shapes, dtypes, devices and
//! `eps` checked, typed errors, dispatch by device); [`mod@reference`] is the f64 oracle; [`cpu`] the
//! fast CPU path; `cuda` the launcher of `kernels/rmsnorm.cu` (feature `cuda`); [`check`] the
//! validation against the reference that the tests and `yoco check` share.

pub mod check;
pub mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
pub mod reference;

use yoco_core::{Device, Error, MemoryCategory, Result, Tensor};

/// The epsilon YOCO uses everywhere.
pub const DEFAULT_EPS: f32 = 1e-5;

/// RMSNorm over the last dimension of `x` (any rank ≥ 1) with `weight` of that width.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
    let mut y = Tensor::for_overwrite(x.shape().clone(), x.dtype(), x.device(), MemoryCategory::Activations)?;
    rms_norm_into(x, weight, eps, &mut y)?;
    Ok(y)
}

/// [`rms_norm`] into a preallocated `y` (same shape, dtype and device as `x`).
pub fn rms_norm_into(x: &Tensor, weight: &Tensor, eps: f32, y: &mut Tensor) -> Result<()> {
    const OP: &str = "rms_norm";
    validate(OP, x, None, weight, eps)?;
    expect_like(OP, "y", y, x)?;
    match x.device() {
        Device::Cpu(_) => cpu::rms_norm(x, None, weight, eps, y, None),
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => cuda::rms_norm(x, None, weight, eps, y, None),
    }
}

/// `h = x + residual; y = RMSNorm(h)`; returns `(h, y)`. `h` is rounded to the storage dtype
/// before it is normalised, so `y` is exactly the RMSNorm of the `h` that is returned.
pub fn rms_norm_residual(x: &Tensor, residual: &Tensor, weight: &Tensor, eps: f32) -> Result<(Tensor, Tensor)> {
    let mut h = Tensor::for_overwrite(x.shape().clone(), x.dtype(), x.device(), MemoryCategory::Activations)?;
    let mut y = Tensor::for_overwrite(x.shape().clone(), x.dtype(), x.device(), MemoryCategory::Activations)?;
    rms_norm_residual_into(x, residual, weight, eps, &mut h, &mut y)?;
    Ok((h, y))
}

/// [`rms_norm_residual`] into preallocated `h` and `y`.
pub fn rms_norm_residual_into(x: &Tensor, residual: &Tensor, weight: &Tensor, eps: f32, h: &mut Tensor, y: &mut Tensor) -> Result<()> {
    const OP: &str = "rms_norm_residual";
    validate(OP, x, Some(residual), weight, eps)?;
    expect_like(OP, "h", h, x)?;
    expect_like(OP, "y", y, x)?;
    match x.device() {
        Device::Cpu(_) => cpu::rms_norm(x, Some(residual), weight, eps, y, Some(h)),
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => cuda::rms_norm(x, Some(residual), weight, eps, y, Some(h)),
    }
}

/// Every check [`rms_norm`] (`residual` `None`) or [`rms_norm_residual`] makes of its inputs,
/// without running it: for callers that compute the result another way (the models' reference
/// backend) and must refuse what the fast path refuses, with the same error.
pub fn check_rms_norm(x: &Tensor, residual: Option<&Tensor>, weight: &Tensor, eps: f32) -> Result<()> {
    validate(if residual.is_some() { "rms_norm_residual" } else { "rms_norm" }, x, residual, weight, eps)
}

fn validate(op: &'static str, x: &Tensor, residual: Option<&Tensor>, weight: &Tensor, eps: f32) -> Result<()> {
    x.expect_nonempty(op, "x")?;
    if !(eps > 0.0 && eps.is_finite()) {
        return Err(Error::invalid(op, "eps", format!("{eps}: expected a finite value > 0")));
    }
    let width = x.shape().last_dim();
    if width > i32::MAX as usize {
        return Err(Error::invalid(op, "x", format!("row width {width} exceeds {}", i32::MAX)));
    }
    weight.expect_dims(op, "weight", &[width])?;
    weight.expect_dtype(op, "weight", x.dtype())?;
    weight.expect_device_of(op, "weight", x)?;
    if let Some(r) = residual {
        expect_like(op, "residual", r, x)?;
    }
    Ok(())
}

/// Errors unless `t` has the shape, dtype and device of `like`.
fn expect_like(op: &'static str, what: &'static str, t: &Tensor, like: &Tensor) -> Result<()> {
    t.expect_dims(op, what, like.dims())?;
    t.expect_dtype(op, what, like.dtype())?;
    t.expect_device_of(op, what, like)
}
