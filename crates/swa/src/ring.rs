//! The SWA decode cache: a ring buffer of the last `W` keys and values of one layer.
//!
//! Position `p` lives in slot `p mod W`. A prefill writes only the last `W` positions of its
//! chunk; each decode step overwrites the oldest slot. RoPE is applied before keys are written
//! (with their absolute positions), so slot order does not matter to a decode query: it sees
//! exactly the `min(positions, W)` keys the ring holds, with no mask. A chunk after a prefix
//! needs the keys in order, so [`SwaCache::forward`] lays the last `W − 1` held positions out
//! chronologically in front of the chunk and runs windowed attention over both.
//!
//! The buffers, `[batch, S, kv_heads, head_dim]` each, are charged as
//! [`MemoryCategory::RecurrentState`]: per-sequence state that does not grow with the context.
//! `S`, the slots, is `W`, or `min(W, capacity)` for a ring made [`with_capacity`]: a sequence
//! that never reaches `W` positions never wraps, so it needs no slot beyond its last position.
//!
//! [`with_capacity`]: SwaCache::with_capacity

use yoco_core::{DType, Device, Error, MemoryCategory, Result, Tensor};
use yoco_gqa::{attention_prefix_into, check_attention, AttentionOptions};

use crate::check_window;

/// The last `window` keys and values of `batch` sequences, for one layer.
pub struct SwaCache {
    k: Tensor,
    v: Tensor,
    window: usize,
    /// The most positions it may be written (`usize::MAX`: unbounded).
    capacity: usize,
    /// Positions written so far (the absolute position of the next one).
    positions: usize,
}

impl SwaCache {
    /// An empty ring of `window` slots for `batch` sequences of `kv_heads` heads of `head_dim`,
    /// written for as long as the caller likes (the oldest slot is overwritten).
    pub fn new(batch: usize, window: usize, kv_heads: usize, head_dim: usize, dtype: DType, device: &Device) -> Result<SwaCache> {
        Self::allocate("SwaCache::new", [batch, window, kv_heads, head_dim], usize::MAX, dtype, device)
    }

    /// An empty ring for sequences of at most `capacity` positions: `min(window, capacity)`
    /// slots, so that a context shorter than the window holds no slot it never fills. Writing
    /// past `capacity` positions is an error (with fewer slots than the window, a wrap would drop
    /// keys the window still sees).
    pub fn with_capacity(batch: usize, window: usize, capacity: usize, kv_heads: usize, head_dim: usize, dtype: DType, device: &Device) -> Result<SwaCache> {
        const OP: &str = "SwaCache::with_capacity";
        if capacity == 0 {
            return Err(Error::invalid(OP, "capacity", "0: a ring must hold at least one position"));
        }
        Self::allocate(OP, [batch, window, kv_heads, head_dim], capacity, dtype, device)
    }

    /// Checks `[batch, window, kv_heads, head_dim]` and allocates `min(window, capacity)` slots.
    fn allocate(op: &'static str, [batch, window, kv_heads, head_dim]: [usize; 4], capacity: usize, dtype: DType, device: &Device) -> Result<SwaCache> {
        check_window(op, window)?;
        if batch == 0 || kv_heads == 0 || head_dim == 0 {
            return Err(Error::invalid(op, "shape", format!("[{batch}, {window}, {kv_heads}, {head_dim}]: every dimension must be >= 1")));
        }
        let dims = vec![batch, window.min(capacity), kv_heads, head_dim];
        let k = Tensor::zeros(dims.clone(), dtype, device, MemoryCategory::RecurrentState)?;
        let v = Tensor::zeros(dims, dtype, device, MemoryCategory::RecurrentState)?;
        Ok(SwaCache { k, v, window, capacity, positions: 0 })
    }

    pub fn window(&self) -> usize {
        self.window
    }

    /// Positions written since creation (or [`clear`](Self::clear)).
    pub fn positions(&self) -> usize {
        self.positions
    }

    /// The most positions it may be written: `usize::MAX` for a ring made with [`new`](Self::new).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Positions held: `min(positions, slots)`, the slots being the window, or the capacity where
    /// that is smaller (such a ring is never written past its slots).
    pub fn len(&self) -> usize {
        self.positions.min(self.geometry()[1])
    }

    pub fn is_empty(&self) -> bool {
        self.positions == 0
    }

    /// Bytes of the two rings: constant in the sequence length.
    pub fn size_in_bytes(&self) -> usize {
        self.k.size_in_bytes() + self.v.size_in_bytes()
    }

    /// The ring buffers in slot order, `[batch, slots, kv_heads, head_dim]`.
    pub fn slots(&self) -> (&Tensor, &Tensor) {
        (&self.k, &self.v)
    }

    pub fn clear(&mut self) {
        self.positions = 0;
    }

