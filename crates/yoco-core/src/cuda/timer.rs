//! Timing on the GPU with CUDA events: the stream's own clock, not the host's.

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::CudaEvent;

use super::CudaDevice;
use crate::{Error, Result};

/// A start/stop pair of timing events recorded on a device's stream.
pub struct EventTimer {
    device: CudaDevice,
    start: CudaEvent,
    stop: CudaEvent,
}

impl EventTimer {
    pub fn new(device: &CudaDevice) -> Result<Self> {
        let ctx = device.context();
        let ev = || ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT)).map_err(|e| Error::cuda("EventTimer::new", e));
        Ok(EventTimer { device: device.clone(), start: ev()?, stop: ev()? })
    }

    pub fn start(&self) -> Result<()> {
        self.start.record(self.device.stream()).map_err(|e| Error::cuda("EventTimer::start", e))
    }

    /// Records the stop event, waits for it, and returns the milliseconds since `start`.
    pub fn stop_ms(&self) -> Result<f64> {
        self.stop.record(self.device.stream()).map_err(|e| Error::cuda("EventTimer::stop", e))?;
        self.stop.synchronize().map_err(|e| Error::cuda("EventTimer::stop", e))?;
        self.start.elapsed_ms(&self.stop).map(f64::from).map_err(|e| Error::cuda("EventTimer::stop", e))
    }

    /// Median milliseconds of one call of `f`, over `reps` timed batches of `per_batch` calls
    /// each, after one warm-up batch.
    pub fn median_ms(&self, reps: usize, per_batch: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
        for _ in 0..per_batch {
            f()?;
        }
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps.max(1) {
            self.start()?;
            for _ in 0..per_batch {
                f()?;
            }
            times.push(self.stop_ms()? / per_batch as f64);
        }
        Ok(crate::ceiling::median(&mut times))
    }
}
