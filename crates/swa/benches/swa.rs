//! SWA benches: windowed prefill at growing lengths (its cost must grow linearly with N: the
//! 16K / 8K time ratio is printed, target <= 2.3), and a ring-buffer decode step. Prefill FLOPs
//! count only the unmasked work, `4 · B · H · D · (visible pairs)`, against the FMA ceiling
//! (CPU) or cuBLAS bf16 GEMM rate (GPU); a decode step reads the ring's K and V once,
//! `2 · B · H_kv · D · W · sizeof`, against the read ceiling; on the CPU each ceiling is measured
//! beside the samples (`bench::Ceiling`). On the CPU emulator (`emulator/`)
//! the same steps run at tiny sizes: 3 heads over 1, a window of 64, up to 1K tokens.


use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use yoco_core::bench::{group_timing, print_summary, bench_devices, fraction_line, full_or_emulated, time_on, tokens, Ceiling, Draws, SampleLog, Traffic};
use yoco_core::{DType, MemoryCategory, Tensor};
use yoco_swa::{swa_attention_into, Mask, SwaCache, PAPER_WINDOW};


fn bench(c: &mut Criterion) {
    // As the yoco command runs them: this thread one of the pool's workers (yoco_core::threads).
    yoco_core::threads::make_this_thread_a_worker();
    let mut lines = Vec::new();
    let log = SampleLog::new();
    let mut draws = Draws::new(1);
    for device in bench_devices() {
        let (dtype, (heads, kv_heads, d)) = if device.is_cpu() { (DType::F32, (4, 2, 64)) } else { (DType::BF16, full_or_emulated(&device, (24, 8, 128), (3, 1, 128))) };
        let compute = Ceiling::compute(&device, (8192, 8192, 8192), 10).unwrap();
        let w = full_or_emulated(&device, PAPER_WINDOW, 64);
        let lengths = full_or_emulated(&device, [4096, 8192, 16384], [256, 512, 1024]);
        let read = Ceiling::bandwidth(&device, Traffic::Read).unwrap();
        let mut group = c.benchmark_group("swa");
        let (samples, warm_up, measurement) = group_timing(true);
        group.sample_size(samples).warm_up_time(warm_up).measurement_time(measurement);
        let mut medians = Vec::new();
        for n in lengths {
            let q = draws.normal(&[1, n, heads, d], 1.0, dtype, &device).unwrap();
            let k = draws.normal(&[1, n, kv_heads, d], 1.0, dtype, &device).unwrap();
            let v = draws.normal(&[1, n, kv_heads, d], 1.0, dtype, &device).unwrap();
            let mut out = Tensor::zeros(vec![1, n, heads, d], dtype, &device, MemoryCategory::Activations).unwrap();
            let id = format!("prefill-{device}-{dtype}");
            let shape = format!("N{n}-H{heads}/{kv_heads}-D{d}-W{w}");
            group.bench_function(BenchmarkId::new(&id, &shape), |b| {
                b.iter_custom(|iters| compute.beside(log.record(iters, time_on(&device, iters, || swa_attention_into(&q, &k, &v, w, &mut out).unwrap()))))
            });
            let median = log.take_median();
            medians.push(median);
            let flops = 4.0 * (heads * d) as f64 * Mask::Window(w).visible_pairs(n, n) as f64;
            lines.push(fraction_line(&format!("swa/{id}/{shape}"), median, compute.bound(flops)));
        }
        lines.push(format!("swa/prefill-{device}: time {} / {} = {:.2} (linear would be 2.0; target <= 2.3)", tokens(lengths[2]), tokens(lengths[1]), medians[2] / medians[1]));

        // A decode step after a 16K prompt (the longest prefill): the ring holds the last W keys.
        let mut ring = SwaCache::new(1, w, kv_heads, d, dtype, &device).unwrap();
        let prompt_k = draws.normal(&[1, lengths[2], kv_heads, d], 1.0, dtype, &device).unwrap();
        ring.append(&prompt_k, &prompt_k).unwrap();
        let (q1, k1) = (draws.normal(&[1, 1, heads, d], 1.0, dtype, &device).unwrap(), draws.normal(&[1, 1, kv_heads, d], 1.0, dtype, &device).unwrap());
        let id = format!("decode-{device}-{dtype}");
        let shape = format!("ring-W{w}-H{heads}/{kv_heads}-D{d}");
        group.bench_function(BenchmarkId::new(&id, &shape), |b| b.iter_custom(|iters| read.beside(log.record(iters, time_on(&device, iters, || {
            ring.forward(&q1, &k1, &k1, None).unwrap();
        })))));
        let bytes = 2.0 * (kv_heads * d * w * dtype.size_in_bytes()) as f64;
        lines.push(fraction_line(&format!("swa/{id}/{shape}"), log.take_median(), read.bound(bytes)));
        group.finish();
    }
    print_summary("SWA against the ceilings measured in this run", &lines);
}

criterion_group!(benches, bench);
criterion_main!(benches);
