//! Launchers of `kernels/gated_retention.cu`: the chunkwise prefill (bf16/f16, tensor cores)
//! and the decode step. Shapes and gates are checked by lib.rs.

use yoco_core::cuda::cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute_enum};
use yoco_core::cuda::cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
use yoco_core::{DType, Error, Result, Tensor};

use crate::RetentionShape;

#[allow(non_camel_case_types, non_snake_case, non_upper_case_globals, dead_code, clippy::all)]
mod sys {
    include!(concat!(env!("OUT_DIR"), "/gated_retention_params.rs"));
    include!(concat!(env!("OUT_DIR"), "/gated_retention_kernels.rs"));
}
use sys::{entry, GretChunkParams, GretStepParams, MODULE};

// SAFETY: plain C structs (bindgen, layout-tested) passed by value as the kernels declare them.
unsafe impl DeviceRepr for GretChunkParams {}
unsafe impl DeviceRepr for GretStepParams {}

/// The chunk length the prefill kernel is compiled for.
pub(crate) const CHUNK: usize = sys::GRET_CHUNK as usize;
const BLOCK_V_WIDE: usize = sys::GRET_BLOCK_V_WIDE as usize;
const BLOCK_V_NARROW: usize = sys::GRET_BLOCK_V_NARROW as usize;

/// The value columns per CTA of the chunkwise prefill. Each CTA walks all the chunks of its
/// (head, sequence) in turn, so a launch takes as long as one CTA's chain whenever the grid fits
/// on the GPU at once: then the narrow block, whose CTA does half the value-side products (and
/// the same scores and decays, recomputed by twice as many CTAs), is the faster. Once the narrow
/// grid is more than one wave, that recomputation costs SM time the wide block does not spend.
fn block_v(shape: RetentionShape, multiprocessors: usize) -> usize {
    if (shape.dim / BLOCK_V_NARROW) * shape.heads * shape.batch <= multiprocessors {
        BLOCK_V_NARROW
    } else {
        BLOCK_V_WIDE
    }
}

/// Dynamic shared memory of the chunkwise kernel; the same layout as `Layout` in the .cu (the
/// kernel traps if the two disagree): Q, K [C, D] and V [C, BV] in the storage type, scores
/// [C, C] f32 and rounded, state [D, BV] f32 and rounded, the gate cumsum [C] f32; every row
/// padded by GRET_PAD_16BIT (storage type) or GRET_PAD_F32 (f32) elements against bank conflicts;
/// Q, K and V twice (the next chunk's prefetched) where that fits under GRET_SMEM_LIMIT.
fn chunkwise_smem_bytes(dim: usize, elem: usize, bv: usize) -> usize {
    let c = CHUNK;
    let row16 = |cols: usize| (cols + sys::GRET_PAD_16BIT as usize) * elem;
    let row32 = |cols: usize| (cols + sys::GRET_PAD_F32 as usize) * 4;
    let tiles = 2 * c * row16(dim) + c * row16(bv);
    let rest = c * row32(c) + c * row16(c) + dim * row32(bv) + dim * row16(bv) + c * 4;
    let stages = if 2 * tiles + rest <= sys::GRET_SMEM_LIMIT as usize { 2 } else { 1 };
    stages * tiles + rest
}

