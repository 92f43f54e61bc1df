//! Zeroed buffers aligned to a cache line: the host tensors' storage and the kernels' packed
//! operands.
//!
//! A `Vec` is aligned to its element only, and glibc's large allocations (a fresh mapping) start
//! 16 bytes into a page: every 64-byte row of such a buffer then straddles two cache lines. A tile
//! load (`tileloadd`, 16 rows of 64 bytes) reads each split row as two lines: measured on the
//! 2-core Xeon with AMX, four tile loads from L1 took 14 ns aligned and 78–81 ns 16 or 32 bytes
//! off, and the bf16 product on tiles ran at a third of its aligned rate. AVX-512 loads of 64
//! bytes split the same way.
//!
//! The buffers are allocated zeroed at the allocator's own alignment (16; `calloc`, which takes a
//! fresh mapping's zeros as they are) with a line to spare, and start at the first multiple of
//! 64 in it. Asked for an alignment of 64, the standard allocator allocates and then writes the
//! zeros itself: every page faulted in, 4 KiB at a time, before anything else touched it, and
//! before the huge-page advice ([`crate::pages`]) could apply. Measured on the 2-core Xeon VM: a
//! 64 MiB tensor of zeros took 47 ms that way.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ops::{Deref, DerefMut};

/// Bytes the buffers are aligned to: a cache line, a tile row, an AVX-512 register.
pub const ALIGN: usize = 64;

/// Element types whose all-zero bits are a value (so that a zeroed buffer of them is initialized).
///
/// # Safety
/// The all-zero bit pattern is a valid value of the type.
pub unsafe trait ZeroBits: Copy {}
// SAFETY: zero bits are 0 (u16, u32), 0.0 (f32, bf16).
unsafe impl ZeroBits for u16 {}
unsafe impl ZeroBits for u32 {}
unsafe impl ZeroBits for f32 {}
unsafe impl ZeroBits for half::bf16 {}
unsafe impl ZeroBits for half::f16 {}

/// `len` zeroed elements of `T` from an address that is a multiple of [`ALIGN`]; a fixed length
/// (a tensor's storage, or a scratch buffer sized once per call). Large ones are advised to huge
/// pages ([`crate::pages`]) before their first write.
pub struct AlignedVec<T: ZeroBits> {
    ptr: std::ptr::NonNull<T>,
    len: usize,
    /// Bytes from the allocation's start to `ptr` (below [`ALIGN`]).
    offset: usize,
}

// SAFETY: an AlignedVec owns its elements as a Vec does.
unsafe impl<T: ZeroBits + Send> Send for AlignedVec<T> {}
unsafe impl<T: ZeroBits + Sync> Sync for AlignedVec<T> {}

impl<T: ZeroBits> AlignedVec<T> {
    /// `len` zeros.
    ///
    /// # Panics
    /// Where the allocator refuses (as `vec!` does: scratch sized from tensors that already exist).
    pub fn zeroed(len: usize) -> Self {
        let layout = Self::layout(len).expect("a buffer's size fits the address space");
        Self::try_zeroed(len).unwrap_or_else(|| std::alloc::handle_alloc_error(layout))
    }

    /// `len` zeros, or `None` where the size overflows the address space or the allocator refuses
    /// (for tensors: a size that cannot be had ends the call, not the process).
    pub fn try_zeroed(len: usize) -> Option<Self> {
        let layout = Self::layout(len)?;
        if layout.size() == 0 {
            // No allocation; an aligned address that is never read.
            let dangling = std::ptr::NonNull::new(std::ptr::without_provenance_mut(ALIGN)).expect("ALIGN is not zero");
            return Some(AlignedVec { ptr: dangling, len, offset: 0 });
        }
        // SAFETY: the layout's size is non-zero.
        let base = unsafe { alloc_zeroed(layout) };
        if base.is_null() {
            return None;
        }
        let offset = base.align_offset(ALIGN);
        // SAFETY: offset < ALIGN, and the allocation holds ALIGN bytes more than len elements.
        let ptr = std::ptr::NonNull::new(unsafe { base.add(offset) }.cast::<T>())?;
        let mut buffer = AlignedVec { ptr, len, offset };
        crate::pages::advise_huge_pages(&mut buffer);
        Some(buffer)
    }

    /// A copy of `data`, or `None` as [`try_zeroed`](Self::try_zeroed).
    pub fn try_from_slice(data: &[T]) -> Option<Self> {
        let mut buffer = Self::try_zeroed(data.len())?;
        buffer.copy_from_slice(data);
        Some(buffer)
    }

    /// `len` elements and a line to spare, at the alignment the allocator gives every allocation
    /// (16 on x86-64 Linux), so that the zeroed allocation is `calloc`, which skips writing a
    /// fresh mapping's zeros.
    fn layout(len: usize) -> Option<Layout> {
        const ALLOCATOR_ALIGN: usize = 16;
        let bytes = Layout::array::<T>(len).ok()?.size();
        if bytes == 0 {
            return Layout::from_size_align(0, 1).ok();
        }
        Layout::from_size_align(bytes.checked_add(ALIGN)?, ALLOCATOR_ALIGN.max(std::mem::align_of::<T>())).ok()
    }
}

impl<T: ZeroBits> Clone for AlignedVec<T> {
    fn clone(&self) -> Self {
        let mut copy = Self::zeroed(self.len);
        copy.copy_from_slice(self);
        copy
    }
}

impl<T: ZeroBits + std::fmt::Debug> std::fmt::Debug for AlignedVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: ZeroBits> Default for AlignedVec<T> {
    /// No elements (nothing allocated).
    fn default() -> Self {
        Self::zeroed(0)
    }
}

impl<T: ZeroBits> Deref for AlignedVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: ptr holds len initialized elements (zeroed, then written as T), or is dangling,
        // aligned and non-null with len·size 0.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: ZeroBits> DerefMut for AlignedVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref; &mut self makes the borrow exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: ZeroBits> Drop for AlignedVec<T> {
    fn drop(&mut self) {
        let layout = Self::layout(self.len).expect("the layout it was allocated with");
        if layout.size() != 0 {
            // SAFETY: allocated in `try_zeroed` with this same layout, `offset` bytes before ptr.
            unsafe { dealloc(self.ptr.as_ptr().cast::<u8>().sub(self.offset), layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_start_on_a_cache_line_and_hold_zeros() {
        for len in [0usize, 1, 7, 1000, 3 << 20] {
            let mut buffer = AlignedVec::<u16>::zeroed(len);
            assert_eq!(buffer.as_ptr() as usize % ALIGN, 0, "len {len}");
            assert_eq!(buffer.len(), len);
            assert!(buffer.iter().all(|&x| x == 0));
            if let Some(last) = buffer.last_mut() {
                *last = 7;
                let copy = buffer.clone();
                assert_eq!(copy.as_ptr() as usize % ALIGN, 0);
                assert_eq!(&copy[..], &buffer[..]);
            }
        }
    }

    #[test]
    fn an_impossible_size_is_refused_not_a_panic() {
        assert!(AlignedVec::<f32>::try_zeroed(usize::MAX / 2).is_none());
    }
}
