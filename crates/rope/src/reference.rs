//! The f64 reference: plain loops, obviously right. Slices are dense row-major
//! `[batch, seq, heads, head_dim]`; token `n` of every sequence sits at position `offset + n`.

use yoco_core::DType;

use crate::RopeVariant;

/// The angle of pair `i` at `position`: the f32 product, as every path computes it (lib.rs).
pub fn angle(position: usize, inv_freq: &[f32], i: usize) -> f64 {
    (position as f32 * inv_freq[i]) as f64
}

/// RoPE in f64 (cos and sin of the f32 angle in f64).
/// x: [batch, seq, heads, head_dim], inv_freq: [head_dim / 2] → [batch, seq, heads, head_dim].
pub fn rope(x: &[f64], dims: [usize; 4], variant: RopeVariant, inv_freq: &[f32], offset: usize) -> Vec<f64> {
    rope_rounded(x, dims, variant, inv_freq, offset, None)
}

/// What a plain implementation in `dtype` storage computes (PyTorch's Llama code): cos and sin
/// cast to the storage type, each product rounded, the sum rounded.
pub fn rope_plain(x: &[f64], dims: [usize; 4], variant: RopeVariant, inv_freq: &[f32], offset: usize, dtype: DType) -> Vec<f64> {
    rope_rounded(x, dims, variant, inv_freq, offset, Some(dtype))
}

fn rope_rounded(x: &[f64], dims: [usize; 4], variant: RopeVariant, inv_freq: &[f32], offset: usize, dtype: Option<DType>) -> Vec<f64> {
    let [_, seq, heads, d] = dims;
    let r = |v: f64| dtype.map_or(v, |t| t.round(v));
    let mut out = vec![0.0; x.len()];
    for (row, (xr, or)) in x.chunks(d).zip(out.chunks_mut(d)).enumerate() {
        let position = offset + (row / heads) % seq;
        for i in 0..d / 2 {
            let phi = angle(position, inv_freq, i);
            let (c, s) = (r(phi.cos()), r(phi.sin()));
            let (ia, ib) = variant.pair(i, d);
            let (a, b) = (xr[ia], xr[ib]);
            or[ia] = r(r(a * c) - r(b * s));
            or[ib] = r(r(a * s) + r(b * c));
        }
    }
    out
}
