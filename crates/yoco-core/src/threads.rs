//! The CPU's threads: rayon's global pool, with the calling thread as one of its workers.
//!
//! Every CPU kernel splits its work with rayon. Called from a thread outside the pool, each
//! parallel operation hands its work to the pool's threads and puts the caller to sleep until
//! they finish: two thread wake-ups an operation. Called from a worker of the pool, the caller
//! takes its share of the work itself and only the other workers are woken. A decode step of a
//! small model is some fifty operations of a few microseconds each, so the hand-offs were a third
//! of it or more. Measured on the 2-core Zen 4 VM (`examples/pool_probe.rs`): a decode row's
//! product `1 × 1024 × 256` (f32) took 20–27 µs called from outside the pool, 8–10 µs from a
//! worker, 14 µs on one thread; with the `yoco` command's main thread a worker, tiny-yoco's
//! decode step at 4K tokens took 0.37–0.46 ms against 0.68–0.85 before, tiny-transformer's
//! 0.66–0.84 against 1.15–1.21 (ARCHITECTURE.md).
//!
//! The `yoco` command makes its main thread a worker before anything runs. A program that uses
//! the models or kernels from one thread can do the same with [`make_this_thread_a_worker`], or
//! run its calls inside a pool (`rayon::ThreadPool::install`).

/// Builds rayon's global pool with the calling thread as its first worker (the pool's size as
/// rayon sets it: `RAYON_NUM_THREADS`, else one thread per CPU), so that the parallel operations
/// this thread calls run on it and the other workers without waking it. Returns whether the
/// calling thread is now a worker of the global pool: false where the global pool was already
/// built (by an earlier parallel call, or by the program itself), which changes speed only.
pub fn make_this_thread_a_worker() -> bool {
    // An error means the global pool exists already: nothing to undo.
    let _ = rayon::ThreadPoolBuilder::new().use_current_thread().build_global();
    rayon::current_thread_index().is_some()
}
