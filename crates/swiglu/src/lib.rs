//! SwiGLU: the fused gate `silu(gate) ⊙ up` (silu in f32), and the whole feed-forward block
//! `FFN(x) = W2 · (silu(W1 x) ⊙ (W3 x))` with W1, W3: d→F and W2: F→d, stored `[out, in]`.
//!
//! The rooms, as in every primitive crate: this file is the API (checks, typed errors, dispatch
//! by device); [`mod@reference`] the f64 oracle; [`cpu`] the fast CPU path (the GEMMs on
//! `yoco_core::matmul`); `cuda` the launcher of `kernels/swiglu.cu` and the cuBLAS GEMMs;
//! [`check`] the validation against the reference that the tests and `yoco check` share.

pub mod check;
pub mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
pub mod reference;

use yoco_core::{DType, Device, Error, MemoryCategory, Result, Tensor};

/// `silu(gate) ⊙ up`, elementwise; `gate` and `up` of the same shape, dtype and device.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let mut out = Tensor::for_overwrite(gate.shape().clone(), gate.dtype(), gate.device(), MemoryCategory::Activations)?;
    silu_mul_into(gate, up, &mut out)?;
    Ok(out)
}

/// [`silu_mul`] into a preallocated `out`.
pub fn silu_mul_into(gate: &Tensor, up: &Tensor, out: &mut Tensor) -> Result<()> {
    check_silu_mul(gate, up)?;
    expect_like("silu_mul", "out", out, gate)?;
    match gate.device() {
        Device::Cpu(_) => cpu::silu_mul(gate, up, out),
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => cuda::silu_mul(gate, up, out),
    }
}

/// Every check [`silu_mul`] makes of its inputs, without running it: for callers that compute
/// the result another way (the models' reference backend) and must refuse what the fast path
/// refuses, with the same error.
pub fn check_silu_mul(gate: &Tensor, up: &Tensor) -> Result<()> {
    const OP: &str = "silu_mul";
    gate.expect_nonempty(OP, "gate")?;
    expect_like(OP, "up", up, gate)
}

/// The SwiGLU FFN's weights: `w1`, `w3`: `[ffn_dim, model_dim]`, `w2`: `[model_dim, ffn_dim]`.
pub struct FfnWeights<'a> {
    pub w1: &'a Tensor,
    pub w3: &'a Tensor,
    pub w2: &'a Tensor,
}

/// `W2 · (silu(W1 x) ⊙ (W3 x))` for `x` of shape `[.., model_dim]`; returns the same shape.
///
/// Any dtype on either device, the products in f32 and the 16-bit intermediates (gate, up, their
/// gated product) and output rounded to the storage type: cuBLAS on CUDA, `yoco_core::matmul`
/// on the CPU.
pub fn ffn(x: &Tensor, w: &FfnWeights<'_>) -> Result<Tensor> {
    let f = validate_ffn(x, w)?;
    match x.device() {
        Device::Cpu(_) => cpu::ffn(x, w, f),
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => cuda::ffn(x, w, x.shape().last_dim(), f),
    }
}

/// Every check [`ffn`] makes of its inputs, without running it (for the same callers as
/// [`check_silu_mul`]).
pub fn check_ffn(x: &Tensor, w: &FfnWeights<'_>) -> Result<()> {
    validate_ffn(x, w).map(|_| ())
}

/// Every check of an [`ffn`] call; returns the FFN's width `F`.
fn validate_ffn(x: &Tensor, w: &FfnWeights<'_>) -> Result<usize> {
    const OP: &str = "ffn";
    x.expect_nonempty(OP, "x")?;
    let d = x.shape().last_dim();
    let f = w.w1.dims().first().copied().unwrap_or(0);
    if f == 0 {
        return Err(Error::Empty { op: OP, what: "w1", shape: w.w1.shape().to_string() });
    }
    for (what, t, dims) in [("w1", w.w1, [f, d]), ("w3", w.w3, [f, d]), ("w2", w.w2, [d, f])] {
        t.expect_dims(OP, what, &dims)?;
        t.expect_dtype(OP, what, x.dtype())?;
        t.expect_device_of(OP, what, x)?;
    }
    Ok(f)
}

/// The `[rows, F]` intermediates [`ffn`] allocates beside its output (the analytic memory
/// model's count): one on the CPU in f32, whose gate is applied inside the gate's and up's
/// products, two (gate and up, the gate then applied in place) otherwise. (Below 192 rows the
/// CPU's f32 up product waits in the GEMMs' scratch buffers, which are kept between calls and,
/// like their packing buffers, counted in no category.)
pub fn ffn_intermediates(dtype: DType, device: &Device) -> usize {
    if device.is_cpu() && dtype == DType::F32 {
        1
    } else {
        2
    }
}

/// Errors unless `t` has the shape, dtype and device of `like`.
fn expect_like(op: &'static str, what: &'static str, t: &Tensor, like: &Tensor) -> Result<()> {
    t.expect_dims(op, what, like.dims())?;
    t.expect_dtype(op, what, like.dtype())?;
    t.expect_device_of(op, what, like)
}
