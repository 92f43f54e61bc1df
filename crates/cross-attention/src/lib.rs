//! YOCO's cross-attention over the shared K/V cache.
//!
//! The self-decoder's output is projected once into the global `K̂`, `V̂` (the model computes
//! them: `K̂ = RoPE(RMSNorm_kv(M) Wk)`, `V̂ = RMSNorm_kv(M) Wv`); every cross-decoder layer then
//! attends to that one cache with its own queries, causal and aligned bottom-right. So a YOCO
//! model keeps one layer's worth of K/V instead of L, and with early exit the prefill runs the
//! cross-decoder for the last prompt token only (one query over the whole cache).
//!
//! [`SharedKvCache`] is that cache: written once per token, read (`&self`) by every cross layer.
//! It is yoco-gqa's [`KvCache`] with the write/read split of its use, and the
//! attention is yoco-gqa's core (prefill kernel for chunks, split-KV decode kernel for one query).
//!
//! Rooms: this file is the API; [`check`] the validation the tests and `yoco check` share. The
//! reference, CPU and CUDA paths are yoco-gqa's.

pub mod check;

use yoco_core::{DType, Device, Result, Tensor};
use yoco_gqa::{AttentionOptions, KvCache};

/// The global K̂/V̂ of the cross-decoder, `[batch, capacity, kv_heads, head_dim]` each, charged as
/// K/V cache once however many layers read it.
pub struct SharedKvCache {
    cache: KvCache,
}

impl SharedKvCache {
    /// An empty cache for `batch` sequences of up to `capacity` tokens.
    pub fn new(batch: usize, capacity: usize, kv_heads: usize, head_dim: usize, dtype: DType, device: &Device) -> Result<SharedKvCache> {
        Ok(SharedKvCache { cache: KvCache::new(batch, capacity, kv_heads, head_dim, dtype, device)? })
    }

    /// Writes K̂, V̂ of `n` new tokens (`[batch, n, kv_heads, head_dim]`, RoPE applied to K̂):
    /// once per token, before any cross layer reads them. Errors past the capacity.
    pub fn write(&mut self, k_hat: &Tensor, v_hat: &Tensor) -> Result<()> {
        self.cache.append(k_hat, v_hat)
    }

    /// One cross layer: its queries `q` `[batch, q_len, heads, head_dim]` (the last `q_len`
    /// tokens written; 1 for a decode step or an early-exit prefill) over every token written,
    /// causal, bottom-right aligned.
    pub fn attend(&self, q: &Tensor) -> Result<Tensor> {
        self.cache.attend(q, AttentionOptions::causal())
    }

    /// [`attend`](Self::attend) into a preallocated `out`.
    pub fn attend_into(&self, q: &Tensor, out: &mut Tensor) -> Result<()> {
        self.cache.attend_into(q, AttentionOptions::causal(), out)
    }

    /// Tokens written.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.cache.capacity()
    }

    /// Bytes of K̂ and V̂: the whole of YOCO's growing cache.
    pub fn size_in_bytes(&self) -> usize {
        self.cache.size_in_bytes()
    }

    /// The underlying cache (its buffers, for kernels that read them directly).
    pub fn inner(&self) -> &KvCache {
        &self.cache
    }

    pub fn clear(&mut self) {
        self.cache.clear();
    }
}
