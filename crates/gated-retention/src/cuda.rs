//! Launchers of `kernels/gated_retention.cu`: the chunkwise prefill (bf16/f16, tensor cores)
//! and the decode step. Shapes and gates are checked by lib.rs.

use yoco_core::cuda::cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
use yoco_core::cuda::CudaDevice;
use yoco_core::{DType, Error, MemoryCategory, Result, Tensor};

use crate::{ChunkSchedule, RetentionShape};

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
// The kernels' gate floor is the CPU path's.
const _: () = assert!(-(sys::GRET_GATE_FLOOR_MAGNITUDE as f32) == crate::GATE_FLOOR);
const BLOCK_V_WIDE: usize = sys::GRET_BLOCK_V_WIDE as usize;
const BLOCK_V_NARROW: usize = sys::GRET_BLOCK_V_NARROW as usize;
const OUTPUTS_BLOCK_V: usize = sys::GRET_OUTPUTS_BLOCK_V as usize;
/// Floats of a chunk's gate record (the parallel schedule's gate pass writes one per chunk).
const GATE_RECORD: usize = sys::GRET_GATE_RECORD as usize;
const GATES_WARPS: usize = sys::GRET_GATES_THREADS as usize / 32;
// The buffers lib.rs reports (parallel_schedule_bytes) are the ones allocated here.
const _: () = assert!(GATE_RECORD == crate::GATE_RECORD_FLOATS && CHUNK == crate::DEFAULT_CHUNK);

/// The value columns per CTA of the prefill kernels that walk the chunks (the sequential kernel
/// and the states pass). Each CTA walks all the chunks of its (head, sequence) in turn, so a launch takes as long as one CTA's chain whenever the grid fits
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

/// The chunkwise prefill's kernels: the sequential one, and the parallel schedule's three passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    /// `gret_chunkwise_*`: all the steps, chunk by chunk, carrying the state.
    Sequential,
    /// `gret_gates`: every chunk's gate record (the gates' sums and per-token factors) at once.
    Gates,
    /// `gret_states_*`: each chunk's incoming state into the buffer, chunk by chunk.
    States,
    /// `gret_outputs_*`: every chunk's outputs from the buffer, all chunks at once.
    Outputs,
}

/// Dynamic shared memory of a prefill kernel: the same layouts as `SequentialLayout`,
/// `StatesLayout` and `OutputsLayout` in the .cu (the kernels trap if the two disagree), in the
/// storage type: Q, K [C, D], V [C, BV] and the rounded state [D, BV], every row padded by
/// GRET_PAD_16BIT elements against bank conflicts; and a chunk's gate record (the cumsum's f32
/// high and low parts and two per-token factors, [4, C] f32). The states live in registers. The
/// sequential kernel keeps Q, K and V twice (the next chunk's prefetched) and one rounded state
/// and record; the states pass K, V and the record twice; the outputs pass, one chunk per CTA,
/// everything once. The gate pass has none.
fn smem_bytes(pass: Pass, dim: usize, elem: usize, bv: usize) -> usize {
    let c = CHUNK;
    let row16 = |cols: usize| (cols + sys::GRET_PAD_16BIT as usize) * elem;
    let (tile_qk, tile_v, rounded_state) = (c * row16(dim), c * row16(bv), dim * row16(bv));
    let record = GATE_RECORD * 4;
    match pass {
        Pass::Sequential => 2 * (2 * tile_qk + tile_v) + rounded_state + record,
        Pass::Gates => 0,
        Pass::States => 2 * (tile_qk + tile_v + record),
        Pass::Outputs => 2 * tile_qk + tile_v + rounded_state + record,
    }
}

