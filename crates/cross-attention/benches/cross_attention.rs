//! Cross-attention bench: one decode step of a cross layer over the shared K̂/V̂ cache (what
//! every cross-decoder layer does per token), in GB/s of cache read, `2 · B · H_kv · D · N ·
//! sizeof`, against the read ceiling measured beside its samples (`bench::Ceiling`).


use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use yoco_core::bench::{group_timing, print_summary, bench_devices, fraction_line, full_or_emulated, time_on, Ceiling, Draws, SampleLog, Traffic};
use yoco_core::{DType, MemoryCategory, Tensor};
use yoco_cross_attention::SharedKvCache;

fn bench(c: &mut Criterion) {
    // As the yoco command runs them: this thread one of the pool's workers (yoco_core::threads).
    yoco_core::threads::make_this_thread_a_worker();
    let mut lines = Vec::new();
    let log = SampleLog::new();
    let mut draws = Draws::new(1);
    for device in bench_devices() {
        // YOCO-3B's cross-decoder heads: 24 query heads over 8 K/V heads of 128, over 4K cached
        // positions on the emulator.
        let (dtype, n) = if device.is_cpu() { (DType::F32, 32768) } else { (DType::BF16, full_or_emulated(&device, 131_072, 4096)) };
        let (heads, kv_heads, d) = (24, 8, 128);
        let read = Ceiling::bandwidth(&device, Traffic::Read).unwrap();
        let mut cache = SharedKvCache::new(1, n, kv_heads, d, dtype, &device).unwrap();
        let kv = draws.normal(&[1, n, kv_heads, d], 1.0, dtype, &device).unwrap();
        cache.write(&kv, &kv).unwrap();
        let q = draws.normal(&[1, 1, heads, d], 1.0, dtype, &device).unwrap();
        let mut out = Tensor::zeros(vec![1, 1, heads, d], dtype, &device, MemoryCategory::Activations).unwrap();
        let mut group = c.benchmark_group("cross_attention");
        let (samples, warm_up, measurement) = group_timing(false);
        group.sample_size(samples).warm_up_time(warm_up).measurement_time(measurement);
        let id = format!("decode-{device}-{dtype}");
        let shape = format!("N{n}-H{heads}/{kv_heads}-D{d}");
        group.bench_function(BenchmarkId::new(&id, &shape), |b| b.iter_custom(|iters| read.beside(log.record(iters, time_on(&device, iters, || cache.attend_into(&q, &mut out).unwrap())))));
        let bytes = 2.0 * (kv_heads * d * n * dtype.size_in_bytes()) as f64;
        lines.push(fraction_line(&format!("cross_attention/{id}/{shape}"), log.take_median(), read.bound(bytes)));
        group.finish();
    }
    print_summary("Cross-attention against the ceilings measured in this run", &lines);
}

criterion_group!(benches, bench);
criterion_main!(benches);
