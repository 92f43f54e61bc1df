//! One measurement: a model at one context length — memory (accounting, analytic prediction and
//! resident memory), prefill latency, decode rate — and its throughput at the largest batch that
//! fits the memory budget.

use serde::Serialize;
use yoco_core::contention::{Contention, Window};
use yoco_core::rng::Rng;
use yoco_core::{MemoryCategory, MemorySnapshot, Result};

use super::rss;
use crate::model::memory::{predict, MemoryEstimate, Workload};
use crate::model::profile::{self, OpTime};
use crate::model::{generate, AnyModel, Sampler};

/// Bytes by category.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Breakdown {
    pub weights: usize,
    pub kv_cache: usize,
    pub recurrent_state: usize,
    pub activations: usize,
    /// The most bytes held at once (not the sum of the category peaks).
    pub total: usize,
}

impl Breakdown {
    fn from_peaks(s: &MemorySnapshot) -> Breakdown {
        Breakdown {
            weights: s.peak(MemoryCategory::Weights),
            kv_cache: s.peak(MemoryCategory::KvCache),
            recurrent_state: s.peak(MemoryCategory::RecurrentState),
            activations: s.peak(MemoryCategory::Activations),
            total: s.total_peak,
        }
    }

    fn from_estimate(e: &MemoryEstimate) -> Breakdown {
        Breakdown { weights: e.weights, kv_cache: e.kv_cache, recurrent_state: e.recurrent_state, activations: e.activations, total: e.total() }
    }

    /// The parts in report order.
    pub fn parts(&self) -> [usize; 4] {
        [self.weights, self.kv_cache, self.recurrent_state, self.activations]
    }
}

/// The throughput run.
#[derive(Clone, Debug, Serialize)]
pub struct Throughput {
    /// The largest batch whose predicted peak fits the budget (capped by `max_batch`).
    pub batch: usize,
    /// The largest batch that would fit the budget without the cap (up to 4096), so that a
    /// capped run says how far below the memory's limit it ran.
    pub fits: usize,
    /// Its predicted peak bytes.
    pub predicted_bytes: usize,
    pub prefill_seconds: f64,
    pub decode_seconds: f64,
    /// batch × generated tokens / (prefill + decode seconds).
    pub tokens_per_second: f64,
}

/// Everything measured for one model at one length.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    pub model: String,
    pub yoco: bool,
    /// Prompt + generated tokens.
    pub length: usize,
    pub prompt: usize,
    pub generated: usize,
    /// Peaks from the accounting, batch 1.
    pub memory: Breakdown,
    /// The analytic model's prediction for the same run.
    pub predicted: Breakdown,
    /// Peak memory in use during the run minus before it, from outside the accounting: the
    /// process's resident memory (CPU), or the device allocator's pool (CUDA); `None` where
    /// unavailable.
    pub resident_bytes: Option<u64>,
    /// Time to first token (prefill + sampling), median over repetitions, batch 1.
    pub prefill_seconds: f64,
    pub prefill_samples: Vec<f64>,
    /// Mean seconds per decode step, batch 1.
    pub decode_seconds_per_token: f64,
    pub throughput: Option<Throughput>,
    /// Where batch 1's time goes, by operation, from a profiled run of its own.
    pub phases: Phases,
    /// What other processes and the hypervisor took of the CPUs over this whole measurement (the
    /// models' runs at this length together: [`measure_all`] interleaves them); `None` where the
    /// system does not say (not Linux).
    pub contention: Option<Contention>,
}

/// A profiled run (batch 1): each operation waited for before and after itself
/// ([`crate::model::profile`]), so these seconds run longer than the unprofiled timings and are
/// read as shares. Time outside every operation (cache writes, reshapes, host work) is the
/// difference between the wall time and the operations' sum.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Phases {
    pub prefill_seconds: f64,
    pub prefill: Vec<OpTime>,
    /// Decode steps profiled (the first `min(generated, 16)` − 1 after the first token).
    pub decode_steps: usize,
    pub decode_seconds: f64,
    pub decode: Vec<OpTime>,
}

/// Tokens a profiled run generates: enough decode steps for stable shares, few enough to stay
/// cheap.
const PROFILED_TOKENS: usize = 16;

/// How to run a measurement.
#[derive(Clone, Debug)]
pub struct RunPlan {
    pub generated: usize,
    pub span: usize,
    pub repetitions: usize,
    pub budget_bytes: usize,
    pub max_batch: usize,
    pub elem: usize,
    pub seed: u64,
    /// The compared device keeps gated retention's chunk states during prefill (CUDA).
    pub retention_chunk_states: bool,
    /// The FFN's `[rows, F]` intermediates on the compared device and dtype
    /// (`yoco_swiglu::ffn_intermediates`).
    pub ffn_intermediates: usize,
}

impl RunPlan {
    /// The memory model's view of `batch` sequences of `length` tokens (prompt and generated).
    pub fn workload(&self, batch: usize, length: usize) -> Workload {
        Workload { batch, capacity: length, prompt: length - self.generated, span: self.span, elem: self.elem, retention_chunk_states: self.retention_chunk_states, ffn_intermediates: self.ffn_intermediates }
    }
}

