//! Launchers of `kernels/attention.cu`: the flash-attention-2 prefill kernel on tensor cores (4
//! warps of 16 queries a program, or another shape `YOCO_ATTN_PREFILL` names: [`PrefillBlock`]),
//! and for a few query rows per K/V head (decode, `q_len · group <= 16`) the split-KV decode
//! kernels (CUDA cores up to 8 rows, tensor cores for 9–16) and their combine. Shapes are checked
//! by lib.rs; this file checks what the kernels assume on top (storage type, 16-byte alignment,
//! 32-bit sizes, grid limits).

use std::ffi::c_void;

use yoco_core::cuda::cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
use yoco_core::cuda::{ceil_div, CudaDevice};
use yoco_core::{DType, Error, MemoryCategory, Result, Tensor};

use crate::{Mask, Problem};

#[allow(non_camel_case_types, non_snake_case, non_upper_case_globals, dead_code, clippy::all)]
mod sys {
    include!(concat!(env!("OUT_DIR"), "/attention_params.rs"));
    include!(concat!(env!("OUT_DIR"), "/attention_kernels.rs"));
}
use sys::{
    entry, AttentionParams, ATTN_BLOCK_N_D256, ATTN_BLOCK_N_SMALL_D, ATTN_COMBINE_THREADS, ATTN_DECODE_MAX_ROWS, ATTN_DECODE_MAX_SPLITS,
    ATTN_DECODE_MMA_BLOCK_N, ATTN_DECODE_MMA_ROWS, ATTN_DECODE_THREADS, ATTN_MASK_CAUSAL, ATTN_MASK_NONE, ATTN_MASK_WINDOW, ATTN_PREFILL_THREADS,
    ATTN_BLOCK_N_TALL_D128, ATTN_PREFILL_WARPS, ATTN_PREFILL_WGMMA_WARPS, ATTN_PREFILL_WIDE_WARPS, ATTN_SMEM_PAD, ATTN_WGMMA_SMEM_ALIGN, MODULE,
};

// SAFETY: a plain C struct (bindgen, layout-tested) passed by value as the kernels declare it.
unsafe impl DeviceRepr for AttentionParams {}

const OP: &str = "attention (cuda)";

/// Fewest keys a decode split is given: below this the combine costs more than the split saves.
const MIN_KEYS_PER_SPLIT: usize = 256;
/// Most query rows (q_len · group) that go to the split-KV decode: up to ATTN_DECODE_MAX_ROWS on
/// CUDA cores, up to ATTN_DECODE_MMA_ROWS (one m16n8k16 fragment) on tensor cores. Past that the
/// prefill kernel takes them: its 64-row query blocks would be mostly padding below, and its few
/// programs (one per query head at 4 tokens) could not fill the GPU.
const DECODE_MAX_ROWS: usize = ATTN_DECODE_MMA_ROWS as usize;
/// Fraction of the resident slots a single wave of decode programs must fill before more,
/// shorter splits in several waves are considered.
const ONE_WAVE_FILL: f64 = 0.9;