    /// Writes `n` new positions, `k`, `v`: `[batch, n, kv_heads, head_dim]`. Only the last
    /// `window` of them can be held; earlier ones are skipped, as they would be overwritten.
    /// Errors, changing nothing, past the capacity or on keys and values that do not match.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<()> {
        const OP: &str = "SwaCache::append";
        let n = self.check_new(OP, k, v)?;
        let [batch, w, row] = self.geometry();
        let end = self.positions + n;
        // Positions end−min(n, W) .. end, as runs of consecutive slots (at most two).
        let mut p = end - n.min(w);
        while p < end {
            let slot = p % w;
            let run = (w - slot).min(end - p);
            let src_pos = p - self.positions;
            for b in 0..batch {
                self.k.copy_range_from((b * w + slot) * row, k, (b * n + src_pos) * row, run * row)?;
                self.v.copy_range_from((b * w + slot) * row, v, (b * n + src_pos) * row, run * row)?;
            }
            p += run;
        }
        self.positions += n;
        Ok(())
    }

    /// The held positions in chronological order, the last `count` of them (at most `len`):
    /// `[batch, count, kv_heads, head_dim]` each. Copies at most two runs per sequence.
    pub fn recent(&self, count: usize) -> Result<(Tensor, Tensor)> {
        let count = count.min(self.len());
        if count == 0 {
            return Err(Error::Empty { op: "SwaCache::recent", what: "ring", shape: self.k.shape().to_string() });
        }
        let [batch, w, row] = self.geometry();
        let dims = vec![batch, count, self.k.dims()[2], self.k.dims()[3]];
        let mut k = Tensor::zeros(dims.clone(), self.k.dtype(), self.k.device(), MemoryCategory::Activations)?;
        let mut v = Tensor::zeros(dims, self.k.dtype(), self.k.device(), MemoryCategory::Activations)?;
        // Positions positions−count .. positions, as runs of consecutive slots (at most two).
        let mut p = self.positions - count;
        while p < self.positions {
            let slot = p % w;
            let run = (w - slot).min(self.positions - p);
            let at = p - (self.positions - count);
            for b in 0..batch {
                k.copy_range_from((b * count + at) * row, &self.k, (b * w + slot) * row, run * row)?;
                v.copy_range_from((b * count + at) * row, &self.v, (b * w + slot) * row, run * row)?;
            }
            p += run;
        }
        Ok((k, v))
    }

    /// One layer's sliding-window attention for the `n` new positions `q`, `k`, `v` (`[batch,
    /// n, heads or kv_heads, head_dim]`, RoPE already applied), after everything written before;
    /// writes the new keys into the ring. A decode step (`n == 1`) attends over the ring in
    /// place; a longer chunk over the last `W − 1` held positions laid out in order, then itself.
    pub fn forward(&mut self, q: &Tensor, k: &Tensor, v: &Tensor, scale: Option<f32>) -> Result<Tensor> {
        const OP: &str = "SwaCache::forward";
        let n = self.check_new(OP, k, v)?;
        let qd = q.dims();
        if qd.len() != 4 || qd[1] != n {
            return Err(Error::ShapeMismatch { op: OP, what: "q", expected: format!("[batch, {n}, heads, head_dim]"), got: q.shape().to_string() });
        }
        let mut out = Tensor::for_overwrite(q.shape().clone(), q.dtype(), q.device(), MemoryCategory::Activations)?;
        if n == 1 {
            let options = AttentionOptions { mask: yoco_gqa::Mask::None, scale };
            // Checked before the ring changes: a call that errors must not overwrite its oldest key.
            check_attention(q, &self.k, &self.v, (self.positions + 1).min(self.geometry()[1]), options)?;
            self.append(k, v)?;
            attention_prefix_into(q, &self.k, &self.v, self.len(), options, &mut out)?;
        } else {
            let prefix = self.len().min(self.window - 1);
            let options = AttentionOptions { mask: yoco_gqa::Mask::Window(self.window), scale };
            if prefix == 0 {
                yoco_gqa::attention_into(q, k, v, options, &mut out)?;
            } else {
                let (pk, pv) = self.recent(prefix)?;
                let (ck, cv) = (concat_positions(&pk, k)?, concat_positions(&pv, v)?);
                yoco_gqa::attention_into(q, &ck, &cv, options, &mut out)?;
            }
            self.append(k, v)?;
        }
        Ok(out)
    }

    /// [batch, slots, elements per position].
    fn geometry(&self) -> [usize; 3] {
        let d = self.k.dims();
        [d[0], d[1], d[2] * d[3]]
    }

    /// Checks new keys and values against the ring; returns their count.
    fn check_new(&self, op: &'static str, k: &Tensor, v: &Tensor) -> Result<usize> {
        let d = self.k.dims();
        let n = k.dims().get(1).copied().unwrap_or(0);
        k.expect_dims(op, "k", &[d[0], n, d[2], d[3]])?;
        v.expect_dims(op, "v", k.dims())?;
        for (what, t) in [("k", k), ("v", v)] {
            t.expect_dtype(op, what, self.k.dtype())?;
            t.expect_device_of(op, what, &self.k)?;
        }
        if n == 0 {
            return Err(Error::Empty { op, what: "k", shape: k.shape().to_string() });
        }
        if n > self.capacity - self.positions {
            return Err(Error::invalid(op, "k", format!("{n} positions after {} overflow the capacity of {}", self.positions, self.capacity)));
        }
        Ok(n)
    }
}

/// `a` then `b` along positions: `[batch, na + nb, heads, head_dim]`.
fn concat_positions(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (da, db) = (a.dims(), b.dims());
    let (batch, na, nb, row) = (da[0], da[1], db[1], da[2] * da[3]);
    let mut out = Tensor::zeros(vec![batch, na + nb, da[2], da[3]], a.dtype(), a.device(), MemoryCategory::Activations)?;
    for bi in 0..batch {
        out.copy_range_from(bi * (na + nb) * row, a, bi * na * row, na * row)?;
        out.copy_range_from((bi * (na + nb) + na) * row, b, bi * nb * row, nb * row)?;
    }
    Ok(out)
}
