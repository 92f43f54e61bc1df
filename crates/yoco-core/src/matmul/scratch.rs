//! Packing buffers kept from one product to the next: a fresh buffer per call costs the zeroing
//! of its allocation (a `memset` on one thread while the other waits) and, where the allocator
//! maps it anew, a page fault per page. Measured on the 2-core Xeon: 0.6 ms a call of the f32
//! 512 × 768 × 2048, whose packing and arithmetic take 8–10 ms on its two threads; 0.8 of the
//! 2.8 ms of the bf16 512 × 2048 × 768 on AMX tiles (two buffers of 768 KiB).

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use crate::aligned::AlignedVec;

/// Element types of 2 or 4 bytes every bit pattern of which is a value: what a kept buffer,
/// written last by a product of any of them, may be read as.
///
/// # Safety
/// Every bit pattern of the type's size is a valid value, and its alignment is at most 4.
pub(super) unsafe trait Plain: Copy {}
// SAFETY: plain numbers: any bits are a value (a NaN or an infinity for f32), alignment ≤ 4.
unsafe impl Plain for f32 {}
unsafe impl Plain for u32 {}
unsafe impl Plain for u16 {}

/// Bytes past which a buffer is freed rather than kept: a prefill of thousands of rows packs
/// tens of MiB, which a process should not hold on to between calls.
const KEEP_BYTES: usize = 64 << 20;
/// Buffers kept at most (a product takes two; concurrent products more).
const KEEP: usize = 4;

/// The buffers kept: at most [`KEEP`], none of more than [`KEEP_BYTES`].
struct Kept(Vec<AlignedVec<u32>>);

impl Kept {
    /// The smallest kept buffer of at least `len` elements, taken out.
    fn take(&mut self, len: usize) -> Option<AlignedVec<u32>> {
        let fits = self.0.iter().enumerate().filter(|(_, b)| b.len() >= len).min_by_key(|(_, b)| b.len()).map(|(i, _)| i)?;
        Some(self.0.swap_remove(fits))
    }

    /// Keeps `buffer` unless it is too large; past [`KEEP`] buffers the smallest goes (the larger
    /// serve more products).
    fn give(&mut self, buffer: AlignedVec<u32>) {
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

/// `len` elements of a buffer kept from an earlier product, or of a fresh one, given back when
/// dropped. They hold whatever the last product left (zeros if fresh): every caller writes what
/// it reads, padding included.
pub(super) struct Scratch<T: Plain> {
    /// 4-byte words, 64-byte aligned (`AlignedVec`), at least `len` elements' worth.
    words: Option<AlignedVec<u32>>,
    len: usize,
    _elements: PhantomData<T>,
}

impl<T: Plain> Scratch<T> {
    /// The smallest kept buffer of at least `len` elements, or a fresh (zeroed) one.
    pub(super) fn take(len: usize) -> Scratch<T> {
        let words = (len * size_of::<T>()).div_ceil(4);
        let kept = kept().take(words);
        #[allow(unused_mut)]
        let mut words = kept.unwrap_or_else(|| AlignedVec::zeroed(words));
        // The unit tests hand out buffers full of NaN bits (f32 and bf16 alike), so that a
        // product that reads padding it did not write fails them rather than passing on zeros.
        #[cfg(test)]
        words.fill(u32::MAX);
        Scratch { words: Some(words), len, _elements: PhantomData }
    }
}

impl<T: Plain> Drop for Scratch<T> {
    fn drop(&mut self) {
        if let Some(words) = self.words.take() {
            kept().give(words);
        }
    }
}

impl<T: Plain> Deref for Scratch<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        let words = self.words.as_ref().expect("held until dropped");
        // SAFETY: the buffer holds at least `len` elements' bytes (`take`), aligned to 64 ≥ T's
        // alignment (Plain); any bits are a T (Plain); borrowed as `self` is.
        unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<T>(), self.len) }
    }
}

impl<T: Plain> DerefMut for Scratch<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        let len = self.len;
        let words = self.words.as_mut().expect("held until dropped");
        // SAFETY: as in `deref`, borrowed mutably as `self` is.
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<T>(), len) }
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
        assert_eq!(Scratch::<f32>::take(77).len(), 77);
        // 2-byte elements: an odd count takes a whole word more.
        let mut halves = Scratch::<u16>::take(5);
        assert_eq!(halves.len(), 5);
        halves[4] = 9;
        assert!(halves.words.as_ref().is_some_and(|w| w.len() >= 3), "5 halves need 3 words");
    }
}