pub(crate) fn attention(q: &Tensor, k: &Tensor, v: &Tensor, p: &Problem, out: &mut Tensor) -> Result<()> {
    let dtype = q.dtype();
    if dtype == DType::F32 {
        return Err(Error::Unsupported {
            op: OP,
            what: "f32 storage on CUDA: the kernels run bf16 or f16 on tensor cores (convert with Tensor::to_dtype)".into(),
        });
    }
    let device = q.device().as_cuda(OP)?.clone();
    let d = p.dims;
    let i32_of = |what: &'static str, n: usize| i32::try_from(n).map_err(|_| Error::invalid(OP, what, format!("{n} exceeds {}", i32::MAX)));
    let mask = match p.mask {
        Mask::None => ATTN_MASK_NONE,
        Mask::Causal => ATTN_MASK_CAUSAL,
        Mask::Window(_) => ATTN_MASK_WINDOW,
    };
    // A window wider than the keys is plain causal; clamping keeps the kernel's sums in i32.
    let window = match p.mask {
        Mask::Window(w) => w.min(d.kv_len + 1),
        _ => 0,
    };
    let params = AttentionParams {
        q: q.device_ptr()?,
        k: k.device_ptr()?,
        v: v.device_ptr()?,
        out: out.device_ptr_mut()?,
        partial_o: std::ptr::null_mut(),
        partial_ml: std::ptr::null_mut(),
        kv_batch_stride: (p.kv_capacity * d.kv_heads * d.head_dim) as i64,
        batch: i32_of("batch", d.batch)?,
        q_len: i32_of("q_len", d.q_len)?,
        kv_len: i32_of("kv_len", d.kv_len)?,
        heads: i32_of("heads", d.heads)?,
        kv_heads: i32_of("kv_heads", d.kv_heads)?,
        head_dim: d.head_dim as i32,
        group: d.group() as i32,
        mask: mask as i32,
        window: i32_of("window", window)?,
        scale_log2: p.scale * std::f32::consts::LOG2_E,
        scale: p.scale,
        rows: 0,
        splits: 0,
        keys_per_split: 0,
        key_begin: 0,
    };
    // cp.async and the 16-byte packs read whole 16-byte chunks.
    for (what, ptr) in [("q", params.q), ("k", params.k), ("v", params.v), ("out", params.out as *const c_void)] {
        if !(ptr as usize).is_multiple_of(16) {
            return Err(Error::invalid(OP, what, "the buffer is not 16-byte aligned"));
        }
    }
    if d.batch > 65535 || d.heads > 65535 {
        return Err(Error::invalid(OP, "q", format!("batch {} and heads {} must each be <= 65535 (grid limits)", d.batch, d.heads)));
    }
    if d.q_len * d.group() <= DECODE_MAX_ROWS {
        decode(&device, q.device(), params, dtype, p)
    } else {
        prefill(&device, params, dtype, p)
    }
}

/// The CUDA prefill kernel's shape of program, for head dims 64 and 128 (256 always takes
/// [`PrefillBlock::Default`]): which is fastest is for a GPU run to say (`scripts/gpu-check.sh`
/// measures all four), `YOCO_ATTN_PREFILL` chooses until then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PrefillBlock {
    /// 4 warps of 16 queries (64 a program), Q's fragments in registers.
    Default,
    /// 8 warps of 16 queries (128 a program): each K and V tile copied once for twice the rows.
    Wide,
    /// 4 warps of 32 queries (128 a program): each shared-memory load of K and V feeds two
    /// 16-row m-tiles, as flash-attention-2 runs D = 128; 32-key tiles at D = 128.
    Tall,
    /// 2 warpgroups of 64 queries (128 a program) multiplying with Hopper's wgmma (sm_90a) from
    /// swizzled shared memory, no ldmatrix: Q Kᵀ a 64-key tile per instruction, P·V 16 keys.
    Wgmma,
}

impl PrefillBlock {
    const ALL: [PrefillBlock; 4] = [PrefillBlock::Default, PrefillBlock::Wide, PrefillBlock::Tall, PrefillBlock::Wgmma];

    /// Its `YOCO_ATTN_PREFILL` value.
    fn name(self) -> &'static str {
        match self {
            PrefillBlock::Default => "default",
            PrefillBlock::Wide => "wide",
            PrefillBlock::Tall => "tall",
            PrefillBlock::Wgmma => "wgmma",
        }
    }
}

/// A prefill launch's kernel: its entry, queries and threads per program, and dynamic shared
/// memory (which the keys per tile size).
struct PrefillKernel {
    name: &'static str,
    block_m: usize,
    threads: u32,
    smem: usize,
}

