//! Grouped-query attention: the attention core that sliding-window attention (yoco-swa) and
//! YOCO's cross-attention (yoco-cross-attention) are built on, and the Transformer's growing
//! per-layer K/V cache ([`KvCache`]).
//!
//! `out = softmax(scale · Q Kᵀ + mask) V` per head, with
//! * layouts `q: [batch, q_len, heads, head_dim]`, `k, v: [batch, kv_len, kv_heads, head_dim]`
//!   (dense row-major), `out` like `q`;
//! * GQA: query head `h` reads K/V head `h / (heads / kv_heads)`;
//! * scale `1/√head_dim` unless given;
//! * a [`Mask`]: none, causal aligned bottom-right, or a sliding window `W` with
//!   flash-attention's `(W−1, 0)` semantics.
//!
//! Every path computes it as online softmax over blocks of keys (the reference excepted, which
//! is the whole score matrix and a plain softmax), and skips key blocks entirely outside the
//! mask, so sliding-window cost grows linearly with the sequence.
//!
//! Scores past f32's range (inputs near 1e19, a scale near 1e37) overflow the online softmax,
//! which then gives NaN (as flash-attention and PyTorch's SDPA do) or, where the scaled maximum
//! overflows, a row of zeros. Every path finds those rows and computes them again in f64, so it
//! gives the reference's answer there too: the CPU path scans its output after the call for rows
//! that came out non-finite from finite inputs (`cpu::exact`); the CUDA kernels check each row as
//! they finish it (an output not finite, or a softmax sum that is not a positive finite number
//! although the row sees keys) and have one warp recompute it (`exact_row` in
//! `kernels/attention.cu`), with no wait for the device. A NaN or ∞ among a row's inputs still
//! gives a non-finite row where the reference's is. Not caught, on either device: a score whose
//! f32 sum passes −∞ on the way (products of both signs past f32's range, |q_d·k_d| > 3.4e38,
//! inputs near 1e19) although the whole is the row's maximum; its key then weighs 0 instead of
//! one. Inputs that large are outside what the f32 paths compute faithfully;
//! `check::overflowing_scores` draws them positive, whose overflows are all caught. Every path
//! applies the scale to finished scores, never to the queries, so a large scale alone cannot do
//! that: the same check draws both signs at the scale 1e37, and `check::cancelling_products`
//! gives every row products that would pass f32's range if the scale were folded in.
//!
//! The rooms, as in every primitive crate: this file is the API (shapes, dtypes, devices, head
//! dims and masks checked; typed errors; dispatch by device); [`mask`] the one definition of
//! which keys a query sees; [`mod@reference`] the f64 oracle and the plain same-precision variant;
//! [`cpu`] the fast CPU path; `cuda` the launchers of `kernels/attention.cu` (flash-attention-2
//! prefill on tensor cores, split-KV decode); [`kv_cache`] the growing cache; [`check`] the
//! validation the tests and `yoco check` share.

pub mod check;
pub mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
pub mod kv_cache;
pub mod mask;
pub mod reference;

pub use kv_cache::KvCache;
pub use mask::Mask;

use yoco_core::{Device, Error, MemoryCategory, Result, Tensor};

/// The head dims every path supports (the CUDA kernels are instantiated for these).
pub const SUPPORTED_HEAD_DIMS: [usize; 3] = [64, 128, 256];

/// The mask and the scale of one attention call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionOptions {
    pub mask: Mask,
    /// Multiplies the scores before the softmax; `None` means `1/√head_dim`.
    pub scale: Option<f32>,
}

impl AttentionOptions {
    /// No mask, default scale.
    pub const fn full() -> Self {
        AttentionOptions { mask: Mask::None, scale: None }
    }

    /// Causal (bottom-right), default scale.
    pub const fn causal() -> Self {
        AttentionOptions { mask: Mask::Causal, scale: None }
    }

    /// Sliding window of `w` keys (causal), default scale.
    pub const fn window(w: usize) -> Self {
        AttentionOptions { mask: Mask::Window(w), scale: None }
    }

    /// The same options with an explicit scale.
    pub const fn with_scale(self, scale: f32) -> Self {
        AttentionOptions { scale: Some(scale), ..self }
    }
}

/// The sizes of one attention call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dims {
    pub batch: usize,
    pub q_len: usize,
    pub kv_len: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl Dims {
    /// Query heads per K/V head (0 for no K/V heads, which attention refuses).
    pub fn group(&self) -> usize {
        self.heads.checked_div(self.kv_heads).unwrap_or(0)
    }
}

/// A checked call, as the paths receive it: `k`, `v` hold `kv_capacity` positions per sequence
/// (a cache's allocation) of which the first `dims.kv_len` are attended to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Problem {
    pub dims: Dims,
    pub kv_capacity: usize,
    pub mask: Mask,
    pub scale: f32,
}

