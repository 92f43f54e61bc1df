//! A block of one operand packed by the thread that multiplies it, in a buffer of that thread's
//! own, kept while the thread's consecutive tasks share the block.
//!
//! The f32 GEMM (`packed.rs`: a row block of `a`, 8 groups of 12 rows) had packed all of `a`
//! before its tasks, into one buffer of m × k: written out of the packing core's level-2 cache,
//! then read back by whichever core took each task, from the last-level cache or memory. Its
//! tasks walk one row block against the weights' panels in turn, so that a thread that packs the
//! block of its task when it first meets it writes it into its own level-2 cache and multiplies
//! it from there, for the whole run of tasks that share it (a block is packed twice at most,
//! where the other thread took part of that run). Measured in `packed.rs`. The bf16 in-place
//! form (`bf16_pairs_in_place.rs`) packs its panels of `a` the same way in principle; taking
//! them through here measured no better than packing them all first on the 2-core Zen 5 (six
//! rounds in turn, both threads, means of the fractions of the pair rate, ±0.015–0.04:
//! 512 × 2048 × 768 0.92 → 0.91, 512 × 768 × 2048 0.89 → 0.90, 128 × 2048 × 768 0.88 → 0.80,
//! 512 × 256 × 704 0.80 → 0.81), so it packs them all first still.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::aligned::AlignedVec;

/// Products begun: each tags the blocks its tasks pack with a number of its own, so that a
/// thread never takes a block of an earlier product for one of this.
static PRODUCTS: AtomicU64 = AtomicU64::new(0);

/// Which block a thread's buffer holds: (product, block).
type Tag = Option<(u64, usize)>;

thread_local! {
    /// The block this thread packed last, and its buffer (64-byte aligned, grown to the largest
    /// block the thread has packed and kept for its life, as the panels' buffers are kept
    /// between products: 96 × k floats for the f32 GEMM with AVX-512).
    static BLOCK: RefCell<(Tag, AlignedVec<f32>)> = RefCell::new((None, AlignedVec::zeroed(0)));
}

/// A number for a product about to start, for the tags of its blocks.
pub(super) fn product_number() -> u64 {
    PRODUCTS.fetch_add(1, Ordering::Relaxed)
}

/// `work` on `len` elements of block `tag` (product, block): those this thread packed last if
/// they were of that block, else `pack` writes them into the thread's buffer first (every one
/// of them: in unit tests the buffer holds NaN before it packs). `work` must not take a block
/// itself (it runs with the thread's buffer borrowed).
pub(super) fn with_block<R>(tag: (u64, usize), len: usize, pack: impl FnOnce(&mut [f32]), work: impl FnOnce(&[f32]) -> R) -> R {
    BLOCK.with(|block| {
        let mut block = block.borrow_mut();
        let (packed, buffer) = &mut *block;
        if *packed != Some(tag) {
            if buffer.len() < len {
                *buffer = AlignedVec::zeroed(len);
            }
            // Untagged while it packs: a `pack` that panics part way leaves no block to take.
            *packed = None;
            #[cfg(test)]
            buffer.fill(f32::NAN);
            pack(&mut buffer[..len]);
            *packed = Some(tag);
        }
        work(&buffer[..len])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block is packed once for a run of tasks that share it, again for another block or
    /// another product, and read as it was packed.
    #[test]
    fn a_block_is_packed_once_per_run_of_its_tag() {
        let (first, second) = (product_number(), product_number());
        assert_ne!(first, second);
        let mut packings = 0;
        for (tag, value) in [((first, 0), 1.0f32), ((first, 0), 1.0), ((first, 1), 2.0), ((second, 1), 3.0), ((second, 1), 3.0)] {
            let read = with_block(
                tag,
                5,
                |block: &mut [f32]| {
                    packings += 1;
                    block.fill(value);
                },
                |block| block.to_vec(),
            );
            assert_eq!(read, vec![value; 5], "{tag:?}");
        }
        assert_eq!(packings, 3);
        // Larger: the buffer grows, and the block is as long as asked.
        let read = with_block((second, 2), 1001, |block| block.fill(7.0), |block| block.iter().all(|&w| w == 7.0) && block.len() == 1001);
        assert!(read);
    }
}
