//! Packing buffers kept from one product to the next: a fresh buffer per call costs the zeroing
//! of its allocation (a `memset` on one thread while the other waits) and, the first times, page
//! faults; measured on the 2-core Xeon, 0.6 ms a call of 512 × 768 × 2048, whose packing and
//! arithmetic take 8–10 ms on its two threads.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use crate::aligned::AlignedVec;

/// Bytes past which a buffer is freed rather than kept: a prefill of thousands of rows packs
/// tens of MiB, which a process should not hold on to between calls.
const KEEP_BYTES: usize = 64 << 20;
/// Buffers kept at most (a product takes two; concurrent products more).
const KEEP: usize = 4;

/// The buffers kept: at most [`KEEP`], none of more than [`KEEP_BYTES`].
struct Kept(Vec<AlignedVec<f32>>);

impl Kept {
    /// The smallest kept buffer of at least `len` elements, taken out.
    fn take(&mut self, len: usize) -> Option<AlignedVec<f32>> {
        let fits = self.0.iter().enumerate().filter(|(_, b)| b.len() >= len).min_by_key(|(_, b)| b.len()).map(|(i, _)| i)?;
        Some(self.0.swap_remove(fits))
    }

    /// Keeps `buffer` unless it is too large; past [`KEEP`] buffers the smallest goes (the larger
    /// serve more products).
    fn give(&mut self, buffer: AlignedVec<f32>) {
        if size_of_val(&buffer[..]) > KEEP_BYTES {
            return;
        }
        self.0.push(buffer);
        if self.0.len() > KEEP {
            let smallest = self.0.iter().enumerate().min_by_key(|(_, b)| b.len()).map(|(i, _)| i);
            if let Some(i) = smallest {
                self.0.swap_remove(i);
            }
        }
    }
}

static KEPT: Mutex<Kept> = Mutex::new(Kept(Vec::new()));

/// The kept buffers (a product that panicked while holding the lock left them whole).
fn kept() -> std::sync::MutexGuard<'static, Kept> {
    KEPT.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `len` f32 of a buffer kept from an earlier product, or a fresh one, given back when dropped.
/// Its elements hold whatever the last product left: every caller writes what it reads.
pub(super) struct Scratch {
    buffer: Option<AlignedVec<f32>>,
    len: usize,
}

impl Scratch {
    /// The smallest kept buffer of at least `len` elements, or a fresh (zeroed) one.
    pub(super) fn take(len: usize) -> Scratch {
        let kept = kept().take(len);
        Scratch { buffer: Some(kept.unwrap_or_else(|| AlignedVec::zeroed(len))), len }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            kept().give(buffer);
        }
    }
}

impl Deref for Scratch {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buffer.as_ref().expect("held until dropped")[..self.len]
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        let len = self.len;
        &mut self.buffer.as_mut().expect("held until dropped")[..len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest buffer that fits is taken; too large a buffer is not kept, nor more than
    /// KEEP (the smallest goes); a Scratch has the length asked.
    #[test]
    fn the_smallest_fitting_buffer_serves_and_few_are_kept() {
        let mut kept = Kept(Vec::new());
        for len in [100, 400, 200] {
            kept.give(AlignedVec::zeroed(len));
        }
        assert_eq!(kept.take(150).map(|b| b.len()), Some(200));
        assert!(kept.take(500).is_none());
        kept.give(AlignedVec::zeroed(KEEP_BYTES / 4 + 1));
        assert_eq!(kept.0.len(), 2, "a buffer past KEEP_BYTES was kept");
        for len in [300, 500, 600] {
            kept.give(AlignedVec::zeroed(len));
        }
        let mut lens: Vec<usize> = kept.0.iter().map(|b| b.len()).collect();
        lens.sort();
        assert_eq!(lens, [300, 400, 500, 600]);
        assert_eq!(Scratch::take(77).len(), 77);
    }
}
