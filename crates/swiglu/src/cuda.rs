//! Launcher of `kernels/swiglu.cu`, and the FFN on cuBLAS with that kernel in the middle.

use yoco_core::cuda::cudarc::cublas::{CudaBlas, Gemm};
use yoco_core::cuda::cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
use yoco_core::cuda::{ceil_div, gemm_row_major, CudaDevice, GemmElement};
use yoco_core::half::{bf16, f16};
use yoco_core::{DType, Error, MemoryCategory, Result, Tensor};

use crate::FfnWeights;

#[allow(non_camel_case_types, non_snake_case, non_upper_case_globals, dead_code, clippy::all)]
mod sys {
    include!(concat!(env!("OUT_DIR"), "/swiglu_params.rs"));
    include!(concat!(env!("OUT_DIR"), "/swiglu_kernels.rs"));
}
use sys::{entry, SiluMulParams, MODULE, SWIGLU_THREADS};

// SAFETY: a plain C struct (bindgen, layout-tested) passed by value as the kernels declare it.
unsafe impl DeviceRepr for SiluMulParams {}

/// Queues `out = silu(gate) ⊙ up` over `n` elements at raw addresses; `out` may equal `gate`
/// (each thread reads its elements before writing them).
fn launch_silu_mul(device: &CudaDevice, dtype: DType, gate: *const std::ffi::c_void, up: *const std::ffi::c_void, out: *mut std::ffi::c_void, n: usize) -> Result<()> {
    const OP: &str = "silu_mul (cuda)";
    let pack = 16 / dtype.size_in_bytes();
    let aligned = [gate, up, out as *const _].iter().all(|p| (*p as usize).is_multiple_of(16));
    let vectorized = n.is_multiple_of(pack) && aligned;
    let params = SiluMulParams { gate, up, out, n: n as i64, vectorized: vectorized as i32 };
    let work = if vectorized { n / pack } else { n };
    let name = match dtype {
        DType::F32 => entry::SILU_MUL_F32,
        DType::BF16 => entry::SILU_MUL_BF16,
        DType::F16 => entry::SILU_MUL_F16,
    };
    let func = device.function(&MODULE, name)?;
    // One full wave of blocks (the kernel loops over the rest), fewer when there is less work.
    let blocks = ceil_div(work, SWIGLU_THREADS as usize).clamp(1, device.resident_blocks(&func, SWIGLU_THREADS, 0)?);
    let cfg = LaunchConfig { grid_dim: (blocks as u32, 1, 1), block_dim: (SWIGLU_THREADS, 1, 1), shared_mem_bytes: 0 };
    let mut launch = device.stream().launch_builder(&func);
    launch.arg(&params);
    // SAFETY: the three addresses hold n elements of dtype (checked by the callers); the block
    // size is the SWIGLU_THREADS the kernel is launch-bounded for; the grid-stride loop covers
    // every element whatever the grid size.
    unsafe { launch.launch(cfg) }.map_err(|e| Error::cuda(OP, e))?;
    Ok(())
}

pub(crate) fn silu_mul(gate: &Tensor, up: &Tensor, out: &mut Tensor) -> Result<()> {
    let device = gate.device().as_cuda("silu_mul (cuda)")?.clone();
    launch_silu_mul(&device, gate.dtype(), gate.device_ptr()?, up.device_ptr()?, out.device_ptr_mut()?, gate.numel())
}

pub(crate) fn ffn(x: &Tensor, w: &FfnWeights<'_>, d: usize, f: usize) -> Result<Tensor> {
    match x.dtype() {
        DType::F32 => typed_ffn::<f32>(x, w, d, f),
        DType::BF16 => typed_ffn::<bf16>(x, w, d, f),
        DType::F16 => typed_ffn::<f16>(x, w, d, f),
    }
}

fn typed_ffn<T: GemmElement>(x: &Tensor, w: &FfnWeights<'_>, d: usize, f: usize) -> Result<Tensor>
where
    CudaBlas: Gemm<T>,
{
    let device = x.device().as_cuda("ffn (cuda)")?.clone();
    let blas = device.blas()?;
    let rows = x.shape().rows();
    let mut gate = Tensor::for_overwrite([rows, f], x.dtype(), x.device(), MemoryCategory::Activations)?;
    let mut up = Tensor::for_overwrite([rows, f], x.dtype(), x.device(), MemoryCategory::Activations)?;
    let mut out = Tensor::for_overwrite(x.shape().clone(), x.dtype(), x.device(), MemoryCategory::Activations)?;
    let xs = x.cuda_slice::<T>()?;
    gemm_row_major(&blas, rows, f, d, xs, w.w1.cuda_slice::<T>()?, 0.0, gate.cuda_slice_mut::<T>()?)?;
    gemm_row_major(&blas, rows, f, d, xs, w.w3.cuda_slice::<T>()?, 0.0, up.cuda_slice_mut::<T>()?)?;
    // In place: gate ← silu(gate) ⊙ up, sparing a third [rows, F] buffer.
    let gate_ptr = gate.device_ptr_mut()?;
    launch_silu_mul(&device, x.dtype(), gate_ptr, up.device_ptr()?, gate_ptr, rows * f)?;
    drop(up);
    gemm_row_major(&blas, rows, d, f, gate.cuda_slice::<T>()?, w.w2.cuda_slice::<T>()?, 0.0, out.cuda_slice_mut::<T>()?)?;
    Ok(out)
}
