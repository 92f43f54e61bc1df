//! Rotary position embeddings (RoPE) in the two forms SPEC.md names, with a position offset so
//! that a prefill chunk or a decode step after a cached prefix gets absolute positions:
//!
//! * [`RopeVariant::Yoco`]: `inv_freq_i = θ^(-i/(D/2-1))` (a linspace of exponents from 0 to 1)
//!   on **interleaved** pairs `(x[2i], x[2i+1])`;
//! * [`RopeVariant::Llama`]: `inv_freq_i = θ^(-2i/D)` on **rotate-half** pairs `(x[i], x[i+D/2])`.
//!
//! A pair `(a, b)` at position `p` becomes `(a cos φ − b sin φ, a sin φ + b cos φ)` with
//! `φ = p · inv_freq_i`. The angle is an f32 product (as PyTorch computes it), so it is the same
//! number on every path: the table of `inv_freq` is computed once in f64 and rounded to f32
//! ([`Rope::new`]); the reference takes cos/sin of that f32 angle in f64, the fast paths in f32.
//! Computing the angle in f32 is part of the semantics, not an approximation of them: at
//! position 100 000 its rounding moves φ by up to ~4e-3 rad, far more than any tolerance.
//!
//! The rooms, as in every primitive crate: this file is the API; [`mod@reference`] the f64 oracle
//! (and the plain same-precision variant); [`cpu`] the fast CPU path; `cuda` the launcher of
//! `kernels/rope.cu`; [`check`] the validation the tests and `yoco check` share.

pub mod check;
pub mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
pub mod reference;

use yoco_core::{Device, Error, MemoryCategory, Result, Tensor};

/// θ of both papers.
pub const DEFAULT_THETA: f64 = 1e4;

/// Positions are f32 in the angle product; above 2^24 consecutive positions would collide.
pub const MAX_POSITION: usize = 1 << 24;

/// Which RoPE: the pairing of dimensions and the frequency schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RopeVariant {
    /// YOCO: `θ^(-i/(D/2-1))`, interleaved pairs `(x[2i], x[2i+1])`.
    Yoco,
    /// Llama: `θ^(-2i/D)`, rotate-half pairs `(x[i], x[i+D/2])`.
    Llama,
}

impl RopeVariant {
    pub const ALL: [RopeVariant; 2] = [RopeVariant::Yoco, RopeVariant::Llama];

    /// Name used in labels and bench ids.
    pub const fn name(self) -> &'static str {
        match self {
            RopeVariant::Yoco => "yoco",
            RopeVariant::Llama => "llama",
        }
    }

    /// The dimension indices `(a, b)` of pair `i` in a head of `head_dim`.
    pub const fn pair(self, i: usize, head_dim: usize) -> (usize, usize) {
        match self {
            RopeVariant::Yoco => (2 * i, 2 * i + 1),
            RopeVariant::Llama => (i, i + head_dim / 2),
        }
    }
}

/// The widest head [`inv_freq`] takes: far past any model's (the kernels take 64 to 256), and a
/// table of a few hundred KiB; a head dim near `usize::MAX` had asked for a table past the
/// address space.
pub const MAX_HEAD_DIM: usize = 1 << 16;

/// The inverse frequencies of `variant` for `head_dim`, computed in f64 and rounded to f32 once.
/// Errors unless `head_dim` is even, at most [`MAX_HEAD_DIM`] (and at least 4 for YOCO, whose
/// exponent divides by D/2−1) and `theta` is finite and > 1.
pub fn inv_freq(variant: RopeVariant, head_dim: usize, theta: f64) -> Result<Vec<f32>> {
    const OP: &str = "rope";
    let min = if variant == RopeVariant::Yoco { 4 } else { 2 };
    if !head_dim.is_multiple_of(2) || !(min..=MAX_HEAD_DIM).contains(&head_dim) {
        return Err(Error::invalid(OP, "head_dim", format!("{head_dim}: expected an even head dim from {min} to {MAX_HEAD_DIM} for the {} variant", variant.name())));
    }
    if !(theta.is_finite() && theta > 1.0) {
        return Err(Error::invalid(OP, "theta", format!("{theta}: expected a finite value > 1")));
    }
    let half = head_dim / 2;
    Ok((0..half)
        .map(|i| {
            let exponent = match variant {
                RopeVariant::Yoco => i as f64 / (half - 1) as f64,
                RopeVariant::Llama => 2.0 * i as f64 / head_dim as f64,
            };
            theta.powf(-exponent) as f32
        })
        .collect())
}

