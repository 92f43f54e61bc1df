//! Launcher of `kernels/rmsnorm.cu`. Picks the warp-per-row or block-per-row kernel by row
//! width, and the 16-byte-pack path when the buffers allow it; shapes are checked by lib.rs.

use yoco_core::cuda::cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
use yoco_core::cuda::ceil_div;
use yoco_core::{DType, Error, Result, Tensor};

#[allow(non_camel_case_types, non_snake_case, non_upper_case_globals, dead_code, clippy::all)]
mod sys {
    include!(concat!(env!("OUT_DIR"), "/rmsnorm_params.rs"));
    include!(concat!(env!("OUT_DIR"), "/rmsnorm_kernels.rs"));
}
use sys::{entry, RmsNormParams, MODULE, RMSNORM_THREADS, RMSNORM_WARP_MAX_ROW_BYTES};

// SAFETY: RmsNormParams is a plain C struct (bindgen, layout-tested) passed by value, exactly as
// the kernels declare their one parameter.
unsafe impl DeviceRepr for RmsNormParams {}

fn entry_name(dtype: DType, residual: bool, warp: bool) -> &'static str {
    match (residual, warp, dtype) {
        (false, true, DType::F32) => entry::RMSNORM_WARP_F32,
        (false, true, DType::BF16) => entry::RMSNORM_WARP_BF16,
        (false, true, DType::F16) => entry::RMSNORM_WARP_F16,
        (false, false, DType::F32) => entry::RMSNORM_BLOCK_F32,
        (false, false, DType::BF16) => entry::RMSNORM_BLOCK_BF16,
        (false, false, DType::F16) => entry::RMSNORM_BLOCK_F16,
        (true, true, DType::F32) => entry::RMSNORM_RESIDUAL_WARP_F32,
        (true, true, DType::BF16) => entry::RMSNORM_RESIDUAL_WARP_BF16,
        (true, true, DType::F16) => entry::RMSNORM_RESIDUAL_WARP_F16,
        (true, false, DType::F32) => entry::RMSNORM_RESIDUAL_BLOCK_F32,
        (true, false, DType::BF16) => entry::RMSNORM_RESIDUAL_BLOCK_BF16,
        (true, false, DType::F16) => entry::RMSNORM_RESIDUAL_BLOCK_F16,
    }
}

pub(crate) fn rms_norm(x: &Tensor, residual: Option<&Tensor>, weight: &Tensor, eps: f32, y: &mut Tensor, h: Option<&mut Tensor>) -> Result<()> {
    const OP: &str = "rms_norm (cuda)";
    let device = x.device().as_cuda(OP)?.clone();
    let dtype = x.dtype();
    let width = x.shape().last_dim();
    let rows = x.shape().rows();
    let pack = 16 / dtype.size_in_bytes();

    let mut params = RmsNormParams {
        x: x.device_ptr()?,
        residual: std::ptr::null(),
        weight: weight.device_ptr()?,
        y: y.device_ptr_mut()?,
        h: std::ptr::null_mut(),
        rows: rows as i64,
        width: width as i32,
        eps,
        vectorized: 0,
    };
    if let (Some(r), Some(h)) = (residual, h) {
        params.residual = r.device_ptr()?;
        params.h = h.device_ptr_mut()?;
    }
    let aligned = [params.x, params.residual, params.weight, params.y as *const _, params.h as *const _]
        .iter()
        .all(|p| (*p as usize).is_multiple_of(16));
    params.vectorized = (width.is_multiple_of(pack) && aligned) as i32;

    let warp = width * dtype.size_in_bytes() <= RMSNORM_WARP_MAX_ROW_BYTES as usize;
    let rows_per_block = if warp { RMSNORM_THREADS as usize / 32 } else { 1 };
    let blocks = ceil_div(rows, rows_per_block);
    if blocks > i32::MAX as usize {
        return Err(Error::invalid(OP, "x", format!("{rows} rows need {blocks} blocks, more than a grid holds")));
    }
    let cfg = LaunchConfig { grid_dim: (blocks as u32, 1, 1), block_dim: (RMSNORM_THREADS, 1, 1), shared_mem_bytes: 0 };
    let func = device.function(&MODULE, entry_name(dtype, residual.is_some(), warp))?;
    let mut launch = device.stream().launch_builder(&func);
    launch.arg(&params);
    // SAFETY: every pointer in params addresses a live buffer of rows × width (weight: width)
    // elements of `dtype`, checked by lib.rs; the block size is the RMSNORM_THREADS the kernels
    // are written and launch-bounded for.
    unsafe { launch.launch(cfg) }.map_err(|e| Error::cuda(OP, e))?;
    Ok(())
}
