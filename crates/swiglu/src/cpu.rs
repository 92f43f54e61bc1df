//! The fast CPU path: the gate elementwise on rayon, the FFN's three GEMMs on
//! `yoco_core::matmul` (the `gemm` crate) with the gate applied in place between them.

use rayon::prelude::*;
use yoco_core::half::{bf16, f16};
use yoco_core::math::silu;
use yoco_core::matmul::matmul_nt;
use yoco_core::{DType, Element, MemoryCategory, Result, Tensor};

use crate::FfnWeights;

/// Elements per rayon task.
const CHUNK: usize = 16 * 1024;

pub(crate) fn silu_mul(gate: &Tensor, up: &Tensor, out: &mut Tensor) -> Result<()> {
    fn typed<T: Element>(gate: &Tensor, up: &Tensor, out: &mut Tensor) -> Result<()> {
        let (g, u) = (gate.as_slice::<T>()?, up.as_slice::<T>()?);
        out.as_mut_slice::<T>()?.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).zip(u.par_chunks(CHUNK)).for_each(|((o, g), u)| {
            for ((o, g), u) in o.iter_mut().zip(g).zip(u) {
                *o = T::from_f32(silu(g.to_f32()) * u.to_f32());
            }
        });
        Ok(())
    }
    match gate.dtype() {
        DType::F32 => typed::<f32>(gate, up, out),
        DType::BF16 => typed::<bf16>(gate, up, out),
        DType::F16 => typed::<f16>(gate, up, out),
    }
}

/// `gate ← silu(gate) ⊙ up` in f32, in place: saves the FFN a third [rows, F] buffer.
fn silu_mul_in_place(gate: &mut [f32], up: &[f32]) {
    gate.par_chunks_mut(CHUNK).zip(up.par_chunks(CHUNK)).for_each(|(g, u)| {
        for (g, u) in g.iter_mut().zip(u) {
            *g = silu(*g) * u;
        }
    });
}

/// f32 only (checked by lib.rs).
pub(crate) fn ffn(x: &Tensor, w: &FfnWeights<'_>, d: usize, f: usize) -> Result<Tensor> {
    let rows = x.shape().rows();
    let device = x.device();
    let mut gate = Tensor::zeros([rows, f], DType::F32, device, MemoryCategory::Activations)?;
    let mut up = Tensor::zeros([rows, f], DType::F32, device, MemoryCategory::Activations)?;
    let mut out = Tensor::zeros(x.shape().clone(), DType::F32, device, MemoryCategory::Activations)?;
    let xs = x.as_slice::<f32>()?;
    matmul_nt(rows, f, d, xs, w.w1.as_slice()?, gate.as_mut_slice()?)?;
    matmul_nt(rows, f, d, xs, w.w3.as_slice()?, up.as_mut_slice()?)?;
    silu_mul_in_place(gate.as_mut_slice()?, up.as_slice()?);
    drop(up);
    matmul_nt(rows, d, f, gate.as_slice()?, w.w2.as_slice()?, out.as_mut_slice()?)?;
    Ok(out)
}