fn prefill_kernel(d: usize, dtype: DType, block: PrefillBlock) -> Result<PrefillKernel> {
    use PrefillBlock::{Default, Tall, Wgmma, Wide};
    let name = match (d, dtype, block) {
        (64, DType::BF16, Default) => entry::ATTENTION_PREFILL_D64_BF16,
        (128, DType::BF16, Default) => entry::ATTENTION_PREFILL_D128_BF16,
        (256, DType::BF16, Default) => entry::ATTENTION_PREFILL_D256_BF16,
        (64, DType::F16, Default) => entry::ATTENTION_PREFILL_D64_F16,
        (128, DType::F16, Default) => entry::ATTENTION_PREFILL_D128_F16,
        (256, DType::F16, Default) => entry::ATTENTION_PREFILL_D256_F16,
        (64, DType::BF16, Wide) => entry::ATTENTION_PREFILL_WIDE_D64_BF16,
        (128, DType::BF16, Wide) => entry::ATTENTION_PREFILL_WIDE_D128_BF16,
        (64, DType::F16, Wide) => entry::ATTENTION_PREFILL_WIDE_D64_F16,
        (128, DType::F16, Wide) => entry::ATTENTION_PREFILL_WIDE_D128_F16,
        (64, DType::BF16, Tall) => entry::ATTENTION_PREFILL_TALL_D64_BF16,
        (128, DType::BF16, Tall) => entry::ATTENTION_PREFILL_TALL_D128_BF16,
        (64, DType::F16, Tall) => entry::ATTENTION_PREFILL_TALL_D64_F16,
        (128, DType::F16, Tall) => entry::ATTENTION_PREFILL_TALL_D128_F16,
        (64, DType::BF16, Wgmma) => entry::ATTENTION_PREFILL_WGMMA_D64_BF16,
        (128, DType::BF16, Wgmma) => entry::ATTENTION_PREFILL_WGMMA_D128_BF16,
        (64, DType::F16, Wgmma) => entry::ATTENTION_PREFILL_WGMMA_D64_F16,
        (128, DType::F16, Wgmma) => entry::ATTENTION_PREFILL_WGMMA_D128_F16,
        _ => return Err(Error::Unsupported { op: OP, what: format!("head dim {d} in {dtype} ({block:?} prefill)") }),
    };
    let (warps, rows_per_warp) = match block {
        Default => (ATTN_PREFILL_WARPS, 16),
        Wide => (ATTN_PREFILL_WIDE_WARPS, 16),
        Tall => (ATTN_PREFILL_WARPS, 32),
        Wgmma => (ATTN_PREFILL_WGMMA_WARPS, 16),
    };
    let block_n = match (d, block) {
        (256, _) => ATTN_BLOCK_N_D256,
        (128, Tall) => ATTN_BLOCK_N_TALL_D128,
        _ => ATTN_BLOCK_N_SMALL_D,
    };
    let (block_m, block_n) = (rows_per_warp * warps as usize, block_n as usize);
    // Q tile + double-buffered K and V tiles: rows padded by ATTN_SMEM_PAD elements, or (wgmma)
    // swizzled unpadded from a 1024-byte boundary the kernel finds in ATTN_WGMMA_SMEM_ALIGN more.
    let bytes_per_column = (block_m + 4 * block_n) * dtype.size_in_bytes();
    let smem = match block {
        Wgmma => bytes_per_column * d + ATTN_WGMMA_SMEM_ALIGN as usize,
        _ => bytes_per_column * (d + ATTN_SMEM_PAD as usize),
    };
    Ok(PrefillKernel { name, block_m, threads: 32 * warps, smem })
}

/// The prefill program shape `YOCO_ATTN_PREFILL` asks for (`default`, `wide`, `tall` or `wgmma`; unset is
/// `default`), read once per process; head dim 256 takes the default whatever it says. Anything
/// else is an error, so that a comparison cannot silently run the default twice.
fn prefill_block(head_dim: usize) -> Result<PrefillBlock> {
    static ASKED: std::sync::OnceLock<Option<std::ffi::OsString>> = std::sync::OnceLock::new();
    let block = parse_prefill_block(ASKED.get_or_init(|| std::env::var_os("YOCO_ATTN_PREFILL")).as_deref())?;
    Ok(if head_dim == 256 { PrefillBlock::Default } else { block })
}

/// The name of the shape [`prefill_block`] gives head dims 64 and 128: `default`, `wide`, `tall` or `wgmma`.
pub(crate) fn prefill_shape_name() -> Result<&'static str> {
    Ok(prefill_block(64)?.name())
}

/// Whether a GPU of compute capability `cc` runs `block`: the wgmma shape's cubin is sm_90a, and
/// its PTX (what another GPU would JIT) a trap.
fn runs_on(block: PrefillBlock, cc: (i32, i32)) -> Result<()> {
    if block == PrefillBlock::Wgmma && cc != (9, 0) {
        return Err(Error::Unsupported { op: OP, what: format!("the wgmma prefill (YOCO_ATTN_PREFILL=wgmma) on sm_{}{}: it runs on sm_90 (Hopper) only", cc.0, cc.1) });
    }
    Ok(())
}

