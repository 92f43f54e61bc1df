//! Helpers the criterion benches of every crate share: a log of the samples criterion takes (so
//! that each bench can quote its median as a fraction of a ceiling without timing anything a
//! second time), the line that says it, and the devices, shapes and ceilings they measure on.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::ceiling::median;
use crate::contention::{Window, CONTENDED};

mod ceilings;

pub use crate::ceiling::Traffic;
pub use ceilings::{bandwidth_ceiling_gbs, ceiling_gemm_shape, compute_ceiling_gflops, Ceiling};

/// Opened by the first [`SampleLog`], closed by [`print_summary`]: what other work took of the
/// CPUs while the bench binary measured.
static RUN: OnceLock<Window> = OnceLock::new();

/// Per-iteration times of the samples one benchmark took, recorded from `iter_custom`.
#[derive(Default)]
pub struct SampleLog {
    seconds_per_iter: Mutex<Vec<f64>>,
}

impl SampleLog {
    /// A new log; the first one of a bench binary also starts watching what other work takes of
    /// the CPUs (reported by [`print_summary`]).
    pub fn new() -> Self {
        RUN.get_or_init(Window::open);
        Self::default()
    }

    /// Records one sample of `iters` iterations that took `elapsed`; returns `elapsed` so that it
    /// can end an `iter_custom` closure.
    pub fn record(&self, iters: u64, elapsed: Duration) -> Duration {
        if iters > 0 {
            self.seconds_per_iter.lock().unwrap_or_else(|p| p.into_inner()).push(elapsed.as_secs_f64() / iters as f64);
        }
        elapsed
    }

    /// Median seconds per iteration over the recorded samples, and forgets them.
    pub fn take_median(&self) -> f64 {
        let mut v = std::mem::take(&mut *self.seconds_per_iter.lock().unwrap_or_else(|p| p.into_inner()));
        median(&mut v)
    }
}

