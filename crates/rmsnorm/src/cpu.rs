//! The fast CPU path: rows in parallel on rayon, f32 statistics with 32 independent partial sums
//! (so the loop vectorises to four AVX2 registers, or two AVX-512 ones, and is not bound by the
//! add latency), any storage dtype converted to f32 on the fly, each task compiled for the widest
//! vectors the CPU has (`simd::dispatch`).

use rayon::prelude::*;
use yoco_core::half::{bf16, f16};
use yoco_core::simd::{dispatch, Simd, SimdKernel};
use yoco_core::{DType, Element, Result, Tensor};

/// Rows handed to one rayon task: enough work (~16K elements) to amortise the fork-join.
fn rows_per_task(width: usize) -> usize {
    (16 * 1024 / width.max(1)).max(1)
}

/// Shapes are checked by the caller (the public API in lib.rs).
pub(crate) fn rms_norm(x: &Tensor, residual: Option<&Tensor>, weight: &Tensor, eps: f32, y: &mut Tensor, h: Option<&mut Tensor>) -> Result<()> {
    match x.dtype() {
        DType::F32 => typed::<f32>(x, residual, weight, eps, y, h),
        DType::BF16 => typed::<bf16>(x, residual, weight, eps, y, h),
        DType::F16 => typed::<f16>(x, residual, weight, eps, y, h),
    }
}

fn typed<T: Element>(x: &Tensor, residual: Option<&Tensor>, weight: &Tensor, eps: f32, y: &mut Tensor, h: Option<&mut Tensor>) -> Result<()> {
    let width = weight.numel();
    let x = x.as_slice::<T>()?;
    let w = weight.as_slice::<T>()?;
    let y = y.as_mut_slice::<T>()?;
    let chunk = rows_per_task(width) * width;
    match (residual, h) {
        (Some(r), Some(h)) => {
            let r = r.as_slice::<T>()?;
            let h = h.as_mut_slice::<T>()?;
            x.par_chunks(chunk).zip(r.par_chunks(chunk)).zip(h.par_chunks_mut(chunk)).zip(y.par_chunks_mut(chunk)).for_each(|(((x, r), h), y)| {
                dispatch(Rows { x, residual: Some(r), w, eps }, &mut (h, y));
            });
        }
        _ => {
            x.par_chunks(chunk).zip(y.par_chunks_mut(chunk)).for_each(|(x, y)| dispatch(Rows { x, residual: None, w, eps }, &mut (&mut [][..], y)));
        }
    }
    Ok(())
}

/// One task's rows: `y = rms_norm(x) · w`, or with a residual `h = x + r`, `y = rms_norm(h) · w`.
/// Scalar code for the compiler to vectorise, inside [`dispatch`] so that it does so with the
/// widest vectors the CPU has (AVX-512's 16 lanes rather than AVX2's 8: 16-bit storage, whose
/// widening and rounding add work per element, had run at about 60% of the copy bandwidth).
struct Rows<'a, T> {
    x: &'a [T],
    residual: Option<&'a [T]>,
    w: &'a [T],
    eps: f32,
}

impl<'a, T: Element> SimdKernel for Rows<'a, T> {
    type Output = ();
    /// (h, y): h is empty without a residual.
    type Scratch = (&'a mut [T], &'a mut [T]);

    #[inline(always)]
    fn run<V: Simd>(self, (h, y): &mut Self::Scratch) {
        let width = self.w.len();
        match self.residual {
            Some(r) => {
                for (((xr, rr), hr), yr) in self.x.chunks(width).zip(r.chunks(width)).zip(h.chunks_mut(width)).zip(y.chunks_mut(width)) {
                    add_rows(xr, rr, hr);
                    normalize_row(hr, self.w, self.eps, yr);
                }
            }
            None => {
                for (xr, yr) in self.x.chunks(width).zip(y.chunks_mut(width)) {
                    normalize_row(xr, self.w, self.eps, yr);
                }
            }
        }
    }
}

/// h = x + r, rounded to the storage type.
#[inline(always)]
fn add_rows<T: Element>(x: &[T], r: &[T], h: &mut [T]) {
    for ((hv, xv), rv) in h.iter_mut().zip(x).zip(r) {
        *hv = T::from_f32(xv.to_f32() + rv.to_f32());
    }
}

/// Sum of squares in f32 with 32 partial sums: four AVX2 registers, so that the loop runs at the
/// FMA units' throughput rather than one register's add latency (8 partial sums kept 16-bit rows,
/// whose widening adds work per element, at ~20 GB/s).
#[inline(always)]
fn sum_squares<T: Element>(row: &[T]) -> f32 {
    const LANES: usize = 32;
    let mut acc = [0f32; LANES];
    let mut packs = row.chunks_exact(LANES);
    for pack in &mut packs {
        for (a, v) in acc.iter_mut().zip(pack) {
            let v = v.to_f32();
            *a = v.mul_add(v, *a);
        }
    }
    let tail: f32 = packs.remainder().iter().map(|v| v.to_f32() * v.to_f32()).sum();
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn normalize_row<T: Element>(x: &[T], w: &[T], eps: f32, y: &mut [T]) {
    let sum = sum_squares(x);
    if !sum.is_finite() {
        return normalize_row_f64(x, w, eps, y);
    }
    let inv_rms = 1.0 / (sum / x.len() as f32 + eps).sqrt();
    for ((yv, xv), wv) in y.iter_mut().zip(x).zip(w) {
        *yv = T::from_f32(xv.to_f32() * inv_rms * wv.to_f32());
    }
}

/// A row whose squares overflow f32 (elements past ~1.8e19, which f32 and bf16 can hold): the
/// sum in f64, where it cannot, so the row still normalises to a unit RMS instead of to zeros.
/// A row holding an infinity or a NaN comes out as the f64 reference's does.
#[cold]
fn normalize_row_f64<T: Element>(x: &[T], w: &[T], eps: f32, y: &mut [T]) {
    let sum: f64 = x.iter().map(|v| (v.to_f32() as f64).powi(2)).sum();
    let inv_rms = 1.0 / (sum / x.len() as f64 + eps as f64).sqrt();
    for ((yv, xv), wv) in y.iter_mut().zip(x).zip(w) {
        *yv = T::from_f32((xv.to_f32() as f64 * inv_rms) as f32 * wv.to_f32());
    }
}