//! A projection to the paper's scale: YOCO-3B against Transformer-3B on an 80 GB H100, from
//! 32K to 1M tokens. Memory comes from the analytic model (exact for this implementation);
//! prefill time and throughput from a roofline whose rates are the H100's nominal peaks scaled
//! by the fractions of their own ceilings that this project's kernels reached in the same run
//! (on the CPU here, or on a GPU where one measured them). It is a projection, labelled so
//! everywhere it appears.

use serde::Serialize;

use yoco_core::{Error, Result};

use crate::model::config::{Architecture, ModelConfig, SelfDecoder, MAX_SEQ_LEN_LIMIT};
use crate::model::memory::{kv_bytes_per_token, predict, Workload};
use crate::model::preset;

/// H100 SXM 80 GB: dense bf16 tensor-core peak, HBM3 bandwidth, memory.
pub const H100_BF16_FLOPS: f64 = 989e12;
pub const H100_BANDWIDTH: f64 = 3.35e12;
pub const H100_MEMORY: usize = 80_000_000_000;

/// Fractions of their ceilings the kernel classes reached (measured in this run).
#[derive(Clone, Debug, Serialize)]
pub struct Efficiencies {
    /// Projections (GEMM) against the arithmetic ceiling.
    pub gemm: f64,
    /// Causal attention prefill against the arithmetic ceiling.
    pub attention: f64,
    /// Gated retention chunkwise prefill against the arithmetic ceiling.
    pub retention: f64,
    /// Decode (weights and caches streamed) against the bandwidth ceiling.
    pub bandwidth: f64,
    /// Where the fractions were measured.
    pub source: String,
}

/// One projected length.
#[derive(Clone, Debug, Serialize)]
pub struct ProjectedPoint {
    pub length: usize,
    pub transformer_bytes: usize,
    pub yoco_bytes: usize,
    pub transformer_fits: bool,
    pub transformer_prefill_seconds: f64,
    pub yoco_prefill_seconds: f64,
    pub transformer_batch: usize,
    pub yoco_batch: usize,
    pub transformer_tokens_per_second: f64,
    pub yoco_tokens_per_second: f64,
}

/// Prefill FLOPs of `prompt` tokens, split as (GEMM, attention, retention).
fn prefill_flops(c: &ModelConfig, prompt: f64) -> (f64, f64, f64) {
    let d = c.d_model as f64;
    let (h, hkv, hd, f) = (c.n_heads as f64, c.n_kv_heads as f64, c.head_dim as f64, c.ffn_dim as f64);
    let attn_proj = 2.0 * d * (2.0 * h * hd + 2.0 * hkv * hd);
    let ffn = 6.0 * d * f;
    let causal = |n: f64| 4.0 * h * hd * n * n / 2.0;
    match c.architecture {
        Architecture::Transformer {} => {
            let l = c.n_layers as f64;
            (l * prompt * (attn_proj + ffn), l * causal(prompt), 0.0)
        }
        Architecture::Yoco { self_decoder } => {
            let half = c.self_layers() as f64;
            let kv_proj = 2.0 * d * 2.0 * hkv * hd * prompt;
            // Early exit: the cross-decoder runs for the last token only.
            let cross_last = half * (2.0 * d * 2.0 * h * hd + ffn + 4.0 * h * hd * prompt);
            match self_decoder {
                SelfDecoder::GatedRetention { heads, head_dim } => {
                    let (gh, gd, chunk) = (heads as f64, head_dim as f64, 64.0);
                    let mixer_proj = 2.0 * d * (5.0 * d + gh);
                    let retention = half * prompt * gh * (4.0 * chunk * gd + 4.0 * gd * gd);
                    (half * prompt * (mixer_proj + ffn) + kv_proj, cross_last, retention)
                }
                SelfDecoder::SlidingWindow { window } => {
                    let w = window as f64;
                    let swa = half * 4.0 * h * hd * prompt * w.min(prompt);
                    (half * prompt * (attn_proj + ffn) + kv_proj, swa + cross_last, 0.0)
                }
            }
        }
    }
}

