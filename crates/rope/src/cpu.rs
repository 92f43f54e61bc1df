//! The fast CPU path: rows of `head_dim` in parallel on rayon, cos/sin of the f32 angle
//! computed once per (position, pair), in a loop that vectorises ([`yoco_core::math::sin_cos`]),
//! and reused across the heads of that position; bf16 on AVX512-BF16 widened and narrowed in
//! pairs of vectors (`rotate_bf16_pairs`).

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

/// Per-thread scratch: the angle table of one position (and, for rotate-half pairs of bf16, the
/// same in the pairs' order of [`rotate_bf16_pairs`]), and (for 16-bit storage) one token widened
/// to f32 and its rotation.
struct Scratch {
    cos: Vec<f32>,
    sin: Vec<f32>,
    cos_pairs: Vec<f32>,
    sin_pairs: Vec<f32>,
    wide: Vec<f32>,
    rotated: Vec<f32>,
}

impl Scratch {
    fn new(dims: &[usize]) -> Scratch {
        let (token, half) = (dims[2] * dims[3], dims[3] / 2);
        let table = || vec![0.0; half];
        Scratch { cos: table(), sin: table(), cos_pairs: table(), sin_pairs: table(), wide: vec![0.0; token], rotated: vec![0.0; token] }
    }
}

/// One token of bf16 on a CPU with AVX512-BF16, each head 32 elements a step as two f32 vectors,
/// its even and its odd elements (`yoco_core::simd::bf16_pairs`): the interleaved layout's pairs
/// are a step's even and odd elements, so a step rotates its 16 pairs in place with no shuffle;
/// rotate-half pairs a step of the head's first half with the step D/2 past it, lane for lane,
/// the angles taken in the steps' pairs order. The same f32 arithmetic as [`rotate_f32`], so the
/// same bits. Returns false, having written nothing, where T is not bf16, the CPU lacks
/// AVX512-BF16, or a head is not whole steps (pairs of steps for rotate-half). On the Zen 4 VM,
/// 4096 tokens × 24 heads × 128 (both threads, the builds in turn three times): interleaved
/// 0.78–0.89 ms against 2.99–3.15 widened and narrowed a token at a time, rotate-half 0.96–0.98
/// against 3.18–3.29 (f32: 2.2–2.4, memory-bound).
fn rotate_bf16_pairs<T: Element>(r: &Rope, src: &[T], dst: &mut [T], s: &mut Scratch) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use yoco_core::half::slice::HalfFloatSliceExt;
        use yoco_core::simd::bf16_pairs::{self, narrow, widen, STEP};

        /// One step's pairs: `(a, b) → (a·cos − b·sin, a·sin + b·cos)`, lane for lane.
        #[inline(always)]
        fn rotate_lanes<const N: usize>(a: &[f32], b: &[f32], cos: &[f32], sin: &[f32], ra: &mut [f32], rb: &mut [f32]) {
            for l in 0..N {
                ra[l] = a[l] * cos[l] - b[l] * sin[l];
                rb[l] = a[l] * sin[l] + b[l] * cos[l];
            }
        }

        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")]
        unsafe fn rotate(variant: RopeVariant, d: usize, src: &[u16], dst: &mut [u16], cos: &[f32], sin: &[f32]) {
            const PAIRS: usize = STEP / 2;
            let step = |s: &[u16], at: usize| -> [u16; STEP] { s[at..at + STEP].try_into().expect("a step") };
            for (x, o) in src.chunks_exact(d).zip(dst.chunks_exact_mut(d)) {
                match variant {
                    RopeVariant::Yoco => {
                        for (at, o) in (0..d).step_by(STEP).zip(o.chunks_exact_mut(STEP)) {
                            // SAFETY: available() (the caller checked), compiled with its features.
                            unsafe {
                                let w = widen(&step(x, at));
                                let (c, s) = (&cos[at / 2..][..PAIRS], &sin[at / 2..][..PAIRS]);
                                let mut r = [0f32; STEP];
                                let (even, odd) = r.split_at_mut(PAIRS);
                                rotate_lanes::<PAIRS>(&w[..PAIRS], &w[PAIRS..], c, s, even, odd);
                                narrow(&r, o.try_into().expect("a step"));
                            }
                        }
                    }
                    RopeVariant::Llama => {
                        let (oa, ob) = o.split_at_mut(d / 2);
                        for ((at, oa), ob) in (0..d / 2).step_by(STEP).zip(oa.chunks_exact_mut(STEP)).zip(ob.chunks_exact_mut(STEP)) {
                            // SAFETY: as above.
                            unsafe {
                                let (a, b) = (widen(&step(x, at)), widen(&step(x, d / 2 + at)));
                                let (mut ra, mut rb) = ([0f32; STEP], [0f32; STEP]);
                                rotate_lanes::<STEP>(&a, &b, &cos[at..][..STEP], &sin[at..][..STEP], &mut ra, &mut rb);
                                narrow(&ra, oa.try_into().expect("a step"));
                                narrow(&rb, ob.try_into().expect("a step"));
                            }
                        }
                    }
                }
            }
        }

        let d = r.head_dim();
        let whole = match r.variant() {
            RopeVariant::Yoco => d.is_multiple_of(STEP),
            RopeVariant::Llama => d.is_multiple_of(2 * STEP),
        };
        if let (Some(src), Some(dst)) = (as_slice_of::<T, bf16>(src), as_mut_slice_of::<T, bf16>(dst)) {
            if whole && bf16_pairs::available() {
                let (cos, sin) = match r.variant() {
                    RopeVariant::Yoco => (&s.cos, &s.sin),
                    RopeVariant::Llama => {
                        // Lane l of a step holds element 2l (l < 16) or 2(l − 16) + 1 of it.
                        for (base, (cp, sp)) in s.cos_pairs.chunks_exact_mut(STEP).zip(s.sin_pairs.chunks_exact_mut(STEP)).enumerate() {
                            for l in 0..STEP {
                                let i = base * STEP + if l < STEP / 2 { 2 * l } else { 2 * (l - STEP / 2) + 1 };
                                (cp[l], sp[l]) = (s.cos[i], s.sin[i]);
                            }
                        }
                        (&s.cos_pairs, &s.sin_pairs)
                    }
                };
                // SAFETY: available() is true.
                unsafe { rotate(r.variant(), d, src.reinterpret_cast(), dst.reinterpret_cast_mut(), cos, sin) };
                return true;
            }
        }
    }
    let _ = (r, src, dst, s);
    false
}

/// One token: f32 rotates in place of its storage; 16-bit storage is widened to f32 and narrowed
/// back a whole token at a time, where the conversions vectorise (converting inside the pair
/// loop, whose pairs are gathered, kept bf16 at a third of f32's speed).
fn rotate_token<T: Element>(r: &Rope, src: &[T], dst: &mut [T], s: &mut Scratch) {
    if let (Some(src), Some(dst)) = (as_slice_of::<T, f32>(src), as_mut_slice_of::<T, f32>(dst)) {
        return rotate_f32(r, src, dst, &s.cos, &s.sin);
    }
    if rotate_bf16_pairs(r, src, dst, s) {
        return;
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
