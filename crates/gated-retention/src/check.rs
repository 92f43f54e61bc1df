//! Validation against the reference on fresh random inputs, shared by `tests/` and `yoco check`.

use yoco_core::rng::Rng;
use yoco_core::testing::{case_rng, judge, Outcome};
use yoco_core::{DType, Device, MemoryCategory, Result, Tensor};

use crate::reference::{self, Problem};
use crate::{gated_retention, gated_retention_step, ChunkSchedule, RetentionOptions, DEFAULT_CHUNK};

/// How the decays are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Gates {
    /// YOCO's own: `logsigmoid(z) / 16` with z ~ N(0, 2²): decays between ~0.97 and 1.
    Model,
    /// γ near 0: log-decay down to -30 (the state forgets everything every token).
    NearZero,
    /// γ near 1: log-decay down to -1e-6 (the state remembers everything).
    NearOne,
    /// The first 48 tokens of every [`DEFAULT_CHUNK`] with log-decays in [-200, -100], around
    /// [`GATE_FLOOR`](crate::GATE_FLOOR) (decays that are 0 or subnormal in f32), the other 16
    /// YOCO's own: a chunk's cumulative sum is near −6,000 before its ordinary gates, whose decays
    /// between one another must keep their digits (an f32 sum there has steps of 2⁻¹¹). Over a
    /// whole number of chunks the final state is made by ordinary gates too.
    Floored,
}

impl Gates {
    /// The log-decay of a gate at position `token` of its sequence.
    fn draw(self, rng: &mut Rng, token: usize) -> f64 {
        match self {
            Gates::Floored if token % DEFAULT_CHUNK < 48 => -rng.uniform_in(100.0, 200.0),
            Gates::Floored => Gates::Model.draw(rng, token),
            Gates::Model => {
                let z = 2.0 * rng.normal();
                -(1.0 + (-z).exp()).ln() / 16.0
            }
            Gates::NearZero => -rng.uniform_in(10.0, 30.0),
            Gates::NearOne => -rng.uniform_in(0.0, 1e-6),
        }
    }
}

/// One case: sizes, chunk, gates, and whether an incoming state is given.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub dim: usize,
    pub chunk: usize,
    pub gates: Gates,
    pub with_state: bool,
}

/// Random inputs of one case, kept in f64 after rounding to the storage dtype.
pub struct Inputs {
    pub q: Tensor,
    pub k: Tensor,
    pub v: Tensor,
    pub log_decay: Tensor,
    pub state: Option<Tensor>,
}

impl Inputs {
    /// Draws inputs for `case` in `dtype` on `device`.
    pub fn draw(rng: &mut Rng, case: &Case, dtype: DType, device: &Device) -> Result<Inputs> {
        let Case { batch, seq, heads, dim, .. } = *case;
        let n = batch * seq * heads * dim;
        let act = MemoryCategory::Activations;
        let t = |vals: Vec<f64>, dims: Vec<usize>, dt| Tensor::from_f64(&vals, dims, dt, device, act);
        let qkv = vec![batch, seq, heads, dim];
        let gates: Vec<f64> = (0..batch * seq * heads).map(|i| case.gates.draw(rng, i / heads % seq)).collect();
        Ok(Inputs {
            q: t(rng.normal_vec(n), qkv.clone(), dtype)?,
            k: t(rng.normal_vec(n), qkv.clone(), dtype)?,
            v: t(rng.normal_vec(n), qkv, dtype)?,
            log_decay: t(gates, vec![batch, seq, heads], DType::F32)?,
            state: if case.with_state { Some(t(rng.normal_vec(batch * heads * dim * dim), vec![batch, heads, dim, dim], DType::F32)?) } else { None },
        })
    }

    /// The inputs as the reference takes them (f64, already rounded as the path saw them).
    pub fn to_f64(&self) -> Result<[Vec<f64>; 5]> {
        let state = match &self.state {
            Some(s) => s.to_f64_vec()?,
            None => Vec::new(),
        };
        Ok([self.q.to_f64_vec()?, self.k.to_f64_vec()?, self.v.to_f64_vec()?, self.log_decay.to_f64_vec()?, state])
    }
}