fn random_prompt(rng: &mut Rng, n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|_| rng.below(vocab) as u32).collect()
}

/// The largest batch (≤ `limit`) whose predicted peak fits the budget, and that peak.
fn largest_batch(model: &AnyModel, length: usize, plan: &RunPlan, limit: usize) -> Result<Option<(usize, usize)>> {
    let mut largest = None;
    for batch in 1..=limit {
        let bytes = predict(model.config(), &plan.workload(batch, length))?.total();
        if bytes > plan.budget_bytes {
            break;
        }
        largest = Some((batch, bytes));
    }
    Ok(largest)
}

/// The largest batch (≤ `plan.max_batch`) whose predicted peak fits the budget, and that peak.
pub fn batch_for_budget(model: &AnyModel, length: usize, plan: &RunPlan) -> Result<Option<(usize, usize)>> {
    largest_batch(model, length, plan, plan.max_batch)
}

/// Batches past this are not looked for (a report showing it means "at least this many").
pub const LARGEST_BATCH_SOUGHT: usize = 4096;

/// A model's batch-1 runs at one length, as they accumulate.
struct BatchOne<'a> {
    model: &'a AnyModel,
    /// Draws the prompt, then the throughput run's prompts.
    rng: Rng,
    tokens: Vec<u32>,
    prefill_samples: Vec<f64>,
    /// Seconds per decode step, one per repetition.
    decode: Vec<f64>,
    memory: Breakdown,
    resident_bytes: Option<u64>,
}

/// Measures each of `models` at `length` tokens (the last `plan.generated` of them generated).
/// Their batch-1 runs are interleaved repetition by repetition, the order turned each time (A B,
/// B A, A B, ...), so that a machine whose speed drifts while they run (a shared VM's swings by
/// half within minutes) weighs on every model alike, and the ratios between them do not take
/// the drift for a difference; then each model's profiled run and its throughput run.
pub fn measure_all(models: &[AnyModel], length: usize, plan: &RunPlan) -> Result<Vec<Measurement>> {
    if plan.repetitions == 0 {
        return Err(yoco_core::Error::invalid("measure", "repetitions", "0: expected at least one timed run"));
    }
    let prompt = length.checked_sub(plan.generated).filter(|&prompt| prompt > 0).ok_or_else(|| {
        yoco_core::Error::invalid("measure", "length", format!("{length}: expected more than the {} generated tokens (a prompt of at least one)", plan.generated))
    })?;
    let window = Window::open();
    let mut runs: Vec<BatchOne> = models
        .iter()
        .map(|model| {
            let mut rng = Rng::new(plan.seed ^ length as u64);
            let tokens = random_prompt(&mut rng, prompt, model.config().vocab_size);
            BatchOne { model, rng, tokens, prefill_samples: Vec::new(), decode: Vec::new(), memory: Breakdown::default(), resident_bytes: None }
        })
        .collect();
    for rep in 0..plan.repetitions {
        let order: Vec<usize> = if rep % 2 == 0 { (0..runs.len()).collect() } else { (0..runs.len()).rev().collect() };
        for i in order {
            let run = &mut runs[i];
            let device = run.model.device();
            device.tracker().reset_peaks();
            let before = start_resident_peak(device);
            let g = generate(run.model, &run.tokens, 1, plan.generated, &mut Sampler::Greedy, plan.span)?;
            run.prefill_samples.push(g.prefill_seconds);
            run.decode.push(g.decode_seconds / (plan.generated.max(2) - 1) as f64);
            if rep == 0 {
                run.memory = Breakdown::from_peaks(&device.memory());
                run.resident_bytes = resident_peak(device).zip(before).map(|(peak, before)| peak.saturating_sub(before));
            }
        }
    }
    let mut measurements = Vec::new();
    for mut run in runs {
        let model = run.model;
        let config = model.config();
        let phases = profiled(model, &run.tokens, plan)?;
        let predicted = Breakdown::from_estimate(&predict(config, &plan.workload(1, length))?);
        let throughput = match batch_for_budget(model, length, plan)? {
            Some((batch, predicted_bytes)) => {
                let prompts = random_prompt(&mut run.rng, batch * prompt, config.vocab_size);
                let g = generate(model, &prompts, batch, plan.generated, &mut Sampler::Greedy, plan.span)?;
                Some(Throughput {
                    batch,
                    fits: largest_batch(model, length, plan, LARGEST_BATCH_SOUGHT)?.map_or(batch, |(b, _)| b),
                    predicted_bytes,
                    prefill_seconds: g.prefill_seconds,
                    decode_seconds: g.decode_seconds,
                    tokens_per_second: (batch * plan.generated) as f64 / (g.prefill_seconds + g.decode_seconds),
                })
            }
            None => None,
        };
        measurements.push(Measurement {
            model: config.name.clone(),
            yoco: config.is_yoco(),
            length,
            prompt,
            generated: plan.generated,
            memory: run.memory,
            predicted,
            resident_bytes: run.resident_bytes,
            prefill_seconds: yoco_core::ceiling::median(&mut run.prefill_samples.clone()),
            prefill_samples: run.prefill_samples,
            decode_seconds_per_token: yoco_core::ceiling::median(&mut run.decode),
            throughput,
            phases,
            contention: None,
        });
    }
    // One window over the models' interleaved runs: what other work took of the CPUs while any
    // of them ran.
    let contention = window.close();
    for m in &mut measurements {
        m.contention = contention;
    }
    Ok(measurements)
}

