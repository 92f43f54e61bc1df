//! The growing K/V cache of one attention layer: the Transformer keeps one per layer, YOCO one
//! for the whole cross-decoder (yoco-cross-attention wraps this one).
//!
//! The buffers are allocated once at a fixed capacity, `[batch, capacity, kv_heads, head_dim]`,
//! and charged to the device as [`MemoryCategory::KvCache`]; positions are appended in order and
//! attention reads the first `len` of them in place (no copy, no re-layout). Appending past the
//! capacity is an error: nothing is dropped or truncated silently.

use yoco_core::{DType, Device, Error, MemoryCategory, Result, Tensor};

use crate::{attention_prefix_into, AttentionOptions};

/// Keys and values of positions `0 .. len` of `batch` sequences, room for `capacity`.
pub struct KvCache {
    k: Tensor,
    v: Tensor,
    len: usize,
}

impl KvCache {
    /// An empty cache for `batch` sequences of up to `capacity` positions of `kv_heads` heads of
    /// `head_dim`, in `dtype` on `device`.
    pub fn new(batch: usize, capacity: usize, kv_heads: usize, head_dim: usize, dtype: DType, device: &Device) -> Result<KvCache> {
        if batch == 0 || capacity == 0 || kv_heads == 0 || head_dim == 0 {
            return Err(Error::invalid("KvCache::new", "shape", format!("[{batch}, {capacity}, {kv_heads}, {head_dim}]: every dimension must be >= 1")));
        }
        let dims = vec![batch, capacity, kv_heads, head_dim];
        let k = Tensor::zeros(dims.clone(), dtype, device, MemoryCategory::KvCache)?;
        let v = Tensor::zeros(dims, dtype, device, MemoryCategory::KvCache)?;
        Ok(KvCache { k, v, len: 0 })
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions it can hold.
    pub fn capacity(&self) -> usize {
        self.k.dims()[1]
    }

    /// The key buffer `[batch, capacity, kv_heads, head_dim]`; positions `len..` are unused.
    pub fn keys(&self) -> &Tensor {
        &self.k
    }

    /// The value buffer, like [`keys`](Self::keys).
    pub fn values(&self) -> &Tensor {
        &self.v
    }

    /// Bytes of the two buffers.
    pub fn size_in_bytes(&self) -> usize {
        self.k.size_in_bytes() + self.v.size_in_bytes()
    }

    /// Appends the keys and values of `n` new positions, `k`, `v`: `[batch, n, kv_heads,
    /// head_dim]`. Errors, changing nothing, if they do not fit or do not match the cache.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<()> {
        let n = self.check_append(k, v)?;
        self.write(k, v, n)
    }

    /// Copies `n` checked new positions in after the held ones.
    fn write(&mut self, k: &Tensor, v: &Tensor, n: usize) -> Result<()> {
        let cd = self.k.dims().to_vec();
        let row = cd[2] * cd[3];
        for b in 0..cd[0] {
            let dst = (b * cd[1] + self.len) * row;
            self.k.copy_range_from(dst, k, b * n * row, n * row)?;
            self.v.copy_range_from(dst, v, b * n * row, n * row)?;
        }
        self.len += n;
        Ok(())
    }

    /// Every check of [`append`](Self::append); returns the number of new positions.
    fn check_append(&self, k: &Tensor, v: &Tensor) -> Result<usize> {
        const OP: &str = "KvCache::append";
        let cd = self.k.dims();
        let n = k.dims().get(1).copied().unwrap_or(0);
        k.expect_dims(OP, "k", &[cd[0], n, cd[2], cd[3]])?;
        v.expect_dims(OP, "v", k.dims())?;
        for (what, t) in [("k", k), ("v", v)] {
            t.expect_dtype(OP, what, self.k.dtype())?;
            t.expect_device_of(OP, what, &self.k)?;
        }
        if n > self.capacity() - self.len {
            return Err(Error::invalid(OP, "k", format!("{n} positions after {} overflow the capacity of {}", self.len, self.capacity())));
        }
        Ok(n)
    }

    /// Attention of `q` `[batch, q_len, heads, head_dim]`, the last `q_len` positions held, over
    /// every position held (a causal mask aligned bottom-right by default).
    pub fn attend(&self, q: &Tensor, options: AttentionOptions) -> Result<Tensor> {
        let mut out = Tensor::for_overwrite(q.shape().clone(), q.dtype(), q.device(), MemoryCategory::Activations)?;
        self.attend_into(q, options, &mut out)?;
        Ok(out)
    }

    /// [`attend`](Self::attend) into a preallocated `out`.
    pub fn attend_into(&self, q: &Tensor, options: AttentionOptions, out: &mut Tensor) -> Result<()> {
        self.expect_nonempty()?;
        attention_prefix_into(q, &self.k, &self.v, self.len, options, out)
    }

    /// Every check [`attend`](Self::attend) makes of its inputs, without running it: for callers
    /// that compute the attention another way (the models' reference backend) and must refuse
    /// what the fast path refuses, with the same error.
    pub fn check_attend(&self, q: &Tensor, options: AttentionOptions) -> Result<()> {
        self.expect_nonempty()?;
        crate::check_attention(q, &self.k, &self.v, self.len, options)
    }

    fn expect_nonempty(&self) -> Result<()> {
        if self.len == 0 {
            return Err(Error::Empty { op: "KvCache::attend", what: "cache", shape: self.k.shape().to_string() });
        }
        Ok(())
    }

    /// Appends `k`, `v` (the new positions of `q`) and attends `q` over everything held: one
    /// layer's prefill chunk or decode step. Everything is checked first: a call that errors
    /// leaves the cache as it was.
    pub fn append_and_attend(&mut self, q: &Tensor, k: &Tensor, v: &Tensor, options: AttentionOptions) -> Result<Tensor> {
        let n = self.check_append(k, v)?;
        crate::check_attention(q, &self.k, &self.v, self.len + n, options)?;
        // Allocated before the write, so that running out of memory leaves the cache unchanged.
        let mut out = Tensor::for_overwrite(q.shape().clone(), q.dtype(), q.device(), MemoryCategory::Activations)?;
        self.write(k, v, n)?;
        if let Err(error) = self.attend_into(q, options, &mut out) {
            // A failed launch after the write (reachable through a device failure only: every
            // input was checked before the write): forget the new positions (their bytes past
            // `len` are unused), so the cache holds what it held before the call.
            self.len -= n;
            return Err(error);
        }
        Ok(out)
    }

    /// Forgets every position (the buffers stay allocated).
    pub fn clear(&mut self) {
        self.len = 0;
    }
}
