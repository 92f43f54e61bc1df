//! Row-major GEMM on cuBLAS: the projections of every layer.

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig};
use cudarc::driver::{DevicePtr, DevicePtrMut};

use crate::{Element, Error, Result};

/// Element types cuBLAS multiplies for us (f32 accumulation for bf16/f16).
pub trait GemmElement: Element + cudarc::driver::DeviceRepr
where
    CudaBlas: Gemm<Self>,
{
}
impl GemmElement for f32 {}
impl GemmElement for half::bf16 {}
impl GemmElement for half::f16 {}

/// `c[m, n] = a[m, k] · b[n, k]ᵀ + beta · c`, all row-major: a linear layer `x Wᵀ` with the
/// weight stored `[out, in]` as PyTorch stores it.
///
/// cuBLAS is column-major, where a row-major `[r, c]` matrix reads as its transpose. So this asks
/// for `cᵀ[n, m] = b[n, k] · aᵀ[k, m]`: `b` with op T (its column-major view is `bᵀ`), `a` with
/// op N. Dimensions are checked against the buffers before the call.
#[allow(clippy::too_many_arguments)]
pub fn gemm_row_major<T, A, B, C>(blas: &CudaBlas, m: usize, n: usize, k: usize, a: &A, b: &B, beta: f32, c: &mut C) -> Result<()>
where
    T: GemmElement,
    CudaBlas: Gemm<T>,
    A: DevicePtr<T>,
    B: DevicePtr<T>,
    C: DevicePtrMut<T>,
{
    const OP: &str = "gemm_row_major";
    for (what, len, need) in [("a", a.len(), m * k), ("b", b.len(), n * k), ("c", c.len(), m * n)] {
        if len < need {
            return Err(Error::ShapeMismatch { op: OP, what, expected: format!("at least {need} elements"), got: len.to_string() });
        }
    }
    let dim = |v: usize| i32::try_from(v).map_err(|_| Error::invalid(OP, "dimension", format!("{v} exceeds i32")));
    let cfg = GemmConfig {
        transa: cublasOperation_t::CUBLAS_OP_T,
        transb: cublasOperation_t::CUBLAS_OP_N,
        m: dim(n)?,
        n: dim(m)?,
        k: dim(k)?,
        alpha: T::from_f32(1.0),
        lda: dim(k)?,
        ldb: dim(k)?,
        beta: T::from_f32(beta),
        ldc: dim(n)?,
    };
    // SAFETY: the lengths were checked above against m, n, k and the leading dimensions
    // describe dense row-major matrices, so cuBLAS reads and writes inside the buffers.
    unsafe { blas.gemm(cfg, b, a, c) }.map_err(|e| Error::cuda(OP, e))
}