/// What a kernel is up against: memory bandwidth or arithmetic.
#[derive(Clone, Copy, Debug)]
pub enum Bound {
    /// Bytes moved per call, against the bandwidth ceiling in GB/s of that kind of traffic.
    Memory { bytes: f64, ceiling_gbs: f64, traffic: Traffic },
    /// FLOPs per call, against an arithmetic ceiling in GFLOP/s and its name ("FMA", "cuBLAS bf16
    /// GEMM", "AMX bf16 tile": what [`Ceiling::name`] says).
    Compute { flops: f64, ceiling_gflops: f64, ceiling: &'static str },
}

/// One line: the bench's median, its rate, and the rate as a fraction of the ceiling.
pub fn fraction_line(label: &str, seconds: f64, bound: Bound) -> String {
    if !seconds.is_finite() {
        return format!("{label}: not run (filtered out)");
    }
    let (line, fraction) = match bound {
        Bound::Memory { bytes, ceiling_gbs, traffic } => {
            let gbs = bytes / seconds / 1e9;
            let fraction = gbs / ceiling_gbs;
            (format!("{label}: {:.3} ms, {gbs:.1} GB/s = {:.0}% of the {ceiling_gbs:.1} GB/s {} ceiling", seconds * 1e3, 100.0 * fraction, traffic.name()), fraction)
        }
        Bound::Compute { flops, ceiling_gflops, ceiling } => {
            let gflops = flops / seconds / 1e9;
            let fraction = gflops / ceiling_gflops;
            // A GPU's ceiling is the cuBLAS GEMM rate, in the hundreds of TFLOP/s; a CPU's is the
            // FMA or tile rate, in GFLOP/s. Each is quoted in the unit its size reads best in.
            let (scale, unit) = if ceiling_gflops >= 1e4 { (1e-3, "TFLOP/s") } else { (1.0, "GFLOP/s") };
            (format!("{label}: {:.3} ms, {:.1} {unit} = {:.0}% of the {:.1} {unit} {ceiling} ceiling", seconds * 1e3, gflops * scale, 100.0 * fraction, ceiling_gflops * scale), fraction)
        }
    };
    if fraction > PAST_CEILING {
        format!("{line} {PAST_CEILING_NOTE}")
    } else {
        line
    }
}

/// `rate` as a percentage of `ceiling` for a sentence (`74%`), or, more than 5% past it, the
/// percentage with the warning the bench lines carry ([`PAST_CEILING_NOTE`]): the harness's
/// report quotes its kernel rates so, as the benches' [`fraction_line`] does.
pub fn percent_of_ceiling(rate: f64, ceiling: f64) -> String {
    let fraction = rate / ceiling;
    if fraction > PAST_CEILING {
        format!("{:.0}%, {PAST_CEILING_NOTE}", 100.0 * fraction)
    } else {
        format!("{:.0}%", 100.0 * fraction)
    }
}

/// A rate this far past its ceiling is not a fraction of it: the ceiling was measured in a
/// slower minute than the kernel (the VMs' speed swings by half), or the kernel's data stayed
/// in a cache the ceiling's did not. (Up to 5% past is a ceiling's own spread.)
const PAST_CEILING: f64 = 1.05;

/// What a line whose rate is more than 5% past its ceiling ends with.
pub const PAST_CEILING_NOTE: &str = "⚠ past the ceiling: not a fraction of it (the ceiling was measured in a slower minute, or the data stayed in a cache)";

/// Runs `f` `iters` times on `device` and returns the elapsed time: wall-clock on the CPU, CUDA
/// events around the queued launches on a GPU (so the launches' host overhead overlaps).
pub fn time_on(device: &crate::Device, iters: u64, mut f: impl FnMut()) -> Duration {
    match device {
        crate::Device::Cpu(_) => {
            let start = std::time::Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed()
        }
        #[cfg(feature = "cuda")]
        crate::Device::Cuda(d) => {
            let timer = crate::cuda::EventTimer::new(d).expect("creating CUDA events");
            timer.start().expect("recording a CUDA event");
            for _ in 0..iters {
                f();
            }
            let ms = timer.stop_ms().expect("timing with CUDA events");
            Duration::from_secs_f64(ms * 1e-3)
        }
    }
}

/// What a bench measures on `device`: `full` on the CPU and on a GPU, `emulated` on the CPU
/// emulator (`emulator/`, README), which runs every CUDA thread of a kernel as a fiber on the
/// CPU: there the GPU's shapes (an 8192³ GEMM, 32K-token prefills) would take hours, so the
/// benches give it tiny ones that still take each kernel's paths, and run their CUDA code in
/// criterion's test mode before a GPU ever does. `T` is whatever a bench picks by device: a
/// shape list, a length, a tuple of head counts.
pub fn full_or_emulated<T>(device: &crate::Device, full: T, emulated: T) -> T {
    if device.is_emulated() {
        emulated
    } else {
        full
    }
}

/// The random inputs of a bench, each tensor drawn in parallel
/// ([`rng::par_fill`](crate::rng::par_fill)) from the next seed of one generator, as
/// [`Rng::normal_vec`](crate::rng::Rng::normal_vec) draws, but into f32: at a GPU's shapes the
/// benches draw billions of values, and one thread of Box–Muller at ~23 ns a value spent over
/// two minutes of the GPU call before anything was timed (the heaviest bench alone ~40 s, of its 60).
pub struct Draws {
    seeds: crate::rng::Rng,
}

impl Draws {
    /// Draws whose tensors' seeds come from `Rng::new(seed)`.
    pub fn new(seed: u64) -> Self {
        Draws { seeds: crate::rng::Rng::new(seed) }
    }

    /// A tensor of `scale` · N(0, 1) values in `dtype` on `device`.
    pub fn normal(&mut self, dims: &[usize], scale: f64, dtype: crate::DType, device: &crate::Device) -> crate::Result<crate::Tensor> {
        self.map_normal(dims, dtype, device, |z| scale * z)
    }

