//! Attention benches on every device: prefill in TFLOP/s (GFLOP/s on the CPU) and decode in
//! GB/s of K/V read, each quoted as a fraction of a ceiling measured in this same run (on the
//! CPU, beside its samples: `bench::Ceiling`).
//!
//! FLOPs of a prefill: `4 · B · H · D · (visible (query, key) pairs)` — two FLOPs per
//! multiply-add in Q Kᵀ and in P V. That is `4·B·H·Nq·Nk·D` without a mask, about half of it
//! for a causal square mask, and only the unmasked work for a sliding window (what a kernel that
//! skips masked tiles must do). Ceiling: the FMA rate (CPU), or the AMX bf16 tile rate for the
//! CPU's bf16 prefill where it runs on tiles; the cuBLAS bf16 GEMM rate (GPU).
//! Bytes of a decode step: K and V of every visible position, read once:
//! `2 · B · H_kv · D · (visible keys) · sizeof(dtype)`. Ceiling: read bandwidth (the cache is
//! only read).
//!
//! `YOCO_BENCH_QUICK=1` keeps only the CPU prefill target shape (N = 4096, D = 64). On the CPU
//! emulator (`emulator/`) each GPU shape has a tiny stand-in: the same head dim, mask and
//! query-to-K/V-head ratio (so the same kernel), a few heads over a few hundred tokens.


use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use yoco_core::bench::{group_timing, print_summary, bench_devices, fraction_line, full_or_emulated, time_on, Ceiling, Draws, SampleLog, Traffic};
use yoco_core::ceiling::Arithmetic;
use yoco_core::{DType, Device, MemoryCategory, Tensor};
use yoco_gqa::{attention_into, AttentionOptions, Mask};

/// (batch, q_len, kv_len, heads, kv_heads, head_dim, mask)
type Shape = (usize, usize, usize, usize, usize, usize, Mask);

fn prefill_shapes(device: &Device) -> Vec<Shape> {
    if device.is_cpu() {
        let mut v = vec![(1, 4096, 4096, 8, 8, 64, Mask::Causal)];
        if std::env::var_os("YOCO_BENCH_QUICK").is_none() {
            v.extend([(1, 4096, 4096, 4, 4, 128, Mask::Causal), (1, 8192, 8192, 4, 2, 64, Mask::Window(1024)), (1, 16384, 16384, 4, 2, 64, Mask::Window(1024))]);
        }
        v
    } else {
        full_or_emulated(
            device,
            vec![
                (1, 16384, 16384, 24, 8, 128, Mask::Causal),
                (2, 8192, 8192, 32, 8, 64, Mask::Causal),
                (1, 8192, 8192, 24, 8, 128, Mask::None),
                (1, 8192, 8192, 24, 8, 128, Mask::Window(1024)),
                (1, 16384, 16384, 24, 8, 128, Mask::Window(1024)),
            ],
            vec![
                (1, 256, 256, 3, 1, 128, Mask::Causal),
                (2, 128, 128, 4, 1, 64, Mask::Causal),
                (1, 128, 128, 3, 1, 128, Mask::None),
                (1, 256, 256, 3, 1, 128, Mask::Window(64)),
                (1, 512, 512, 3, 1, 128, Mask::Window(64)),
            ],
        )
    }
}

fn decode_shapes(device: &Device) -> Vec<Shape> {
    if std::env::var_os("YOCO_BENCH_QUICK").is_some() {
        return vec![];
    }
    if device.is_cpu() {
        // The second: tiny-yoco's cross-attention step in the report's throughput run at 16K
        // (a batch of an odd size over 2 threads).
        vec![(1, 1, 32768, 24, 8, 128, Mask::Causal), (5, 1, 16384, 4, 2, 64, Mask::Causal)]
    } else {
        // The third: 16 query rows per K/V head, the tensor-core decode kernel (the others: 3).
        full_or_emulated(
            device,
            vec![(1, 1, 131_072, 24, 8, 128, Mask::Causal), (8, 1, 32768, 24, 8, 128, Mask::Causal), (1, 4, 131_072, 32, 8, 128, Mask::Causal)],
            vec![(1, 1, 4096, 3, 1, 128, Mask::Causal), (2, 1, 2048, 3, 1, 128, Mask::Causal), (1, 4, 4096, 4, 1, 128, Mask::Causal)],
        )
    }
}


