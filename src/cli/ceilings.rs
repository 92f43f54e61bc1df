//! `yoco ceilings`: the machine's ceilings that every speed figure is quoted against.

use yoco_core::ceiling::CpuCeilings;
use yoco_core::{Device, Result};

/// Measures and prints the ceilings of each device.
pub fn run(devices: &[Device]) -> Result<()> {
    for device in devices {
        match device {
            Device::Cpu(_) => {
                let c = CpuCeilings::measure();
                println!("cpu: {} threads, f32 FMA {:.1} GFLOP/s, copy bandwidth {:.1} GB/s (read + write)", c.threads, c.fma_gflops, c.copy_gbs);
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => {
                let copy = yoco_core::cuda::device_copy_bandwidth(d, 1 << 30, 20)?;
                let gemm = yoco_core::cuda::cublas_gemm_tflops(d, 8192, 8192, 8192, 10)?;
                let (major, minor) = d.compute_capability();
                println!(
                    "cuda:{} {} (sm_{major}{minor}): copy bandwidth {copy:.0} GB/s (read + write), cuBLAS bf16 GEMM {gemm:.0} TFLOP/s (8192³)",
                    d.ordinal(),
                    d.name()
                );
            }
        }
    }
    Ok(())
}
