//! The fast CPU path: rows in parallel on rayon, f32 statistics with 32 independent partial sums
//! (so the loop vectorises to four AVX2 registers, or two AVX-512 ones, and is not bound by the
//! add latency), any storage dtype converted to f32 on the fly, each task compiled for the widest
//! vectors the CPU has (`simd::dispatch`).

use rayon::prelude::*;
use yoco_core::half::{bf16, f16};
use yoco_core::simd::{dispatch, load_widened, store_narrowed, stream_fence, stream_narrowed, streams_past_cache, Simd, SimdKernel};
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
    let stream = streams_past_cache(y.numel() * T::DTYPE.size_in_bytes());
    let (x, w, y) = (x.as_slice::<T>()?, weight.as_slice::<T>()?, y.as_mut_slice::<T>()?);
    match (residual, h) {
        (Some(r), Some(h)) => rows::<T>(x, Some((r.as_slice::<T>()?, h.as_mut_slice::<T>()?)), w, eps, y, stream),
        _ => rows::<T>(x, None, w, eps, y, stream),
    }
    Ok(())
}

/// Every row, `y` streamed past the caches or not (`stream`).
fn rows<T: Element>(x: &[T], residual: Option<(&[T], &mut [T])>, w: &[T], eps: f32, y: &mut [T], stream: bool) {
    let chunk = rows_per_task(w.len()) * w.len();
    match residual {
        Some((r, h)) => {
            x.par_chunks(chunk).zip(r.par_chunks(chunk)).zip(h.par_chunks_mut(chunk)).zip(y.par_chunks_mut(chunk)).for_each(|(((x, r), h), y)| {
                dispatch(Rows { x, residual: Some(r), w, eps, stream }, &mut (h, y));
            });
        }
        None => {
            x.par_chunks(chunk).zip(y.par_chunks_mut(chunk)).for_each(|(x, y)| dispatch(Rows { x, residual: None, w, eps, stream }, &mut (&mut [][..], y)));
        }
    }
}

/// One task's rows: `y = rms_norm(x) · w`, or with a residual `h = x + r`, `y = rms_norm(h) · w`.
/// In explicit vectors, inside [`dispatch`], widening 16-bit storage and rounding it back in
/// registers (`load_widened`, `store_narrowed`): written as scalar code for the compiler, bf16
/// rows ran at half the copy bandwidth f32 ones reached (2048 × 3072 on the Xeon: 2.0–2.4 ms,
/// about f32's time for half the bytes; 1.6–1.8 in vectors).
///
/// `y` is streamed past the caches where the whole output is too large to stay there
/// ([`streams_past_cache`]): its ordinary stores read every line of it from memory first, a third
/// more traffic. On the Zen 4 VM, alternated three times: 16384 × 768 f32 2.9–3.1 → 1.7–2.3 ms,
/// 2048 × 3072 f32 1.7–1.9 → 1.4–1.6. `h`, which the row's normalisation reads back at once,
/// keeps ordinary stores.
struct Rows<'a, T> {
    x: &'a [T],
    residual: Option<&'a [T]>,
    w: &'a [T],
    eps: f32,
    stream: bool,
}

impl<'a, T: Element> SimdKernel for Rows<'a, T> {
    type Output = ();
    /// (h, y): h is empty without a residual.
    type Scratch = (&'a mut [T], &'a mut [T]);

    #[inline(always)]
    fn run<V: Simd>(self, (h, y): &mut Self::Scratch) {
        if self.stream {
            self.each_row::<V, true>(h, y);
            stream_fence();
        } else {
            self.each_row::<V, false>(h, y);
        }
    }
}

impl<T: Element> Rows<'_, T> {
    #[inline(always)]
    fn each_row<V: Simd, const STREAM: bool>(&self, h: &mut [T], y: &mut [T]) {
        let width = self.w.len();
        match self.residual {
            Some(r) => {
                for (((xr, rr), hr), yr) in self.x.chunks(width).zip(r.chunks(width)).zip(h.chunks_mut(width)).zip(y.chunks_mut(width)) {
                    add_rows::<T, V>(xr, rr, hr);
                    normalize_row::<T, V, STREAM>(hr, self.w, self.eps, yr);
                }
            }
            None => {
                for (xr, yr) in self.x.chunks(width).zip(y.chunks_mut(width)) {
                    normalize_row::<T, V, STREAM>(xr, self.w, self.eps, yr);
                }
            }
        }
    }
}

/// h = x + r, rounded to the storage type.
#[inline(always)]
fn add_rows<T: Element, V: Simd>(x: &[T], r: &[T], h: &mut [T]) {
    let whole = x.len() - x.len() % V::LANES;
    for c in (0..whole).step_by(V::LANES) {
        let sum = load_widened::<T, V>(&x[c..]).add(load_widened::<T, V>(&r[c..]));
        store_narrowed::<T, V>(sum, &mut h[c..]);
    }
    for ((hv, xv), rv) in h[whole..].iter_mut().zip(&x[whole..]).zip(&r[whole..]) {
        *hv = T::from_f32(xv.to_f32() + rv.to_f32());
    }
}

