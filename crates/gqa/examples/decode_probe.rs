//! The CPU decode step at the bench's shapes, each call followed by a pass of the read ceiling
//! (`yoco_core::ceiling::BandwidthPass`), so that every call's rate can be set beside the
//! bandwidth of the same seconds: on the shared VMs this project runs on, memory bandwidth swings
//! by half from one minute to the next, and two builds compared by their times alone can differ
//! by the minute they ran in. Prints, per shape, the median time and the median of the calls'
//! fractions of the read pass beside them; run two builds in turn, several times, and compare the
//! fractions.
//!
//!     cargo run --release -p yoco-gqa --example decode_probe
//!     SHAPES="1,32768,24,8,128;5,16384,4,2,64" CALLS=15 target/release/examples/decode_probe
//!
//! `SHAPES`: `batch,keys,heads,kv_heads,head_dim` separated by `;` (causal, one query);
//! `DTYPE`: the storage type of q, K and V, `f32` (the default), `bf16` or `f16`.
//! `IN_CACHE=1` leaves the read pass out, so that a cache small enough for the last-level cache
//! stays there from call to call: the step's rate when memory is not what holds it back.

use std::time::Instant;

use yoco_core::bench::Draws;
use yoco_core::ceiling::{memory_bytes, BandwidthPass, Traffic};
use yoco_core::{DType, Device, MemoryCategory, Tensor};
use yoco_gqa::{attention_into, AttentionOptions};

/// The bench's decode shapes (`benches/gqa.rs`).
const SHAPES: &str = "1,32768,24,8,128;5,16384,4,2,64";

fn main() {
    let shapes = std::env::var("SHAPES").unwrap_or_else(|_| SHAPES.into());
    let calls: usize = std::env::var("CALLS").ok().and_then(|c| c.parse().ok()).unwrap_or(15).max(1);
    let in_cache = std::env::var("IN_CACHE").is_ok_and(|v| v == "1");
    let dtype_name = std::env::var("DTYPE").unwrap_or_else(|_| "f32".into());
    let dtype = DType::ALL.into_iter().find(|d| d.name() == dtype_name).expect("DTYPE: f32, bf16 or f16");
    // As the bench does: the parallel work runs on this thread and the pool's other workers.
    yoco_core::threads::make_this_thread_a_worker();
    let device = Device::cpu();
    let mut draws = Draws::new(1);
    let mut read = BandwidthPass::new(Traffic::Read, memory_bytes());
    for shape in shapes.split(';') {
        let dims: Vec<usize> = shape.split(',').map(|v| v.trim().parse().expect("SHAPES: batch,keys,heads,kv_heads,head_dim")).collect();
        let &[batch, keys, heads, kv_heads, head_dim] = dims.as_slice() else { panic!("SHAPES: batch,keys,heads,kv_heads,head_dim, not {shape}") };
        let q = draws.normal(&[batch, 1, heads, head_dim], 1.0, dtype, &device).unwrap();
        let k = draws.normal(&[batch, keys, kv_heads, head_dim], 1.0, dtype, &device).unwrap();
        let v = draws.normal(&[batch, keys, kv_heads, head_dim], 1.0, dtype, &device).unwrap();
        let mut out = Tensor::zeros(vec![batch, 1, heads, head_dim], dtype, &device, MemoryCategory::Activations).unwrap();
        let bytes = 2.0 * (batch * keys * kv_heads * head_dim * dtype.size_in_bytes()) as f64;
        let (mut seconds, mut fractions) = (Vec::new(), Vec::new());
        for _ in 0..calls {
            let start = Instant::now();
            attention_into(&q, &k, &v, AttentionOptions::causal(), &mut out).unwrap();
            let elapsed = start.elapsed().as_secs_f64();
            seconds.push(elapsed);
            if !in_cache {
                fractions.push(bytes / elapsed / 1e9 / read.run());
            }
        }
        let median = yoco_core::ceiling::median(&mut seconds);
        let beside = if in_cache { String::new() } else { format!(", {:.3} of the read pass beside it", yoco_core::ceiling::median(&mut fractions)) };
        println!("{dtype} B{batch} N{keys} H{heads}/{kv_heads} D{head_dim}: {:.3} ms, {:.1} GB/s{beside}", median * 1e3, bytes / median / 1e9);
    }
}