fn prefill_seconds(c: &ModelConfig, prompt: usize, batch: usize, e: &Efficiencies) -> f64 {
    let (gemm, attn, ret) = prefill_flops(c, prompt as f64);
    batch as f64 * (gemm / (H100_BF16_FLOPS * e.gemm) + attn / (H100_BF16_FLOPS * e.attention) + ret / (H100_BF16_FLOPS * e.retention))
}

/// One decode step of `batch` sequences at `context` tokens: weights once, each sequence's cache
/// and state once, at the bandwidth ceiling times its efficiency (decode is memory-bound).
fn decode_step_seconds(c: &ModelConfig, context: usize, batch: usize, e: &Efficiencies) -> f64 {
    let weights = c.parameter_count().total() as f64 * 2.0;
    let per_seq = (context * kv_bytes_per_token(c, 2) + crate::model::memory::state_bytes_per_sequence(c, context, 2)) as f64;
    (weights + batch as f64 * per_seq) / (H100_BANDWIDTH * e.bandwidth)
}

/// The FFN's `[rows, F]` intermediates on a GPU in bf16 (gate and up:
/// `yoco_swiglu::ffn_intermediates` of a CUDA device).
const PROJECTED_FFN_INTERMEDIATES: usize = 2;

/// The projection at every length, with `generated` tokens generated: each length must exceed
/// `generated` and be at most [`MAX_SEQ_LEN_LIMIT`] (the memory model's longest cache).
pub fn project(lengths: &[usize], generated: usize, e: &Efficiencies) -> Result<Vec<ProjectedPoint>> {
    if let Some(bad) = lengths.iter().find(|&&n| n <= generated || n > MAX_SEQ_LEN_LIMIT) {
        return Err(Error::invalid("project", "lengths", format!("{bad}: expected a length above the {generated} generated tokens and at most {MAX_SEQ_LEN_LIMIT}")));
    }
    let yoco = preset("yoco-3b").expect("the preset exists");
    let transformer = yoco.transformer_twin();
    let span = 32_768;
    let bytes = |c: &ModelConfig, batch: usize, n: usize| predict(c, &Workload { batch, capacity: n, prompt: n - generated, span, elem: 2, retention_chunk_states: true, ffn_intermediates: PROJECTED_FFN_INTERMEDIATES })
        .expect("yoco-3b and its twin are valid configs, and the lengths were checked above")
        .total();
    let best_batch = |c: &ModelConfig, n: usize| (1..=1024).take_while(|&b| bytes(c, b, n) <= H100_MEMORY).last().unwrap_or(0);
    let throughput = |c: &ModelConfig, n: usize, batch: usize| {
        if batch == 0 {
            return 0.0;
        }
        let decode: f64 = (0..generated).map(|g| decode_step_seconds(c, n - generated + g, batch, e)).sum();
        (batch * generated) as f64 / (prefill_seconds(c, n - generated, batch, e) + decode)
    };
    let points = lengths
        .iter()
        .map(|&n| {
            let (tb, yb) = (best_batch(&transformer, n), best_batch(&yoco, n));
            ProjectedPoint {
                length: n,
                transformer_bytes: bytes(&transformer, 1, n),
                yoco_bytes: bytes(&yoco, 1, n),
                transformer_fits: tb > 0,
                transformer_prefill_seconds: prefill_seconds(&transformer, n - generated, 1, e),
                yoco_prefill_seconds: prefill_seconds(&yoco, n - generated, 1, e),
                transformer_batch: tb,
                yoco_batch: yb,
                transformer_tokens_per_second: throughput(&transformer, n, tb),
                yoco_tokens_per_second: throughput(&yoco, n, yb),
            }
        })
        .collect();
    Ok(points)
}
