//! Sliding-window attention (SWA), YOCO's efficient self-decoder mixer: query `i` sees exactly
//! the last `W` keys including itself, `i + (Nk−Nq) − W < j <= i + (Nk−Nq)` (flash-attention's
//! `window_size = (W−1, 0)`), and its decode cache is a ring buffer of the last `W` keys per
//! layer, so its memory is constant in the sequence length.
//!
//! The attention itself is yoco-gqa's core with [`Mask::Window`]: its CPU tiles and CUDA kernels
//! skip every key block outside the window, so a prefill costs O(N·W), not O(N²). This crate adds
//! the window API and the ring ([`SwaCache`]).
//!
//! Rooms: this file is the API; [`ring`] the cache; [`check`] the validation the tests and
//! `yoco check` share. The reference, CPU and CUDA paths are yoco-gqa's (`yoco_gqa::reference`,
//! `yoco_gqa::cpu`, `kernels/attention.cu`), parametrised by the window.

pub mod check;
pub mod ring;

pub use ring::SwaCache;
pub use yoco_gqa::Mask;

use yoco_core::{Error, MemoryCategory, Result, Tensor};
use yoco_gqa::AttentionOptions;

/// The window of the paper.
pub const PAPER_WINDOW: usize = 1024;

/// Sliding-window attention of `q` `[batch, q_len, heads, head_dim]` over `k`, `v` `[batch,
/// kv_len, kv_heads, head_dim]` (the queries are the last `q_len` positions), window `window`.
pub fn swa_attention(q: &Tensor, k: &Tensor, v: &Tensor, window: usize) -> Result<Tensor> {
    let mut out = Tensor::for_overwrite(q.shape().clone(), q.dtype(), q.device(), MemoryCategory::Activations)?;
    swa_attention_into(q, k, v, window, &mut out)?;
    Ok(out)
}

/// [`swa_attention`] into a preallocated `out`.
pub fn swa_attention_into(q: &Tensor, k: &Tensor, v: &Tensor, window: usize, out: &mut Tensor) -> Result<()> {
    check_window("swa_attention", window)?;
    yoco_gqa::attention_into(q, k, v, AttentionOptions::window(window), out)
}

pub(crate) fn check_window(op: &'static str, window: usize) -> Result<()> {
    if window == 0 {
        return Err(Error::invalid(op, "window", "0: a window must hold at least the query's own key"));
    }
    Ok(())
}