fn chunkwise_entry(dtype: DType, dim: usize, bv: usize) -> Result<&'static str> {
    Ok(match (dtype, dim, bv) {
        (DType::BF16, 64, 32) => entry::GRET_CHUNKWISE_BF16_D64_V32,
        (DType::BF16, 64, 64) => entry::GRET_CHUNKWISE_BF16_D64_V64,
        (DType::BF16, 128, 32) => entry::GRET_CHUNKWISE_BF16_D128_V32,
        (DType::BF16, 128, 64) => entry::GRET_CHUNKWISE_BF16_D128_V64,
        (DType::BF16, 256, 32) => entry::GRET_CHUNKWISE_BF16_D256_V32,
        (DType::BF16, 256, 64) => entry::GRET_CHUNKWISE_BF16_D256_V64,
        (DType::F16, 64, 32) => entry::GRET_CHUNKWISE_F16_D64_V32,
        (DType::F16, 64, 64) => entry::GRET_CHUNKWISE_F16_D64_V64,
        (DType::F16, 128, 32) => entry::GRET_CHUNKWISE_F16_D128_V32,
        (DType::F16, 128, 64) => entry::GRET_CHUNKWISE_F16_D128_V64,
        (DType::F16, 256, 32) => entry::GRET_CHUNKWISE_F16_D256_V32,
        (DType::F16, 256, 64) => entry::GRET_CHUNKWISE_F16_D256_V64,
        (DType::F32, _, _) => {
            return Err(Error::Unsupported { op: "gated_retention", what: "f32 on CUDA: the tensor-core prefill takes bf16 or f16 (convert q, k, v)".into() })
        }
        _ => return Err(Error::Unsupported { op: "gated_retention", what: format!("head dim {dim} on CUDA") }),
    })
}

fn step_entry(dtype: DType, dim: usize) -> Result<&'static str> {
    Ok(match (dtype, dim) {
        (DType::F32, 64) => entry::GRET_STEP_F32_D64,
        (DType::F32, 128) => entry::GRET_STEP_F32_D128,
        (DType::F32, 256) => entry::GRET_STEP_F32_D256,
        (DType::BF16, 64) => entry::GRET_STEP_BF16_D64,
        (DType::BF16, 128) => entry::GRET_STEP_BF16_D128,
        (DType::BF16, 256) => entry::GRET_STEP_BF16_D256,
        (DType::F16, 64) => entry::GRET_STEP_F16_D64,
        (DType::F16, 128) => entry::GRET_STEP_F16_D128,
        (DType::F16, 256) => entry::GRET_STEP_F16_D256,
        _ => return Err(Error::Unsupported { op: "gated_retention_step", what: format!("head dim {dim} on CUDA") }),
    })
}

