//! CUDA plumbing (feature `cuda`): device and context, embedded kernel modules, launching,
//! cuBLAS GEMM, and an event timer. cudarc loads libcuda and libcublas at run time, so a binary
//! built with this feature still starts (and reports "CUDA unavailable") on a machine without them.

mod blas;
mod ceiling;
mod context;
mod module;
mod timer;

pub use blas::{gemm_row_major, GemmElement};
pub use ceiling::{cublas_gemm_tflops, device_copy_bandwidth};
pub use context::CudaDevice;
pub use cudarc;
pub use module::KernelModule;
pub use timer::EventTimer;

/// Rounds `n` up to a whole number of `block`s; for grid sizes.
pub const fn ceil_div(n: usize, block: usize) -> usize {
    n.div_ceil(block)
}
