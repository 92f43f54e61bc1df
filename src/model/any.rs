//! Either model behind one interface, and generation (prefill, then sampled decode steps).

use std::time::Instant;

use yoco_core::rng::Rng;
use yoco_core::{Device, Error, Result, Tensor};

use super::config::ModelConfig;
use super::ops::Ops;
use super::profile::{self, OpTime, OpTimer};
use super::transformer::{Transformer, TransformerCache};
use super::weights::Weights;
use super::yoco::{Yoco, YocoCache};

/// The retention chunk the models use for prefill: flash-linear-attention's, and the CUDA
/// kernel's.
pub const RETENTION_CHUNK: usize = yoco_gated_retention::DEFAULT_CHUNK;

/// YOCO or the Transformer, chosen by the config's architecture.
// One per loaded model, built once and never moved in a loop: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum AnyModel {
    Yoco(Yoco),
    Transformer(Transformer),
}

/// The matching cache.
// One per generation, built once (the CUDA build's caches carry device handles, hence the size).
#[allow(clippy::large_enum_variant)]
pub enum AnyCache {
    Yoco(YocoCache),
    Transformer(TransformerCache),
}

impl AnyCache {
    /// Tokens per sequence processed so far.
    pub fn len(&self) -> usize {
        match self {
            AnyCache::Yoco(c) => c.len(),
            AnyCache::Transformer(c) => c.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn mismatch() -> Error {
    Error::invalid("AnyModel", "cache", "a cache of the other model")
}

impl AnyModel {
    pub fn build(config: &ModelConfig, weights: Weights, ops: Ops, device: &Device) -> Result<AnyModel> {
        Ok(if config.is_yoco() { AnyModel::Yoco(Yoco::new(config, weights, ops, device)?) } else { AnyModel::Transformer(Transformer::new(config, weights, ops, device)?) })
    }

    pub fn config(&self) -> &ModelConfig {
        match self {
            AnyModel::Yoco(m) => &m.config,
            AnyModel::Transformer(m) => &m.config,
        }
    }

    pub fn device(&self) -> &Device {
        match self {
            AnyModel::Yoco(m) => m.device(),
            AnyModel::Transformer(m) => m.device(),
        }
    }

    pub fn new_cache(&self, batch: usize, capacity: usize) -> Result<AnyCache> {
        Ok(match self {
            AnyModel::Yoco(m) => AnyCache::Yoco(m.new_cache(batch, capacity)?),
            AnyModel::Transformer(m) => AnyCache::Transformer(m.new_cache(batch, capacity)?),
        })
    }

    /// Prefill (YOCO with early exit) in spans of `span` tokens; last-token logits `[batch, 1, vocab]`.
    pub fn prefill(&self, cache: &mut AnyCache, tokens: &[u32], span: usize) -> Result<Tensor> {
        match (self, cache) {
            (AnyModel::Yoco(m), AnyCache::Yoco(c)) => m.prefill(c, tokens, span, RETENTION_CHUNK),
            (AnyModel::Transformer(m), AnyCache::Transformer(c)) => m.prefill(c, tokens, span),
            _ => Err(mismatch()),
        }
    }

    /// One token per sequence; logits `[batch, 1, vocab]`.
    pub fn decode(&self, cache: &mut AnyCache, tokens: &[u32]) -> Result<Tensor> {
        match (self, cache) {
            (AnyModel::Yoco(m), AnyCache::Yoco(c)) => m.decode(c, tokens),
            (AnyModel::Transformer(m), AnyCache::Transformer(c)) => m.decode(c, tokens),
            _ => Err(mismatch()),
        }
    }
}

/// How the next token is chosen from the logits.
#[derive(Clone, Debug)]
pub enum Sampler {
    /// The most likely token (ties: the lowest id).
    Greedy,
    /// A draw from softmax(logits / temperature), seeded.
    Temperature { temperature: f64, rng: Rng },
}

impl Sampler {
    /// Greedy for `temperature == 0`, else temperature sampling; refuses negative or non-finite.
    pub fn new(temperature: f64, seed: u64) -> Result<Sampler> {
        if !(temperature >= 0.0 && temperature.is_finite()) {
            return Err(Error::invalid("Sampler", "temperature", format!("{temperature}: expected a finite value >= 0")));
        }
        Ok(if temperature == 0.0 { Sampler::Greedy } else { Sampler::Temperature { temperature, rng: Rng::new(seed) } })
    }

    /// One token per sequence from logits `[batch, 1, vocab]`. Greedy on a GPU picks on the
    /// device (the same choice: the largest logit, the lowest id on ties).
    pub fn sample(&mut self, logits: &Tensor) -> Result<Vec<u32>> {
        if logits.dims().len() < 2 || logits.numel() == 0 {
            return Err(Error::ShapeMismatch { op: "Sampler::sample", what: "logits", expected: "[..., vocab >= 1] with at least one row".into(), got: logits.shape().to_string() });
        }
        #[cfg(feature = "cuda")]
        if let (Sampler::Greedy, yoco_core::Device::Cuda(d)) = (&*self, logits.device()) {
            let picks = super::cuda_ops::argmax(d, logits)?;
            if picks.iter().any(|&(_, non_finite)| non_finite > 0) {
                return Err(non_finite_logits());
            }
            return Ok(picks.into_iter().map(|(id, _)| id).collect());
        }
        let vocab = logits.shape().last_dim();
        let values = logits.to_f64_vec()?;
        if values.iter().any(|v| !v.is_finite()) {
            return Err(non_finite_logits());
        }
        Ok(values
            .chunks(vocab)
            .map(|row| match self {
                Sampler::Greedy => row.iter().enumerate().fold((0, f64::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best }).0 as u32,
                Sampler::Temperature { temperature, rng } => {
                    let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let weights: Vec<f64> = row.iter().map(|v| ((v - max) / *temperature).exp()).collect();
                    let mut target = rng.uniform() * weights.iter().sum::<f64>();
                    weights.iter().position(|w| {
                        target -= w;
                        target <= 0.0
                    }).unwrap_or(vocab - 1) as u32
                }
            })
            .collect())
    }
}

fn non_finite_logits() -> Error {
    Error::invalid("Sampler::sample", "logits", "a logit is NaN or infinite")
}

/// What a generation produced and how long its phases took.
pub struct Generation {
    /// The generated tokens of each sequence.
    pub tokens: Vec<Vec<u32>>,
    /// Seconds to the first generated token (prefill, including its sampling).
    pub prefill_seconds: f64,
    /// Seconds of the decode steps that followed.
    pub decode_seconds: f64,
    /// Where the prefill's and the decode steps' time went, by operation, when this thread was
    /// profiling ([`super::profile`]); empty otherwise.
    pub prefill_ops: Vec<OpTime>,
    pub decode_ops: Vec<OpTime>,
}

/// One token per sequence from the logits, timed as the operation "sample" when profiling (it
/// brings the logits to the host).
fn sample(sampler: &mut Sampler, logits: &Tensor) -> Result<Vec<u32>> {
    let _timer = OpTimer::start("sample", logits.device());
    sampler.sample(logits)
}

/// Prefills `prompt` (`batch` equal-length sequences, row-major) and generates `new_tokens` per
/// sequence. The cache is sized for exactly prompt + new tokens.
/// Every check [`generate`] makes of its arguments (but the sampler, which [`Sampler::new`]
/// checks), without running it: for callers that must not act first on a run that will be
/// refused (`yoco generate` writes the weights it used before it generates). Returns the cache
/// capacity the run takes: the prompt's tokens per sequence plus `new_tokens`.
pub fn check_generation(config: &ModelConfig, prompt: &[u32], batch: usize, new_tokens: usize, span: usize) -> Result<usize> {
    if new_tokens == 0 {
        return Err(Error::invalid("generate", "new_tokens", "0: expected at least one token to generate"));
    }
    if span == 0 {
        return Err(Error::invalid("generate", "span", "0: expected a positive number of tokens per prefill span"));
    }
    // The prompt alone (ids, equal non-empty sequences, within max_seq_len); then with the new tokens.
    super::yoco::check_tokens(config, prompt, batch, 0, usize::MAX)?;
    let per_sequence = prompt.len() / batch;
    per_sequence
        .checked_add(new_tokens)
        .filter(|&capacity| capacity <= config.max_seq_len)
        .ok_or_else(|| Error::invalid("generate", "new_tokens", format!("{new_tokens}: {per_sequence} prompt tokens plus these exceed max_seq_len = {}", config.max_seq_len)))
}

pub fn generate(model: &AnyModel, prompt: &[u32], batch: usize, new_tokens: usize, sampler: &mut Sampler, span: usize) -> Result<Generation> {
    generate_observed(model, prompt, batch, new_tokens, sampler, span, &mut |_| Ok(()))
}

/// [`generate`], handing `observe` each step's logits `[batch, 1, vocab]` (the prefill's, then
/// each decode step's) before a token is drawn from them. What `observe` does counts in the
/// phase's time, so a timed run passes a closure that does nothing.
pub fn generate_observed(
    model: &AnyModel,
    prompt: &[u32],
    batch: usize,
    new_tokens: usize,
    sampler: &mut Sampler,
    span: usize,
    observe: &mut dyn FnMut(&Tensor) -> Result<()>,
) -> Result<Generation> {
    let capacity = check_generation(model.config(), prompt, batch, new_tokens, span)?;
    let mut cache = model.new_cache(batch, capacity)?;
    let start = Instant::now();
    let logits = model.prefill(&mut cache, prompt, span)?;
    observe(&logits)?;
    let mut next = sample(sampler, &logits)?;
    model.device().synchronize()?;
    let prefill_seconds = start.elapsed().as_secs_f64();
    let prefill_ops = profile::take();
    let mut tokens: Vec<Vec<u32>> = next.iter().map(|&t| vec![t]).collect();
    let start = Instant::now();
    for _ in 1..new_tokens {
        let logits = model.decode(&mut cache, &next)?;
        observe(&logits)?;
        next = sample(sampler, &logits)?;
        for (seq, &t) in tokens.iter_mut().zip(&next) {
            seq.push(t);
        }
    }
    model.device().synchronize()?;
    Ok(Generation { tokens, prefill_seconds, decode_seconds: start.elapsed().as_secs_f64(), prefill_ops, decode_ops: profile::take() })
}
