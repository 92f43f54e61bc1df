//! The fast CPU path: rows of `head_dim` in parallel on rayon, cos/sin of the f32 angle
//! computed once per (position, pair), in a loop that vectorises ([`yoco_core::math::sin_cos`]),
//! and reused across the heads of that position.

use rayon::prelude::*;
use yoco_core::half::{bf16, f16};
use yoco_core::dtype::{as_mut_slice_of, as_slice_of};
use yoco_core::math::sin_cos;
use yoco_core::{DType, Element, Result, Tensor};

use crate::{Rope, RopeVariant};

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
        (*s, *c) = sin_cos(position as f32 * f);
    }
}

/// Rotates every head of one token from `src` into `dst`, in f32. One loop per pair layout,
/// each written along contiguous memory so that it vectorises (indexing through
/// `RopeVariant::pair` kept the interleaved layout at half the rotate-half one's speed).
fn rotate_f32(r: &Rope, src: &[f32], dst: &mut [f32], cos: &[f32], sin: &[f32]) {
    let d = r.head_dim();
    for (xr, or) in src.chunks_exact(d).zip(dst.chunks_exact_mut(d)) {
        match r.variant() {
            RopeVariant::Yoco => {
                for (((x, o), &c), &s) in xr.chunks_exact(2).zip(or.chunks_exact_mut(2)).zip(cos).zip(sin) {
                    o[0] = x[0] * c - x[1] * s;
                    o[1] = x[0] * s + x[1] * c;
                }
            }
            RopeVariant::Llama => {
                let (xa, xb) = xr.split_at(d / 2);
                let (oa, ob) = or.split_at_mut(d / 2);
                for i in 0..d / 2 {
                    oa[i] = xa[i] * cos[i] - xb[i] * sin[i];
                    ob[i] = xa[i] * sin[i] + xb[i] * cos[i];
                }
            }
        }
    }
}

/// Per-thread scratch: the angle table of one position, and (for 16-bit storage) one token
/// widened to f32 and its rotation.
struct Scratch {
    cos: Vec<f32>,
    sin: Vec<f32>,
    wide: Vec<f32>,
    rotated: Vec<f32>,
}

impl Scratch {
    fn new(dims: &[usize]) -> Scratch {
        let token = dims[2] * dims[3];
        Scratch { cos: vec![0.0; dims[3] / 2], sin: vec![0.0; dims[3] / 2], wide: vec![0.0; token], rotated: vec![0.0; token] }
    }
}

/// One token: f32 rotates in place of its storage; 16-bit storage is widened to f32 and narrowed
/// back a whole token at a time, where the conversions vectorise (converting inside the pair
/// loop, whose pairs are gathered, kept bf16 at a third of f32's speed).
fn rotate_token<T: Element>(r: &Rope, src: &[T], dst: &mut [T], s: &mut Scratch) {
    if let (Some(src), Some(dst)) = (as_slice_of::<T, f32>(src), as_mut_slice_of::<T, f32>(dst)) {
        return rotate_f32(r, src, dst, &s.cos, &s.sin);
    }
    for (w, v) in s.wide.iter_mut().zip(src) {
        *w = v.to_f32();
    }
    rotate_f32(r, &s.wide, &mut s.rotated, &s.cos, &s.sin);
    for (o, v) in dst.iter_mut().zip(&s.rotated) {
        *o = T::from_f32(*v);
    }
}

fn typed<T: Element>(r: &Rope, x: &[T], offset: usize, dims: &[usize], out: &mut [T]) {
    let (seq, token) = (dims[1], dims[2] * dims[3]);
    x.par_chunks(token).zip(out.par_chunks_mut(token)).enumerate().for_each_init(
        || Scratch::new(dims),
        |s, (t, (xt, ot))| {
            table(r, offset + t % seq, &mut s.cos, &mut s.sin);
            rotate_token(r, xt, ot, s);
        },
    );
}

fn typed_inplace<T: Element>(r: &Rope, x: &mut [T], offset: usize, dims: &[usize]) {
    let (seq, token) = (dims[1], dims[2] * dims[3]);
    x.par_chunks_mut(token).enumerate().for_each_init(
        || (Scratch::new(dims), vec![T::default(); token]),
        |(s, copy), (t, xt)| {
            table(r, offset + t % seq, &mut s.cos, &mut s.sin);
            copy.copy_from_slice(xt);
            rotate_token(r, copy, xt, s);
        },
    );
}
