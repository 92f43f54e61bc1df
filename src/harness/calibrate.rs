//! The ceilings of the compared device (the CPU, or a GPU) and the fractions of them this
//! project's kernels reach, measured at the start of every comparison (a CPU's ceilings beside
//! the kernels' calls, so that both belong to the same seconds): the report quotes both,
//! and the projection is fed with the fractions.

use std::time::Instant;

use serde::Serialize;
use yoco_core::bench::{Ceiling, Traffic};
use yoco_core::ceiling::median;
use yoco_core::contention::{Contention, Window};
use yoco_core::rng::Rng;
use yoco_core::{DType, Device, MemoryCategory, Result, Tensor};

use super::projection::Efficiencies;
use crate::model::{Backend, Ops};

/// What calibration measured.
#[derive(Clone, Debug, Serialize)]
pub struct Calibration {
    /// The device measured ("cpu", or the GPU's name).
    pub device: String,
    /// CPU threads (rayon's pool); 0 on a GPU.
    pub threads: usize,
    /// The arithmetic ceiling: the f32 FMA rate (CPU), or cuBLAS's bf16 GEMM at 8192³ (GPU).
    pub compute_ceiling: String,
    pub compute_gflops: f64,
    /// The bandwidth ceiling: host copy, or device-to-device copy (bytes read plus written);
    /// on the CPU with its stores streamed past the caches where RMSNorm's output is streamed
    /// (`Traffic::copy_writing`).
    pub copy_gbs: f64,
    /// Which copy `copy_gbs` is: "copy" or "streamed copy".
    pub copy_ceiling: &'static str,
    /// The kernels this project runs, at the shapes named in `shapes`: the projections (GEMM),
    /// causal attention prefill and gated-retention prefill in GFLOP/s; RMSNorm in GB/s.
    pub gemm_gflops: f64,
    pub attention_gflops: f64,
    pub retention_gflops: f64,
    pub rmsnorm_gbs: f64,
    pub shapes: String,
    /// What other processes and the hypervisor took of the CPUs while calibrating.
    pub contention: Option<Contention>,
}

/// Median seconds of five calls of `f` after one warm-up, each call waited for on `device`, a
/// pass of `ceiling` after each (on the CPU: the ceiling is measured in the same seconds).
fn median_seconds(device: &Device, ceiling: &Ceiling, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    device.synchronize()?;
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        f()?;
        device.synchronize()?;
        times.push(ceiling.beside(start.elapsed()).as_secs_f64());
    }
    Ok(median(&mut times))
}

fn random(rng: &mut Rng, dims: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    Tensor::from_f64(&rng.normal_vec(dims.iter().product()), dims.to_vec(), dtype, device, MemoryCategory::Activations)
}

/// The sizes calibration runs at: a few milliseconds per call on each kind of device.
struct Sizes {
    /// (rows, out, in) of the projection.
    gemm: (usize, usize, usize),
    /// (tokens, heads, kv heads, head dim) of causal attention.
    attention: (usize, usize, usize, usize),
    /// (tokens, heads, head dim) of gated retention.
    retention: (usize, usize, usize),
    /// (rows, width) of RMSNorm: far past the last-level cache, as the copy ceiling is.
    rmsnorm: (usize, usize),
}

impl Sizes {
    fn for_device(device: &Device) -> Sizes {
        if device.is_emulated() {
            // The CPU emulator (emulator/) runs a kernel's every thread as a fiber: small
            // shapes that still take each kernel's tensor-core path.
            Sizes { gemm: (128, 256, 256), attention: (256, 2, 2, 64), retention: (256, 2, 64), rmsnorm: (1024, 1024) }
        } else if device.is_cpu() {
            Sizes { gemm: (512, 2048, 768), attention: (2048, 4, 4, 64), retention: (4096, 4, 64), rmsnorm: (16384, 3072) }
        } else {
            // YOCO-3B's widths: a 8K-token span through the FFN's up-projection, its attention
            // heads (24 over 8, D = 128) and retention heads over 8K and 16K tokens.
            Sizes { gemm: (8192, 8192, 3072), attention: (8192, 24, 8, 128), retention: (16384, 24, 128), rmsnorm: (32768, 3072) }
        }
    }

    fn describe(&self) -> String {
        let (m, n, k) = self.gemm;
        let (an, ah, akv, ad) = self.attention;
        let (rn, rh, rd) = self.retention;
        let (rows, width) = self.rmsnorm;
        format!("GEMM {m}×{n}×{k}; causal attention N {an}, H {ah}/{akv}, D {ad}; gated retention N {rn}, H {rh}, D {rd}, chunk 64; RMSNorm {rows}×{width}")
    }
}