/// A `YOCO_ATTN_PREFILL` value: unset, `default`, `wide`, `tall` or `wgmma`.
fn parse_prefill_block(asked: Option<&std::ffi::OsStr>) -> Result<PrefillBlock> {
    let Some(asked) = asked else { return Ok(PrefillBlock::Default) };
    PrefillBlock::ALL
        .into_iter()
        .find(|block| asked.to_str() == Some(block.name()))
        .ok_or_else(|| {
            let names: Vec<&str> = PrefillBlock::ALL.iter().map(|block| block.name()).collect();
            Error::invalid(OP, "YOCO_ATTN_PREFILL", format!("{asked:?}: expected one of {}", names.join(", ")))
        })
}

fn prefill(device: &CudaDevice, params: AttentionParams, dtype: DType, p: &Problem) -> Result<()> {
    let d = p.dims.head_dim;
    let block = prefill_block(d)?;
    runs_on(block, device.compute_capability())?;
    let PrefillKernel { name, block_m, threads, smem } = prefill_kernel(d, dtype, block)?;
    let func = device.function_with_dynamic_smem(&MODULE, name, smem)?;
    let blocks = ceil_div(p.dims.q_len, block_m);
    let cfg = LaunchConfig {
        grid_dim: (blocks as u32, p.dims.heads as u32, p.dims.batch as u32),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: smem as u32,
    };
    let mut launch = device.stream().launch_builder(&func);
    launch.arg(&params);
    // SAFETY: q, k, v and out hold the shapes lib.rs checked ([B, Nq, H, D], [B, capacity,
    // H_kv, D] read below kv_len), 16-byte aligned (checked above); the grid covers every
    // (query block, head, batch) once, with the block size and dynamic shared memory the
    // kernel is written for (the attribute above allows it).
    unsafe { launch.launch(cfg) }.map_err(|e| Error::cuda(OP, e))?;
    Ok(())
}

/// A decode launch's kernel: its entry, the query rows each program takes, the keys of one block
/// iteration (a split is a whole number of them), its block size and dynamic shared memory.
struct DecodeKernel {
    name: &'static str,
    rows_per_program: usize,
    step: usize,
    threads: u32,
    smem: usize,
}

/// The decode kernel for `rows` (≤ DECODE_MAX_ROWS) query rows per K/V head: on CUDA cores up to
/// ATTN_DECODE_MAX_ROWS (decode_split), on tensor cores past that (decode_mma).
fn decode_kernel(d: usize, rows: usize, dtype: DType) -> Result<DecodeKernel> {
    if rows > ATTN_DECODE_MAX_ROWS as usize {
        let name = match (dtype, d) {
            (DType::BF16, 64) => entry::ATTENTION_DECODE_MMA_D64_BF16,
            (DType::BF16, 128) => entry::ATTENTION_DECODE_MMA_D128_BF16,
            (DType::BF16, 256) => entry::ATTENTION_DECODE_MMA_D256_BF16,
            (DType::F16, 64) => entry::ATTENTION_DECODE_MMA_D64_F16,
            (DType::F16, 128) => entry::ATTENTION_DECODE_MMA_D128_F16,
            (DType::F16, 256) => entry::ATTENTION_DECODE_MMA_D256_F16,
            _ => return Err(Error::Unsupported { op: OP, what: format!("decode of {rows} rows, head dim {d}, in {dtype}") }),
        };
        // Q's 16 rows and double-buffered K and V tiles, rows padded by ATTN_SMEM_PAD elements.
        let block_n = ATTN_DECODE_MMA_BLOCK_N as usize;
        let smem = (ATTN_DECODE_MMA_ROWS as usize + 4 * block_n) * (d + ATTN_SMEM_PAD as usize) * dtype.size_in_bytes();
        return Ok(DecodeKernel { name, rows_per_program: ATTN_DECODE_MMA_ROWS as usize, step: block_n, threads: ATTN_PREFILL_THREADS, smem });
    }
    let (name, rows_per_program) = decode_entry(d, rows, dtype)?;
    // Keys per block iteration, as decode_split computes them.
    let streams = (ATTN_DECODE_THREADS as usize / 32) * (32 / (d / 8));
    let step = streams * if rows_per_program >= 8 { 2 } else { 4 };
    Ok(DecodeKernel { name, rows_per_program, step, threads: ATTN_DECODE_THREADS, smem: 0 })
}

