//! Devices: where tensors live, and the accounting scope their bytes are charged to.

use std::fmt;
use std::sync::Arc;

use crate::memory::{MemorySnapshot, MemoryTracker};
use crate::{Error, Result};

/// Which kind of device, and which ordinal: the part of a [`Device`] that tensors compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    Cpu,
    Cuda(usize),
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceKind::Cpu => f.write_str("cpu"),
            DeviceKind::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// The host: memory accounting only, computation is on rayon's pool.
#[derive(Clone, Debug)]
pub struct CpuDevice {
    tracker: Arc<MemoryTracker>,
}

/// A place tensors live. Cloning shares the same accounting; each call to [`Device::cpu`] or
/// [`Device::cuda`] starts a fresh [`MemoryTracker`], so that two models measured side by side
/// can be accounted apart.
#[derive(Clone)]
pub enum Device {
    Cpu(CpuDevice),
    #[cfg(feature = "cuda")]
    Cuda(crate::cuda::CudaDevice),
}

impl Device {
    /// The host, with a fresh memory tracker.
    pub fn cpu() -> Self {
        Device::Cpu(CpuDevice { tracker: MemoryTracker::new() })
    }

    /// CUDA device `ordinal`, with a fresh memory tracker. Never panics: without a driver, without
    /// a device, or in a build without the `cuda` feature, it returns an error that says which.
    pub fn cuda(ordinal: usize) -> Result<Self> {
        #[cfg(feature = "cuda")]
        {
            crate::cuda::CudaDevice::new(ordinal).map(Device::Cuda)
        }
        #[cfg(not(feature = "cuda"))]
        {
            let _ = ordinal;
            Err(Error::CudaNotCompiled)
        }
    }

    /// Parses "cpu", "cuda" or "cuda:N" and opens that device.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "cpu" => Ok(Device::cpu()),
            "cuda" | "gpu" => Device::cuda(0),
            _ => match name.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(i)) => Device::cuda(i),
                _ => Err(Error::invalid("Device::parse", "device", format!("'{name}': expected cpu, cuda or cuda:N"))),
            },
        }
    }

    pub fn kind(&self) -> DeviceKind {
        match self {
            Device::Cpu(_) => DeviceKind::Cpu,
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => DeviceKind::Cuda(d.ordinal()),
        }
    }

    pub fn is_cpu(&self) -> bool {
        matches!(self, Device::Cpu(_))
    }

    /// A CUDA device that is the CPU emulator (`emulator/`) standing in for a GPU: it runs the
    /// kernels at CPU speed, so measurements take CPU-sized shapes on it.
    pub fn is_emulated(&self) -> bool {
        match self {
            Device::Cpu(_) => false,
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => d.is_emulated(),
        }
    }

    /// The tracker this device's allocations are charged to.
    pub fn tracker(&self) -> &Arc<MemoryTracker> {
        match self {
            Device::Cpu(d) => &d.tracker,
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => d.tracker(),
        }
    }

    /// The accounting counters now.
    pub fn memory(&self) -> MemorySnapshot {
        self.tracker().snapshot()
    }

    /// Waits for all queued work (a no-op on the CPU, whose calls return when done).
    pub fn synchronize(&self) -> Result<()> {
        match self {
            Device::Cpu(_) => Ok(()),
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => d.synchronize(),
        }
    }

    /// The CUDA device, or an error naming `op` for a CPU device.
    #[cfg(feature = "cuda")]
    pub fn as_cuda(&self, op: &'static str) -> Result<&crate::cuda::CudaDevice> {
        match self {
            Device::Cuda(d) => Ok(d),
            Device::Cpu(_) => Err(Error::DeviceMismatch { op, what: "device", expected: "cuda".into(), got: "cpu".into() }),
        }
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind())
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind())
    }
}
