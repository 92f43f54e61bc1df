//! The CPU SwiGLU gate (`silu(gate) ⊙ up`) on f32 and bf16: per element in the level-2 cache
//! (what the gate's arithmetic and conversions cost), and at the bench's shape from memory, each
//! call followed by a pass of the two-in-one-out bandwidth ceiling
//! (`yoco_core::ceiling::BandwidthPass`, `Traffic::Combine`) so that its rate is set beside the
//! bandwidth of the same seconds, as `yoco-gqa`'s `decode_probe` does for the decode step. Run
//! two builds in turn, several times, and compare.
//!
//!     cargo run --release -p yoco-swiglu --example silu_probe
//!     CALLS=30 target/release/examples/silu_probe

use std::time::Instant;

use yoco_core::bench::Draws;
use yoco_core::ceiling::{median, memory_bytes, BandwidthPass, Traffic};
use yoco_core::{DType, Device, MemoryCategory, Tensor};
use yoco_swiglu::silu_mul_into;

/// The bench's shape (`benches/swiglu.rs`): 2048 rows of YOCO-3B's FFN width.
const FROM_MEMORY: (usize, usize) = (2048, 8192);
/// 256K elements: 768 KiB of bf16 operands a thread, inside a Zen 4 core's 1 MiB level-2 cache.
const IN_CACHE: (usize, usize) = (64, 4096);

fn main() {
    let calls: usize = std::env::var("CALLS").ok().and_then(|c| c.parse().ok()).unwrap_or(15).max(1);
    // As the bench does: the parallel work runs on this thread and the pool's other workers.
    yoco_core::threads::make_this_thread_a_worker();
    let device = Device::cpu();
    let mut draws = Draws::new(1);
    let mut combine = BandwidthPass::new(Traffic::Combine, memory_bytes());
    for dtype in [DType::F32, DType::BF16] {
        let operands = |draws: &mut Draws, (rows, width): (usize, usize)| {
            let gate = draws.normal(&[rows, width], 2.0, dtype, &device).unwrap();
            let up = draws.normal(&[rows, width], 1.0, dtype, &device).unwrap();
            let out = Tensor::zeros(vec![rows, width], dtype, &device, MemoryCategory::Activations).unwrap();
            (gate, up, out)
        };
        let (gate, up, mut out) = operands(&mut draws, IN_CACHE);
        let mut seconds: Vec<f64> = (0..calls * 40)
            .map(|_| {
                let start = Instant::now();
                silu_mul_into(&gate, &up, &mut out).unwrap();
                start.elapsed().as_secs_f64()
            })
            .collect();
        let elements = (IN_CACHE.0 * IN_CACHE.1) as f64;
        println!("{dtype} {}x{} (in cache): {:.3} ns an element (both threads)", IN_CACHE.0, IN_CACHE.1, median(&mut seconds) / elements * 1e9);

        let (gate, up, mut out) = operands(&mut draws, FROM_MEMORY);
        let bytes = (3 * FROM_MEMORY.0 * FROM_MEMORY.1 * dtype.size_in_bytes()) as f64;
        let (mut seconds, mut fractions) = (Vec::new(), Vec::new());
        for _ in 0..calls {
            let start = Instant::now();
            silu_mul_into(&gate, &up, &mut out).unwrap();
            let elapsed = start.elapsed().as_secs_f64();
            seconds.push(elapsed);
            fractions.push(bytes / elapsed / 1e9 / combine.run());
        }
        let time = median(&mut seconds);
        println!(
            "{dtype} {}x{}: {:.3} ms, {:.1} GB/s, {:.2} of the two-in-one-out pass beside it",
            FROM_MEMORY.0,
            FROM_MEMORY.1,
            time * 1e3,
            bytes / time / 1e9,
            median(&mut fractions)
        );
    }
}