/// The reference problem over `vals` (from [`Inputs::to_f64`]).
pub fn problem<'a>(case: &Case, vals: &'a [Vec<f64>; 5]) -> Problem<'a> {
    Problem {
        q: &vals[0],
        k: &vals[1],
        v: &vals[2],
        log_decay: &vals[3],
        state: if case.with_state { Some(&vals[4]) } else { None },
        batch: case.batch,
        seq: case.seq,
        heads: case.heads,
        dim: case.dim,
        scale: 1.0 / (case.dim as f64).sqrt(),
    }
}

/// The fast path (prefill) on `device` in `dtype` against the f64 chunkwise reference (exact, so
/// any chunk length of the path is compared with the same truth) and the plain same-precision
/// implementation: outcomes for o and for the final state, for each of `schedules` (the CUDA
/// prefill's; the CPU path has one), all on the same inputs and judged against references
/// computed once.
pub fn prefill_case(device: &Device, dtype: DType, case: &Case, schedules: &[ChunkSchedule]) -> Result<Vec<Outcome>> {
    let mut rng = case_rng(&format!("gated_retention {device} {dtype} {case:?}"));
    let inputs = Inputs::draw(&mut rng, case, dtype, device)?;
    let vals = inputs.to_f64()?;
    let p = problem(case, &vals);
    let (want_o, want_s) = reference::chunkwise(&p, case.chunk);
    let (plain_o, plain_s) = reference::chunkwise_plain(&p, case.chunk, dtype);
    let mut outcomes = Vec::new();
    for &schedule in schedules {
        let label = format!("gated_retention {device} {dtype} {} {case:?}", schedule.name());
        let options = RetentionOptions { chunk: case.chunk, schedule, ..RetentionOptions::default() };
        let (o, state) = gated_retention(&inputs.q, &inputs.k, &inputs.v, &inputs.log_decay, inputs.state.as_ref(), &options)?;
        outcomes.push(judge(format!("{label} o"), dtype, &o.to_f64_vec()?, &plain_o, &want_o));
        outcomes.push(judge(format!("{label} state"), dtype, &state.to_f64_vec()?, &plain_s, &want_s));
    }
    Ok(outcomes)
}

/// Prefill of `seq - steps` tokens then `steps` decode steps on `device`, against one reference
/// pass over all `seq` tokens: the outputs of the decoded tokens and the final state.
pub fn decode_case(device: &Device, dtype: DType, case: &Case, steps: usize) -> Result<Vec<Outcome>> {
    let label = format!("gated_retention prefill+{steps} steps {device} {dtype} {case:?}");
    let mut rng = case_rng(&label);
    let inputs = Inputs::draw(&mut rng, case, dtype, device)?;
    let vals = inputs.to_f64()?;
    let Case { batch, seq, heads, dim, .. } = *case;
    let prefix = seq - steps;
    // Slices of the (already rounded) inputs, re-made as tensors: tokens [from, to).
    let slice = |v: &[f64], from: usize, to: usize, width: usize| -> Vec<f64> {
        (0..batch).flat_map(|b| v[(b * seq + from) * width..(b * seq + to) * width].to_vec()).collect()
    };
    let make = |v: Vec<f64>, len: usize, width_dims: &[usize], dt: DType| -> Result<Tensor> {
        let mut dims = vec![batch, len];
        dims.extend_from_slice(width_dims);
        Tensor::from_f64(&v, dims, dt, device, MemoryCategory::Activations)
    };
    let part = |from: usize, to: usize| -> Result<[Tensor; 4]> {
        let len = to - from;
        Ok([
            make(slice(&vals[0], from, to, heads * dim), len, &[heads, dim], dtype)?,
            make(slice(&vals[1], from, to, heads * dim), len, &[heads, dim], dtype)?,
            make(slice(&vals[2], from, to, heads * dim), len, &[heads, dim], dtype)?,
            make(slice(&vals[3], from, to, heads), len, &[heads], DType::F32)?,
        ])
    };
    let mut state = if prefix > 0 {
        let [q, k, v, g] = part(0, prefix)?;
        let options = RetentionOptions { chunk: case.chunk, ..RetentionOptions::default() };
        gated_retention(&q, &k, &v, &g, inputs.state.as_ref(), &options)?.1
    } else {
        // A one-token prompt is all decode: start from the incoming state (or zeros).
        let dims = [batch, heads, dim, dim];
        match &inputs.state {
            Some(s) => s.to_device(device)?,
            None => Tensor::zeros(dims, DType::F32, device, MemoryCategory::RecurrentState)?,
        }
    };
    let mut decoded = Vec::new();
    for n in prefix..seq {
        let [q, k, v, g] = part(n, n + 1)?;
        decoded.push(gated_retention_step(&q, &k, &v, &g, &mut state, &RetentionOptions::default())?.to_f64_vec()?);
    }
    let p = problem(case, &vals);
    let (want_o, want_s) = reference::recurrent(&p);
    let (plain_o, plain_s) = reference::chunkwise_plain(&p, case.chunk, dtype);
    // Gather the decoded tokens' rows ([batch, steps, heads, dim]) from the full outputs.
    let tail = |v: &[f64]| -> Vec<f64> { slice(v, prefix, seq, heads * dim) };
    let got: Vec<f64> = (0..batch).flat_map(|b| decoded.iter().flat_map(move |row| row[b * heads * dim..(b + 1) * heads * dim].to_vec())).collect();
    Ok(vec![
        judge(format!("{label} o"), dtype, &got, &tail(&plain_o), &tail(&want_o)),
        judge(format!("{label} state"), dtype, &state.to_f64_vec()?, &plain_s, &want_s),
    ])
}

