//! The analytic memory model: the bytes a model allocates, by category, for any config, batch,
//! cache capacity, prefill span and dtype — without allocating them. It reproduces SPEC.md's
//! cache formulas, and for the other categories it follows the implementation (which tensors are
//! live at once), so that `tests/memory.rs` can require the accounting to match it exactly.

use serde::Serialize;
use yoco_core::{Error, Result};

use super::config::{Architecture, ModelConfig, SelfDecoder, MAX_SEQ_LEN_LIMIT};

/// Predicted peak bytes by category during prefill (the peak of the whole run: decode's
/// transient activations are a single token's and lower).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryEstimate {
    pub weights: usize,
    pub kv_cache: usize,
    pub recurrent_state: usize,
    pub activations: usize,
}

impl MemoryEstimate {
    /// An upper bound of the total peak (the category peaks need not coincide); saturates at
    /// `usize::MAX`, as [`predict`]'s categories do, a size no budget fits.
    pub fn total(&self) -> usize {
        self.weights.saturating_add(self.kv_cache).saturating_add(self.recurrent_state).saturating_add(self.activations)
    }
}

/// What a run looks like to the memory model.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Sequences in the batch.
    pub batch: usize,
    /// Cache capacity: prompt + generated tokens.
    pub capacity: usize,
    /// Prompt tokens per sequence.
    pub prompt: usize,
    /// Prefill span length (tokens per sequence per step).
    pub span: usize,
    /// Bytes per element of weights, activations and K/V (states and gates are f32).
    pub elem: usize,
    /// Whether gated retention's prefill keeps every chunk's incoming state and gate record for
    /// the length of the call: the CUDA kernels' parallel schedule does
    /// (`yoco_gated_retention::parallel_schedule_bytes`), the CPU path does not.
    pub retention_chunk_states: bool,
    /// The `[rows, F]` intermediates the FFN allocates beside its output
    /// (`yoco_swiglu::ffn_intermediates`: one on the CPU in f32, two otherwise).
    pub ffn_intermediates: usize,
}

/// KV cache bytes per token per sequence (SPEC.md): `2·L·Hkv·D·b` for the Transformer,
/// `2·Hkv·D·b` for YOCO's one shared cache. Saturates at `usize::MAX` (a size no budget fits)
/// for fields past [`ModelConfig::validate`]'s bounds, inside which it cannot.
pub fn kv_bytes_per_token(c: &ModelConfig, elem: usize) -> usize {
    let layers = if c.is_yoco() { 1 } else { c.n_layers };
    saturating_product(&[2, layers, c.n_kv_heads, c.head_dim, elem])
}

/// Per-sequence state bytes that do not grow with the context: gated-retention states (f32) or
/// sliding-window rings, for a cache of `capacity` tokens (a ring has `min(W, capacity)` slots:
/// a sequence shorter than the window never fills the rest). Saturates as
/// [`kv_bytes_per_token`] does.
pub fn state_bytes_per_sequence(c: &ModelConfig, capacity: usize, elem: usize) -> usize {
    match c.architecture {
        Architecture::Transformer {} => 0,
        Architecture::Yoco { self_decoder: SelfDecoder::GatedRetention { heads, head_dim } } => saturating_product(&[c.self_layers(), heads, head_dim, head_dim, 4]),
        Architecture::Yoco { self_decoder: SelfDecoder::SlidingWindow { window } } => saturating_product(&[c.self_layers(), 2, window.min(capacity), c.n_kv_heads, c.head_dim, elem]),
    }
}

fn saturating_product(factors: &[usize]) -> usize {
    factors.iter().fold(1, |product: usize, &f| product.saturating_mul(f))
}

/// The predicted peaks of a prefill of `w.prompt` tokens in spans of `w.span`. Refuses a config
/// that [`ModelConfig::validate`] refuses, and a workload whose prompt is longer than its cache
/// or whose cache is longer than [`MAX_SEQ_LEN_LIMIT`]: within those bounds a batch-1 prediction
/// stays inside a usize. Every category but the weights grows with the batch, and one that would
/// pass `usize::MAX` saturates there (a size no memory budget fits) instead of wrapping round to
/// a small number that would seem to fit.
pub fn predict(c: &ModelConfig, w: &Workload) -> Result<MemoryEstimate> {
    c.validate()?;
    if w.capacity > MAX_SEQ_LEN_LIMIT {
        return Err(Error::invalid("memory::predict", "capacity", format!("{}: expected at most {MAX_SEQ_LEN_LIMIT} tokens", w.capacity)));
    }
    if w.prompt > w.capacity {
        return Err(Error::invalid("memory::predict", "prompt", format!("{} tokens: longer than the cache's {}", w.prompt, w.capacity)));
    }
    let one = predict_one_sequence(c, w);
    Ok(MemoryEstimate {
        weights: one.weights,
        kv_cache: one.kv_cache.saturating_mul(w.batch),
        recurrent_state: one.recurrent_state.saturating_mul(w.batch),
        activations: one.activations.saturating_mul(w.batch),
    })
}

