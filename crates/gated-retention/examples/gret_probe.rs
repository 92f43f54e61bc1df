//! The CPU chunkwise prefill at the bench's shape, timed call by call: the median and the fastest
//! of `CALLS` calls and the chunkwise form's rate (the FLOPs `benches/gated_retention.rs` counts).
//! For comparing two builds on a VM whose timings swing from one minute to the next: run them in
//! turn, several rounds, and compare round by round.
//!
//!     cargo run --release -p yoco-gated-retention --example gret_probe
//!     SEQ=16384 CALLS=10 target/release/examples/gret_probe
//!
//! `SEQ` tokens (4096), `HEADS` (8), `DIM` (128), `CHUNK` (64), `CALLS` (30); f32, batch 1,
//! YOCO's gates (`logsigmoid(z) / 16`), no incoming state.

use std::time::Instant;

use yoco_core::bench::Draws;
use yoco_core::{DType, Device};
use yoco_gated_retention::{gated_retention, RetentionOptions};

/// The environment variable `name` as a count, or `default`.
fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: a count, not {v}"))).unwrap_or(default)
}

fn main() {
    let (seq, heads, dim, chunk) = (setting("SEQ", 4096), setting("HEADS", 8), setting("DIM", 128), setting("CHUNK", 64));
    let calls = setting("CALLS", 30).max(1);
    // As the bench does: the parallel work runs on this thread and the pool's other workers.
    yoco_core::threads::make_this_thread_a_worker();
    let device = Device::cpu();
    let mut draws = Draws::new(4);
    let dims = [1, seq, heads, dim];
    let [q, k, v] = std::array::from_fn(|_| draws.normal(&dims, 1.0, DType::F32, &device).unwrap());
    let gates = draws.map_normal(&[1, seq, heads], DType::F32, &device, |z| -(1.0 + (-2.0 * z).exp()).ln() / 16.0).unwrap();
    // As the model calls it: its gates are <= 0 by construction.
    let options = RetentionOptions { chunk, check_gates: false, ..RetentionOptions::default() };
    let call = || {
        let start = Instant::now();
        drop(gated_retention(&q, &k, &v, &gates, None, &options).unwrap());
        start.elapsed().as_secs_f64() * 1e3
    };
    for _ in 0..3 {
        call();
    }
    let mut ms: Vec<f64> = (0..calls).map(|_| call()).collect();
    ms.sort_by(f64::total_cmp);
    let median = ms[calls / 2];
    let per_chunk = |c: usize| (4 * c * c * dim + 4 * c * dim * dim) as f64;
    let flops = heads as f64 * ((seq / chunk) as f64 * per_chunk(chunk) + per_chunk(seq % chunk));
    println!("N{seq} H{heads} D{dim} C{chunk}: median {median:.3} ms, fastest {:.3}, {:.1} GFLOP/s", ms[0], flops / median / 1e6);
}