/// The CUDA-core decode kernel for `rows` (≤ ATTN_DECODE_MAX_ROWS) query rows per K/V head: the
/// smallest instantiation (1, 2, 3, 4 or 8 rows per program) that holds them; with its rows per
/// program.
fn decode_entry(d: usize, rows: usize, dtype: DType) -> Result<(&'static str, usize)> {
    let r = match rows {
        0..=4 => rows.max(1),
        _ => ATTN_DECODE_MAX_ROWS as usize,
    };
    let name = match (dtype, d, r) {
        (DType::BF16, 64, 1) => entry::ATTENTION_DECODE_D64_R1_BF16,
        (DType::BF16, 64, 2) => entry::ATTENTION_DECODE_D64_R2_BF16,
        (DType::BF16, 64, 3) => entry::ATTENTION_DECODE_D64_R3_BF16,
        (DType::BF16, 64, 4) => entry::ATTENTION_DECODE_D64_R4_BF16,
        (DType::BF16, 64, 8) => entry::ATTENTION_DECODE_D64_R8_BF16,
        (DType::BF16, 128, 1) => entry::ATTENTION_DECODE_D128_R1_BF16,
        (DType::BF16, 128, 2) => entry::ATTENTION_DECODE_D128_R2_BF16,
        (DType::BF16, 128, 3) => entry::ATTENTION_DECODE_D128_R3_BF16,
        (DType::BF16, 128, 4) => entry::ATTENTION_DECODE_D128_R4_BF16,
        (DType::BF16, 128, 8) => entry::ATTENTION_DECODE_D128_R8_BF16,
        (DType::BF16, 256, 1) => entry::ATTENTION_DECODE_D256_R1_BF16,
        (DType::BF16, 256, 2) => entry::ATTENTION_DECODE_D256_R2_BF16,
        (DType::BF16, 256, 3) => entry::ATTENTION_DECODE_D256_R3_BF16,
        (DType::BF16, 256, 4) => entry::ATTENTION_DECODE_D256_R4_BF16,
        (DType::BF16, 256, 8) => entry::ATTENTION_DECODE_D256_R8_BF16,
        (DType::F16, 64, 1) => entry::ATTENTION_DECODE_D64_R1_F16,
        (DType::F16, 64, 2) => entry::ATTENTION_DECODE_D64_R2_F16,
        (DType::F16, 64, 3) => entry::ATTENTION_DECODE_D64_R3_F16,
        (DType::F16, 64, 4) => entry::ATTENTION_DECODE_D64_R4_F16,
        (DType::F16, 64, 8) => entry::ATTENTION_DECODE_D64_R8_F16,
        (DType::F16, 128, 1) => entry::ATTENTION_DECODE_D128_R1_F16,
        (DType::F16, 128, 2) => entry::ATTENTION_DECODE_D128_R2_F16,
        (DType::F16, 128, 3) => entry::ATTENTION_DECODE_D128_R3_F16,
        (DType::F16, 128, 4) => entry::ATTENTION_DECODE_D128_R4_F16,
        (DType::F16, 128, 8) => entry::ATTENTION_DECODE_D128_R8_F16,
        (DType::F16, 256, 1) => entry::ATTENTION_DECODE_D256_R1_F16,
        (DType::F16, 256, 2) => entry::ATTENTION_DECODE_D256_R2_F16,
        (DType::F16, 256, 3) => entry::ATTENTION_DECODE_D256_R3_F16,
        (DType::F16, 256, 4) => entry::ATTENTION_DECODE_D256_R4_F16,
        (DType::F16, 256, 8) => entry::ATTENTION_DECODE_D256_R8_F16,
        _ => return Err(Error::Unsupported { op: OP, what: format!("decode of {rows} rows, head dim {d}, in {dtype}") }),
    };
    Ok((name, r))
}

