//! The fast CPU path: the gate elementwise on rayon, the FFN's three GEMMs on
//! `yoco_core::matmul` (its packed GEMM for prefill's many rows, the dot form or the `gemm` crate
//! for few; in f32 for every storage dtype) with the gate applied between them: in f32 inside the
//! gate's and up's products (`gated_matmul_nt`), in 16-bit storage in place over their outputs.

use rayon::prelude::*;
use yoco_core::half::{bf16, f16};
use yoco_core::math::silu;
use yoco_core::matmul::{gated_matmul_nt, linear_into};
use yoco_core::simd::{dispatch, load_widened, store_narrowed, Simd, SimdKernel};
use yoco_core::{DType, Element, MemoryCategory, Result, Tensor};

use crate::FfnWeights;

/// Elements per rayon task.
const CHUNK: usize = 16 * 1024;

pub(crate) fn silu_mul(gate: &Tensor, up: &Tensor, out: &mut Tensor) -> Result<()> {
    fn typed<T: Element>(gate: &Tensor, up: &Tensor, out: &mut Tensor) -> Result<()> {
        let (g, u) = (gate.as_slice::<T>()?, up.as_slice::<T>()?);
        out.as_mut_slice::<T>()?.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).zip(u.par_chunks(CHUNK)).for_each(|((out, gate), up)| {
            gate_task(Some(gate), up, out);
        });
        Ok(())
    }
    match gate.dtype() {
        DType::F32 => typed::<f32>(gate, up, out),
        DType::BF16 => typed::<bf16>(gate, up, out),
        DType::F16 => typed::<f16>(gate, up, out),
    }
}

/// One task's `out ← silu(gate) ⊙ up` (`gate: None`: out holds the gate, updated in place): bf16
/// on a CPU with AVX512-BF16 in [`bf16_pair_steps`], the rest (other dtypes and CPUs, and a tail
/// shorter than a step) by [`SiluMul`].
fn gate_task<T: Element>(gate: Option<&[T]>, up: &[T], out: &mut [T]) {
    let done = bf16_pair_steps(gate, up, out);
    let (up, out) = (&up[done..], &mut out[done..]);
    if !out.is_empty() {
        dispatch(SiluMul { gate: gate.map(|gate| &gate[done..]), up }, out);
    }
}

/// The gate over bf16 in whole steps of `bf16_pairs::STEP` (widened in pairs, narrowed by
/// `vcvtne2ps2bf16`, as `yoco_core::simd::bf16_pairs` describes; the silu the same loop as
/// [`SiluMul`]'s); returns how many elements it did: none unless T is bf16 and the CPU has
/// AVX512-BF16. On the Zen 4 VM (both threads, the old and new builds in turn three times):
/// 2048 × 8192 in 3.52–3.54 ms against 4.75–5.07 widened and narrowed 16 at a time, 256K
/// elements in the level-2 cache 0.24 ns an element against 0.29.
fn bf16_pair_steps<T: Element>(gate: Option<&[T]>, up: &[T], out: &mut [T]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use yoco_core::dtype::{as_mut_slice_of, as_slice_of};
        use yoco_core::half::slice::HalfFloatSliceExt;
        use yoco_core::simd::bf16_pairs::{self, narrow, widen, STEP};

        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")]
        unsafe fn steps(gate: Option<&[u16]>, up: &[u16], out: &mut [u16]) -> usize {
            let body = out.len() / STEP * STEP;
            for (i, o) in out[..body].chunks_exact_mut(STEP).enumerate() {
                let at = i * STEP;
                let o: &mut [u16; STEP] = o.try_into().expect("a step");
                // SAFETY: available() (the caller checked), compiled with its features.
                unsafe {
                    let g = widen(match gate {
                        Some(gate) => gate[at..at + STEP].try_into().expect("a step"),
                        None => o,
                    });
                    let u = widen(up[at..at + STEP].try_into().expect("a step"));
                    // Into a fresh array: updating g in place kept it in memory, and the
                    // misaligned reload stalled a fifth of the loop's time (`perf annotate`).
                    let mut gated = [0f32; STEP];
                    for l in 0..STEP {
                        gated[l] = silu(g[l]) * u[l];
                    }
                    narrow(&gated, o);
                }
            }
            body
        }

        if let (Some(up), Some(out)) = (as_slice_of::<T, bf16>(up), as_mut_slice_of::<T, bf16>(out)) {
            if bf16_pairs::available() {
                let gate = gate.and_then(as_slice_of::<T, bf16>).map(|gate| gate.reinterpret_cast());
                // SAFETY: available() is true.
                return unsafe { steps(gate, up.reinterpret_cast(), out.reinterpret_cast_mut()) };
            }
        }
    }
    let _ = (gate, up, out);
    0
}