/// A RoPE for one head dim: its variant and its f32 frequency table, kept on the device it is
/// applied on (a few hundred bytes, charged as weights).
pub struct Rope {
    variant: RopeVariant,
    head_dim: usize,
    inv_freq: Vec<f32>,
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    table: Tensor,
}

impl Rope {
    /// The RoPE of `variant` for heads of `head_dim`, base `theta`, applied on `device`.
    pub fn new(variant: RopeVariant, head_dim: usize, theta: f64, device: &Device) -> Result<Rope> {
        let inv_freq = inv_freq(variant, head_dim, theta)?;
        let table = Tensor::from_vec(inv_freq.clone(), [inv_freq.len()], device, MemoryCategory::Weights)?;
        Ok(Rope { variant, head_dim, inv_freq, table })
    }

    pub fn variant(&self) -> RopeVariant {
        self.variant
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// The f32 inverse frequencies, one per pair.
    pub fn inv_freq(&self) -> &[f32] {
        &self.inv_freq
    }

    /// RoPE of `x` `[batch, seq, heads, head_dim]` whose token `n` sits at position `offset + n`.
    pub fn apply(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let mut out = Tensor::for_overwrite(x.shape().clone(), x.dtype(), x.device(), MemoryCategory::Activations)?;
        self.apply_into(x, offset, &mut out)?;
        Ok(out)
    }

    /// [`apply`](Self::apply) into a preallocated `out` (same shape, dtype and device as `x`).
    pub fn apply_into(&self, x: &Tensor, offset: usize, out: &mut Tensor) -> Result<()> {
        const OP: &str = "rope";
        self.validate(OP, x, offset)?;
        out.expect_dims(OP, "out", x.dims())?;
        out.expect_dtype(OP, "out", x.dtype())?;
        out.expect_device_of(OP, "out", x)?;
        match x.device() {
            Device::Cpu(_) => cpu::rope(self, x, offset, out),
            #[cfg(feature = "cuda")]
            Device::Cuda(_) => cuda::rope(self, x.device_ptr()?, out.device_ptr_mut()?, x.dims(), x.dtype(), offset),
        }
    }

    /// RoPE of `x` in place (how the models apply it to fresh q and k projections).
    pub fn apply_inplace(&self, x: &mut Tensor, offset: usize) -> Result<()> {
        const OP: &str = "rope";
        self.validate(OP, x, offset)?;
        match x.device() {
            Device::Cpu(_) => cpu::rope_inplace(self, x, offset),
            #[cfg(feature = "cuda")]
            Device::Cuda(_) => {
                let ptr = x.device_ptr_mut()?;
                // Each thread reads its pair before writing it, so in and out may alias.
                cuda::rope(self, ptr, ptr, x.dims(), x.dtype(), offset)
            }
        }
    }

    /// Every check [`apply_inplace`](Self::apply_inplace) makes of its inputs, without running
    /// it: for callers that compute the rotation another way (the models' reference backend)
    /// and must refuse what the fast path refuses, with the same error.
    pub fn check(&self, x: &Tensor, offset: usize) -> Result<()> {
        self.validate("rope", x, offset)
    }

    fn validate(&self, op: &'static str, x: &Tensor, offset: usize) -> Result<()> {
        x.expect_nonempty(op, "x")?;
        let dims = x.dims();
        if dims.len() != 4 || dims[3] != self.head_dim {
            return Err(Error::ShapeMismatch {
                op,
                what: "x",
                expected: format!("[batch, seq, heads, {}]", self.head_dim),
                got: x.shape().to_string(),
            });
        }
        if self.table.device().kind() != x.device().kind() {
            return Err(Error::DeviceMismatch { op, what: "x", expected: self.table.device().to_string(), got: x.device().to_string() });
        }
        if offset > MAX_POSITION || dims[1] > MAX_POSITION - offset {
            return Err(Error::invalid(op, "offset", format!("positions {offset} + {} exceed {MAX_POSITION} (f32 positions stop being exact)", dims[1])));
        }
        Ok(())
    }
}