/// The sweep the tests and `yoco check` run: head dims 64/128/256, N = 1, lengths that chunks
/// do not divide, an incoming state, extreme decays, prefill + decode, and on CUDA both schedules
/// and a grid large enough for the wide value block.
pub fn sweep(device: &Device, large: bool) -> Result<Vec<Outcome>> {
    let dtypes: &[DType] = if device.is_cpu() { &[DType::F32, DType::BF16] } else { &[DType::BF16, DType::F16] };
    // The CUDA kernel's chunk is fixed; the CPU path takes any: 7 and 40 leave its micro-kernels
    // rows past their 8-row blocks and columns past the diagonal inside a block.
    let chunks: &[usize] = if device.is_cpu() { &[DEFAULT_CHUNK, 7, 40] } else { &[DEFAULT_CHUNK] };
    let mut cases = Vec::new();
    for &chunk in chunks {
        // 330 tokens: 6 CUDA chunks, more than one CTA of the gate pass scans (4).
        for (dim, seq) in [(64, 1), (64, 330), (128, 67), (256, 33)] {
            cases.push(Case { batch: 2, seq, heads: 2, dim, chunk, gates: Gates::Model, with_state: seq == 67 });
        }
        for gates in [Gates::NearZero, Gates::NearOne, Gates::Floored] {
            let seq = if gates == Gates::Floored { 2 * DEFAULT_CHUNK } else { 100 };
            cases.push(Case { batch: 1, seq, heads: 2, dim: 64, chunk, gates, with_state: true });
        }
    }
    if !device.is_cpu() {
        // Enough (sequence, head) pairs that the CUDA launcher takes its wide value block at every
        // head dim (D/32 × heads × batch = 264 narrow CTAs, more than one wave on any GPU with up
        // to 256 SMs); on an H200 every other case here takes the narrow one.
        for (dim, batch, heads) in [(64, 2, 66), (128, 2, 33), (256, 1, 33)] {
            cases.push(Case { batch, seq: 70, heads, dim, chunk: DEFAULT_CHUNK, gates: Gates::Model, with_state: true });
        }
    }
    if large {
        cases.push(Case { batch: 1, seq: 8192, heads: 4, dim: 128, chunk: DEFAULT_CHUNK, gates: Gates::Model, with_state: false });
        cases.push(Case { batch: 2, seq: 2048, heads: 8, dim: 256, chunk: DEFAULT_CHUNK, gates: Gates::Model, with_state: true });
    }
    let schedules: &[ChunkSchedule] = if device.is_cpu() { &[ChunkSchedule::Parallel] } else { &[ChunkSchedule::Parallel, ChunkSchedule::Sequential] };
    let mut outcomes = Vec::new();
    for &dtype in dtypes {
        for case in &cases {
            outcomes.extend(prefill_case(device, dtype, case, schedules)?);
        }
        let decode = Case { batch: 2, seq: 70, heads: 3, dim: 64, chunk: DEFAULT_CHUNK, gates: Gates::Model, with_state: true };
        outcomes.extend(decode_case(device, dtype, &decode, 5)?);
    }
    Ok(outcomes)
}
