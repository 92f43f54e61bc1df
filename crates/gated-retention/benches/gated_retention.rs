//! Gated retention benches: chunkwise prefill at 2K..32K tokens and the decode step, on every
//! device. Prefill FLOPs are the chunkwise form's (per chunk of C tokens and head:
//! 2C²D for Q·Kᵀ, 2C²D for A·V, 2CD² for Q·S, 2CD² for Kᵀ·V), quoted against the FMA ceiling
//! (CPU) measured beside the samples (`bench::Ceiling`). The CPU path skips the blocks of Q·Kᵀ
//! and A·V that the causal mask zeroes (12% of the form's FLOPs at chunk 64, D 128; 17% at D
//! 64): its rate is the form's work per second, a little more than the work it did. The decode
//! step moves the state (read + write, 8·D² bytes per head, in place) and is quoted against the
//! in-place update ceiling. The last lines check linearity: time(32K) / time(16K) (target ≤
//! 2.3). On the CPU emulator (`emulator/`) the CUDA steps run at tiny sizes: 2 heads over 256
//! and 512 tokens, decode batches of 1 and 3.


use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use yoco_core::bench::{group_timing, print_summary, bench_devices, fraction_line, full_or_emulated, time_on, tokens, Ceiling, Draws, SampleLog, Traffic};
use yoco_core::{DType, Device, MemoryCategory, Tensor};
use yoco_gated_retention::{gated_retention, gated_retention_step, ChunkSchedule, RetentionOptions};

const HEADS: usize = 8;
const DIM: usize = 128;

/// Random q, k or v; or, with `gates`, YOCO's log-decays `logsigmoid(z) / 16` (f32), z ~ N(0, 2²).
fn tensor(draws: &mut Draws, dims: &[usize], dtype: DType, device: &Device, gates: bool) -> Tensor {
    if gates {
        draws.map_normal(dims, dtype, device, |z| -(1.0 + (-2.0 * z).exp()).ln() / 16.0).unwrap()
    } else {
        draws.normal(dims, 1.0, dtype, device).unwrap()
    }
}

fn chunkwise_flops(seq: usize, chunk: usize, heads: usize, dim: usize) -> f64 {
    let full = seq / chunk;
    let rest = seq % chunk;
    let per_chunk = |c: usize| (4 * c * c * dim + 4 * c * dim * dim) as f64;
    heads as f64 * (full as f64 * per_chunk(chunk) + per_chunk(rest))
}