/// Which program shape the CUDA prefill kernel runs at head dims 64 and 128 in this process
/// (`YOCO_ATTN_PREFILL`: `default`, `wide`, `tall` or `wgmma`; 256 always runs the default), for reports to
/// say; an unknown value is the error the first prefill would return.
#[cfg(feature = "cuda")]
pub fn cuda_prefill_shape() -> Result<&'static str> {
    cuda::prefill_shape_name()
}

/// Attention of `q` over `k`, `v`; returns `[batch, q_len, heads, head_dim]`.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, options: AttentionOptions) -> Result<Tensor> {
    let mut out = Tensor::for_overwrite(q.shape().clone(), q.dtype(), q.device(), MemoryCategory::Activations)?;
    attention_into(q, k, v, options, &mut out)?;
    Ok(out)
}

/// [`attention`] into a preallocated `out` (shape, dtype and device of `q`).
pub fn attention_into(q: &Tensor, k: &Tensor, v: &Tensor, options: AttentionOptions, out: &mut Tensor) -> Result<()> {
    let kv_len = k.dims().get(1).copied().unwrap_or(0);
    attention_prefix_into(q, k, v, kv_len, options, out)
}

/// Attention over the first `kv_len` positions of `k`, `v` `[batch, capacity, kv_heads,
/// head_dim]`: a cache with room left. The queries are the last `q_len` of those `kv_len`
/// positions for the causal masks.
pub fn attention_prefix_into(q: &Tensor, k: &Tensor, v: &Tensor, kv_len: usize, options: AttentionOptions, out: &mut Tensor) -> Result<()> {
    const OP: &str = "attention";
    let problem = validate(OP, q, k, v, kv_len, options)?;
    out.expect_dims(OP, "out", q.dims())?;
    out.expect_dtype(OP, "out", q.dtype())?;
    out.expect_device_of(OP, "out", q)?;
    match q.device() {
        Device::Cpu(_) => cpu::attention(q, k, v, &problem, out),
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => cuda::attention(q, k, v, &problem, out),
    }
}

/// Every check [`attention_prefix_into`] makes of its inputs, without running it: for callers
/// that must know a call will be accepted before they change any state (a cache about to take
/// the new positions).
pub fn check_attention(q: &Tensor, k: &Tensor, v: &Tensor, kv_len: usize, options: AttentionOptions) -> Result<()> {
    validate("attention", q, k, v, kv_len, options).map(|_| ())
}

/// Every check of a call; returns the problem the paths run.
fn validate(op: &'static str, q: &Tensor, k: &Tensor, v: &Tensor, kv_len: usize, options: AttentionOptions) -> Result<Problem> {
    q.expect_nonempty(op, "q")?;
    let (qd, kd) = (q.dims(), k.dims());
    if qd.len() != 4 {
        return Err(Error::ShapeMismatch { op, what: "q", expected: "[batch, q_len, heads, head_dim]".into(), got: q.shape().to_string() });
    }
    let (batch, q_len, heads, head_dim) = (qd[0], qd[1], qd[2], qd[3]);
    if !SUPPORTED_HEAD_DIMS.contains(&head_dim) {
        return Err(Error::Unsupported { op, what: format!("head dim {head_dim} (supported: {SUPPORTED_HEAD_DIMS:?})") });
    }
    if kd.len() != 4 || kd[0] != batch || kd[3] != head_dim || kd[2] == 0 || kd[1] == 0 {
        return Err(Error::ShapeMismatch {
            op,
            what: "k",
            expected: format!("[{batch}, kv_len >= 1, kv_heads >= 1, {head_dim}]"),
            got: k.shape().to_string(),
        });
    }
    let (capacity, kv_heads) = (kd[1], kd[2]);
    v.expect_dims(op, "v", kd)?;
    if heads % kv_heads != 0 {
        return Err(Error::invalid(op, "kv_heads", format!("{heads} query heads are not a multiple of {kv_heads} K/V heads")));
    }
    for (what, t) in [("k", k), ("v", v)] {
        t.expect_dtype(op, what, q.dtype())?;
        t.expect_device_of(op, what, q)?;
    }
    if kv_len == 0 || kv_len > capacity {
        return Err(Error::invalid(op, "kv_len", format!("{kv_len}: expected 1..={capacity} (the positions k and v hold)")));
    }
    if let Mask::Window(0) = options.mask {
        return Err(Error::invalid(op, "window", "0: a window must hold at least the query's own key"));
    }
    if options.mask.is_causal() && kv_len < q_len {
        return Err(Error::invalid(op, "q", format!("{q_len} queries over {kv_len} keys: a causal mask aligned bottom-right needs kv_len >= q_len")));
    }
    let scale = match options.scale {
        None => 1.0 / (head_dim as f32).sqrt(),
        Some(s) if s.is_finite() && s > 0.0 => s,
        Some(s) => return Err(Error::invalid(op, "scale", format!("{s}: expected a finite value > 0"))),
    };
    let dims = Dims { batch, q_len, kv_len, heads, kv_heads, head_dim };
    Ok(Problem { dims, kv_capacity: capacity, mask: options.mask, scale })
}
