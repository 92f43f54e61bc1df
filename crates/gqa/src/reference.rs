//! The f64 reference: the whole score matrix of each head, masked, a plain softmax, then P·V.
//! No blocks, no online softmax: obviously right, and what every other path is tested against.
//! Slices are dense row-major: `q`, out `[batch, q_len, heads, head_dim]`, `k`, `v`
//! `[batch, kv_len, kv_heads, head_dim]`.

use rayon::prelude::*;
use yoco_core::DType;

use crate::{Dims, Mask};

/// Attention in f64. q: [B, Nq, H, D], k, v: [B, Nk, Hkv, D] → [B, Nq, H, D].
pub fn attention(q: &[f64], k: &[f64], v: &[f64], dims: Dims, mask: Mask, scale: f64) -> Vec<f64> {
    let rows: Vec<usize> = (0..dims.q_len).collect();
    attention_rounded(q, k, v, dims, mask, scale, &rows, None)
}

/// [`attention`] for the queries `rows` only (checks of long sequences sample rows):
/// → [B, rows.len(), H, D].
pub fn attention_rows(q: &[f64], k: &[f64], v: &[f64], dims: Dims, mask: Mask, scale: f64, rows: &[usize]) -> Vec<f64> {
    attention_rounded(q, k, v, dims, mask, scale, rows, None)
}

/// [`attention_plain`] for the queries `rows` only.
// attention_rows' arguments and the storage dtype.
#[allow(clippy::too_many_arguments)]
pub fn attention_rows_plain(q: &[f64], k: &[f64], v: &[f64], dims: Dims, mask: Mask, scale: f64, rows: &[usize], dtype: DType) -> Vec<f64> {
    attention_rounded(q, k, v, dims, mask, scale, rows, Some(dtype))
}

/// What a plain implementation in `dtype` storage computes (`softmax(q @ kᵀ * scale) @ v` in
/// PyTorch on bf16/f16 tensors): the product Q Kᵀ rounded to the storage type, the scaled scores
/// rounded again, the softmax (computed in f32 by PyTorch) rounded to the storage type, P·V
/// accumulated wide and rounded once. The yardstick of the reduced-precision tests.
pub fn attention_plain(q: &[f64], k: &[f64], v: &[f64], dims: Dims, mask: Mask, scale: f64, dtype: DType) -> Vec<f64> {
    let rows: Vec<usize> = (0..dims.q_len).collect();
    attention_rounded(q, k, v, dims, mask, scale, &rows, Some(dtype))
}

#[allow(clippy::too_many_arguments)]
fn attention_rounded(q: &[f64], k: &[f64], v: &[f64], dims: Dims, mask: Mask, scale: f64, rows: &[usize], dtype: Option<DType>) -> Vec<f64> {
    let Dims { batch, heads, head_dim: d, .. } = dims;
    let n_rows = rows.len();
    // One task per (sequence, head): the checks' decode shapes (a few rows over 128K keys, 24–32
    // heads) took minutes on one thread, on the GPU machine's host inside the GPU call's time.
    let per_head: Vec<Vec<f64>> = (0..batch * heads).into_par_iter().map(|bh| head_rows(q, k, v, dims, mask, scale, rows, dtype, bh / heads, bh % heads)).collect();
    let mut out = vec![0.0; batch * n_rows * heads * d];
    for (bh, head) in per_head.iter().enumerate() {
        let (b, h) = (bh / heads, bh % heads);
        for (ri, row) in head.chunks(d).enumerate() {
            out[((b * n_rows + ri) * heads + h) * d..][..d].copy_from_slice(row);
        }
    }
    out
}

/// [`attention_rounded`]'s `rows` of sequence `b`, head `h`: `[rows.len(), head_dim]`.
#[allow(clippy::too_many_arguments)]
fn head_rows(q: &[f64], k: &[f64], v: &[f64], dims: Dims, mask: Mask, scale: f64, rows: &[usize], dtype: Option<DType>, b: usize, h: usize) -> Vec<f64> {
    let Dims { q_len, kv_len, heads, kv_heads, head_dim: d, .. } = dims;
    let r = |x: f64| dtype.map_or(x, |t| t.round(x));
    let hk = h / (heads / kv_heads);
    let mut out = vec![0.0; rows.len() * d];
    let mut scores = vec![0.0; kv_len];
    for (ri, &i) in rows.iter().enumerate() {
        let qi = &q[((b * q_len + i) * heads + h) * d..][..d];
        let key = |j: usize| &k[((b * kv_len + j) * kv_heads + hk) * d..][..d];
        let value = |j: usize| &v[((b * kv_len + j) * kv_heads + hk) * d..][..d];
        for (j, s) in scores.iter_mut().enumerate() {
            *s = if mask.visible(i, j, q_len, kv_len) {
                let dot: f64 = qi.iter().zip(key(j)).map(|(a, b)| a * b).sum();
                r(r(dot) * scale)
            } else {
                f64::NEG_INFINITY
            };
        }
        let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
        let o = &mut out[ri * d..][..d];
        for (j, s) in scores.iter().enumerate() {
            let p = r((s - max).exp() / total);
            if p != 0.0 {
                for (od, vd) in o.iter_mut().zip(value(j)) {
                    *od += p * vd;
                }
            }
        }
        for od in o.iter_mut() {
            *od = r(*od);
        }
    }
    out
}