fn bench(c: &mut Criterion) {
    // As the yoco command runs them: this thread one of the pool's workers (yoco_core::threads).
    yoco_core::threads::make_this_thread_a_worker();
    let mut lines = Vec::new();
    let log = SampleLog::new();
    let mut draws = Draws::new(4);
    for device in bench_devices() {
        let dtype = if device.is_cpu() { DType::F32 } else { DType::BF16 };
        let compute = Ceiling::compute(&device, (8192, 8192, 8192), 10).unwrap();
        let (heads, lengths) = full_or_emulated(&device, (HEADS, &[2048, 4096, 8192, 16384, 32768][..]), (2, &[256, 512][..]));
        // As a model calls it: the gates are not read back for checking (on CUDA that would time a
        // copy to the host and a wait for the device on every call).
        let model_options = RetentionOptions { check_gates: false, ..RetentionOptions::default() };
        // The CPU path takes any chunk and has one schedule; the CUDA kernels' chunk is 64, and
        // both of their schedules are measured.
        let variants: Vec<(usize, ChunkSchedule)> = if device.is_cpu() {
            [64, 128, 256].map(|chunk| (chunk, ChunkSchedule::default())).to_vec()
        } else {
            vec![(64, ChunkSchedule::Parallel), (64, ChunkSchedule::Sequential)]
        };
        let mut group = c.benchmark_group("gated_retention_prefill");
        let (samples, warm_up, measurement) = group_timing(true);
        group.sample_size(samples).warm_up_time(warm_up).measurement_time(measurement);
        for &(chunk, schedule) in &variants {
            let mut medians = Vec::new();
            for &seq in lengths {
                let dims = [1, seq, heads, DIM];
                let (q, k, v) = (tensor(&mut draws, &dims, dtype, &device, false), tensor(&mut draws, &dims, dtype, &device, false), tensor(&mut draws, &dims, dtype, &device, false));
                let g = tensor(&mut draws, &[1, seq, heads], DType::F32, &device, true);
                let options = RetentionOptions { chunk, schedule, ..model_options };
                let flops = chunkwise_flops(seq, chunk, heads, DIM);
                let id = if device.is_cpu() { format!("{device}-{dtype}-chunk{chunk}") } else { format!("{device}-{dtype}-chunk{chunk}-{}", schedule.name()) };
                group.throughput(Throughput::Elements(seq as u64));
                group.bench_function(BenchmarkId::new(&id, seq), |b| {
                    b.iter_custom(|iters| compute.beside(log.record(iters, time_on(&device, iters, || drop(gated_retention(&q, &k, &v, &g, None, &options).unwrap())))))
                });
                let secs = log.take_median();
                medians.push(secs);
                // A filtered-out benchmark's median is NaN: no rate in its label then.
                let rate = if secs.is_finite() { format!(" ({:.0} tokens/s)", seq as f64 / secs) } else { String::new() };
                lines.push(fraction_line(&format!("gated_retention/prefill/{id}/H{heads}xD{DIM}/N={seq}{rate}"), secs, compute.bound(flops)));
            }
            if let ([.., n16, n32], [.., t16, t32]) = (lengths, &medians[..]) {
                // Not for lengths filtered out (NaN medians).
                if !(t16.is_finite() && t32.is_finite()) {
                    continue;
                }
                lines.push(format!(
                    "gated_retention/prefill/{device}-chunk{chunk}-{}: time({}) / time({}) = {:.2} (linear is 2.0, target ≤ 2.3)",
                    schedule.name(),
                    tokens(*n32),
                    tokens(*n16),
                    t32 / t16
                ));
            }
        }
        group.finish();

        let update = Ceiling::bandwidth(&device, Traffic::Update).unwrap();
        let mut group = c.benchmark_group("gated_retention_step");
        let (samples, warm_up, measurement) = group_timing(false);
        group.sample_size(samples).warm_up_time(warm_up).measurement_time(measurement);
        // Batch 1: the state (1.5 MiB) stays in cache, as in real decoding; batch 64 (96 MiB) does not.
        for batch in full_or_emulated(&device, [1, 64], [1, 3]) {
            let dims = [batch, 1, 24, DIM];
            let (q, k, v) = (tensor(&mut draws, &dims, dtype, &device, false), tensor(&mut draws, &dims, dtype, &device, false), tensor(&mut draws, &dims, dtype, &device, false));
            let g = tensor(&mut draws, &[batch, 1, 24], DType::F32, &device, true);
            let mut state = Tensor::zeros([batch, 24, DIM, DIM], DType::F32, &device, MemoryCategory::RecurrentState).unwrap();
            let bytes = (batch * 24 * DIM * DIM * 8) as f64;
            let id = format!("{device}-{dtype}-H24xD{DIM}");
            group.throughput(Throughput::Bytes(bytes as u64));
            group.bench_function(BenchmarkId::new(&id, format!("batch{batch}")), |b| {
                b.iter_custom(|iters| update.beside(log.record(iters, time_on(&device, iters, || drop(gated_retention_step(&q, &k, &v, &g, &mut state, &model_options).unwrap())))))
            });
            lines.push(fraction_line(&format!("gated_retention/step/{id}/batch{batch}"), log.take_median(), update.bound(bytes)));
        }
        group.finish();
    }
    print_summary("Gated retention against the ceilings measured in this run", &lines);
}

criterion_group!(benches, bench);
criterion_main!(benches);
