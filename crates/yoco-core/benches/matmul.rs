//! Which CPU GEMM the fast CPU paths use for which shape: the `gemm` and `matrixmultiply` crates
//! beside the project's own entry points on the shapes the models run (the table in
//! src/matmul/mod.rs comes from here) — the FFN's projections at prefill (many rows) and decode
//! (one row) — as GFLOP/s and a fraction of the FMA ceiling measured beside the samples
//! (`bench::Ceiling`; the bf16 pair or AMX tile ceiling for yoco's bf16 products where they
//! multiply on those units). FLOPs per
//! call: 2·m·n·k. The project's entry points: `matmul_nt` (f32: the packed GEMM or `gemm` by
//! shape) and `matmul_nt_widened` on bf16 storage (the 16-bit CPU models' path); the one-row
//! products are memory-bound and are also quoted against the read ceiling, by the bytes of their
//! weights (4 or 2 per element).

use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use yoco_core::bench::{group_timing, print_summary, fraction_line, Ceiling, SampleLog, Traffic};
use yoco_core::aligned::AlignedVec;
use yoco_core::half::bf16;
use yoco_core::matmul::{matmul_nt, matmul_nt_widened};
use yoco_core::rng::Rng;

fn matrixmultiply_nt(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    // SAFETY: a is [m, k] row-major, b [n, k] row-major read as [k, n] through its strides,
    // c [m, n] row-major; the slices hold exactly those many elements.
    unsafe {
        matrixmultiply::sgemm(m, k, n, 1.0, a.as_ptr(), k as isize, 1, b.as_ptr(), 1, k as isize, 0.0, c.as_mut_ptr(), n as isize, 1);
    }
}

fn gemm_nt(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    // SAFETY: as above, with gemm's (column stride, row stride) order.
    unsafe {
        gemm::gemm(m, n, k, c.as_mut_ptr(), 1, n as isize, false, a.as_ptr(), 1, k as isize, b.as_ptr(), k as isize, 1, 0.0, 1.0, false, false, false, gemm::Parallelism::Rayon(0));
    }
}

fn bench(c: &mut Criterion) {
    // As the yoco command runs them: this thread one of the pool's workers (yoco_core::threads).
    yoco_core::threads::make_this_thread_a_worker();
    if !yoco_core::bench::device_wanted("cpu") {
        println!("matmul: CPU GEMM crates only, and YOCO_BENCH_DEVICES leaves out the CPU: skipped");
        return;
    }
    let fma = Ceiling::fma();
    let read = Ceiling::bandwidth(&yoco_core::Device::cpu(), Traffic::Read).expect("the CPU read ceiling");
    let log = SampleLog::new();
    let mut lines = vec![format!("cpu: {} threads", rayon::current_num_threads())];
    let mut rng = Rng::new(3);
    let mut group = c.benchmark_group("matmul_nt");
    let (samples, warm_up, measurement) = group_timing(true);
    group.sample_size(samples).warm_up_time(warm_up).measurement_time(measurement);
    // (m, n, k): prefill FFN up-projection of YOCO-160M, its down-projection, tiny-yoco's
    // up-projection over a prefill span of 2048 tokens (the harness's), small batches of rows
    // (where the paths cross over), a decode row of YOCO-3B.
    for &(m, n, k) in &[(512, 2048, 768), (512, 768, 2048), (2048, 704, 256), (128, 2048, 768), (32, 2048, 768), (8, 2048, 768), (1, 8192, 3072)] {
        // Operands aligned to cache lines, as the models' tensors are (`CpuStorage`).
        let aligned = |values: Vec<f32>| AlignedVec::try_from_slice(&values).expect("the bench's operands");
        let aligned16 = |values: &[f32]| AlignedVec::try_from_slice(&values.iter().map(|&v| bf16::from_f32(v)).collect::<Vec<_>>()).expect("the bench's operands");
        let a = aligned((0..m * k).map(|_| rng.normal() as f32).collect());
        let b = aligned((0..n * k).map(|_| rng.normal() as f32).collect());
        let mut out = AlignedVec::<f32>::zeroed(m * n);
        let (a16, b16) = (aligned16(&a), aligned16(&b));
        // A memory-bound product (one row) reads copies of the weights in turn, as many bytes of
        // them as the read ceiling is measured over (`bench::sets_spanning_memory`): the same
        // 50 MB of bf16 weights read again were partly in the 32 MiB last-level cache (141% of
        // the read ceiling).
        let copies = if m == 1 { yoco_core::bench::sets_spanning_memory(n * k * 2, usize::MAX) } else { 1 };
        let (bs, b16s) = (vec![b.clone(); copies], vec![b16.clone(); copies]);
        let mut out16 = AlignedVec::<bf16>::zeroed(m * n);
        let flops = 2.0 * (m * n * k) as f64;
        let shape = format!("{m}x{n}x{k}");
        group.throughput(Throughput::Elements(flops as u64));
        // yoco's bf16 products multiply on AMX tiles, bf16 pairs or widened f32 by CPU and rows.
        let bf16_ceiling = Ceiling::bf16(m, k);
        for name in ["gemm", "matrixmultiply", "yoco-f32", "yoco-bf16"] {
            let ceiling = match (name, &bf16_ceiling) {
                ("yoco-bf16", Some(bf16)) => bf16,
                _ => &fma,
            };
            group.bench_function(BenchmarkId::new(name, &shape), |bch| {
                bch.iter_custom(|iters| {
                    let start = Instant::now();
                    for it in 0..iters as usize {
                        let (b, b16) = (&bs[it % copies], &b16s[it % copies]);
                        match name {
                            "gemm" => gemm_nt(m, n, k, &a, b, &mut out),
                            "matrixmultiply" => matrixmultiply_nt(m, n, k, &a, b, &mut out),
                            "yoco-f32" => matmul_nt(m, n, k, &a, b, &mut out).unwrap(),
                            _ => matmul_nt_widened(m, n, k, &a16, b16, &mut out16).unwrap(),
                        }
                    }
                    let elapsed = log.record(iters, start.elapsed());
                    if m == 1 {
                        read.beside(elapsed);
                    }
                    ceiling.beside(elapsed)
                })
            });
            let secs = log.take_median();
            lines.push(fraction_line(&format!("matmul_nt/{name}/{shape}"), secs, ceiling.bound(flops)));
            if m == 1 {
                let bytes = (n * k * if name == "yoco-bf16" { 2 } else { 4 }) as f64;
                lines.push(fraction_line(&format!("matmul_nt/{name}/{shape} (weights read)"), secs, read.bound(bytes)));
            }
        }
    }
    group.finish();
    print_summary("CPU GEMM crates against the ceilings measured in this run", &lines);
}

criterion_group!(benches, bench);
criterion_main!(benches);