/// The entry of `pass` for this dtype, head dim and value block (the outputs pass has one,
/// GRET_OUTPUTS_BLOCK_V).
fn prefill_entry(pass: Pass, dtype: DType, dim: usize, bv: usize) -> Result<&'static str> {
    use Pass::*;
    Ok(match (pass, dtype, dim, bv) {
        // Before the gate pass, which takes any dtype: an f32 call launches nothing.
        (_, DType::F32, _, _) => {
            return Err(Error::Unsupported { op: "gated_retention", what: "f32 on CUDA: the tensor-core prefill takes bf16 or f16 (convert q, k, v)".into() })
        }
        (Gates, _, _, _) => entry::GRET_GATES,
        (Sequential, DType::BF16, 64, 32) => entry::GRET_CHUNKWISE_BF16_D64_V32,
        (Sequential, DType::BF16, 64, 64) => entry::GRET_CHUNKWISE_BF16_D64_V64,
        (Sequential, DType::BF16, 128, 32) => entry::GRET_CHUNKWISE_BF16_D128_V32,
        (Sequential, DType::BF16, 128, 64) => entry::GRET_CHUNKWISE_BF16_D128_V64,
        (Sequential, DType::BF16, 256, 32) => entry::GRET_CHUNKWISE_BF16_D256_V32,
        (Sequential, DType::BF16, 256, 64) => entry::GRET_CHUNKWISE_BF16_D256_V64,
        (Sequential, DType::F16, 64, 32) => entry::GRET_CHUNKWISE_F16_D64_V32,
        (Sequential, DType::F16, 64, 64) => entry::GRET_CHUNKWISE_F16_D64_V64,
        (Sequential, DType::F16, 128, 32) => entry::GRET_CHUNKWISE_F16_D128_V32,
        (Sequential, DType::F16, 128, 64) => entry::GRET_CHUNKWISE_F16_D128_V64,
        (Sequential, DType::F16, 256, 32) => entry::GRET_CHUNKWISE_F16_D256_V32,
        (Sequential, DType::F16, 256, 64) => entry::GRET_CHUNKWISE_F16_D256_V64,
        (States, DType::BF16, 64, 32) => entry::GRET_STATES_BF16_D64_V32,
        (States, DType::BF16, 64, 64) => entry::GRET_STATES_BF16_D64_V64,
        (States, DType::BF16, 128, 32) => entry::GRET_STATES_BF16_D128_V32,
        (States, DType::BF16, 128, 64) => entry::GRET_STATES_BF16_D128_V64,
        (States, DType::BF16, 256, 32) => entry::GRET_STATES_BF16_D256_V32,
        (States, DType::BF16, 256, 64) => entry::GRET_STATES_BF16_D256_V64,
        (States, DType::F16, 64, 32) => entry::GRET_STATES_F16_D64_V32,
        (States, DType::F16, 64, 64) => entry::GRET_STATES_F16_D64_V64,
        (States, DType::F16, 128, 32) => entry::GRET_STATES_F16_D128_V32,
        (States, DType::F16, 128, 64) => entry::GRET_STATES_F16_D128_V64,
        (States, DType::F16, 256, 32) => entry::GRET_STATES_F16_D256_V32,
        (States, DType::F16, 256, 64) => entry::GRET_STATES_F16_D256_V64,
        (Outputs, DType::BF16, 64, OUTPUTS_BLOCK_V) => entry::GRET_OUTPUTS_BF16_D64,
        (Outputs, DType::BF16, 128, OUTPUTS_BLOCK_V) => entry::GRET_OUTPUTS_BF16_D128,
        (Outputs, DType::BF16, 256, OUTPUTS_BLOCK_V) => entry::GRET_OUTPUTS_BF16_D256,
        (Outputs, DType::F16, 64, OUTPUTS_BLOCK_V) => entry::GRET_OUTPUTS_F16_D64,
        (Outputs, DType::F16, 128, OUTPUTS_BLOCK_V) => entry::GRET_OUTPUTS_F16_D128,
        (Outputs, DType::F16, 256, OUTPUTS_BLOCK_V) => entry::GRET_OUTPUTS_F16_D256,
        _ => return Err(Error::Unsupported { op: "gated_retention", what: format!("head dim {dim} (value block {bv}) on CUDA for {pass:?}") }),
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
pub(crate) fn chunkwise(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    log_decay: &Tensor,
    state: &mut Tensor,
    o: &mut Tensor,
    shape: RetentionShape,
    scale: f32,
    schedule: ChunkSchedule,
) -> Result<()> {
    const OP: &str = "gated_retention (cuda)";
    let device = q.device().as_cuda(OP)?.clone();
    let bv = block_v(shape, device.sm_count());
    // The walking kernels take heads and sequences in the grid's y and z, the gate and outputs
    // passes their product in y: at most 65535 each.
    let pairs_limit = if schedule == ChunkSchedule::Parallel { 65535 } else { usize::MAX };
    if shape.heads > 65535 || shape.batch > 65535 || shape.heads * shape.batch > pairs_limit {
        return Err(Error::invalid(OP, "q", format!("{} heads × {} sequences exceed the grid's 65535 per dimension", shape.heads, shape.batch)));
    }
    let chunks = shape.seq.div_ceil(CHUNK);
    // The parallel schedule's buffers: each chunk's incoming state in the storage type [batch,
    // heads, chunks, dim, dim], and its gate record [batch, heads, chunks, GRET_GATE_RECORD] f32.
    let (mut chunk_states, mut chunk_gates) = match schedule {
        ChunkSchedule::Parallel => (
            Some(Tensor::for_overwrite([shape.batch, shape.heads, chunks, shape.dim, shape.dim], q.dtype(), q.device(), MemoryCategory::Activations)?),
            Some(Tensor::for_overwrite([shape.batch, shape.heads, chunks, GATE_RECORD], DType::F32, q.device(), MemoryCategory::Activations)?),
        ),
        ChunkSchedule::Sequential => (None, None),
    };
    let mut params = GretChunkParams {
        q: q.device_ptr()?,
        k: k.device_ptr()?,
        v: v.device_ptr()?,
        log_decay: log_decay.device_ptr()? as *const f32,
        state: state.device_ptr_mut()? as *mut f32,
        o: o.device_ptr_mut()?,
        chunk_states: match chunk_states.as_mut() {
            Some(t) => t.device_ptr_mut()?,
            None => std::ptr::null_mut(),
        },
        chunk_gates: match chunk_gates.as_mut() {
            Some(t) => t.device_ptr_mut()? as *mut f32,
            None => std::ptr::null_mut(),
        },
        batch: dim_i32(OP, "batch", shape.batch)?,
        seq: dim_i32(OP, "seq", shape.seq)?,
        heads: dim_i32(OP, "heads", shape.heads)?,
        scale,
        smem_bytes: 0,
    };
    let walking_grid = ((shape.dim / bv) as u32, shape.heads as u32, shape.batch as u32);
    // SAFETY (all launches): q, k, v, o hold [batch, seq, heads, dim] elements of the entry's
    // dtype, log_decay [batch, seq, heads] f32 and state [batch, heads, dim, dim] f32 (checked by
    // lib.rs); chunk_states and chunk_gates, where a pass uses them, [batch, heads, chunks, dim,
    // dim] of the dtype and [batch, heads, chunks, GRET_GATE_RECORD] f32 (allocated above). The
    // gate pass takes chunks / (GRET_GATES_THREADS / 32) blocks (rounded up) in x and heads ×
    // batch in y; the kernels that walk the chunks a grid of dim / bv value blocks × heads ×
    // batch (bv divides 64, 128 and 256) with the entry compiled for bv; the outputs pass
    // chunks × dim / GRET_OUTPUTS_BLOCK_V blocks in x and heads × batch in y. Every block is the
    // pass's threads and the dynamic shared memory its layout (which each kernel checks).
    match schedule {
        ChunkSchedule::Sequential => unsafe { launch_prefill(&device, Pass::Sequential, &mut params, q.dtype(), shape.dim, bv, walking_grid) },
        ChunkSchedule::Parallel => {
            // A grid's x dimension holds up to 2³¹ − 1 blocks.
            let blocks = i32::try_from(chunks * (shape.dim / OUTPUTS_BLOCK_V))
                .map_err(|_| Error::invalid(OP, "seq", format!("{} tokens: more chunks than a grid holds", shape.seq)))? as u32;
            let pairs = (shape.heads * shape.batch) as u32;
            let gate_blocks = chunks.div_ceil(GATES_WARPS) as u32; // fewer than the outputs pass's blocks
            unsafe { launch_prefill(&device, Pass::Gates, &mut params, q.dtype(), shape.dim, bv, (gate_blocks, pairs, 1))? };
            unsafe { launch_prefill(&device, Pass::States, &mut params, q.dtype(), shape.dim, bv, walking_grid)? };
            unsafe { launch_prefill(&device, Pass::Outputs, &mut params, q.dtype(), shape.dim, OUTPUTS_BLOCK_V, (blocks, pairs, 1)) }
        }
    }
    // chunk_states and chunk_gates are freed here, stream-ordered after the outputs pass that
    // reads them.
}

/// Launches `pass` with `params` (its shared-memory size set to the pass's) on `grid`.
///
/// # Safety
/// `params` and `grid` must be what the pass's kernel expects: see `chunkwise`.
unsafe fn launch_prefill(device: &CudaDevice, pass: Pass, params: &mut GretChunkParams, dtype: DType, dim: usize, bv: usize, grid: (u32, u32, u32)) -> Result<()> {
    const OP: &str = "gated_retention (cuda)";
    let name = prefill_entry(pass, dtype, dim, bv)?;
    let smem = smem_bytes(pass, dim, dtype.size_in_bytes(), bv);
    params.smem_bytes = smem as i32;
    let func = device.function_with_dynamic_smem(&MODULE, name, smem)?;
    let threads = match pass {
        Pass::Gates => sys::GRET_GATES_THREADS,
        Pass::Outputs => sys::GRET_OUTPUTS_THREADS,
        Pass::Sequential | Pass::States => sys::GRET_THREADS,
    };
    let cfg = LaunchConfig { grid_dim: grid, block_dim: (threads, 1, 1), shared_mem_bytes: smem as u32 };
    let mut launch = device.stream().launch_builder(&func);
    launch.arg(&*params);
    // SAFETY: the caller's contract.
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

    /// The kernels' layout sizes, static_asserted in gated_retention.cu with the same numbers.
    #[test]
    fn shared_memory_matches_the_kernel_layouts() {
        for (dim, bv, bytes) in [(64, 32, 53248), (64, 64, 65536), (128, 32, 91136), (128, 64, 107520), (256, 32, 166912), (256, 64, 191488)] {
            assert_eq!(smem_bytes(Pass::Sequential, dim, 2, bv), bytes, "sequential, D = {dim}, BV = {bv}");
        }
        for (dim, bv, bytes) in [(64, 32, 30720), (64, 64, 38912), (128, 32, 47104), (128, 64, 55296), (256, 32, 79872), (256, 64, 88064)] {
            assert_eq!(smem_bytes(Pass::States, dim, 2, bv), bytes, "states, D = {dim}, BV = {bv}");
        }
        for (dim, bytes) in [(64, 37888), (128, 63488), (256, 114688)] {
            assert_eq!(smem_bytes(Pass::Outputs, dim, 2, OUTPUTS_BLOCK_V), bytes, "outputs, D = {dim}");
        }
        assert_eq!(smem_bytes(Pass::Gates, 128, 2, BLOCK_V_WIDE), 0, "the gate pass has no dynamic shared memory");
    }

    #[test]
    fn every_pass_has_an_entry_for_every_supported_shape() {
        for dtype in [DType::BF16, DType::F16] {
            for dim in crate::SUPPORTED_HEAD_DIMS {
                for bv in [BLOCK_V_NARROW, BLOCK_V_WIDE] {
                    prefill_entry(Pass::Sequential, dtype, dim, bv).unwrap();
                    prefill_entry(Pass::States, dtype, dim, bv).unwrap();
                }
                prefill_entry(Pass::Outputs, dtype, dim, OUTPUTS_BLOCK_V).unwrap();
                prefill_entry(Pass::Gates, dtype, dim, BLOCK_V_NARROW).unwrap();
            }
        }
        assert!(matches!(prefill_entry(Pass::Gates, DType::F32, 128, 64), Err(Error::Unsupported { .. })));
        assert!(prefill_entry(Pass::Outputs, DType::BF16, 128, BLOCK_V_NARROW).is_err());
        assert!(matches!(prefill_entry(Pass::States, DType::F32, 128, 64), Err(Error::Unsupported { .. })));
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