/// How the keys are cut: (splits, keys per split), for `programs_per_split` programs per split
/// (batch × K/V heads × row chunks) on a GPU that holds `slots` of them at once (blocks per SM ×
/// SMs). Every program streams the same number of keys, so a wave that is only partly full (528
/// programs on 396 slots: a second wave of 132, one per SM) runs at a fraction of the bandwidth
/// for as long as a full one. So: as many splits as fit in one wave; if that wave would be less
/// than ONE_WAVE_FILL full (more programs per split than a few), the split count whose whole
/// waves come closest to full. No split under MIN_KEYS_PER_SPLIT keys or past
/// ATTN_DECODE_MAX_SPLITS, and each a whole number of the kernel's block iterations (`step` keys).
pub(crate) fn plan_splits(span: usize, programs_per_split: usize, slots: usize, step: usize) -> (usize, usize) {
    let pps = programs_per_split.max(1);
    let slots = slots.max(1);
    let most = span.div_ceil(MIN_KEYS_PER_SPLIT).clamp(1, ATTN_DECODE_MAX_SPLITS as usize);
    let fill = |s: usize| (pps * s) as f64 / ((pps * s).div_ceil(slots) * slots) as f64;
    let mut splits = (slots / pps).clamp(1, most);
    if fill(splits) < ONE_WAVE_FILL {
        // Up to 8 waves; the first of the fullest (fewer splits on a tie).
        for s in splits + 1..=most.min(8 * slots / pps + 1) {
            if fill(s) > fill(splits) + 1e-9 {
                splits = s;
            }
        }
    }
    let keys_per_split = span.div_ceil(splits).div_ceil(step) * step;
    (span.div_ceil(keys_per_split), keys_per_split)
}

