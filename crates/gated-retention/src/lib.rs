//! Gated retention (gRet), YOCO's default self-decoder token mixer: linear attention with a
//! data-dependent scalar decay per head and token, whose cache is a fixed `D × D` state per head
//! instead of a K/V cache that grows with the context.
//!
//! `S_n = γ_n S_{n−1} + (s·k_n)ᵀ v_n`, `o_n = q_n S_n`, with `log γ ≤ 0` given per (token, head)
//! and `s` the key scale (1/√D by default). Prefill runs the chunkwise form (intra-chunk as matrix
//! products, the state carried between chunks); decode runs the recurrent step in place.
//!
//! Layout: q, k, v, o `[batch, seq, heads, dim]` (any storage dtype on the CPU; bf16/f16 on CUDA,
//! the tensor-core kernel's inputs); log-decay `[batch, seq, heads]` f32 (gates stay in f32 and
//! in log space, so no exponent is ever positive); state `[batch, heads, dim, dim]` f32.
//!
//! The q/k/v/g/γ projections, RoPE, per-head norm and output gate around this op live with the
//! model (the root crate): they are GEMMs and elementwise work shared with the attention layers,
//! and keeping them there keeps this crate free of sibling dependencies.
//!
//! Rooms: this file is the API; [`mod@reference`] the f64 oracle in three forms; [`cpu`] the fast
//! chunkwise path and the decode step; `cuda` the launchers of `kernels/gated_retention.cu`;
//! [`check`] the validation shared by the tests and `yoco check`.

pub mod check;
pub mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
pub mod reference;

use yoco_core::{DType, Device, Error, MemoryCategory, Result, Tensor};

/// Head dims the kernels are built for.
pub const SUPPORTED_HEAD_DIMS: [usize; 3] = [64, 128, 256];

/// Chunk length of the chunkwise prefill when none is given (flash-linear-attention's).
pub const DEFAULT_CHUNK: usize = 64;

/// The longest chunk the CPU chunkwise form takes. Each (sequence, head) task keeps a chunk's
/// scores, `chunk²` f32 (4 MiB at 1024), so a chunk as long as a long sequence would allocate
/// gigabytes per task (or abort the process when it cannot); past this the chunkwise form's point,
/// chunks much shorter than the sequence, is gone anyway (the reference's `parallel` form is
/// the whole-sequence one).
pub const MAX_CHUNK: usize = 1024;

/// The chunkwise forms (CPU and CUDA) take each log-decay as at least this. Below it a decay is
/// already 0 to f32 (e^−128 is under the smallest subnormal), so the outputs do not change;
/// what it saves is the chunk's cumulative sum of gates, which a gate near f32's lowest value
/// (−3e38 is a valid log-decay) would take to −∞ (and (−∞) − (−∞) is NaN), or in f64 to a
/// magnitude whose rounding swallows the other gates' differences. The recurrent step takes e^g
/// of each gate alone and needs no floor.
pub const GATE_FLOOR: f32 = -128.0;

/// f32 values in a chunk's gate record, which the CUDA parallel schedule keeps for every chunk
/// during a call: the gates' cumulative sums in the chunk (as high and low f32 parts) and two
/// per-token decay factors, one chunk of each.
const GATE_RECORD_FLOATS: usize = 4 * DEFAULT_CHUNK;

/// Bytes of the transient buffers the CUDA [`ChunkSchedule::Parallel`] allocates for one call of
/// `seq` tokens, freed when it returns: per chunk, head and sequence, the chunk's incoming state
/// in the storage type (`D²·elem`) and its gate record (1 KiB).
pub fn parallel_schedule_bytes(batch: usize, seq: usize, heads: usize, dim: usize, elem: usize) -> usize {
    batch * heads * seq.div_ceil(DEFAULT_CHUNK) * (dim * dim * elem + GATE_RECORD_FLOATS * 4)
}