    /// A tensor of `f(z)`, z ~ N(0, 1), in `dtype` on `device` (a bench's gates, say).
    pub fn map_normal(&mut self, dims: &[usize], dtype: crate::DType, device: &crate::Device, f: impl Fn(f64) -> f64 + Sync) -> crate::Result<crate::Tensor> {
        let mut values = vec![0.0f32; dims.iter().product()];
        crate::pages::advise_huge_pages(&mut values);
        crate::rng::par_fill(&mut values, self.seeds.next_u64(), |rng| f(rng.normal()) as f32);
        crate::Tensor::from_f32(&values, dims.to_vec(), dtype, device, crate::MemoryCategory::Activations)
    }
}

/// A sequence length as a bench's line names it: `16K` for 16384, `384` for 384.
pub fn tokens(n: usize) -> String {
    if n >= 1024 && n.is_multiple_of(1024) {
        format!("{}K", n / 1024)
    } else {
        n.to_string()
    }
}

/// How many operand sets of `set_bytes` each a memory-bound CPU bench rotates over: together
/// they span what the bandwidth ceilings are measured over ([`crate::ceiling::memory_bytes`]), so
/// that each call reads from memory rather than from a cache the previous call warmed; at least
/// one, at most `most`.
pub fn sets_spanning_memory(set_bytes: usize, most: usize) -> usize {
    crate::ceiling::memory_bytes().div_ceil(set_bytes.max(1)).clamp(1, most.max(1))
}

/// The devices a bench runs on: the CPU, and CUDA device 0 when there is one (else a line why).
/// `YOCO_BENCH_DEVICES=cuda` (or `cpu`) keeps only those named, comma-separated: on a GPU machine
/// lent for minutes, the CPU benches would only spend its time.
pub fn bench_devices() -> Vec<crate::Device> {
    let mut devices = Vec::new();
    if device_wanted("cpu") {
        devices.push(crate::Device::cpu());
    }
    if device_wanted("cuda") {
        match crate::Device::cuda(0) {
            Ok(d) => devices.push(d),
            Err(e) => println!("CUDA benches skipped: {e}"),
        }
    }
    devices
}

/// Whether the benches should run on the device kind `name` ("cpu" or "cuda"): all of them
/// unless `YOCO_BENCH_DEVICES` names a comma-separated few.
pub fn device_wanted(name: &str) -> bool {
    std::env::var("YOCO_BENCH_DEVICES").map_or(true, |wanted| wanted.split(',').any(|w| w.trim().eq_ignore_ascii_case(name)))
}

/// How long criterion spends on each benchmark of a group: (samples, warm-up, measurement).
/// `heavy` groups, whose calls take milliseconds or more, take fewer samples over longer.
/// `YOCO_BENCH_PACE=short` gives every group criterion's minimum of ten samples over half a
/// second, so that all benches fit a GPU call of a few minutes.
pub fn group_timing(heavy: bool) -> (usize, Duration, Duration) {
    if std::env::var("YOCO_BENCH_PACE").is_ok_and(|p| p == "short") {
        return (10, Duration::from_millis(100), Duration::from_millis(500));
    }
    if heavy {
        (10, Duration::from_millis(500), Duration::from_secs(3))
    } else {
        (20, Duration::from_millis(300), Duration::from_secs(2))
    }
}

/// Prints a bench's closing block: a title line, its fraction lines, and what other work took of
/// the CPUs while the binary measured (flagged past [`CONTENDED`]).
pub fn print_summary(title: &str, lines: &[String]) {
    println!("\n== {title} ==");
    for line in lines {
        println!("{line}");
    }
    if let Some(c) = RUN.get().and_then(Window::close) {
        let flag = if c.is_contended() { format!("⚠ over {:.0}%: these rates read low", 100.0 * CONTENDED) } else { "not flagged".into() };
        println!("other work took {:.1}% of the CPUs while this ran (other processes {:.1}%, the hypervisor {:.1}%; /proc/stat): {flag}", 100.0 * c.elsewhere(), 100.0 * c.others, 100.0 * c.steal);
    }
}
