//! The ceilings of this machine and the fractions of them this project's kernels reach,
//! measured at the start of every comparison: the report quotes both, and the projection is fed
//! with the fractions.

use std::time::Instant;

use serde::Serialize;
use yoco_core::ceiling::{median, CpuCeilings};
use yoco_core::rng::Rng;
use yoco_core::{DType, Device, MemoryCategory, Result, Tensor};

use super::projection::Efficiencies;

/// What calibration measured.
#[derive(Clone, Debug, Serialize)]
pub struct Calibration {
    pub threads: usize,
    pub fma_gflops: f64,
    pub copy_gbs: f64,
    /// GEMM (512 × 2048 × 768), causal attention (H 4, N 2048, D 64), gated retention (H 4,
    /// N 4096, D 64) in GFLOP/s; RMSNorm (16384 × 3072) in GB/s.
    pub gemm_gflops: f64,
    pub attention_gflops: f64,
    pub retention_gflops: f64,
    pub rmsnorm_gbs: f64,
}

fn best_seconds(mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64());
    }
    Ok(median(&mut times))
}

fn random(rng: &mut Rng, dims: &[usize], device: &Device) -> Result<Tensor> {
    Tensor::from_f64(&rng.normal_vec(dims.iter().product()), dims.to_vec(), DType::F32, device, MemoryCategory::Activations)
}

/// Measures the CPU's ceilings and the fast CPU kernels' rates (about ten seconds).
pub fn calibrate_cpu() -> Result<Calibration> {
    let ceilings = CpuCeilings::measure();
    let cpu = Device::cpu();
    let mut rng = Rng::new(11);

    let (m, n, k) = (512, 2048, 768);
    let (a, b) = (random(&mut rng, &[m, k], &cpu)?, random(&mut rng, &[n, k], &cpu)?);
    let mut c = vec![0f32; m * n];
    let t = best_seconds(|| yoco_core::matmul::matmul_nt(m, n, k, a.as_slice()?, b.as_slice()?, &mut c))?;
    let gemm_gflops = 2.0 * (m * n * k) as f64 / t / 1e9;

    let (h, seq, d) = (4, 2048, 64);
    let q = random(&mut rng, &[1, seq, h, d], &cpu)?;
    let kv = random(&mut rng, &[1, seq, h, d], &cpu)?;
    let t = best_seconds(|| yoco_gqa::attention(&q, &kv, &kv, yoco_gqa::AttentionOptions::causal()).map(drop))?;
    let attention_gflops = 4.0 * (h * seq * seq * d) as f64 / 2.0 / t / 1e9;

    let seq = 4096;
    let q = random(&mut rng, &[1, seq, h, d], &cpu)?;
    let gates = Tensor::from_f64(&vec![-0.05; seq * h], vec![1, seq, h], DType::F32, &cpu, MemoryCategory::Activations)?;
    let options = yoco_gated_retention::RetentionOptions::default();
    let t = best_seconds(|| yoco_gated_retention::gated_retention(&q, &q, &q, &gates, None, &options).map(drop))?;
    let chunk = options.chunk;
    let retention_gflops = (h * (seq / chunk) * (4 * chunk * chunk * d + 4 * chunk * d * d)) as f64 / t / 1e9;

    // 16384 × 3072 f32: 192 MiB in and out, far past the last-level cache, as the copy ceiling is.
    let (rows, width) = (16384, 3072);
    let x = random(&mut rng, &[rows, width], &cpu)?;
    let w = random(&mut rng, &[width], &cpu)?;
    // Into a preallocated output: a fresh 48 MiB output per call would time the page faults.
    let mut y = Tensor::zeros([rows, width], DType::F32, &cpu, MemoryCategory::Activations)?;
    let t = best_seconds(|| yoco_rmsnorm::rms_norm_into(&x, &w, 1e-5, &mut y))?;
    let rmsnorm_gbs = 2.0 * (rows * width * 4) as f64 / t / 1e9;

    Ok(Calibration { threads: ceilings.threads, fma_gflops: ceilings.fma_gflops, copy_gbs: ceilings.copy_gbs, gemm_gflops, attention_gflops, retention_gflops, rmsnorm_gbs })
}

impl Calibration {
    /// The fractions of the ceilings, for the projection.
    pub fn efficiencies(&self) -> Efficiencies {
        let clamp = |f: f64| f.clamp(0.01, 1.0);
        Efficiencies {
            gemm: clamp(self.gemm_gflops / self.fma_gflops),
            attention: clamp(self.attention_gflops / self.fma_gflops),
            retention: clamp(self.retention_gflops / self.fma_gflops),
            bandwidth: clamp(self.rmsnorm_gbs / self.copy_gbs),
            source: "fractions of the CPU ceilings reached by this project's CPU kernels in this run",
        }
    }
}
