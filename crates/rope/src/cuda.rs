//! Launcher of `kernels/rope.cu`; shapes are checked by lib.rs.

use yoco_core::cuda::cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
use yoco_core::cuda::ceil_div;
use yoco_core::{DType, Error, Result};

use crate::{Rope, RopeVariant};

#[allow(non_camel_case_types, non_snake_case, non_upper_case_globals, dead_code, clippy::all)]
mod sys {
    include!(concat!(env!("OUT_DIR"), "/rope_params.rs"));
    include!(concat!(env!("OUT_DIR"), "/rope_kernels.rs"));
}
use sys::{entry, RopeParams, MODULE, ROPE_THREADS, ROPE_VARIANT_LLAMA, ROPE_VARIANT_YOCO};

// SAFETY: a plain C struct (bindgen, layout-tested) passed by value as the kernels declare it.
unsafe impl DeviceRepr for RopeParams {}

/// Queues RoPE of the `[batch, seq, heads, head_dim]` tensor at `x` into `out` (may alias `x`).
pub(crate) fn rope(r: &Rope, x: *const std::ffi::c_void, out: *mut std::ffi::c_void, dims: &[usize], dtype: DType, offset: usize) -> Result<()> {
    const OP: &str = "rope (cuda)";
    let device = r.table.device().as_cuda(OP)?.clone();
    let pairs = dims.iter().product::<usize>() / 2;
    let params = RopeParams {
        x,
        out,
        inv_freq: r.table.device_ptr()? as *const f32,
        pairs: pairs as i64,
        seq: i32::try_from(dims[1]).map_err(|_| Error::invalid(OP, "x", "sequence longer than i32"))?,
        heads: i32::try_from(dims[2]).map_err(|_| Error::invalid(OP, "x", "more heads than i32"))?,
        head_dim: dims[3] as i32,
        variant: match r.variant() {
            RopeVariant::Yoco => ROPE_VARIANT_YOCO,
            RopeVariant::Llama => ROPE_VARIANT_LLAMA,
        } as i32,
        pos_offset: offset as i64,
    };
    let name = match dtype {
        DType::F32 => entry::ROPE_F32,
        DType::BF16 => entry::ROPE_BF16,
        DType::F16 => entry::ROPE_F16,
    };
    let func = device.function(&MODULE, name)?;
    // A thread per (batch, token, pair), looping over the heads; one full wave of blocks at most
    // (the kernel's grid-stride loop takes the rest).
    let items = pairs / dims[2].max(1);
    let blocks = ceil_div(items, ROPE_THREADS as usize).clamp(1, device.resident_blocks(&func, ROPE_THREADS, 0)?);
    let cfg = LaunchConfig { grid_dim: (blocks as u32, 1, 1), block_dim: (ROPE_THREADS, 1, 1), shared_mem_bytes: 0 };
    let mut launch = device.stream().launch_builder(&func);
    launch.arg(&params);
    // SAFETY: x and out hold `2 * pairs` elements of `dtype` laid out as dims (checked by lib.rs;
    // they may alias, each thread reading its pairs before writing them); inv_freq holds
    // head_dim/2 f32 values (the Rope's own table); the grid-stride loop covers every (batch,
    // token, pair) and each of those every head.
    unsafe { launch.launch(cfg) }.map_err(|e| Error::cuda(OP, e))?;
    Ok(())
}
