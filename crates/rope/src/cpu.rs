//! The fast CPU path: rows of `head_dim` in parallel on rayon, cos/sin of the f32 angle in f32
//! computed once per (position, pair) and reused across the heads of that position.

use rayon::prelude::*;
use yoco_core::half::{bf16, f16};
use yoco_core::{DType, Element, Result, Tensor};

use crate::Rope;

/// Shapes are checked by the caller (lib.rs).
pub(crate) fn rope(r: &Rope, x: &Tensor, offset: usize, out: &mut Tensor) -> Result<()> {
    match x.dtype() {
        DType::F32 => typed::<f32>(r, x.as_slice()?, offset, x.dims(), out.as_mut_slice()?),
        DType::BF16 => typed::<bf16>(r, x.as_slice()?, offset, x.dims(), out.as_mut_slice()?),
        DType::F16 => typed::<f16>(r, x.as_slice()?, offset, x.dims(), out.as_mut_slice()?),
    }
    Ok(())
}

/// In place: each token's heads are read before they are written.
pub(crate) fn rope_inplace(r: &Rope, x: &mut Tensor, offset: usize) -> Result<()> {
    let dims = x.dims().to_vec();
    match x.dtype() {
        DType::F32 => typed_inplace::<f32>(r, x.as_mut_slice()?, offset, &dims),
        DType::BF16 => typed_inplace::<bf16>(r, x.as_mut_slice()?, offset, &dims),
        DType::F16 => typed_inplace::<f16>(r, x.as_mut_slice()?, offset, &dims),
    }
    Ok(())
}

/// cos and sin of every pair at `position`.
fn table(r: &Rope, position: usize, cos: &mut [f32], sin: &mut [f32]) {
    for ((c, s), f) in cos.iter_mut().zip(sin.iter_mut()).zip(r.inv_freq()) {
        let phi = position as f32 * f;
        (*s, *c) = phi.sin_cos();
    }
}

fn rotate_token<T: Element>(r: &Rope, src: &[T], dst: &mut [T], cos: &[f32], sin: &[f32]) {
    let d = r.head_dim();
    for (xr, or) in src.chunks_exact(d).zip(dst.chunks_exact_mut(d)) {
        for i in 0..d / 2 {
            let (ia, ib) = r.variant().pair(i, d);
            let (a, b) = (xr[ia].to_f32(), xr[ib].to_f32());
            or[ia] = T::from_f32(a * cos[i] - b * sin[i]);
            or[ib] = T::from_f32(a * sin[i] + b * cos[i]);
        }
    }
}

fn typed<T: Element>(r: &Rope, x: &[T], offset: usize, dims: &[usize], out: &mut [T]) {
    let (seq, token) = (dims[1], dims[2] * dims[3]);
    x.par_chunks(token).zip(out.par_chunks_mut(token)).enumerate().for_each_init(
        || (vec![0f32; dims[3] / 2], vec![0f32; dims[3] / 2]),
        |(cos, sin), (t, (xt, ot))| {
            table(r, offset + t % seq, cos, sin);
            rotate_token(r, xt, ot, cos, sin);
        },
    );
}

fn typed_inplace<T: Element>(r: &Rope, x: &mut [T], offset: usize, dims: &[usize]) {
    let (seq, token) = (dims[1], dims[2] * dims[3]);
    x.par_chunks_mut(token).enumerate().for_each_init(
        || (vec![0f32; dims[3] / 2], vec![0f32; dims[3] / 2], vec![T::default(); token]),
        |(cos, sin, copy), (t, xt)| {
            table(r, offset + t % seq, cos, sin);
            copy.copy_from_slice(xt);
            rotate_token(r, copy, xt, cos, sin);
        },
    );
}
