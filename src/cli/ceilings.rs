//! `yoco ceilings`: the machine's ceilings that every speed figure is quoted against.

use yoco_core::ceiling::CpuCeilings;
use yoco_core::{Device, Result};

/// Measures and prints the ceilings of each device.
pub fn run(devices: &[Device]) -> Result<()> {
    for device in devices {
        match device {
            Device::Cpu(_) => {
                let c = CpuCeilings::measure();
                // The bf16 products' own ceilings where the CPU multiplies bf16 pairs natively, or
                // on AMX tiles.
                let pairs = yoco_core::ceiling::bf16_pair_gflops().map_or(String::new(), |g| format!(", bf16 pairs (AVX512-BF16) {g:.1} GFLOP/s"));
                let tiles = yoco_core::ceiling::amx_bf16_gflops().map_or(String::new(), |g| format!(", bf16 tiles (AMX) {g:.1} GFLOP/s"));
                println!(
                    "cpu: {} threads, f32 FMA {:.1} GFLOP/s{pairs}{tiles}; bandwidth: copy {:.1} GB/s (read + write), streamed copy {:.1} GB/s (read + write, non-temporal stores), in-place update {:.1} GB/s (read + write), read {:.1} GB/s, two in one out {:.1} GB/s (reads + write)",
                    c.threads, c.fma_gflops, c.copy_gbs, c.streamed_copy_gbs, c.update_gbs, c.read_gbs, c.combine_gbs
                );
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => {
                // The benches' own ceilings (at the emulator's small sizes there), so that the
                // figures here are the ones they quote against.
                const GEMM: (usize, usize, usize) = (8192, 8192, 8192);
                let copy = yoco_core::bench::bandwidth_ceiling_gbs(device, yoco_core::bench::Traffic::Copy)?;
                let (gflops, what) = yoco_core::bench::compute_ceiling_gflops(device, GEMM, 10)?;
                let (m, _, _) = yoco_core::bench::ceiling_gemm_shape(device, GEMM);
                let rate = if gflops >= 1e3 { format!("{:.0} TFLOP/s", gflops / 1e3) } else { format!("{gflops:.1} GFLOP/s") };
                let (major, minor) = d.compute_capability();
                println!("cuda:{} {} (sm_{major}{minor}): copy bandwidth {copy:.0} GB/s (read + write), {what} {rate} ({m}³)", d.ordinal(), d.name());
            }
        }
    }
    Ok(())
}
