//! What a parallel call pays to hand its work to rayon's pool: decode rows' products (`1 × n ×
//! k`, f32, the widths of a small model's decode step) called from a thread outside the pool (the
//! caller sleeps while the workers run), from a worker of a pool of as many threads (the caller
//! works too: what `yoco_core::threads::make_this_thread_a_worker` sets up), and on one thread.
//! Medians of 15 rounds of 2,000 calls; the three in turn within each round.
//!
//!     cargo run --release -p yoco-core --example pool_probe
//!
//! Measured on the 2-core Zen 4 VM, two runs: `1 × 1024 × 256` 20–27 µs from outside, 8–10 µs
//! from a worker, 14 µs on one thread; `1 × 256 × 256` 18–20, 3.0–3.7 and 3.1–3.2 µs.

use std::time::Instant;

use yoco_core::matmul::matmul_nt;

fn main() {
    const CALLS: usize = 2_000;
    const ROUNDS: usize = 15;
    let threads = rayon::current_num_threads();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool");
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a thread pool");
    println!("{threads} threads; per call, medians of {ROUNDS} rounds of {CALLS} calls");
    for (n, k) in [(128usize, 256usize), (256, 256), (704, 256), (256, 704), (1024, 256)] {
        let a: Vec<f32> = (0..k).map(|i| (i % 5) as f32 * 0.25 - 0.5).collect();
        let b: Vec<f32> = (0..n * k).map(|i| (i % 7) as f32 * 0.125 - 0.375).collect();
        let mut c = vec![0f32; n];
        let mut product = || matmul_nt(1, n, k, &a, &b, &mut c).expect("the shapes agree");
        let mut times = [Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..ROUNDS {
            // Each call handed to the pool from this thread, which is none of its workers: as
            // every parallel call from outside the global pool is.
            let began = Instant::now();
            for _ in 0..CALLS {
                pool.install(&mut product);
            }
            times[0].push(began.elapsed().as_secs_f64());
            let mut calls = || {
                for _ in 0..CALLS {
                    product();
                }
            };
            let began = Instant::now();
            pool.install(&mut calls);
            times[1].push(began.elapsed().as_secs_f64());
            let began = Instant::now();
            one.install(&mut calls);
            times[2].push(began.elapsed().as_secs_f64());
        }
        let [outside, worker, single] = times.map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[ROUNDS / 2] / CALLS as f64 * 1e6
        });
        println!("1 x {n:4} x {k}: {outside:5.1} us from outside the pool, {worker:5.1} us from a worker, {single:5.1} us on one thread");
    }
}
