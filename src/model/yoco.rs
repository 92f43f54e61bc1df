//! YOCO: a self-decoder of gated-retention or sliding-window layers (layers 1..L/2) whose output is projected
//! once into the shared K̂/V̂ cache, then a cross-decoder (layers L/2+1..L) whose layers attend
//! to that one cache with their own queries.
//!
//! Prefill runs the self-decoder over the prompt in chunks (carrying each layer's D×D state),
//! writes K̂/V̂ for every prompt token, and runs the cross-decoder for the last token only
//! ("early exit"): no later step reads the cross-decoder outputs of earlier tokens, so skipping
//! them is exact. Decode runs one token through everything.

use yoco_core::{DType, Device, Error, MemoryCategory, Result, Tensor};
use yoco_gqa::{KvCache, Mask};
use yoco_swa::SwaCache;
use yoco_rope::{Rope, RopeVariant};

use super::blocks::{ffn_half, heads, last_token, logits, merge_heads};
use super::config::{Architecture, ModelConfig, SelfDecoder};
use super::ops::{Backend, Ops};
use super::weights::Weights;

/// The self-decoder's mixer, with what it needs beyond its weights.
// One per model, built once: the RoPE tables' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Mixer {
    /// Gated retention: its heads, their RoPE, and the `[head_dim]` ones of its per-head RMSNorm
    /// (which has no weight).
    Retention { heads: usize, head_dim: usize, rope: Rope, unit_norm: Tensor },
    /// Sliding-window attention over the last `window` tokens (the attention heads' RoPE).
    Window { window: usize },
}

/// A YOCO model: gated-retention or sliding-window self-decoder, cross-decoder over one cache.
pub struct Yoco {
    pub config: ModelConfig,
    weights: Weights,
    ops: Ops,
    device: Device,
    mixer: Mixer,
    /// RoPE of the attention heads (YOCO's variant).
    attn_rope: Rope,
}

/// One self-decoder layer's per-sequence state.
enum SelfState {
    /// `[batch, heads, head_dim, head_dim]` f32.
    Retention(Tensor),
    /// The ring of the last W keys and values (fast backend).
    Window(SwaCache),
    /// Every key and value, read through the window mask (reference backend: the oracle needs
    /// no ring).
    WindowReference(KvCache),
}

/// What YOCO keeps per batch of sequences between calls: each self-decoder layer's state (a
/// D×D retention state or a ring of W keys) and the shared K̂/V̂ cache.
pub struct YocoCache {
    states: Vec<SelfState>,
    cross: KvCache,
    batch: usize,
}