/// How to run the op.
#[derive(Clone, Copy, Debug)]
pub struct RetentionOptions {
    /// Multiplies k; `None` for 1/√D.
    pub scale: Option<f32>,
    /// Chunk length of the chunkwise form (CPU: 1 to [`MAX_CHUNK`]; CUDA: 64).
    pub chunk: usize,
    /// How the CUDA prefill orders its work over the chunks. Both schedules give the same
    /// results (the same products, rounded at the same places); the CPU path always walks the
    /// chunks in order per (sequence, head), which its few cores keep busy.
    pub schedule: ChunkSchedule,
    /// Refuse log-decays that are positive or not finite with a typed error (the default). That
    /// reads every gate: on CUDA a copy to the host and a wait for the device, on every call (on
    /// every decode step of every layer, in a model). A caller whose gates are ≤ 0 by
    /// construction, as YOCO's `logsigmoid(z) / 16`, and that checks its results for non-finite
    /// values may turn it off: a bad gate then shows up as inf/NaN in `o` and the state.
    pub check_gates: bool,
}

impl Default for RetentionOptions {
    fn default() -> Self {
        RetentionOptions { scale: None, chunk: DEFAULT_CHUNK, schedule: ChunkSchedule::default(), check_gates: true }
    }
}

/// The order of the CUDA prefill's work over the chunks. The state is a recurrence across chunks,
/// so some of the work is sequential either way; the schedules differ in how much.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChunkSchedule {
    /// Flash-linear-attention's schedule: every chunk's gates scanned at once, the chunks'
    /// incoming states in order (only the state update is sequential), then every chunk's outputs
    /// at once. Takes transient buffers of those states in the storage type and of the scanned
    /// gates, `2·D²` + 1,024 bytes per chunk, head and sequence in bf16 (26 MB for 2,048 tokens ×
    /// 24 heads at D = 128), charged as activations ([`parallel_schedule_bytes`]).
    #[default]
    Parallel,
    /// One pass carrying the state through the chunks, all of a chunk's work on the sequential
    /// chain; no buffer. Slower wherever there are many chunks and few heads.
    Sequential,
}

impl ChunkSchedule {
    /// The environment variable [`ChunkSchedule::from_env`] reads.
    pub const ENV: &'static str = "YOCO_GRET_SCHEDULE";

    /// The schedule's name in labels: "parallel" or "sequential".
    pub fn name(self) -> &'static str {
        match self {
            ChunkSchedule::Parallel => "parallel",
            ChunkSchedule::Sequential => "sequential",
        }
    }

    /// The schedule named `name` ("parallel" or "sequential").
    pub fn parse(name: &str) -> Result<ChunkSchedule> {
        Self::parse_as("ChunkSchedule::parse", "schedule", name)
    }

    fn parse_as(op: &'static str, what: &'static str, name: &str) -> Result<ChunkSchedule> {
        [ChunkSchedule::Parallel, ChunkSchedule::Sequential]
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| Error::invalid(op, what, format!("{name:?}: expected \"parallel\" or \"sequential\"")))
    }

    /// The schedule the models run: `YOCO_GRET_SCHEDULE` if set, else the default (parallel).
    /// A GPU machine has no Rust toolchain, so this is how a run there switches to the one-pass
    /// kernel without a rebuild.
    pub fn from_env() -> Result<ChunkSchedule> {
        match std::env::var(Self::ENV) {
            Ok(name) => Self::parse_as("ChunkSchedule::from_env", Self::ENV, &name),
            Err(_) => Ok(ChunkSchedule::default()),
        }
    }
}

/// The sizes of one call, read off q and checked against everything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub dim: usize,
}

