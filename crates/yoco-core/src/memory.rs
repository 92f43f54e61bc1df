//! Memory accounting: every tensor allocation is charged to a [`MemoryTracker`] under a
//! [`MemoryCategory`], and released when the tensor is dropped.
//!
//! Current and peak bytes are kept per category and in total. The total peak is tracked on its
//! own: the sum of per-category peaks over-counts when the peaks happen at different times.
//! Counters are atomics so that rayon workers and the harness can read them without locks.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What an allocation is for. The harness reports memory broken down by these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemoryCategory {
    /// Model parameters.
    Weights,
    /// Attention K/V caches (the Transformer's per layer, YOCO's one shared cache).
    KvCache,
    /// Per-sequence state whose size does not grow with the context: gated-retention states and
    /// sliding-window ring buffers.
    RecurrentState,
    /// Everything transient: inputs, outputs and intermediates of a forward pass.
    Activations,
}

impl MemoryCategory {
    /// Every category, in report order.
    pub const ALL: [MemoryCategory; 4] = [
        MemoryCategory::Weights,
        MemoryCategory::KvCache,
        MemoryCategory::RecurrentState,
        MemoryCategory::Activations,
    ];

    const fn index(self) -> usize {
        match self {
            MemoryCategory::Weights => 0,
            MemoryCategory::KvCache => 1,
            MemoryCategory::RecurrentState => 2,
            MemoryCategory::Activations => 3,
        }
    }

    /// Name used in reports.
    pub const fn name(self) -> &'static str {
        match self {
            MemoryCategory::Weights => "weights",
            MemoryCategory::KvCache => "kv-cache",
            MemoryCategory::RecurrentState => "recurrent-state",
            MemoryCategory::Activations => "activations",
        }
    }
}

impl fmt::Display for MemoryCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Current and peak bytes per category and in total, for one device.
#[derive(Debug, Default)]
pub struct MemoryTracker {
    current: [AtomicUsize; 4],
    peak: [AtomicUsize; 4],
    total_current: AtomicUsize,
    total_peak: AtomicUsize,
}

/// A copy of a tracker's counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemorySnapshot {
    /// Bytes held now, per category (indexed in [`MemoryCategory::ALL`] order).
    pub current: [usize; 4],
    /// Most bytes held at once since the last reset, per category.
    pub peak: [usize; 4],
    /// Bytes held now, all categories.
    pub total_current: usize,
    /// Most bytes held at once since the last reset, all categories together.
    pub total_peak: usize,
}

impl MemorySnapshot {
    pub fn current(&self, category: MemoryCategory) -> usize {
        self.current[category.index()]
    }

    pub fn peak(&self, category: MemoryCategory) -> usize {
        self.peak[category.index()]
    }
}

impl MemoryTracker {
    /// A tracker with every counter at zero.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Counts `bytes` as allocated under `category`; the returned charge releases them on drop.
    pub fn charge(self: &Arc<Self>, category: MemoryCategory, bytes: usize) -> MemoryCharge {
        self.add(category, bytes);
        MemoryCharge { tracker: Arc::clone(self), category, bytes }
    }

    fn add(&self, category: MemoryCategory, bytes: usize) {
        let i = category.index();
        let now = self.current[i].fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak[i].fetch_max(now, Ordering::Relaxed);
        let total = self.total_current.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.total_peak.fetch_max(total, Ordering::Relaxed);
    }

    fn sub(&self, category: MemoryCategory, bytes: usize) {
        self.current[category.index()].fetch_sub(bytes, Ordering::Relaxed);
        self.total_current.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> MemorySnapshot {
        let load = |a: &AtomicUsize| a.load(Ordering::Relaxed);
        MemorySnapshot {
            current: std::array::from_fn(|i| load(&self.current[i])),
            peak: std::array::from_fn(|i| load(&self.peak[i])),
            total_current: load(&self.total_current),
            total_peak: load(&self.total_peak),
        }
    }

    /// Sets every peak to the current value, to measure the peak of one phase.
    pub fn reset_peaks(&self) {
        for i in 0..4 {
            self.peak[i].store(self.current[i].load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.total_peak.store(self.total_current.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Bytes charged to a tracker; released when dropped. Owned by the allocation it stands for.
#[derive(Debug)]
pub struct MemoryCharge {
    tracker: Arc<MemoryTracker>,
    category: MemoryCategory,
    bytes: usize,
}

impl MemoryCharge {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn category(&self) -> MemoryCategory {
        self.category
    }

    /// Moves these bytes to another category (a freshly computed tensor that becomes a cache).
    pub fn recategorize(&mut self, category: MemoryCategory) {
        if category != self.category {
            self.tracker.sub(self.category, self.bytes);
            self.tracker.add(category, self.bytes);
            self.category = category;
        }
    }
}

impl Drop for MemoryCharge {
    fn drop(&mut self) {
        self.tracker.sub(self.category, self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_are_per_category_and_total() {
        let t = MemoryTracker::new();
        let w = t.charge(MemoryCategory::Weights, 100);
        let a = t.charge(MemoryCategory::Activations, 50);
        drop(a);
        let kv = t.charge(MemoryCategory::KvCache, 30);
        let s = t.snapshot();
        assert_eq!(s.current(MemoryCategory::Weights), 100);
        assert_eq!(s.current(MemoryCategory::Activations), 0);
        assert_eq!(s.peak(MemoryCategory::Activations), 50);
        assert_eq!(s.total_current, 130);
        // 150 (weights + activations) beats 130 (weights + kv): the total peak is not a sum of peaks.
        assert_eq!(s.total_peak, 150);
        drop((w, kv));
        t.reset_peaks();
        let s = t.snapshot();
        assert_eq!(s.total_current, 0);
        assert_eq!(s.total_peak, 0);
    }

    #[test]
    fn recategorize_moves_bytes() {
        let t = MemoryTracker::new();
        let mut c = t.charge(MemoryCategory::Activations, 64);
        c.recategorize(MemoryCategory::KvCache);
        let s = t.snapshot();
        assert_eq!(s.current(MemoryCategory::Activations), 0);
        assert_eq!(s.current(MemoryCategory::KvCache), 64);
        assert_eq!(s.total_current, 64);
    }
}
