//! The CPU prefill (the tiled path) at the bench's shapes, each call followed by one round of the
//! FMA ceiling (`yoco_core::ceiling::Arithmetic::F32Fma`), so that every call's rate can be set
//! beside the arithmetic rate of the same seconds: on the shared VMs this project runs on, one
//! build's median at N 4096 ranged over 147–281 ms from one minute to the next (a 2-core Zen 4,
//! AVX2), more than most changes to a micro-kernel are worth. Prints, per shape, the median and
//! the best time and the median of the calls' fractions of the round beside them; run two builds
//! in turn, several times, and compare the fractions.
//!
//!     cargo run --release -p yoco-gqa --example prefill_probe
//!     SHAPES="4096,8,8,64,0;8192,4,2,64,1024" CALLS=9 target/release/examples/prefill_probe
//!
//! `SHAPES`: `tokens,heads,kv_heads,head_dim,window` separated by `;` (batch 1, as many keys as
//! queries; window 0 is causal); `DTYPE`: `f32` (the default), `bf16` or `f16`.
//! `YOCO_CPU_ISA=avx2` runs the AVX2 kernels on an AVX-512 CPU.

use std::time::Instant;

use yoco_core::bench::Draws;
use yoco_core::ceiling::{median, Arithmetic};
use yoco_core::{DType, Device, MemoryCategory, Tensor};
use yoco_gqa::{attention_into, AttentionOptions};

/// The bench's f32 prefill shapes (`benches/gqa.rs`).
const SHAPES: &str = "4096,8,8,64,0;4096,4,4,128,0;8192,4,2,64,1024";

fn main() {
    let shapes = std::env::var("SHAPES").unwrap_or_else(|_| SHAPES.into());
    let calls: usize = std::env::var("CALLS").ok().and_then(|c| c.parse().ok()).unwrap_or(9).max(1);
    let dtype_name = std::env::var("DTYPE").unwrap_or_else(|_| "f32".into());
    let dtype = DType::ALL.into_iter().find(|d| d.name() == dtype_name).expect("DTYPE: f32, bf16 or f16");
    // As the bench does: the parallel work runs on this thread and the pool's other workers.
    yoco_core::threads::make_this_thread_a_worker();
    let device = Device::cpu();
    let mut draws = Draws::new(1);
    for shape in shapes.split(';') {
        let dims: Vec<usize> = shape.split(',').map(|v| v.trim().parse().expect("SHAPES: tokens,heads,kv_heads,head_dim,window")).collect();
        let &[tokens, heads, kv_heads, head_dim, window] = dims.as_slice() else { panic!("SHAPES: tokens,heads,kv_heads,head_dim,window, not {shape}") };
        let options = if window == 0 { AttentionOptions::causal() } else { AttentionOptions::window(window) };
        let q = draws.normal(&[1, tokens, heads, head_dim], 1.0, dtype, &device).unwrap();
        let k = draws.normal(&[1, tokens, kv_heads, head_dim], 1.0, dtype, &device).unwrap();
        let v = draws.normal(&[1, tokens, kv_heads, head_dim], 1.0, dtype, &device).unwrap();
        let mut out = Tensor::zeros(vec![1, tokens, heads, head_dim], dtype, &device, MemoryCategory::Activations).unwrap();
        let flops = 4.0 * (heads * head_dim) as f64 * options.mask.visible_pairs(tokens, tokens) as f64;
        let (mut seconds, mut fractions) = (Vec::new(), Vec::new());
        for _ in 0..calls {
            let start = Instant::now();
            attention_into(&q, &k, &v, options, &mut out).unwrap();
            let elapsed = start.elapsed().as_secs_f64();
            seconds.push(elapsed);
            fractions.push(flops / elapsed / 1e9 / Arithmetic::F32Fma.round_gflops().unwrap());
        }
        let best = seconds.iter().copied().fold(f64::INFINITY, f64::min);
        let time = median(&mut seconds);
        let window = if window == 0 { "causal".to_string() } else { format!("window {window}") };
        println!("{dtype} N{tokens} H{heads}/{kv_heads} D{head_dim} {window}: {:.3} ms (best {:.3}), {:.1} GFLOP/s, {:.3} of the FMA round beside it", time * 1e3, best * 1e3, flops / time / 1e9, median(&mut fractions));
    }
}
