//! The GPU ceilings every CUDA figure is quoted against, measured in the same run.

use half::bf16;

use super::{gemm_row_major, CudaDevice, EventTimer};
use crate::{Error, Result};

/// Device-to-device copy bandwidth in GB/s (bytes read + bytes written per second), for a copy of
/// `bytes` (use several times the L2 size), median of `reps`.
pub fn device_copy_bandwidth(device: &CudaDevice, bytes: usize, reps: usize) -> Result<f64> {
    let stream = device.stream();
    let n = bytes / 4;
    let src = stream.alloc_zeros::<u32>(n).map_err(|e| Error::cuda("copy ceiling", e))?;
    let mut dst = stream.alloc_zeros::<u32>(n).map_err(|e| Error::cuda("copy ceiling", e))?;
    let timer = EventTimer::new(device)?;
    let ms = timer.median_ms(reps, 4, || stream.memcpy_dtod(&src, &mut dst).map_err(|e| Error::cuda("copy ceiling", e)))?;
    Ok(2.0 * (n * 4) as f64 / (ms * 1e-3) / 1e9)
}

/// cuBLAS bf16 GEMM rate in TFLOP/s (f32 accumulation) for `[m, k] · [n, k]ᵀ`, median of `reps`.
pub fn cublas_gemm_tflops(device: &CudaDevice, m: usize, n: usize, k: usize, reps: usize) -> Result<f64> {
    let stream = device.stream();
    let blas = device.blas()?;
    let fill = |len: usize| -> Result<_> {
        let host: Vec<bf16> = (0..len).map(|i| bf16::from_f32(((i * 7919) % 1000) as f32 * 1e-3 - 0.5)).collect();
        stream.clone_htod(&host).map_err(|e| Error::cuda("gemm ceiling", e))
    };
    let a = fill(m * k)?;
    let b = fill(n * k)?;
    let mut c = stream.alloc_zeros::<bf16>(m * n).map_err(|e| Error::cuda("gemm ceiling", e))?;
    let timer = EventTimer::new(device)?;
    let ms = timer.median_ms(reps, 4, || gemm_row_major(&blas, m, n, k, &a, &b, 0.0, &mut c))?;
    Ok(2.0 * m as f64 * n as f64 * k as f64 / (ms * 1e-3) / 1e12)
}