/// Prefill (or any span of tokens): returns `(o, state_out)`, `o` like `q`, `state_out`
/// `[batch, heads, dim, dim]` f32 charged as recurrent state. `state` is the incoming state
/// (zeros if `None`), so a long prompt can be fed in pieces.
pub fn gated_retention(q: &Tensor, k: &Tensor, v: &Tensor, log_decay: &Tensor, state: Option<&Tensor>, options: &RetentionOptions) -> Result<(Tensor, Tensor)> {
    let (shape, scale) = validate_span(q, k, v, log_decay, state, options)?;
    let state_dims = [shape.batch, shape.heads, shape.dim, shape.dim];
    let mut o = Tensor::for_overwrite(q.shape().clone(), q.dtype(), q.device(), MemoryCategory::Activations)?;
    let mut state_out = match state {
        Some(s) => s.to_device(q.device())?,
        None => Tensor::zeros(state_dims, DType::F32, q.device(), MemoryCategory::RecurrentState)?,
    };
    state_out.set_category(MemoryCategory::RecurrentState);
    match q.device() {
        Device::Cpu(_) => cpu::chunkwise(q, k, v, log_decay, &mut state_out, &mut o, shape, scale, options.chunk)?,
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => cuda::chunkwise(q, k, v, log_decay, &mut state_out, &mut o, shape, scale, options.schedule)?,
    }
    Ok((o, state_out))
}

/// One decode step per sequence (q, k, v `[batch, 1, heads, dim]`, log-decay `[batch, 1,
/// heads]`): updates `state` in place (`S ← γ S + kᵀ v`) and returns `o = q S`. Of `options`, the
/// step reads `scale` and `check_gates` (it has no chunks).
pub fn gated_retention_step(q: &Tensor, k: &Tensor, v: &Tensor, log_decay: &Tensor, state: &mut Tensor, options: &RetentionOptions) -> Result<Tensor> {
    let (shape, scale) = validate_step(q, k, v, log_decay, state, options)?;
    let mut o = Tensor::for_overwrite(q.shape().clone(), q.dtype(), q.device(), MemoryCategory::Activations)?;
    match q.device() {
        Device::Cpu(_) => cpu::step(q, k, v, log_decay, state, &mut o, shape, scale)?,
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => cuda::step(q, k, v, log_decay, state, &mut o, shape, scale)?,
    }
    Ok(o)
}

/// Every check [`gated_retention`] makes of its inputs (the gates' values too, unless
/// `options.check_gates` is off), without running it: for callers that compute the result
/// another way (the models' reference backend) and must refuse what the fast path refuses, with
/// the same error.
pub fn check_gated_retention(q: &Tensor, k: &Tensor, v: &Tensor, log_decay: &Tensor, state: Option<&Tensor>, options: &RetentionOptions) -> Result<()> {
    validate_span(q, k, v, log_decay, state, options).map(|_| ())
}

/// Every check [`gated_retention_step`] makes of its inputs, without running it (for the same
/// callers as [`check_gated_retention`]).
pub fn check_gated_retention_step(q: &Tensor, k: &Tensor, v: &Tensor, log_decay: &Tensor, state: &Tensor, options: &RetentionOptions) -> Result<()> {
    validate_step(q, k, v, log_decay, state, options).map(|_| ())
}

/// Every check of a [`gated_retention`] call; returns the sizes and the key scale.
fn validate_span(q: &Tensor, k: &Tensor, v: &Tensor, log_decay: &Tensor, state: Option<&Tensor>, options: &RetentionOptions) -> Result<(RetentionShape, f32)> {
    const OP: &str = "gated_retention";
    let shape = validate(OP, q, k, v, log_decay, options)?;
    if options.chunk == 0 || options.chunk > MAX_CHUNK {
        return Err(Error::invalid(OP, "chunk", format!("{}: expected a chunk length of 1 to {MAX_CHUNK}", options.chunk)));
    }
    #[cfg(feature = "cuda")]
    if !q.device().is_cpu() && options.chunk != cuda::CHUNK {
        return Err(Error::Unsupported { op: OP, what: format!("chunk {} on CUDA: the kernel's chunk is {}", options.chunk, cuda::CHUNK) });
    }
    if let Some(s) = state {
        expect_state(OP, s, q, &[shape.batch, shape.heads, shape.dim, shape.dim])?;
    }
    Ok((shape, key_scale(OP, options.scale, shape.dim)?))
}