impl YocoCache {
    /// Tokens processed so far per sequence.
    pub fn len(&self) -> usize {
        self.cross.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cross.is_empty()
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Positions per sequence the cache has room for.
    pub fn capacity(&self) -> usize {
        self.cross.capacity()
    }
}

impl Yoco {
    /// Builds the model from `weights` (whose dtype is the model's) on `device`.
    pub fn new(config: &ModelConfig, weights: Weights, ops: Ops, device: &Device) -> Result<Yoco> {
        config.validate()?;
        ops.backend.check(weights.dtype(), device)?;
        let mixer = match config.architecture {
            Architecture::Yoco { self_decoder: SelfDecoder::GatedRetention { heads, head_dim } } => Mixer::Retention {
                heads,
                head_dim,
                rope: Rope::new(RopeVariant::Yoco, head_dim, config.rope_theta, device)?,
                unit_norm: Tensor::from_f64(&vec![1.0; head_dim], [head_dim], weights.dtype(), device, MemoryCategory::Weights)?,
            },
            Architecture::Yoco { self_decoder: SelfDecoder::SlidingWindow { window } } => Mixer::Window { window },
            Architecture::Transformer {} => return Err(Error::invalid("Yoco::new", "architecture", "a Transformer config: use Transformer::new")),
        };
        Ok(Yoco {
            mixer,
            attn_rope: Rope::new(RopeVariant::Yoco, config.head_dim, config.rope_theta, device)?,
            config: config.clone(),
            weights,
            ops,
            device: device.clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// An empty cache for `batch` sequences of up to `capacity` tokens (prompt + generated).
    pub fn new_cache(&self, batch: usize, capacity: usize) -> Result<YocoCache> {
        let c = &self.config;
        if capacity > c.max_seq_len {
            return Err(Error::invalid("Yoco::new_cache", "capacity", format!("{capacity} tokens exceed max_seq_len = {}", c.max_seq_len)));
        }
        let dtype = self.weights.dtype();
        let new_state = || -> Result<SelfState> {
            Ok(match (&self.mixer, self.ops.backend) {
                (Mixer::Retention { heads, head_dim, .. }, _) => {
                    SelfState::Retention(Tensor::zeros([batch, *heads, *head_dim, *head_dim], DType::F32, &self.device, MemoryCategory::RecurrentState)?)
                }
                (Mixer::Window { window }, Backend::Fast) => SelfState::Window(SwaCache::with_capacity(batch, *window, capacity, c.n_kv_heads, c.head_dim, dtype, &self.device)?),
                (Mixer::Window { .. }, Backend::Reference) => SelfState::WindowReference(KvCache::new(batch, capacity, c.n_kv_heads, c.head_dim, dtype, &self.device)?),
            })
        };
        let states = (0..c.self_layers()).map(|_| new_state()).collect::<Result<_>>()?;
        let cross = KvCache::new(batch, capacity, c.n_kv_heads, c.head_dim, self.weights.dtype(), &self.device)?;
        Ok(YocoCache { states, cross, batch })
    }

    /// The name of the norm weight that follows self-decoder layer `l`.
    fn norm_after_self(&self, l: usize) -> String {
        if l + 1 < self.config.self_layers() {
            format!("self.{}.mixer_norm", l + 1)
        } else {
            "cross.0.attn_norm".into()
        }
    }

    fn norm_after_cross(&self, l: usize) -> String {
        if l + 1 < self.config.self_layers() {
            format!("cross.{}.attn_norm", l + 1)
        } else {
            "final_norm".into()
        }
    }

    /// The self-decoder mixer of layer `l` on the normed span `y` at positions `offset..`.
    fn mixer(&self, l: usize, y: &Tensor, state: &mut SelfState, offset: usize, chunk: usize) -> Result<Tensor> {
        let (w, ops, c) = (&self.weights, &self.ops, &self.config);
        match (&self.mixer, state) {
            (Mixer::Retention { heads: h, head_dim: d, rope, unit_norm }, SelfState::Retention(state)) => {
                let p = format!("self.{l}.gret");
                let q = ops.rope(rope, heads(ops, y, w.get(&format!("{p}.wq"))?, *h, *d)?, offset)?;
                let k = ops.rope(rope, heads(ops, y, w.get(&format!("{p}.wk"))?, *h, *d)?, offset)?;
                let v = heads(ops, y, w.get(&format!("{p}.wv"))?, *h, *d)?;
                let log_decay = ops.log_decay(&ops.linear(y, w.get(&format!("{p}.wgamma"))?)?)?;
                let o = ops.gated_retention(&q, &k, &v, &log_decay, state, chunk)?;
                drop((q, k, v, log_decay));
                let o = merge_heads(ops.rms_norm(&o, unit_norm, c.norm_eps)?)?;
                let gated = ops.silu_mul(&ops.linear(y, w.get(&format!("{p}.wg"))?)?, &o)?;
                ops.linear(&gated, w.get(&format!("{p}.wo"))?)
            }
            (Mixer::Window { window }, state) => {
                let p = format!("self.{l}.swa");
                let q = ops.rope(&self.attn_rope, heads(ops, y, w.get(&format!("{p}.wq"))?, c.n_heads, c.head_dim)?, offset)?;
                let k = ops.rope(&self.attn_rope, heads(ops, y, w.get(&format!("{p}.wk"))?, c.n_kv_heads, c.head_dim)?, offset)?;
                let v = heads(ops, y, w.get(&format!("{p}.wv"))?, c.n_kv_heads, c.head_dim)?;
                let a = match state {
                    SelfState::Window(ring) => ring.forward(&q, &k, &v, None)?,
                    SelfState::WindowReference(cache) => {
                        cache.append(&k, &v)?;
                        ops.attend(cache, &q, Mask::Window(*window))?
                    }
                    SelfState::Retention(_) => return Err(Error::invalid("Yoco", "state", "a retention state for a windowed layer")),
                };
                drop((q, k, v));
                ops.linear(&merge_heads(a)?, w.get(&format!("{p}.wo"))?)
            }
            (Mixer::Retention { .. }, _) => Err(Error::invalid("Yoco", "state", "a window state for a retention layer")),
        }
    }

    /// Runs the self-decoder over one span `tokens` ([batch × n], row-major) at the cache's
    /// position, appends its K̂/V̂ to the shared cache, and returns the residual stream `x`
    /// after the self-decoder `[batch, n, d]`.
    fn self_decoder(&self, cache: &mut YocoCache, tokens: &[u32], chunk: usize) -> Result<Tensor> {
        let (w, ops, c) = (&self.weights, &self.ops, &self.config);
        let offset = cache.len();
        let mut x = ops.embed(w.get("embed")?, tokens, cache.batch)?;
        let mut y = ops.rms_norm(&x, w.get("self.0.mixer_norm")?, c.norm_eps)?;
        for l in 0..c.self_layers() {
            let m = self.mixer(l, &y, &mut cache.states[l], offset, chunk)?;
            (x, y) = ffn_half(ops, w, &format!("self.{l}"), &x, &m, w.get(&self.norm_after_self(l))?, c.norm_eps)?;
        }
        drop(y);
        // The shared K̂/V̂ of these tokens: K̂ = RoPE(RMSNorm_kv(x) Wk), V̂ = RMSNorm_kv(x) Wv.
        let kv_in = ops.rms_norm(&x, w.get("cross.kv_norm")?, c.norm_eps)?;
        let k = ops.rope(&self.attn_rope, heads(ops, &kv_in, w.get("cross.wk")?, c.n_kv_heads, c.head_dim)?, offset)?;
        let v = heads(ops, &kv_in, w.get("cross.wv")?, c.n_kv_heads, c.head_dim)?;
        cache.cross.append(&k, &v)?;
        Ok(x)
    }

    /// The cross-decoder over the stream `x [batch, n, d]` of the cache's last `n` positions;
    /// returns logits `[batch, n, vocab]`.
    fn cross_decoder(&self, cache: &YocoCache, mut x: Tensor) -> Result<Tensor> {
        let (w, ops, c) = (&self.weights, &self.ops, &self.config);
        let offset = cache.len() - x.dims()[1];
        let mut y = ops.rms_norm(&x, w.get("cross.0.attn_norm")?, c.norm_eps)?;
        for l in 0..c.self_layers() {
            let q = ops.rope(&self.attn_rope, heads(ops, &y, w.get(&format!("cross.{l}.wq"))?, c.n_heads, c.head_dim)?, offset)?;
            let a = merge_heads(ops.attend(&cache.cross, &q, Mask::Causal)?)?;
            let m = ops.linear(&a, w.get(&format!("cross.{l}.wo"))?)?;
            (x, y) = ffn_half(ops, w, &format!("cross.{l}"), &x, &m, w.get(&self.norm_after_cross(l))?, c.norm_eps)?;
        }
        logits(ops, w, &y)
    }

    fn check_tokens(&self, cache: &YocoCache, tokens: &[u32]) -> Result<()> {
        check_tokens(&self.config, tokens, cache.batch, cache.len(), cache.capacity())
    }

    /// Prefill with early exit: the prompt `tokens` (`batch` sequences of equal length,
    /// row-major) through the self-decoder in spans of `chunk_len` tokens, K̂/V̂ cached for every
    /// token, the cross-decoder for the last token only. Returns the last token's logits
    /// `[batch, 1, vocab]`.
    pub fn prefill(&self, cache: &mut YocoCache, tokens: &[u32], chunk_len: usize, retention_chunk: usize) -> Result<Tensor> {
        self.check_tokens(cache, tokens)?;
        let n = tokens.len() / cache.batch;
        let spans = span_tokens(tokens, cache.batch, n, chunk_len)?;
        let mut x_last = None;
        for span in &spans {
            let x = self.self_decoder(cache, span, retention_chunk)?;
            x_last = Some(last_token(&x)?);
        }
        self.cross_decoder(cache, x_last.expect("at least one span"))
    }

    /// One token per sequence (`tokens.len() == batch`): returns logits `[batch, 1, vocab]`.
    pub fn decode(&self, cache: &mut YocoCache, tokens: &[u32]) -> Result<Tensor> {
        if tokens.len() != cache.batch {
            return Err(Error::invalid("Yoco::decode", "tokens", format!("{} tokens for a batch of {}", tokens.len(), cache.batch)));
        }
        self.check_tokens(cache, tokens)?;
        let x = self.self_decoder(cache, tokens, 1)?;
        self.cross_decoder(cache, x)
    }

    /// The whole model over `tokens` without early exit: the cross-decoder runs for every token.
    /// Returns logits for every position `[batch, n, vocab]`. For tests and for measuring what
    /// early exit saves.
    pub fn forward_all(&self, cache: &mut YocoCache, tokens: &[u32], retention_chunk: usize) -> Result<Tensor> {
        self.check_tokens(cache, tokens)?;
        let x = self.self_decoder(cache, tokens, retention_chunk)?;
        self.cross_decoder(cache, x)
    }
}

/// Token ids in the vocabulary, equal-length sequences, within the configured maximum and within
/// the room a cache holding `held` of `capacity` positions has left. Checked before a call
/// changes any state, so that one that errors leaves the cache as it was.
pub fn check_tokens(config: &ModelConfig, tokens: &[u32], batch: usize, held: usize, capacity: usize) -> Result<()> {
    const OP: &str = "tokens";
    if batch == 0 || tokens.is_empty() || !tokens.len().is_multiple_of(batch) {
        return Err(Error::invalid(OP, "tokens", format!("{} tokens do not split into {batch} equal, non-empty sequences", tokens.len())));
    }
    if tokens.len() / batch > config.max_seq_len {
        return Err(Error::invalid(OP, "tokens", format!("{} tokens per sequence exceed max_seq_len = {}", tokens.len() / batch, config.max_seq_len)));
    }
    if tokens.len() / batch > capacity - held {
        return Err(Error::invalid(OP, "tokens", format!("{} tokens per sequence after {held} overflow the cache's capacity of {capacity}", tokens.len() / batch)));
    }
    if let Some(bad) = tokens.iter().find(|&&t| t as usize >= config.vocab_size) {
        return Err(Error::invalid(OP, "tokens", format!("token id {bad} is outside the vocabulary of {}", config.vocab_size)));
    }
    Ok(())
}

/// Splits `batch` row-major sequences of `n` tokens into spans of at most `chunk_len` tokens per
/// sequence, each span row-major `[batch × len]`.
pub fn span_tokens(tokens: &[u32], batch: usize, n: usize, chunk_len: usize) -> Result<Vec<Vec<u32>>> {
    if chunk_len == 0 {
        return Err(Error::invalid("prefill", "chunk_len", "0: expected a positive number of tokens"));
    }
    Ok((0..n)
        .step_by(chunk_len)
        .map(|start| {
            let end = (start + chunk_len).min(n);
            (0..batch).flat_map(|b| tokens[b * n + start..b * n + end].iter().copied()).collect()
        })
        .collect())
}
