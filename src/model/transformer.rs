//! The Transformer twin: Llama-style, every layer GQA attention (Llama RoPE) with its own K/V
//! cache, and a SwiGLU FFN; the same width, depth, heads and FFN as the YOCO it is compared to.
//! Prefill runs every layer over every prompt token (in spans of `chunk_len` tokens, each span
//! attending to the cached prefix).

use yoco_core::{Device, Error, Result, Tensor};
use yoco_gqa::{KvCache, Mask};
use yoco_rope::{Rope, RopeVariant};

use super::blocks::{ffn_half, heads, last_token, logits, merge_heads};
use super::config::{Architecture, ModelConfig};
use super::ops::Ops;
use super::weights::Weights;
use super::yoco::{check_tokens, span_tokens};

pub struct Transformer {
    pub config: ModelConfig,
    weights: Weights,
    ops: Ops,
    device: Device,
    rope: Rope,
}

/// One K/V cache per layer.
pub struct TransformerCache {
    layers: Vec<KvCache>,
    batch: usize,
}

impl TransformerCache {
    pub fn len(&self) -> usize {
        self.layers[0].len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Positions per sequence the cache has room for.
    pub fn capacity(&self) -> usize {
        self.layers[0].capacity()
    }
}

impl Transformer {
    pub fn new(config: &ModelConfig, weights: Weights, ops: Ops, device: &Device) -> Result<Transformer> {
        config.validate()?;
        ops.backend.check(weights.dtype(), device)?;
        if config.architecture != (Architecture::Transformer {}) {
            return Err(Error::invalid("Transformer::new", "architecture", "a YOCO config: use Yoco::new"));
        }
        Ok(Transformer { rope: Rope::new(RopeVariant::Llama, config.head_dim, config.rope_theta, device)?, config: config.clone(), weights, ops, device: device.clone() })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn new_cache(&self, batch: usize, capacity: usize) -> Result<TransformerCache> {
        let c = &self.config;
        if capacity > c.max_seq_len {
            return Err(Error::invalid("Transformer::new_cache", "capacity", format!("{capacity} tokens exceed max_seq_len = {}", c.max_seq_len)));
        }
        let layers = (0..c.n_layers).map(|_| KvCache::new(batch, capacity, c.n_kv_heads, c.head_dim, self.weights.dtype(), &self.device)).collect::<Result<_>>()?;
        Ok(TransformerCache { layers, batch })
    }

    fn norm_after(&self, l: usize) -> String {
        if l + 1 < self.config.n_layers {
            format!("layers.{}.attn_norm", l + 1)
        } else {
            "final_norm".into()
        }
    }

    /// Every layer over one span; returns the final-normed stream `[batch, n, d]`.
    fn layers(&self, cache: &mut TransformerCache, tokens: &[u32]) -> Result<Tensor> {
        let (w, ops, c) = (&self.weights, &self.ops, &self.config);
        let offset = cache.len();
        let mut x = ops.embed(w.get("embed")?, tokens, cache.batch)?;
        let mut y = ops.rms_norm(&x, w.get("layers.0.attn_norm")?, c.norm_eps)?;
        for l in 0..c.n_layers {
            let p = format!("layers.{l}.attn");
            let q = ops.rope(&self.rope, heads(ops, &y, w.get(&format!("{p}.wq"))?, c.n_heads, c.head_dim)?, offset)?;
            let k = ops.rope(&self.rope, heads(ops, &y, w.get(&format!("{p}.wk"))?, c.n_kv_heads, c.head_dim)?, offset)?;
            let v = heads(ops, &y, w.get(&format!("{p}.wv"))?, c.n_kv_heads, c.head_dim)?;
            cache.layers[l].append(&k, &v)?;
            drop((k, v));
            let a = merge_heads(ops.attend(&cache.layers[l], &q, Mask::Causal)?)?;
            let m = ops.linear(&a, w.get(&format!("{p}.wo"))?)?;
            (x, y) = ffn_half(ops, w, &format!("layers.{l}"), &x, &m, w.get(&self.norm_after(l))?, c.norm_eps)?;
        }
        Ok(y)
    }

    /// Prefill of equal-length prompts in spans of `chunk_len`; returns the last token's logits
    /// `[batch, 1, vocab]`.
    pub fn prefill(&self, cache: &mut TransformerCache, tokens: &[u32], chunk_len: usize) -> Result<Tensor> {
        check_tokens(&self.config, tokens, cache.batch, cache.len(), cache.capacity())?;
        let n = tokens.len() / cache.batch;
        let mut y_last = None;
        for span in span_tokens(tokens, cache.batch, n, chunk_len)? {
            let y = self.layers(cache, &span)?;
            y_last = Some(last_token(&y)?);
        }
        logits(&self.ops, &self.weights, &y_last.expect("at least one span"))
    }

    /// One token per sequence; returns logits `[batch, 1, vocab]`.
    pub fn decode(&self, cache: &mut TransformerCache, tokens: &[u32]) -> Result<Tensor> {
        if tokens.len() != cache.batch {
            return Err(Error::invalid("Transformer::decode", "tokens", format!("{} tokens for a batch of {}", tokens.len(), cache.batch)));
        }
        check_tokens(&self.config, tokens, cache.batch, cache.len(), cache.capacity())?;
        let y = self.layers(cache, tokens)?;
        logits(&self.ops, &self.weights, &y)
    }

    /// Logits for every position `[batch, n, vocab]`.
    pub fn forward_all(&self, cache: &mut TransformerCache, tokens: &[u32]) -> Result<Tensor> {
        check_tokens(&self.config, tokens, cache.batch, cache.len(), cache.capacity())?;
        let y = self.layers(cache, tokens)?;
        logits(&self.ops, &self.weights, &y)
    }
}