/// The arithmetic and bandwidth ceilings of `device`, each measured beside the kernels quoted
/// against it (on the CPU), and the arithmetic one's label; the bandwidth one of `traffic`.
fn ceilings(device: &Device, traffic: Traffic) -> Result<(Ceiling, Ceiling, String)> {
    // The benches' ceilings (smaller on the emulator).
    let shape = (8192, 8192, 8192);
    let compute = Ceiling::compute(device, shape, 10)?;
    let label = if device.is_cpu() {
        format!("f32 {}", compute.name())
    } else {
        let (side, _, _) = yoco_core::bench::ceiling_gemm_shape(device, shape);
        format!("{} {side}³", compute.name())
    };
    Ok((compute, Ceiling::bandwidth(device, traffic)?, label))
}

/// Measures the ceilings of `device` and the rates this project's kernels reach on it, in
/// `dtype` (seconds on either kind of device).
pub fn calibrate(device: &Device, dtype: DType) -> Result<Calibration> {
    let window = Window::open();
    let threads = if device.is_cpu() { rayon::current_num_threads() } else { 0 };
    let sizes = Sizes::for_device(device);
    let (rows, width) = sizes.rmsnorm;
    let (compute, copy, compute_ceiling) = ceilings(device, Traffic::copy_writing(rows * width * dtype.size_in_bytes()))?;
    let mut rng = Rng::new(11);
    let ops = Ops::new(Backend::Fast);

    let (m, n, k) = sizes.gemm;
    let (x, w) = (random(&mut rng, &[m, k], dtype, device)?, random(&mut rng, &[n, k], dtype, device)?);
    let t = median_seconds(device, &compute, || ops.linear(&x, &w).map(drop))?;
    let gemm_gflops = 2.0 * (m * n * k) as f64 / t / 1e9;
    drop((x, w));

    let (seq, h, hkv, d) = sizes.attention;
    let q = random(&mut rng, &[1, seq, h, d], dtype, device)?;
    let kv = random(&mut rng, &[1, seq, hkv, d], dtype, device)?;
    let t = median_seconds(device, &compute, || yoco_gqa::attention(&q, &kv, &kv, yoco_gqa::AttentionOptions::causal()).map(drop))?;
    let attention_gflops = 4.0 * (h * seq * seq * d) as f64 / 2.0 / t / 1e9;
    drop((q, kv));

    let (seq, h, d) = sizes.retention;
    let q = random(&mut rng, &[1, seq, h, d], dtype, device)?;
    let gates = Tensor::from_f64(&vec![-0.05; seq * h], vec![1, seq, h], DType::F32, device, MemoryCategory::Activations)?;
    // As the models run it: the gates checked on the CPU only (on CUDA, a wait per call), and the
    // CUDA schedule the one they take (YOCO_GRET_SCHEDULE, else parallel).
    let options = crate::model::ops::prefill_retention_options(device, yoco_gated_retention::DEFAULT_CHUNK)?;
    let t = median_seconds(device, &compute, || yoco_gated_retention::gated_retention(&q, &q, &q, &gates, None, &options).map(drop))?;
    let chunk = options.chunk;
    let retention_gflops = (h * (seq / chunk) * (4 * chunk * chunk * d + 4 * chunk * d * d)) as f64 / t / 1e9;
    drop((q, gates));

    let x = random(&mut rng, &[rows, width], dtype, device)?;
    let w = random(&mut rng, &[width], dtype, device)?;
    // Into a preallocated output: a fresh output per call would time the page faults (CPU).
    let mut y = Tensor::zeros([rows, width], dtype, device, MemoryCategory::Activations)?;
    let t = median_seconds(device, &copy, || yoco_rmsnorm::rms_norm_into(&x, &w, 1e-5, &mut y))?;
    let rmsnorm_gbs = 2.0 * (rows * width * dtype.size_in_bytes()) as f64 / t / 1e9;

    // The best passes beside the kernels: the three compute-bound ones, and RMSNorm.
    let (compute_gflops, copy_gbs) = (compute.take(), copy.take());
    Ok(Calibration { device: device.to_string(), threads, compute_ceiling, compute_gflops, copy_gbs, copy_ceiling: copy.name(), gemm_gflops, attention_gflops, retention_gflops, rmsnorm_gbs, shapes: sizes.describe(), contention: window.close() })
}

impl Calibration {
    /// The fractions of the ceilings, for the projection.
    pub fn efficiencies(&self) -> Efficiencies {
        let clamp = |f: f64| f.clamp(0.01, 1.0);
        Efficiencies {
            gemm: clamp(self.gemm_gflops / self.compute_gflops),
            attention: clamp(self.attention_gflops / self.compute_gflops),
            retention: clamp(self.retention_gflops / self.compute_gflops),
            bandwidth: clamp(self.rmsnorm_gbs / self.copy_gbs),
            source: format!("fractions of the {} ceilings reached by this project's kernels in this run", self.device),
        }
    }
}