/// `out ← silu(gate) ⊙ up` over one task's elements (`gate: None`: out holds the gate, updated in
/// place), in f32, rounded to T once, inside [`dispatch`] so that it runs on the widest vectors
/// the CPU has. Each vector of elements is widened and narrowed by `yoco_core::simd` (F16C's
/// `vcvtph2ps` for f16: written as one plain loop with the `half` crate's conversions, the f16
/// gate compiled to scalar code, a `vcvtph2ps` per element, at 5.5–7.0 ns an element against
/// 0.47–0.50 now, on one thread of the Xeon VM; bf16 0.75–0.92 to 0.65–0.70); silu itself is a
/// plain loop over the vector's lanes, which LLVM vectorises (`math::exp`). The tail shorter
/// than a vector goes element by element.
struct SiluMul<'a, T> {
    gate: Option<&'a [T]>,
    up: &'a [T],
}

impl<T: Element> SimdKernel for SiluMul<'_, T> {
    type Output = ();
    type Scratch = [T];

    #[inline(always)]
    fn run<V: Simd>(self, out: &mut [T]) {
        let lanes = V::LANES;
        let body = out.len() / lanes * lanes;
        // One vector's lanes as plain f32, for the silu loop to vectorise over (16: the widest).
        let (mut g, mut u) = ([0f32; 16], [0f32; 16]);
        for (i, o) in out[..body].chunks_exact_mut(lanes).enumerate() {
            let at = i * lanes;
            let gate: V = match self.gate {
                Some(gate) => load_widened(&gate[at..]),
                None => load_widened(o),
            };
            gate.store(&mut g);
            load_widened::<T, V>(&self.up[at..]).store(&mut u);
            for l in 0..lanes {
                g[l] = silu(g[l]) * u[l];
            }
            store_narrowed(V::load(&g), o);
        }
        let f = |g: T, u: T| T::from_f32(silu(g.to_f32()) * u.to_f32());
        let up = &self.up[body..];
        match self.gate {
            Some(gate) => out[body..].iter_mut().zip(&gate[body..]).zip(up).for_each(|((o, &g), &u)| *o = f(g, u)),
            None => out[body..].iter_mut().zip(up).for_each(|(g, &u)| *g = f(*g, u)),
        }
    }
}

/// `gate ← silu(gate) ⊙ up` in place (in f32, rounded to T once): saves the FFN a third
/// [rows, F] buffer.
fn silu_mul_in_place<T: Element>(gate: &mut [T], up: &[T]) {
    gate.par_chunks_mut(CHUNK).zip(up.par_chunks(CHUNK)).for_each(|(gate, up)| gate_task(None, up, gate));
}

/// The FFN in x's dtype: the GEMMs on `yoco_core::matmul` (f32 products; 16-bit outputs rounded
/// once, as cuBLAS rounds them). In f32 the gate's and up's products and the gate between them
/// are one call (`gated_matmul_nt`: one `[rows, F]` intermediate, as `ffn_intermediates`
/// counts); in 16-bit storage the gate is applied in place over the two products' outputs.
pub(crate) fn ffn(x: &Tensor, w: &FfnWeights<'_>, f: usize) -> Result<Tensor> {
    fn typed<T: Element>(x: &Tensor, w: &FfnWeights<'_>, f: usize) -> Result<Tensor> {
        let rows = x.shape().rows();
        let (device, dtype) = (x.device(), x.dtype());
        let mut gate = Tensor::zeros([rows, f], dtype, device, MemoryCategory::Activations)?;
        let mut out = Tensor::zeros(x.shape().clone(), dtype, device, MemoryCategory::Activations)?;
        if dtype == DType::F32 {
            gated_matmul_nt(rows, f, x.shape().last_dim(), x.as_slice()?, w.w1.as_slice()?, w.w3.as_slice()?, gate.as_mut_slice()?)?;
        } else {
            let mut up = Tensor::zeros([rows, f], dtype, device, MemoryCategory::Activations)?;
            linear_into(x, w.w1, &mut gate)?;
            linear_into(x, w.w3, &mut up)?;
            silu_mul_in_place::<T>(gate.as_mut_slice()?, up.as_slice()?);
        }
        linear_into(&gate, w.w2, &mut out)?;
        Ok(out)
    }
    match x.dtype() {
        DType::F32 => typed::<f32>(x, w, f),
        DType::BF16 => typed::<bf16>(x, w, f),
        DType::F16 => typed::<f16>(x, w, f),
    }
}
