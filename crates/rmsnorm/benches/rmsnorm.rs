//! RMSNorm benches: every path (CPU f32/bf16, CUDA f32/bf16/f16 where a GPU is present), plain
//! and fused-residual, with Throughput in bytes, then one line per bench quoting the median as a
//! fraction of the copy bandwidth measured beside its samples (`bench::Ceiling`): the streamed
//! copy's where the CPU kernel streams its output past the caches.
//!
//! Bytes per call (the minimum a kernel must move): read x (and r), write y (and h), read the
//! weight once: rows·width·s·(2 or 4) + width·s, s = bytes per element.


use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use yoco_core::bench::{group_timing, print_summary, bench_devices, fraction_line, full_or_emulated, time_on, Ceiling, Draws, SampleLog, Traffic};
use yoco_core::{DType, Device, MemoryCategory, Tensor};
use yoco_rmsnorm::{rms_norm_into, rms_norm_residual_into, DEFAULT_EPS};

fn shapes(device: &Device) -> &'static [(usize, usize)] {
    // Model widths (768, 3072); big enough to leave the last-level cache on each device (but on
    // the emulator, where only the kernels' paths are tried).
    if device.is_cpu() {
        &[(2048, 3072), (16384, 768)]
    } else {
        full_or_emulated(device, &[(32768, 3072), (131072, 768)], &[(64, 3072), (256, 768)])
    }
}

fn dtypes(device: &Device) -> &'static [DType] {
    if device.is_cpu() {
        &[DType::F32, DType::BF16]
    } else {
        &DType::ALL
    }
}

/// One call's buffers. Benches rotate over several sets so that every call reads from DRAM, not
/// from a cache that the previous call warmed (which would beat the copy ceiling).
struct Operands {
    x: Tensor,
    r: Tensor,
    y: Tensor,
    h: Tensor,
}

/// Enough operand sets to span what the copy ceiling is measured over
/// (`yoco_core::bench::sets_spanning_memory`).
fn operand_sets(draws: &mut Draws, rows: usize, width: usize, dtype: DType, device: &Device) -> Vec<Operands> {
    let count = yoco_core::bench::sets_spanning_memory(4 * rows * width * dtype.size_in_bytes(), 32);
    (0..count)
        .map(|_| Operands {
            x: draws.normal(&[rows, width], 1.0, dtype, device).unwrap(),
            r: draws.normal(&[rows, width], 1.0, dtype, device).unwrap(),
            y: Tensor::zeros([rows, width], dtype, device, MemoryCategory::Activations).unwrap(),
            h: Tensor::zeros([rows, width], dtype, device, MemoryCategory::Activations).unwrap(),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    // As the yoco command runs them: this thread one of the pool's workers (yoco_core::threads).
    yoco_core::threads::make_this_thread_a_worker();
    let mut lines = Vec::new();
    let log = SampleLog::new();
    let mut draws = Draws::new(1);
    for device in bench_devices() {
        // The ceiling of a shape's own stores (`Traffic::copy_writing`): a CPU output too large
        // for the cache is streamed past it, which the ordinary copy does not do (on a GPU both
        // are the device copy).
        let copy = Ceiling::bandwidth(&device, Traffic::Copy).unwrap();
        let streamed = Ceiling::bandwidth(&device, Traffic::StreamedCopy).unwrap();
        let mut group = c.benchmark_group("rmsnorm");
        let (samples, warm_up, measurement) = group_timing(false);
        group.sample_size(samples).warm_up_time(warm_up).measurement_time(measurement);
        for &dtype in dtypes(&device) {
            for &(rows, width) in shapes(&device) {
                let s = dtype.size_in_bytes();
                let mut sets = operand_sets(&mut draws, rows, width, dtype, &device);
                let w = draws.normal(&[width], 1.0, dtype, &device).unwrap();
                let n_sets = sets.len();
                let mut next = 0usize;
                let shape = format!("{rows}x{width}");
                let copy = match Traffic::copy_writing(rows * width * s) {
                    Traffic::StreamedCopy => &streamed,
                    _ => &copy,
                };

                let bytes = (rows * width * s * 2 + width * s) as u64;
                let id = format!("{device}-{dtype}");
                group.throughput(Throughput::Bytes(bytes));
                group.bench_function(BenchmarkId::new(&id, &shape), |b| {
                    b.iter_custom(|iters| copy.beside(log.record(iters, time_on(&device, iters, || {
                        let o = &mut sets[next % n_sets];
                        next += 1;
                        rms_norm_into(&o.x, &w, DEFAULT_EPS, &mut o.y).unwrap()
                    }))))
                });
                lines.push(fraction_line(&format!("rmsnorm/{id}/{shape}"), log.take_median(), copy.bound(bytes as f64)));

                let bytes = (rows * width * s * 4 + width * s) as u64;
                let id = format!("{device}-{dtype}-residual");
                group.throughput(Throughput::Bytes(bytes));
                group.bench_function(BenchmarkId::new(&id, &shape), |b| {
                    b.iter_custom(|iters| {
                        copy.beside(log.record(
                            iters,
                            time_on(&device, iters, || {
                                let o = &mut sets[next % n_sets];
                                next += 1;
                                rms_norm_residual_into(&o.x, &o.r, &w, DEFAULT_EPS, &mut o.h, &mut o.y).unwrap()
                            }),
                        ))
                    })
                });
                lines.push(fraction_line(&format!("rmsnorm/{id}/{shape}"), log.take_median(), copy.bound(bytes as f64)));
            }
        }
        group.finish();
    }
    print_summary("RMSNorm against the ceilings measured in this run", &lines);
}

criterion_group!(benches, bench);
criterion_main!(benches);
