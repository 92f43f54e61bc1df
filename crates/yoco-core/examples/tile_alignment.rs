//! How much a tile load pays for rows that span two cache lines: four tile loads alone
//! (`amx::Tiles::load_sums`) and the AMX 2 × 2 step (`amx::Tiles::multiply_add_2x2`: four tile
//! loads, four tile products) on operands that sit in the level-1 cache, 0, 16 and 32 bytes past
//! a cache line, on one thread. The best of 40 rounds (the VM this was written on shares its tile
//! unit at times, and a median swings by half).
//!
//!     cargo run --release -p yoco-core --example tile_alignment
//!
//! Measured on the 2-core Xeon VM (AMX): four loads 13–16 ns aligned against 76–81 at 16 or 32
//! bytes off; the step 2,350 GFLOP/s aligned against 410–750 off, in a quiet minute (when the
//! tile unit is shared, the aligned step drops to ~600 too, while the loads keep their gap).
//! Why host tensors and every packed operand are aligned (`yoco_core::aligned`).

#[cfg(target_arch = "x86_64")]
fn main() {
    use std::time::Instant;
    use yoco_core::aligned::AlignedVec;
    use yoco_core::matmul::amx::{self, Tiles};

    if !amx::available() {
        println!("this CPU (or this process) has no AMX-BF16 tiles: nothing to measure");
        return;
    }
    const STEPS: usize = 20_000;
    // 4 KiB of operands (the step's two tiles of a, two of b) plus room to shift them.
    let mut words = AlignedVec::<u32>::zeroed(2048);
    words.fill(0x3c00_3c00); // bf16 pairs of 1/128: finite sums
    for offset in [0usize, 16, 32] {
        let base = words[offset / 4..].as_ptr();
        // SAFETY: `amx::available` returned true.
        let mut tiles = unsafe { Tiles::configure() };
        let best_of_40 = |round: &mut dyn FnMut()| {
            (0..40)
                .map(|_| {
                    let start = Instant::now();
                    round();
                    start.elapsed().as_secs_f64()
                })
                .fold(f64::MAX, f64::min)
        };
        let loads = best_of_40(&mut || {
            for _ in 0..STEPS {
                // SAFETY: 32 rows of 128 bytes from base: 4 KiB from `offset`, inside the 8 KiB.
                unsafe { tiles.load_sums(base.cast(), 128) };
            }
        });
        let steps = best_of_40(&mut || {
            tiles.zero_sums();
            for _ in 0..STEPS {
                // SAFETY: a is 32 rows of 64 bytes from base (2 KiB), b 16 rows of 128 bytes from
                // base + 2 KiB (2 KiB): 4 KiB from `offset`, inside the 8 KiB buffer.
                unsafe { tiles.multiply_add_2x2(base.cast(), 64, base.add(512), 128) };
            }
            let mut sums = [[0f32; 32]; 32];
            // SAFETY: 32 rows of 32 f32, 128 bytes apart: `sums` exactly.
            unsafe { tiles.store_sums_at(sums.as_mut_ptr().cast(), 128) };
            std::hint::black_box(sums);
        });
        // Four 16 × 16 × 32 tile products a step.
        let gflops = (STEPS * 4 * 2 * 16 * 16 * 32) as f64 / steps / 1e9;
        println!("operands {offset:>2} bytes past a cache line: four tile loads {:>5.1} ns, the 2 x 2 step {gflops:>6.0} GFLOP/s", loads / STEPS as f64 * 1e9);
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("AMX is an x86-64 extension: nothing to measure here");
}