/// Every check of a [`gated_retention_step`] call; returns the sizes and the key scale.
fn validate_step(q: &Tensor, k: &Tensor, v: &Tensor, log_decay: &Tensor, state: &Tensor, options: &RetentionOptions) -> Result<(RetentionShape, f32)> {
    const OP: &str = "gated_retention_step";
    let shape = validate(OP, q, k, v, log_decay, options)?;
    if shape.seq != 1 {
        return Err(Error::ShapeMismatch { op: OP, what: "q", expected: "one token per sequence ([batch, 1, heads, dim])".into(), got: q.shape().to_string() });
    }
    expect_state(OP, state, q, &[shape.batch, shape.heads, shape.dim, shape.dim])?;
    Ok((shape, key_scale(OP, options.scale, shape.dim)?))
}

fn key_scale(op: &'static str, scale: Option<f32>, dim: usize) -> Result<f32> {
    let scale = scale.unwrap_or(1.0 / (dim as f32).sqrt());
    if scale.is_finite() {
        Ok(scale)
    } else {
        Err(Error::invalid(op, "scale", format!("{scale}: expected a finite number")))
    }
}

/// Checks q, k, v and log-decay against each other, and the gates' values unless
/// `options.check_gates` is off; returns the sizes.
fn validate(op: &'static str, q: &Tensor, k: &Tensor, v: &Tensor, log_decay: &Tensor, options: &RetentionOptions) -> Result<RetentionShape> {
    q.expect_nonempty(op, "q")?;
    let [batch, seq, heads, dim] = match *q.dims() {
        [b, n, h, d] => [b, n, h, d],
        _ => return Err(Error::ShapeMismatch { op, what: "q", expected: "[batch, seq, heads, dim]".into(), got: q.shape().to_string() }),
    };
    if !SUPPORTED_HEAD_DIMS.contains(&dim) {
        return Err(Error::Unsupported { op, what: format!("head dim {dim}: supported head dims are {SUPPORTED_HEAD_DIMS:?}") });
    }
    for (what, t) in [("k", k), ("v", v)] {
        t.expect_dims(op, what, q.dims())?;
        t.expect_dtype(op, what, q.dtype())?;
        t.expect_device_of(op, what, q)?;
    }
    log_decay.expect_dims(op, "log_decay", &[batch, seq, heads])?;
    log_decay.expect_dtype(op, "log_decay", DType::F32)?;
    log_decay.expect_device_of(op, "log_decay", q)?;
    // Gates are decays: log γ ≤ 0. A positive (or NaN) entry would make exponents positive and the
    // state grow without bound, so it is refused here rather than producing inf/NaN downstream.
    // −inf is refused too: the chunkwise forms take differences of cumulative sums, and
    // (−inf) − (−inf) is NaN, so one γ = 0 would turn the rest of its chunk into NaN (while the
    // recurrent step would give a finite answer).
    // On CUDA this reads the gates back to the host: [batch, seq, heads] floats, small next to q,
    // but a wait for the device.
    if options.check_gates {
        let gates = log_decay.to_vec::<f32>()?;
        if let Some(pos) = gates.iter().position(|g| !(*g <= 0.0 && g.is_finite())) {
            let (b, n, h) = (pos / (seq * heads), pos / heads % seq, pos % heads);
            return Err(Error::invalid(op, "log_decay", format!("entry [{b}, {n}, {h}] is {}: every log-decay must be finite and <= 0", gates[pos])));
        }
    }
    Ok(RetentionShape { batch, seq, heads, dim })
}

fn expect_state(op: &'static str, state: &Tensor, q: &Tensor, dims: &[usize]) -> Result<()> {
    state.expect_dims(op, "state", dims)?;
    state.expect_dtype(op, "state", DType::F32)?;
    state.expect_device_of(op, "state", q)
}
