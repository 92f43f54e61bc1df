//! SwiGLU benches: the fused gate on every path (bytes: read gate and up, write out, 3·s per
//! element) against the bandwidth of the same traffic (two buffers read, a third written), and
//! the whole FFN (FLOPs: 3 GEMMs, 6·rows·d·F) against the CPU FMA ceiling or, on a GPU, the
//! cuBLAS bf16 GEMM rate — all measured in this same run, on the CPU beside each bench's samples
//! (`bench::Ceiling`). On the CPU emulator (`emulator/`) the CUDA paths run at tiny sizes.


use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use yoco_core::bench::{group_timing, print_summary, bench_devices, fraction_line, full_or_emulated, time_on, Ceiling, Draws, SampleLog, Traffic};
use yoco_core::{DType, Device, MemoryCategory, Tensor};
use yoco_swiglu::{ffn, silu_mul_into, FfnWeights};

fn bench_silu_mul(c: &mut Criterion, device: &Device, draws: &mut Draws, log: &SampleLog, lines: &mut Vec<String>) {
    let combine = Ceiling::bandwidth(device, Traffic::Combine).unwrap();
    let (rows, f) = if device.is_cpu() { (2048, 8192) } else { full_or_emulated(device, (32768, 8192), (64, 8192)) };
    let dtypes: &[DType] = if device.is_cpu() { &[DType::F32, DType::BF16] } else { &DType::ALL };
    let mut group = c.benchmark_group("silu_mul");
    let (samples, warm_up, measurement) = group_timing(false);
    group.sample_size(samples).warm_up_time(warm_up).measurement_time(measurement);
    for &dtype in dtypes {
        let bytes = (3 * rows * f * dtype.size_in_bytes()) as u64;
        // On the CPU, calls rotate over operand sets spanning what the bandwidth ceiling is measured
        // over (`bench::sets_spanning_memory`): one set of 192 MiB stayed partly in the Xeon
        // VM's 300 MiB last-level cache (110% of the copy ceiling).
        let count = if device.is_cpu() { yoco_core::bench::sets_spanning_memory(bytes as usize, 8) } else { 1 };
        let mut sets: Vec<(Tensor, Tensor, Tensor)> = (0..count)
            .map(|_| {
                let gate = draws.normal(&[rows, f], 2.0, dtype, device).unwrap();
                let up = draws.normal(&[rows, f], 1.0, dtype, device).unwrap();
                (gate, up, Tensor::zeros([rows, f], dtype, device, MemoryCategory::Activations).unwrap())
            })
            .collect();
        let mut next = 0usize;
        let id = format!("{device}-{dtype}");
        let shape = format!("{rows}x{f}");
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function(BenchmarkId::new(&id, &shape), |b| {
            b.iter_custom(|iters| {
                combine.beside(log.record(
                    iters,
                    time_on(device, iters, || {
                        let (gate, up, out) = &mut sets[next % count];
                        next += 1;
                        silu_mul_into(gate, up, out).unwrap()
                    }),
                ))
            })
        });
        lines.push(fraction_line(&format!("silu_mul/{id}/{shape}"), log.take_median(), combine.bound(bytes as f64)));
    }
    group.finish();
}

fn bench_ffn(c: &mut Criterion, device: &Device, draws: &mut Draws, log: &SampleLog, lines: &mut Vec<String>) {
    // YOCO-160M's FFN on the CPU (d 768, F 2048) in f32 and bf16 (on AMX tiles or bf16 pairs
    // where the CPU has them, else f32 products); YOCO-3B's
    // on a GPU (d 3072, F 8192) in bf16.
    let (rows, d, f) = if device.is_cpu() { (512, 768, 2048) } else { full_or_emulated(device, (8192, 3072, 8192), (64, 256, 512)) };
    let dtypes: &[DType] = if device.is_cpu() { &[DType::F32, DType::BF16] } else { &[DType::BF16] };
    // The GEMM ceiling at the FFN's up-projection (the shape matters only to cuBLAS's rate); on
    // the CPU, each dtype's (bf16 products may multiply on AMX tiles or bf16 pairs).
    let f32_ceiling = Ceiling::compute(device, (rows, f, d), 20).unwrap();
    let bf16_ceiling = if device.is_cpu() { Ceiling::bf16(rows, d) } else { None };
    let flops = 6.0 * rows as f64 * d as f64 * f as f64;
    let mut group = c.benchmark_group("ffn");
    let (samples, warm_up, measurement) = group_timing(true);
    group.sample_size(samples).warm_up_time(warm_up).measurement_time(measurement);
    for &dtype in dtypes {
        let x = draws.normal(&[rows, d], 1.0, dtype, device).unwrap();
        let w1 = draws.normal(&[f, d], (d as f64).powf(-0.5), dtype, device).unwrap();
        let w3 = draws.normal(&[f, d], (d as f64).powf(-0.5), dtype, device).unwrap();
        let w2 = draws.normal(&[d, f], (f as f64).powf(-0.5), dtype, device).unwrap();
        let weights = FfnWeights { w1: &w1, w3: &w3, w2: &w2 };
        let id = format!("{device}-{dtype}");
        let shape = format!("{rows}x{d}x{f}");
        group.throughput(Throughput::Elements(flops as u64));
        let ceiling = match &bf16_ceiling {
            Some(bf16) if dtype == DType::BF16 => bf16,
            _ => &f32_ceiling,
        };
        group.bench_function(BenchmarkId::new(&id, &shape), |b| {
            b.iter_custom(|iters| ceiling.beside(log.record(iters, time_on(device, iters, || drop(ffn(&x, &weights).unwrap())))))
        });
        lines.push(fraction_line(&format!("ffn/{id}/{shape} (FLOPs = 6·rows·d·F)"), log.take_median(), ceiling.bound(flops)));
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    // As the yoco command runs them: this thread one of the pool's workers (yoco_core::threads).
    yoco_core::threads::make_this_thread_a_worker();
    let mut lines = Vec::new();
    let log = SampleLog::new();
    let mut draws = Draws::new(2);
    for device in bench_devices() {
        bench_silu_mul(c, &device, &mut draws, &log, &mut lines);
        bench_ffn(c, &device, &mut draws, &log, &mut lines);
    }
    print_summary("SwiGLU against the ceilings measured in this run", &lines);
}

criterion_group!(benches, bench);
criterion_main!(benches);
