//! RoPE benches: every path, both variants, bytes per call = read x + write x (the table is a
//! few hundred bytes), quoted as a fraction of the copy bandwidth measured beside its samples (`bench::Ceiling`).


use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use yoco_core::bench::{group_timing, print_summary, bench_devices, fraction_line, full_or_emulated, time_on, Ceiling, Draws, SampleLog, Traffic};
use yoco_core::{DType, MemoryCategory, Tensor};
use yoco_rope::{Rope, RopeVariant, DEFAULT_THETA};

fn bench(c: &mut Criterion) {
    // As the yoco command runs them: this thread one of the pool's workers (yoco_core::threads).
    yoco_core::threads::make_this_thread_a_worker();
    let mut lines = Vec::new();
    let log = SampleLog::new();
    let mut draws = Draws::new(1);
    for device in bench_devices() {
        let copy = Ceiling::bandwidth(&device, Traffic::Copy).unwrap();
        // YOCO-3B's 24 query heads of 128 over a prefill chunk: 4096 tokens (CPU), 32K (GPU), 256
        // (the emulator).
        let seq = if device.is_cpu() { 4096 } else { full_or_emulated(&device, 32768, 256) };
        let dims = [1, seq, 24, 128];
        let dtypes: &[DType] = if device.is_cpu() { &[DType::F32, DType::BF16] } else { &DType::ALL };
        let mut group = c.benchmark_group("rope");
        let (samples, warm_up, measurement) = group_timing(false);
        group.sample_size(samples).warm_up_time(warm_up).measurement_time(measurement);
        for &dtype in dtypes {
            for variant in RopeVariant::ALL {
                let rope = Rope::new(variant, 128, DEFAULT_THETA, &device).unwrap();
                let n: usize = dims.iter().product();
                let x = draws.normal(&dims, 1.0, dtype, &device).unwrap();
                let mut out = Tensor::zeros(dims.to_vec(), dtype, &device, MemoryCategory::Activations).unwrap();
                let bytes = (2 * n * dtype.size_in_bytes()) as u64;
                let id = format!("{device}-{dtype}-{}", variant.name());
                let shape = format!("{}x{}x{}x{}", dims[0], dims[1], dims[2], dims[3]);
                group.throughput(Throughput::Bytes(bytes));
                group.bench_function(BenchmarkId::new(&id, &shape), |b| {
                    b.iter_custom(|iters| copy.beside(log.record(iters, time_on(&device, iters, || rope.apply_into(&x, 1000, &mut out).unwrap()))))
                });
                lines.push(fraction_line(&format!("rope/{id}/{shape}"), log.take_median(), copy.bound(bytes as f64)));
            }
        }
        group.finish();
    }
    print_summary("RoPE against the ceilings measured in this run", &lines);
}

criterion_group!(benches, bench);
criterion_main!(benches);
