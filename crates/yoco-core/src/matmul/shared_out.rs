//! The output matrix of a product, shared by its parallel tasks, each of which writes a block of
//! its own.

/// `c`, shared by the tasks of one product, which write disjoint blocks of it.
#[derive(Clone, Copy)]
pub(super) struct SharedOut<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: the tasks write disjoint blocks of c (each caller's promise to `slice`), and the values
// moved between threads are `Send`.
unsafe impl<T: Send> Send for SharedOut<T> {}
unsafe impl<T: Send> Sync for SharedOut<T> {}

impl<T> SharedOut<T> {
    /// Shares `c` for the duration of one product (the caller keeps it borrowed mutably until
    /// every task is done).
    pub(super) fn new(c: &mut [T]) -> Self {
        SharedOut { ptr: c.as_mut_ptr(), len: c.len() }
    }

    /// `len` elements of c from `at`.
    ///
    /// # Safety
    /// No other task reads or writes them while the slice lives (each task owns its block), and
    /// the `c` this was made from is still borrowed mutably by the product.
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn slice(&self, at: usize, len: usize) -> &mut [T] {
        assert!(at + len <= self.len, "a task's block of c lies inside c");
        // SAFETY: in bounds (asserted); exclusive and alive by the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(at), len) }
    }
}
