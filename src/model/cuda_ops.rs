//! The CUDA side of the model's operations: cuBLAS projections and the launchers of the root
//! crate's kernels (`kernels/model.cu`).

use yoco_core::cuda::cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
use yoco_core::cuda::{ceil_div, gemm_row_major, CudaDevice};
use yoco_core::half::{bf16, f16};
use yoco_core::{DType, Error, MemoryCategory, Result, Tensor};

#[allow(non_camel_case_types, non_snake_case, non_upper_case_globals, dead_code, clippy::all)]
mod sys {
    include!(concat!(env!("OUT_DIR"), "/model_params.rs"));
    include!(concat!(env!("OUT_DIR"), "/model_kernels.rs"));
}
use sys::{entry, ArgmaxParams, EmbedParams, LogDecayParams, MODEL_THREADS, MODULE};

// SAFETY: plain C structs (bindgen, layout-tested) passed by value as the kernels declare them.
unsafe impl DeviceRepr for EmbedParams {}
unsafe impl DeviceRepr for LogDecayParams {}
// SAFETY: as above.
unsafe impl DeviceRepr for ArgmaxParams {}

/// `x [rows, k] · w [n, k]ᵀ` on cuBLAS, in the tensors' dtype with f32 accumulation.
pub fn linear(device: &CudaDevice, x: &Tensor, w: &Tensor, rows: usize, n: usize, k: usize, dims: Vec<usize>) -> Result<Tensor> {
    w.expect_dtype("linear", "w", x.dtype())?;
    let blas = device.blas()?;
    let mut out = Tensor::for_overwrite(dims, x.dtype(), x.device(), MemoryCategory::Activations)?;
    match x.dtype() {
        DType::F32 => gemm_row_major(&blas, rows, n, k, x.cuda_slice::<f32>()?, w.cuda_slice::<f32>()?, 0.0, out.cuda_slice_mut::<f32>()?)?,
        DType::BF16 => gemm_row_major(&blas, rows, n, k, x.cuda_slice::<bf16>()?, w.cuda_slice::<bf16>()?, 0.0, out.cuda_slice_mut::<bf16>()?)?,
        DType::F16 => gemm_row_major(&blas, rows, n, k, x.cuda_slice::<f16>()?, w.cuda_slice::<f16>()?, 0.0, out.cuda_slice_mut::<f16>()?)?,
    }
    Ok(out)
}

/// A row's width as the kernels' `int`.
fn row_width(op: &'static str, width: usize) -> Result<i32> {
    i32::try_from(width).map_err(|_| Error::invalid(op, "width", format!("{width}: at most {} elements per row", i32::MAX)))
}

fn launch<P: DeviceRepr>(device: &CudaDevice, name: &'static str, params: &P, blocks: usize, op: &'static str) -> Result<()> {
    // One block per row: a grid's x dimension holds at most 2³¹ − 1 blocks.
    let grid = u32::try_from(blocks.max(1)).ok().filter(|&g| g <= i32::MAX as u32).ok_or_else(|| Error::invalid(op, "rows", format!("{blocks}: at most {} rows per launch", i32::MAX)))?;
    let func = device.function(&MODULE, name)?;
    let cfg = LaunchConfig { grid_dim: (grid, 1, 1), block_dim: (MODEL_THREADS, 1, 1), shared_mem_bytes: 0 };
    let mut builder = device.stream().launch_builder(&func);
    builder.arg(params);
    // SAFETY: the callers build params whose pointers address buffers of the sizes the params
    // state, and the block size is the MODEL_THREADS the kernels are written for.
    unsafe { builder.launch(cfg) }.map_err(|e| Error::cuda(op, e))?;
    Ok(())
}

/// `√d · E[token]` for token ids already checked against the table's rows (by `Ops::embed`).
pub fn embed(device: &CudaDevice, table: &Tensor, tokens: &[u32], dims: Vec<usize>, scale: f32) -> Result<Tensor> {
    const OP: &str = "embed (cuda)";
    // The ids travel as u32 bit patterns in an f32 buffer (tensors have no integer dtype); the
    // kernel reads them as uint32_t.
    let bits: Vec<f32> = tokens.iter().map(|&t| f32::from_bits(t)).collect();
    let ids = Tensor::from_vec(bits, [tokens.len()], table.device(), MemoryCategory::Activations)?;
    let mut out = Tensor::for_overwrite(dims, table.dtype(), table.device(), MemoryCategory::Activations)?;
    let width = row_width(OP, table.dims()[1])?;
    let params = EmbedParams {
        table: table.device_ptr()?,
        tokens: ids.device_ptr()? as *const u32,
        out: out.device_ptr_mut()?,
        n_tokens: tokens.len() as i64,
        width,
        scale,
    };
    let name = match table.dtype() {
        DType::F32 => entry::EMBED_F32,
        DType::BF16 => entry::EMBED_BF16,
        DType::F16 => entry::EMBED_F16,
    };
    launch(device, name, &params, tokens.len(), OP)?;
    Ok(out)
}

/// `logsigmoid(z) / 16` as f32.
pub fn log_decay(device: &CudaDevice, z: &Tensor) -> Result<Tensor> {
    const OP: &str = "log_decay (cuda)";
    let mut out = Tensor::for_overwrite(z.shape().clone(), DType::F32, z.device(), MemoryCategory::Activations)?;
    let params = LogDecayParams { z: z.device_ptr()?, out: out.device_ptr_mut()? as *mut f32, n: z.numel() as i64 };
    let name = match z.dtype() {
        DType::F32 => entry::LOG_DECAY_F32,
        DType::BF16 => entry::LOG_DECAY_BF16,
        DType::F16 => entry::LOG_DECAY_F16,
    };
    launch(device, name, &params, ceil_div(z.numel(), MODEL_THREADS as usize).min(4096), OP)?;
    Ok(out)
}

/// Each row's largest value of `x [.., width]` (the lowest index on ties) and its count of NaN or
/// infinite values, computed on the device: greedy sampling brings back two numbers per row
/// instead of the row.
pub fn argmax(device: &CudaDevice, x: &Tensor) -> Result<Vec<(u32, u32)>> {
    const OP: &str = "argmax (cuda)";
    let width = x.shape().last_dim();
    let rows = x.numel() / width;
    let width = row_width(OP, width)?;
    // Results travel as u32 bit patterns in an f32 buffer (tensors have no integer dtype).
    let mut out = Tensor::for_overwrite([2 * rows], DType::F32, x.device(), MemoryCategory::Activations)?;
    let params = ArgmaxParams { x: x.device_ptr()?, out: out.device_ptr_mut()? as *mut u32, rows: rows as i64, width };
    let name = match x.dtype() {
        DType::F32 => entry::ARGMAX_F32,
        DType::BF16 => entry::ARGMAX_BF16,
        DType::F16 => entry::ARGMAX_F16,
    };
    launch(device, name, &params, rows, OP)?;
    Ok(out.to_vec::<f32>()?.chunks_exact(2).map(|pair| (pair[0].to_bits(), pair[1].to_bits())).collect())
}
