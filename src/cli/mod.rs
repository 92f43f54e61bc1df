//! The `yoco` commands.

pub mod ceilings;
pub mod check;
pub mod config;
pub mod generate;

use yoco_core::{Device, Result};

/// Which devices a command runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceChoice {
    /// The CPU only.
    Cpu,
    /// CUDA device 0 only (an error if there is none).
    Cuda,
    /// The CPU, and CUDA device 0 when there is one.
    All,
}

impl DeviceChoice {
    /// Opens the chosen devices. With `All`, a missing GPU is a printed line, not an error.
    pub fn open(self) -> Result<Vec<Device>> {
        match self {
            DeviceChoice::Cpu => Ok(vec![Device::cpu()]),
            DeviceChoice::Cuda => Ok(vec![Device::cuda(0)?]),
            DeviceChoice::All => {
                let mut devices = vec![Device::cpu()];
                match Device::cuda(0) {
                    Ok(d) => devices.push(d),
                    Err(e) => println!("CUDA: {e}; running on the CPU only"),
                }
                Ok(devices)
            }
        }
    }
}