/// [`predict`] for a batch of one sequence (`w.batch` is not read): every category but the weights
/// is that many bytes per sequence of the batch, each tensor counted being `[batch, …]`.
fn predict_one_sequence(c: &ModelConfig, w: &Workload) -> MemoryEstimate {
    let (b, d, f) = (1, c.d_model, c.ffn_dim);
    let span = w.span.min(w.prompt).max(1);
    // Weights: every parameter, plus what the model builds beside them: the RoPE frequency
    // tables (f32, head_dim / 2 each) and, for gated retention, the unit weight of its per-head norm.
    let rope_table = |head_dim: usize| head_dim / 2 * 4;
    let extra = match c.architecture {
        Architecture::Transformer {} => rope_table(c.head_dim),
        Architecture::Yoco { self_decoder: SelfDecoder::GatedRetention { head_dim, .. } } => rope_table(head_dim) + rope_table(c.head_dim) + head_dim * w.elem,
        Architecture::Yoco { self_decoder: SelfDecoder::SlidingWindow { .. } } => rope_table(c.head_dim),
    };
    let weights = c.parameter_count().total() * w.elem + extra;
    let kv_cache = b * w.capacity * kv_bytes_per_token(c, w.elem);
    // A prefill span replaces each retention state with a new one: one layer's worth extra
    // (sliding-window rings are written in place).
    let per_layer_state = match c.architecture {
        Architecture::Yoco { self_decoder: SelfDecoder::GatedRetention { .. } } => state_bytes_per_sequence(c, w.capacity, w.elem) / c.self_layers(),
        _ => 0,
    };
    let recurrent_state = b * (state_bytes_per_sequence(c, w.capacity, w.elem) + per_layer_state);

    // Activations: the most bytes live at once inside one span (see yoco.rs / transformer.rs /
    // blocks.rs for the tensors counted), plus, from the second span on, the previous span's last
    // token that prefill keeps. The spans are the first (nothing carried), the later whole ones
    // and a last partial one: each counted with what it carries, so that a prompt of one whole
    // span and a shorter one peaks in whichever is higher (the whole span plus the token would
    // overstate it by a token).
    let carried = b * d * w.elem;
    let prompt = w.prompt.max(1);
    let activations = match c.architecture {
        Architecture::Yoco { self_decoder: SelfDecoder::SlidingWindow { window } } => {
            // The ring lays the last W − 1 held keys and values out in order (`recent`), then
            // concatenates them with the span's: both copies live during the attention, and their
            // size depends on where the span starts, so every span is counted.
            let kv_row = c.n_kv_heads * c.head_dim * w.elem;
            (0..prompt)
                .step_by(span)
                .map(|start| {
                    let n = span.min(prompt - start);
                    let prefix = start.min(window - 1);
                    let copies = if prefix > 0 { 2 * b * (2 * prefix + n) * kv_row } else { 0 };
                    let e = b * n * d * w.elem;
                    let q = b * n * c.n_heads * c.head_dim * w.elem;
                    let attention = 2 * e + 2 * q + 2 * b * n * kv_row + copies;
                    let rest = (6 * e + w.ffn_intermediates * b * n * f * w.elem).max(7 * e);
                    attention.max(rest) + if start > 0 { carried } else { 0 }
                })
                .max()
                .unwrap_or(0)
        }
        _ => {
            // The other layers' peaks grow with the span's tokens and not with its start.
            let peak = |n: usize| {
                let e = b * n * d * w.elem; // one [batch, n, d] tensor
                let ffn = w.ffn_intermediates * b * n * f * w.elem; // the FFN's gate (and up)
                match c.architecture {
                    Architecture::Yoco { self_decoder: SelfDecoder::GatedRetention { heads, head_dim } } => {
                        // Retention: x, y, q, k, v, o, the f32 gates and, on CUDA, the chunks'
                        // incoming states and gate records; the FFN half as below.
                        let chunk_states = if w.retention_chunk_states { yoco_gated_retention::parallel_schedule_bytes(b, n, heads, head_dim, w.elem) } else { 0 };
                        (6 * e + b * n * heads * 4 + chunk_states).max(6 * e + ffn).max(7 * e)
                    }
                    _ => {
                        let q = b * n * c.n_heads * c.head_dim * w.elem;
                        // x, y, q, the attention output, the mixer output, then h, y2 and the
                        // FFN's tensors.
                        (6 * e + 2 * q + ffn).max(7 * e + 2 * q)
                    }
                }
            };
            let whole = peak(span);
            let later_whole = if prompt >= 2 * span { whole + carried } else { 0 };
            let last_part = if prompt > span && !prompt.is_multiple_of(span) { peak(prompt % span) + carried } else { 0 };
            whole.max(later_whole).max(last_part)
        }
    };
    MemoryEstimate { weights, kv_cache, recurrent_state, activations }
}