fn bench(c: &mut Criterion) {
    // As the yoco command runs them: this thread one of the pool's workers (yoco_core::threads).
    yoco_core::threads::make_this_thread_a_worker();
    let mut lines = Vec::new();
    let log = SampleLog::new();
    let mut draws = Draws::new(1);
    for device in bench_devices() {
        let compute = Ceiling::compute(&device, (8192, 8192, 8192), 10).unwrap();
        let read = Ceiling::bandwidth(&device, Traffic::Read).unwrap();
        // The CPU's bf16 prefill on the AMX tile unit, where it multiplies there, against that
        // unit's rate; else it widens to f32, against the FMA ceiling.
        let tiles = if device.is_cpu() { Ceiling::unit(Arithmetic::AmxTiles) } else { None };
        let mut group = c.benchmark_group("attention");
        let (samples, warm_up, measurement) = group_timing(true);
        group.sample_size(samples).warm_up_time(warm_up).measurement_time(measurement);
        // The GPU in bf16; the CPU in f32, and its prefill in bf16 too.
        let runs = if device.is_cpu() {
            vec![(DType::F32, "prefill", prefill_shapes(&device)), (DType::BF16, "prefill", prefill_shapes(&device)), (DType::F32, "decode", decode_shapes(&device))]
        } else {
            vec![(DType::BF16, "prefill", prefill_shapes(&device)), (DType::BF16, "decode", decode_shapes(&device))]
        };
        for (dtype, what, shapes) in runs {
            for (b, nq, nk, h, hkv, d, mask) in shapes {
                let q = draws.normal(&[b, nq, h, d], 1.0, dtype, &device).unwrap();
                let k = draws.normal(&[b, nk, hkv, d], 1.0, dtype, &device).unwrap();
                let v = draws.normal(&[b, nk, hkv, d], 1.0, dtype, &device).unwrap();
                let mut out = Tensor::zeros(vec![b, nq, h, d], dtype, &device, MemoryCategory::Activations).unwrap();
                let options = AttentionOptions { mask, scale: None };
                let id = format!("{what}-{device}-{dtype}");
                let shape = format!("B{b}-Nq{nq}-Nk{nk}-H{h}/{hkv}-D{d}-{}", mask.label());
                let pairs = mask.visible_pairs(nq, nk) as f64;
                let on_tiles = what == "prefill" && dtype == DType::BF16 && yoco_gqa::cpu::bf16_prefill_on_tiles(d);
                let (ceiling, work) = if what == "prefill" {
                    let ceiling = match &tiles {
                        Some(tiles) if on_tiles => tiles,
                        _ => &compute,
                    };
                    (ceiling, 4.0 * (b * h * d) as f64 * pairs)
                } else {
                    // Keys read per sequence: those any of its queries sees.
                    let keys = (0..nq).map(|i| mask.key_range(i, nq, nk)).fold((nk, 0), |(lo, hi), (l, h)| (lo.min(l), hi.max(h)));
                    (&read, 2.0 * (b * hkv * d * (keys.1 - keys.0) * dtype.size_in_bytes()) as f64)
                };
                group.bench_function(BenchmarkId::new(&id, &shape), |bencher| {
                    bencher.iter_custom(|iters| ceiling.beside(log.record(iters, time_on(&device, iters, || attention_into(&q, &k, &v, options, &mut out).unwrap()))))
                });
                lines.push(fraction_line(&format!("attention/{id}/{shape}"), log.take_median(), ceiling.bound(work)));
            }
        }
        group.finish();
    }
    print_summary("Attention against the ceilings measured in this run", &lines);
}

criterion_group!(benches, bench);
criterion_main!(benches);