fn dim_i32(op: &'static str, what: &'static str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::invalid(op, what, format!("{v} exceeds i32")))
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn chunkwise(q: &Tensor, k: &Tensor, v: &Tensor, log_decay: &Tensor, state: &mut Tensor, o: &mut Tensor, shape: RetentionShape, scale: f32) -> Result<()> {
    const OP: &str = "gated_retention (cuda)";
    let device = q.device().as_cuda(OP)?.clone();
    let multiprocessors = device.context().attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT).map_err(|e| Error::cuda(OP, e))?;
    let bv = block_v(shape, multiprocessors.max(1) as usize);
    let name = chunkwise_entry(q.dtype(), shape.dim, bv)?;
    let smem = chunkwise_smem_bytes(shape.dim, q.dtype().size_in_bytes(), bv);
    let params = GretChunkParams {
        q: q.device_ptr()?,
        k: k.device_ptr()?,
        v: v.device_ptr()?,
        log_decay: log_decay.device_ptr()? as *const f32,
        state: state.device_ptr_mut()? as *mut f32,
        o: o.device_ptr_mut()?,
        batch: dim_i32(OP, "batch", shape.batch)?,
        seq: dim_i32(OP, "seq", shape.seq)?,
        heads: dim_i32(OP, "heads", shape.heads)?,
        scale,
        smem_bytes: smem as i32,
    };
    if shape.heads > 65535 || shape.batch > 65535 {
        return Err(Error::invalid(OP, "q", format!("{} heads × {} sequences exceed the grid's 65535 per dimension", shape.heads, shape.batch)));
    }
    let func = device.function(&MODULE, name)?;
    func.set_attribute(CUfunction_attribute_enum::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem as i32)
        .map_err(|e| Error::cuda(OP, format!("{smem} bytes of shared memory for {name}: {e}")))?;
    let cfg = LaunchConfig {
        grid_dim: ((shape.dim / bv) as u32, shape.heads as u32, shape.batch as u32),
        block_dim: (sys::GRET_THREADS, 1, 1),
        shared_mem_bytes: smem as u32,
    };
    let mut launch = device.stream().launch_builder(&func);
    launch.arg(&params);
    // SAFETY: q, k, v, o hold [batch, seq, heads, dim] elements of the entry's dtype, log_decay
    // [batch, seq, heads] f32 and state [batch, heads, dim, dim] f32 (checked by lib.rs); the
    // grid covers dim / bv value blocks × heads × batch (bv divides 64, 128 and 256), the block
    // is GRET_THREADS, the entry is the one compiled for bv, and the
    // dynamic shared memory is the kernel's layout (which it checks).
    unsafe { launch.launch(cfg) }.map_err(|e| Error::cuda(OP, e))?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn step(q: &Tensor, k: &Tensor, v: &Tensor, log_decay: &Tensor, state: &mut Tensor, o: &mut Tensor, shape: RetentionShape, scale: f32) -> Result<()> {
    const OP: &str = "gated_retention_step (cuda)";
    let device = q.device().as_cuda(OP)?.clone();
    let name = step_entry(q.dtype(), shape.dim)?;
    let params = GretStepParams {
        q: q.device_ptr()?,
        k: k.device_ptr()?,
        v: v.device_ptr()?,
        log_decay: log_decay.device_ptr()? as *const f32,
        state: state.device_ptr_mut()? as *mut f32,
        o: o.device_ptr_mut()?,
        batch: dim_i32(OP, "batch", shape.batch)?,
        heads: dim_i32(OP, "heads", shape.heads)?,
        scale,
    };
    let sequences_heads = shape.batch * shape.heads;
    if sequences_heads > i32::MAX as usize {
        return Err(Error::invalid(OP, "q", format!("{sequences_heads} (sequence, head) pairs exceed the grid")));
    }
    let cfg = LaunchConfig {
        grid_dim: (sequences_heads as u32, (shape.dim / sys::GRET_STEP_COLUMNS as usize) as u32, 1),
        block_dim: (sys::GRET_STEP_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let func = device.function(&MODULE, name)?;
    let mut launch = device.stream().launch_builder(&func);
    launch.arg(&params);
    // SAFETY: q, k, v, o hold [batch, 1, heads, dim] elements, log_decay [batch, 1, heads] f32,
    // state [batch, heads, dim, dim] f32 (checked by lib.rs); dim is a multiple of
    // GRET_STEP_COLUMNS (64, 128 or 256), so the grid's columns cover it exactly.
    unsafe { launch.launch(cfg) }.map_err(|e| Error::cuda(OP, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's Layout sizes, static_asserted in gated_retention.cu with the same numbers.
    #[test]
    fn shared_memory_matches_the_kernel_layout() {
        for (dim, bv, bytes) in [(64, 32, 90368), (64, 64, 110848), (128, 32, 138496), (128, 64, 171264), (256, 32, 162048), (256, 64, 215296)] {
            assert_eq!(chunkwise_smem_bytes(dim, 2, bv), bytes, "D = {dim}, BV = {bv}");
        }
    }

    #[test]
    fn narrow_value_blocks_while_they_fit_one_wave() {
        let shape = |batch, heads, dim| RetentionShape { batch, seq: 1, heads, dim };
        assert_eq!(block_v(shape(1, 24, 128), 132), 32); // 96 CTAs
        assert_eq!(block_v(shape(1, 33, 128), 132), 32); // 132
        assert_eq!(block_v(shape(2, 24, 128), 132), 64); // 192 narrow, 96 wide
        for (batch, heads, dim) in [(2, 66, 64), (2, 33, 128), (1, 33, 256)] {
            assert_eq!(block_v(shape(batch, heads, dim), 256), 64); // check.rs's wide cases
        }
    }
}
