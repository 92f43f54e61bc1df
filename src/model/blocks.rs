//! Pieces both models share: the pre-norm FFN half of a block, an attention block's projections,
//! token slicing, and the output head.

use yoco_core::{Error, MemoryCategory, Result, Tensor};

use super::ops::Ops;
use super::weights::Weights;

/// The FFN half of a pre-norm block and the hand-over to the next block:
/// `h = x + m` (the mixer's output), `x' = h + FFN(RMSNorm(h))`, and `y' = RMSNorm(x')` with the
/// next block's (or the final) norm weight. Returns `(x', y')`. The residual adds are fused into
/// the norms, so the stream is never added on its own.
pub fn ffn_half(ops: &Ops, w: &Weights, prefix: &str, x: &Tensor, mixer_out: &Tensor, next_norm: &Tensor, eps: f64) -> Result<(Tensor, Tensor)> {
    let (h, y) = ops.add_rms_norm(x, mixer_out, w.get(&format!("{prefix}.ffn_norm"))?, eps)?;
    let f = ops.ffn(&y, w.get(&format!("{prefix}.ffn.w1"))?, w.get(&format!("{prefix}.ffn.w3"))?, w.get(&format!("{prefix}.ffn.w2"))?)?;
    drop(y);
    ops.add_rms_norm(&h, &f, next_norm, eps)
}

/// `linear(y, w)` reshaped to `[batch, seq, heads, head_dim]`.
pub fn heads(ops: &Ops, y: &Tensor, w: &Tensor, heads: usize, head_dim: usize) -> Result<Tensor> {
    let (b, n) = (y.dims()[0], y.dims()[1]);
    ops.linear(y, w)?.reshape([b, n, heads, head_dim])
}

/// `[batch, seq, heads, head_dim]` → `[batch, seq, heads · head_dim]`.
pub fn merge_heads(t: Tensor) -> Result<Tensor> {
    let d = t.dims();
    let dims = [d[0], d[1], d[2] * d[3]];
    t.reshape(dims)
}

/// The last position of each sequence of `x [batch, seq, width]`: `[batch, 1, width]`.
pub fn last_token(x: &Tensor) -> Result<Tensor> {
    let (b, n, width) = match *x.dims() {
        [b, n, width] if n > 0 => (b, n, width),
        _ => return Err(Error::ShapeMismatch { op: "last_token", what: "x", expected: "[batch, seq >= 1, width]".into(), got: x.shape().to_string() }),
    };
    let mut out = Tensor::zeros([b, 1, width], x.dtype(), x.device(), MemoryCategory::Activations)?;
    for s in 0..b {
        out.copy_range_from(s * width, x, (s * n + n - 1) * width, width)?;
    }
    Ok(out)
}

/// Logits `[batch, seq, vocab]` from the final-normed stream `y`.
pub fn logits(ops: &Ops, w: &Weights, y: &Tensor) -> Result<Tensor> {
    ops.linear(y, w.get("lm_head")?)
}