fn decode(device: &CudaDevice, on: &yoco_core::Device, mut params: AttentionParams, dtype: DType, p: &Problem) -> Result<()> {
    let dims = p.dims;
    let rows = dims.q_len * dims.group();
    let kernel = decode_kernel(dims.head_dim, rows, dtype)?;
    let chunks = rows.div_ceil(kernel.rows_per_program);
    // Keys any row sees: the masks' ranges are monotone in the query.
    let begin = p.mask.key_range(0, dims.q_len, dims.kv_len).0;
    let end = p.mask.key_range(dims.q_len - 1, dims.q_len, dims.kv_len).1;
    let func = device.function_with_dynamic_smem(&MODULE, kernel.name, kernel.smem)?;
    let slots = device.resident_blocks(&func, kernel.threads, kernel.smem)?;
    let (splits, keys_per_split) = plan_splits(end - begin, dims.batch * dims.kv_heads * chunks, slots, kernel.step);
    let programs = splits * chunks;
    if programs > i32::MAX as usize || dims.kv_heads > 65535 {
        return Err(Error::invalid(OP, "k", format!("{programs} decode programs per K/V head and {} K/V heads exceed the grid", dims.kv_heads)));
    }

    // One buffer for both partials: [B, H_kv, splits, rows, D] then [.., 2], every slot written
    // once by the decode launch (below), so not zeroed first.
    let partial_rows = dims.batch * dims.kv_heads * splits * rows;
    let mut partials = Tensor::for_overwrite([partial_rows * (dims.head_dim + 2)], DType::F32, on, MemoryCategory::Activations)?;
    params.partial_o = partials.device_ptr_mut()? as *mut f32;
    // A device address, never dereferenced here: plain address arithmetic within the buffer just
    // allocated (partial_rows * (D + 2) f32).
    params.partial_ml = params.partial_o.wrapping_add(partial_rows * dims.head_dim);
    params.rows = rows as i32;
    params.splits = splits as i32;
    params.keys_per_split = keys_per_split as i32;
    params.key_begin = begin as i32;

    let cfg = LaunchConfig {
        grid_dim: (programs as u32, dims.kv_heads as u32, dims.batch as u32),
        block_dim: (kernel.threads, 1, 1),
        shared_mem_bytes: kernel.smem as u32,
    };
    let mut launch = device.stream().launch_builder(&func);
    launch.arg(&params);
    // SAFETY: as for prefill, plus: partial_o and partial_ml hold [B, H_kv, splits, rows, D] and
    // [.., 2] f32, exactly what the grid (splits x chunks, H_kv, B) writes, each slot once (program
    // (split, chunk) writes rows chunk*R .. chunk*R + R of its split, R = rows_per_program, the
    // instantiation's row count; the tensor-core kernel takes all rows, ≤ 16, in one chunk); the
    // block size and dynamic shared memory are the kernel's (the attribute above allows it).
    unsafe { launch.launch(cfg) }.map_err(|e| Error::cuda(OP, e))?;

    let combine = device.function(
        &MODULE,
        match dtype {
            DType::BF16 => entry::ATTENTION_COMBINE_BF16,
            _ => entry::ATTENTION_COMBINE_F16,
        },
    )?;
    let cfg = LaunchConfig { grid_dim: (rows as u32, dims.kv_heads as u32, dims.batch as u32), block_dim: (ATTN_COMBINE_THREADS, 1, 1), shared_mem_bytes: 0 };
    let mut launch = device.stream().launch_builder(&combine);
    launch.arg(&params);
    // SAFETY: reads the partials the decode launch above wrote (same stream, so ordered after
    // it) and writes each output row (b, i, h) once: one program per (row, K/V head, batch);
    // splits <= ATTN_DECODE_MAX_SPLITS (plan_splits), the weights the kernel keeps per split.
    unsafe { launch.launch(cfg) }.map_err(|e| Error::cuda(OP, e))?;
    // The partials are freed stream-ordered, after the combine has read them.
    drop(partials);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{decode_kernel, parse_prefill_block, plan_splits, prefill_kernel, runs_on, DType, PrefillBlock, ATTN_DECODE_MAX_SPLITS, DECODE_MAX_ROWS, MIN_KEYS_PER_SPLIT};

    #[test]
    fn prefill_blocks_match_their_entries() {
        // Shared memory of a padded layout: Q's rows and double-buffered K and V tiles of 2-byte
        // elements, each row 8 elements (16 bytes) longer than the head.
        let padded = |block_m: usize, block_n: usize, d: usize| (block_m + 4 * block_n) * (d + 8) * 2;
        for (dtype, suffix) in [(DType::BF16, "bf16"), (DType::F16, "f16")] {
            for d in [64, 128, 256] {
                let k = prefill_kernel(d, dtype, PrefillBlock::Default).unwrap();
                assert_eq!(k.name, format!("attention_prefill_d{d}_{suffix}"));
                assert_eq!((k.block_m, k.threads, k.smem), (64, 128, padded(64, if d == 256 { 32 } else { 64 }, d)));
            }
            for d in [64, 128] {
                let k = prefill_kernel(d, dtype, PrefillBlock::Wide).unwrap();
                assert_eq!(k.name, format!("attention_prefill_wide_d{d}_{suffix}"));
                assert_eq!((k.block_m, k.threads, k.smem), (128, 256, padded(128, 64, d)));
                let k = prefill_kernel(d, dtype, PrefillBlock::Tall).unwrap();
                assert_eq!(k.name, format!("attention_prefill_tall_d{d}_{suffix}"));
                assert_eq!((k.block_m, k.threads, k.smem), (128, 128, padded(128, if d == 128 { 32 } else { 64 }, d)));
                let k = prefill_kernel(d, dtype, PrefillBlock::Wgmma).unwrap();
                assert_eq!(k.name, format!("attention_prefill_wgmma_d{d}_{suffix}"));
                // Unpadded tiles (Q 128 rows, K and V 2 x 64 keys) and the 1 KiB the kernel aligns them in.
                assert_eq!((k.block_m, k.threads, k.smem), (128, 256, 384 * d * 2 + 1024));
            }
            for block in [PrefillBlock::Wide, PrefillBlock::Tall, PrefillBlock::Wgmma] {
                assert!(prefill_kernel(256, dtype, block).is_err(), "{block:?}");
            }
        }
    }

    #[test]
    fn wgmma_runs_on_hopper_only() {
        for block in PrefillBlock::ALL {
            assert!(runs_on(block, (9, 0)).is_ok(), "{block:?}");
            assert_eq!(runs_on(block, (8, 9)).is_ok(), block != PrefillBlock::Wgmma, "{block:?}");
            assert_eq!(runs_on(block, (10, 0)).is_ok(), block != PrefillBlock::Wgmma, "{block:?}");
        }
    }

    #[test]
    fn prefill_block_values() {
        use std::ffi::OsStr;
        assert_eq!(parse_prefill_block(None).unwrap(), PrefillBlock::Default);
        for (value, block) in [("default", PrefillBlock::Default), ("wide", PrefillBlock::Wide), ("tall", PrefillBlock::Tall), ("wgmma", PrefillBlock::Wgmma)] {
            assert_eq!(parse_prefill_block(Some(OsStr::new(value))).unwrap(), block);
        }
        for bad in ["", "Wide", "8", "tall "] {
            assert!(parse_prefill_block(Some(OsStr::new(bad))).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn decode_rows_pick_their_kernel() {
        for rows in 1..=DECODE_MAX_ROWS {
            let k = decode_kernel(128, rows, DType::BF16).unwrap();
            if rows <= 8 {
                // CUDA cores: the smallest instantiation holding every row, one program per split.
                assert!(k.name.contains("_r") && k.rows_per_program >= rows && k.smem == 0, "{rows} rows: {}", k.name);
                assert_eq!(k.rows_per_program, if rows <= 4 { rows } else { 8 });
            } else {
                // Tensor cores: all rows in one 16-row fragment, 64-key tiles, Q and two K/V buffers
                // of 64 rows each, every row padded to 136 elements.
                assert!(k.name.contains("mma") && k.rows_per_program == 16 && k.step == 64, "{rows} rows: {}", k.name);
                assert_eq!(k.smem, (16 + 4 * 64) * 136 * 2);
            }
        }
        assert!(decode_kernel(96, 12, DType::BF16).is_err());
    }

    fn check_cover(span: usize, (splits, kps): (usize, usize), step: usize) {
        assert!(kps % step == 0 && splits * kps >= span && (splits - 1) * kps < span, "span {span}: {splits} x {kps}");
        assert!(splits <= ATTN_DECODE_MAX_SPLITS as usize);
    }

    #[test]
    fn splits_fill_one_wave_and_cover_the_keys() {
        // 128K keys, batch 1, 8 K/V heads, 132 SMs x 4 programs: 66 splits, exactly one full wave.
        let (splits, kps) = plan_splits(131_072, 8, 528, 32);
        check_cover(131_072, (splits, kps), 32);
        assert_eq!(splits, 66);
        // Batch 8 at 32K: 8 splits, 512 of the 528 slots, one wave.
        let (splits, kps) = plan_splits(32_768, 64, 528, 32);
        check_cover(32_768, (splits, kps), 32);
        assert_eq!(splits, 8);
        // Three resident programs per SM (396 slots): never the 1.33 waves of 66 splits.
        let (splits, _) = plan_splits(131_072, 8, 396, 32);
        assert!(splits * 8 <= 396 && splits * 8 >= 380, "{splits}");
        // Short caches are not cut below MIN_KEYS_PER_SPLIT.
        assert_eq!(plan_splits(300, 1, 528, 64).0, 2);
        assert_eq!(plan_splits(1, 1, 528, 64), (1, 64));
    }

    #[test]
    fn waves_stay_nearly_full() {
        for pps in [1, 2, 3, 8, 16, 24, 64, 100, 300, 527, 529, 1000, 5000] {
            for span in [1, 255, 256, 257, 4096, 32_768, 65_537, 131_072, 1 << 20] {
                let (splits, kps) = plan_splits(span, pps, 528, 16);
                check_cover(span, (splits, kps), 16);
                let fill = |s: usize| (pps * s) as f64 / ((pps * s).div_ceil(528) * 528) as f64;
                // Either the waves are nearly full, or no split count the keys allow would fill them.
                let most = span.div_ceil(MIN_KEYS_PER_SPLIT).min(ATTN_DECODE_MAX_SPLITS as usize);
                let best = (1..=most).map(fill).fold(0.0, f64::max);
                assert!(fill(splits) >= 0.85 || best < 0.85, "pps {pps} span {span}: {splits} splits fill {:.2} (best {best:.2})", fill(splits));
            }
        }
    }
}