/// One profiled generation of `tokens` at batch 1.
fn profiled(model: &AnyModel, tokens: &[u32], plan: &RunPlan) -> Result<Phases> {
    let generated = plan.generated.min(PROFILED_TOKENS);
    profile::begin();
    let g = generate(model, tokens, 1, generated, &mut Sampler::Greedy, plan.span);
    profile::end();
    let g = g?;
    Ok(Phases { prefill_seconds: g.prefill_seconds, prefill: g.prefill_ops, decode_steps: generated - 1, decode_seconds: g.decode_seconds, decode: g.decode_ops })
}

/// Bytes in use now, from outside the accounting: the process's resident set (CPU), or the
/// device allocator's pool (CUDA); and starts the peak that [`resident_peak`] reads from here.
fn start_resident_peak(device: &yoco_core::Device) -> Option<u64> {
    match device {
        yoco_core::Device::Cpu(_) => {
            rss::reset_peak();
            rss::current()
        }
        #[cfg(feature = "cuda")]
        yoco_core::Device::Cuda(d) => {
            d.reset_pool_peak().ok()?;
            d.pool_usage().ok().map(|(now, _)| now)
        }
    }
}

/// The most bytes in use since [`start_resident_peak`]: the resident high-water mark (CPU), or
/// the pool's (CUDA).
fn resident_peak(device: &yoco_core::Device) -> Option<u64> {
    match device {
        yoco_core::Device::Cpu(_) => rss::peak(),
        #[cfg(feature = "cuda")]
        yoco_core::Device::Cuda(d) => d.pool_usage().ok().map(|(_, high)| high),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{preset, Ops, Weights};
    use yoco_core::{DType, Device};

    /// Both models of a pair measured together: each gets its own repetitions (interleaved with
    /// the other's), its memory from its own first run (its own accounting: the peaks the exact
    /// memory model predicts), a profile and a throughput run, in the order given, under one
    /// contention window.
    #[test]
    fn a_pair_is_measured_whole_in_order() {
        let yoco = preset("tiny-yoco").unwrap();
        let configs = [yoco.transformer_twin(), yoco];
        // A device scope per model, as `yoco compare` builds them, so that each has its own
        // accounting.
        let models: Vec<AnyModel> = configs
            .iter()
            .map(|c| {
                let device = Device::cpu();
                AnyModel::build(c, Weights::init(c, 3, DType::F32, &device).unwrap(), Ops::new(crate::model::Backend::Fast), &device).unwrap()
            })
            .collect();
        let plan = RunPlan { generated: 4, span: 32, repetitions: 2, budget_bytes: 256 << 20, max_batch: 2, elem: 4, seed: 9, retention_chunk_states: false, ffn_intermediates: yoco_swiglu::ffn_intermediates(DType::F32, &Device::cpu()) };
        let measured = measure_all(&models, 64, &plan).unwrap();
        assert_eq!(measured.iter().map(|m| m.model.as_str()).collect::<Vec<_>>(), [configs[0].name.as_str(), configs[1].name.as_str()]);
        for m in &measured {
            assert_eq!(m.prefill_samples.len(), 2, "{}", m.model);
            assert!(m.prefill_samples.iter().all(|&s| s > 0.0) && m.decode_seconds_per_token > 0.0, "{}", m.model);
            assert_eq!((m.length, m.prompt, m.generated), (64, 60, 4));
            assert!(m.memory.kv_cache > 0, "{}: {:?}", m.model, m.memory);
            assert_eq!(m.memory.parts(), m.predicted.parts(), "{}", m.model);
            // The categories peak at different moments: the most held at once is at most their sum.
            assert!(m.memory.total <= m.predicted.total, "{}", m.model);
            assert_eq!(m.throughput.as_ref().map(|t| t.batch), Some(2), "{}", m.model);
            assert!(!m.phases.prefill.is_empty(), "{}", m.model);
            assert_eq!(m.contention, measured[0].contention);
        }
        let none = RunPlan { repetitions: 0, ..plan };
        assert!(measure_all(&models, 64, &none).is_err());
        // No prompt left beside the generated tokens (the length had wrapped round).
        for length in [4, 3] {
            let error = measure_all(&models, length, &plan).unwrap_err().to_string();
            assert!(error.contains("generated tokens"), "{length}: {error}");
        }
    }
}