/// Sum of squares in f32 over eight vectors of partial sums, so that the loop runs at the FMA
/// units' throughput rather than one register's add latency (and keeps eight loads in flight).
#[inline(always)]
fn sum_squares<T: Element, V: Simd>(row: &[T]) -> f32 {
    const VECTORS: usize = 8;
    let mut acc = [V::splat(0.0); VECTORS];
    let whole = row.len() - row.len() % (VECTORS * V::LANES);
    for c in (0..whole).step_by(VECTORS * V::LANES) {
        for (i, a) in acc.iter_mut().enumerate() {
            let v = load_widened::<T, V>(&row[c + i * V::LANES..]);
            *a = a.fma(v, v);
        }
    }
    let tail: f32 = row[whole..].iter().map(|v| v.to_f32() * v.to_f32()).sum();
    acc.iter().map(|a| a.sum()).sum::<f32>() + tail
}

/// `y = x · w / rms(x)` over one row, `y`'s whole vectors streamed past the caches where
/// `STREAM` (its tail shorter than a vector, and rows that take the f64 path, stored as usual).
#[inline(always)]
fn normalize_row<T: Element, V: Simd, const STREAM: bool>(x: &[T], w: &[T], eps: f32, y: &mut [T]) {
    let sum = sum_squares::<T, V>(x);
    if !sum.is_finite() {
        return normalize_row_f64(x, w, eps, y);
    }
    let inv_rms = 1.0 / (sum / x.len() as f32 + eps).sqrt();
    const VECTORS: usize = 4;
    let whole = x.len() - x.len() % (VECTORS * V::LANES);
    let scale = V::splat(inv_rms);
    for c in (0..whole).step_by(VECTORS * V::LANES) {
        for i in (0..VECTORS * V::LANES).step_by(V::LANES) {
            let scaled = load_widened::<T, V>(&x[c + i..]).mul(scale).mul(load_widened::<T, V>(&w[c + i..]));
            if STREAM {
                stream_narrowed::<T, V>(scaled, &mut y[c + i..]);
            } else {
                store_narrowed::<T, V>(scaled, &mut y[c + i..]);
            }
        }
    }
    for ((yv, xv), wv) in y[whole..].iter_mut().zip(&x[whole..]).zip(&w[whole..]) {
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

#[cfg(test)]
mod tests {
    use super::rows;
    use yoco_core::aligned::AlignedVec;
    use yoco_core::half::{bf16, f16};
    use yoco_core::rng::Rng;
    use yoco_core::Element;

    /// Streamed past the caches or stored as usual, every output bit is the same: over widths
    /// whose rows start on a vector's alignment and widths whose rows and tails do not, with and
    /// without a residual, in every dtype.
    fn streamed_equals_stored<T: Element>() {
        let mut rng = Rng::new(11);
        for (rows_n, width) in [(7, 64), (5, 768), (9, 100), (3, 33), (4, 1)] {
            let draw = |rng: &mut Rng, n: usize| -> Vec<T> { rng.normal_vec(n).into_iter().map(|v| T::from_f32(v as f32)).collect() };
            let (x, r, w) = (draw(&mut rng, rows_n * width), draw(&mut rng, rows_n * width), draw(&mut rng, width));
            for with_residual in [false, true] {
                let outputs: Vec<(Vec<T>, Vec<T>)> = [false, true]
                    .into_iter()
                    .map(|stream| {
                        // On a cache line, as tensors are: the streaming stores need their alignment.
                        let (mut y, mut h) = (AlignedVec::<T>::zeroed(rows_n * width), AlignedVec::<T>::zeroed(rows_n * width));
                        rows::<T>(&x, with_residual.then_some((&r[..], &mut h[..])), &w, 1e-6, &mut y, stream);
                        (y.to_vec(), h.to_vec())
                    })
                    .collect();
                for (name, stored, streamed) in [("y", &outputs[0].0, &outputs[1].0), ("h", &outputs[0].1, &outputs[1].1)] {
                    let differs = stored.iter().zip(streamed).position(|(a, b)| a.to_f32().to_bits() != b.to_f32().to_bits());
                    assert_eq!(differs, None, "{} {name}, {rows_n} x {width}, residual {with_residual}: first differing element", T::DTYPE);
                }
                assert!(outputs[1].0.iter().any(|e| e.to_f32() != 0.0), "{} streamed y left unwritten", T::DTYPE);
            }
        }
    }

    #[test]
    fn streamed_rows_equal_stored_rows() {
        streamed_equals_stored::<f32>();
        streamed_equals_stored::<bf16>();
        streamed_equals_stored::<f16>();
    }
}
