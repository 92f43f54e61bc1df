//! The ceilings a bench quotes its rates against, measured beside its samples: on the CPU one
//! pass of the ceiling's own loop after each sample, the ceiling being the best pass over the
//! seconds the kernel was measured in. On the shared VMs this project runs on, memory bandwidth
//! swings by half from one minute to the next (a read ceiling of 56.7 GB/s in one round of the
//! Zen 4's peer comparison, 29.7 in the next) and a vCPU can be away for a quarter of a second
//! (an FMA ceiling of 117 GFLOP/s beside the 234 measured a minute before and after): a ceiling
//! measured once before the benches can belong to another minute than the rates it divides.
//! A GPU's ceilings hold still and are measured once.

use std::sync::Mutex;
use std::time::Duration;

use super::Bound;
use crate::ceiling::{Arithmetic, BandwidthPass, Traffic};

/// Passes a ceiling takes when nothing was measured beside a sample since it was last taken.
const PASSES_WHEN_TAKEN_ALONE: usize = 3;

/// A ceiling measured beside a bench's samples ([`Ceiling::beside`]) and taken once per bench
/// ([`Ceiling::take`]).
pub struct Ceiling {
    kind: Kind,
    state: Mutex<State>,
}

/// What a ceiling's rate counts.
#[derive(Clone, Copy)]
enum Kind {
    Bandwidth(Traffic),
    Arithmetic(&'static str),
}

struct State {
    source: Source,
    /// The best pass since the ceiling was last taken.
    best: Option<f64>,
}

enum Source {
    /// A GPU's (and the emulator's) rate, measured when the ceiling was made.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    Fixed(f64),
    /// The CPU's bandwidth, a pass over buffers spanning [`crate::ceiling::memory_bytes`].
    Bandwidth(BandwidthPass),
    /// A CPU arithmetic unit's rate, a ~13 ms round of its chains.
    Arithmetic(Arithmetic),
}

impl Ceiling {
    /// The bandwidth ceiling of `device` for `traffic`: on the CPU, passes over
    /// [`crate::ceiling::memory_bytes`] beside the samples; on a GPU, for every kind of traffic,
    /// the device-to-device copy over 1 GiB (16 MiB on the emulator), measured now
    /// ([`bandwidth_ceiling_gbs`]).
    pub fn bandwidth(device: &crate::Device, traffic: Traffic) -> crate::Result<Ceiling> {
        match device {
            crate::Device::Cpu(_) => Ok(Ceiling::new(Kind::Bandwidth(traffic), Source::Bandwidth(BandwidthPass::new(traffic, crate::ceiling::memory_bytes())))),
            // Named a copy in the fraction lines, whatever was asked: that is what it measures.
            #[cfg(feature = "cuda")]
            crate::Device::Cuda(_) => Ok(Ceiling::new(Kind::Bandwidth(Traffic::Copy), Source::Fixed(bandwidth_ceiling_gbs(device, traffic)?))),
        }
    }

    /// The arithmetic ceiling of `device`: the f32 FMA rate on the CPU, beside the samples; on a
    /// GPU, the cuBLAS bf16 GEMM rate of `gemm` (median of `reps`), measured now
    /// ([`compute_ceiling_gflops`]).
    #[cfg_attr(not(feature = "cuda"), allow(unused_variables))]
    pub fn compute(device: &crate::Device, gemm: (usize, usize, usize), reps: usize) -> crate::Result<Ceiling> {
        Ok(match device {
            crate::Device::Cpu(_) => Ceiling::fma(),
            #[cfg(feature = "cuda")]
            crate::Device::Cuda(_) => {
                let (gflops, name) = compute_ceiling_gflops(device, gemm, reps)?;
                Ceiling::new(Kind::Arithmetic(name), Source::Fixed(gflops))
            }
        })
    }

    /// The CPU's f32 FMA rate (the widest FMA it has), beside the samples.
    pub fn fma() -> Ceiling {
        Ceiling::new(Kind::Arithmetic(Arithmetic::F32Fma.name()), Source::Arithmetic(Arithmetic::F32Fma))
    }

    /// The ceiling of a CPU bf16 product of `rows` rows and reduction `depth`: the AMX tile rate
    /// or the bf16 pair rate, whichever unit the product multiplies on
    /// ([`crate::matmul::bf16_unit`]). `None` where it widens to f32, whose ceiling is then the
    /// f32 FMA rate.
    pub fn bf16(rows: usize, depth: usize) -> Option<Ceiling> {
        use crate::matmul::Bf16Unit;
        match crate::matmul::bf16_unit(rows, depth) {
            Bf16Unit::Tiles => Ceiling::unit(Arithmetic::AmxTiles),
            Bf16Unit::Pairs => Ceiling::unit(Arithmetic::Bf16Pairs),
            Bf16Unit::F32 => None,
        }
    }

    /// The peak rate of a CPU arithmetic unit, beside the samples; `None` where the CPU lacks it.
    pub fn unit(unit: Arithmetic) -> Option<Ceiling> {
        unit.available().then(|| Ceiling::new(Kind::Arithmetic(unit.name()), Source::Arithmetic(unit)))
    }

    fn new(kind: Kind, source: Source) -> Ceiling {
        Ceiling { kind, state: Mutex::new(State { source, best: None }) }
    }

    /// What a fraction line calls it: "read", "FMA", "cuBLAS bf16 GEMM", ...
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Bandwidth(traffic) => traffic.name(),
            Kind::Arithmetic(name) => name,
        }
    }

    /// Runs one pass of the ceiling's loop after a sample that took `elapsed` (on the CPU; on a
    /// GPU nothing) and returns `elapsed`, so that it can end an `iter_custom` closure around
    /// [`SampleLog::record`](super::SampleLog::record). The pass runs after the sample's clock
    /// stopped; a bandwidth pass also leaves the caches as cold as the benches' rotating operand
    /// sets do.
    pub fn beside(&self, elapsed: Duration) -> Duration {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.pass();
        elapsed
    }

    /// The best pass since the ceiling was last taken (the best of three taken now if none was),
    /// in GB/s or GFLOP/s; the next bench's ceiling starts afresh.
    pub fn take(&self) -> f64 {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.best.is_none() {
            for _ in 0..PASSES_WHEN_TAKEN_ALONE {
                state.pass();
            }
        }
        state.best.take().unwrap_or(f64::NAN)
    }

    /// The bound of a call that does `work` against this ceiling, [taken](Ceiling::take) now:
    /// `work` is the bytes the call moves against a bandwidth ceiling, the FLOPs it does against
    /// an arithmetic one.
    pub fn bound(&self, work: f64) -> Bound {
        let ceiling = self.take();
        match self.kind {
            Kind::Bandwidth(traffic) => Bound::Memory { bytes: work, ceiling_gbs: ceiling, traffic },
            Kind::Arithmetic(name) => Bound::Compute { flops: work, ceiling_gflops: ceiling, ceiling: name },
        }
    }
}

impl State {
    fn pass(&mut self) {
        let rate = match &mut self.source {
            Source::Fixed(rate) => *rate,
            Source::Bandwidth(pass) => pass.run(),
            // `Ceiling::unit` made it only where the unit is available.
            Source::Arithmetic(unit) => unit.round_gflops().unwrap_or(f64::NAN),
        };
        self.best = Some(self.best.map_or(rate, |best| best.max(rate)));
    }
}

/// The bandwidth ceiling of `device` for `traffic` in GB/s, measured now, over
/// [`crate::ceiling::memory_bytes`] on the CPU (a copy, an update in place, a sum, two buffers summed into a third; on this
/// project's CPU machine an update ran 1.6× a copy's rate). On a GPU every kind takes the
/// device-to-device copy over 1 GiB (16 MiB on the emulator): a GPU's stores write whole lines,
/// so a copy runs near its memory's peak.
pub fn bandwidth_ceiling_gbs(device: &crate::Device, traffic: Traffic) -> crate::Result<f64> {
    match device {
        crate::Device::Cpu(_) => Ok(BandwidthPass::new(traffic, crate::ceiling::memory_bytes()).best_of_eleven()),
        #[cfg(feature = "cuda")]
        crate::Device::Cuda(d) => {
            let _ = traffic;
            crate::cuda::device_copy_bandwidth(d, super::full_or_emulated(device, 1 << 30, 1 << 24), 20)
        }
    }
}

/// The `(m, n, k)` of the GEMM whose rate is `device`'s compute ceiling when `gemm` is asked
/// for: `gemm` itself, or 256³ on the emulator.
pub fn ceiling_gemm_shape(device: &crate::Device, gemm: (usize, usize, usize)) -> (usize, usize, usize) {
    super::full_or_emulated(device, gemm, (256, 256, 256))
}

/// The arithmetic ceiling of `device` in GFLOP/s, measured now, and what it is: the f32 FMA rate
/// on the CPU ("FMA"), the cuBLAS bf16 GEMM rate (f32 accumulation, median of `reps`) of
/// `[m, k] · [n, k]ᵀ` on a GPU ("cuBLAS bf16 GEMM"), at [`ceiling_gemm_shape`].
#[cfg_attr(not(feature = "cuda"), allow(unused_variables))]
pub fn compute_ceiling_gflops(device: &crate::Device, gemm: (usize, usize, usize), reps: usize) -> crate::Result<(f64, &'static str)> {
    match device {
        crate::Device::Cpu(_) => Ok((crate::ceiling::fma_gflops(), Arithmetic::F32Fma.name())),
        #[cfg(feature = "cuda")]
        crate::Device::Cuda(d) => {
            let (m, n, k) = ceiling_gemm_shape(device, gemm);
            Ok((1e3 * crate::cuda::cublas_gemm_tflops(d, m, n, k, reps)?, "cuBLAS bf16 GEMM"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ceiling is the best of the passes beside the samples, of the kind its bound says; once
    /// taken it starts afresh, and taken with no pass beside it measures passes of its own.
    #[test]
    fn a_ceiling_takes_the_best_pass_and_starts_afresh() {
        let fma = Ceiling::fma();
        let elapsed = Duration::from_millis(3);
        assert_eq!(fma.beside(elapsed), elapsed, "beside passes the sample's time through");
        fma.beside(elapsed);
        let best = fma.take();
        assert!(best.is_finite() && best > 0.0, "{best}");
        assert!(fma.state.lock().unwrap().best.is_none(), "taking it starts afresh");
        match fma.bound(1e9) {
            Bound::Compute { flops, ceiling_gflops, ceiling } => {
                assert_eq!((flops, ceiling), (1e9, "FMA"));
                assert!(ceiling_gflops.is_finite() && ceiling_gflops > 0.0, "taken with no pass beside: {ceiling_gflops}");
            }
            other => panic!("an FMA ceiling bounds FLOPs, not {other:?}"),
        }
        let read = Ceiling::bandwidth(&crate::Device::cpu(), Traffic::Read).unwrap();
        read.beside(elapsed);
        match read.bound(2e6) {
            Bound::Memory { bytes, ceiling_gbs, traffic } => {
                assert_eq!((bytes, traffic), (2e6, Traffic::Read));
                assert!(ceiling_gbs.is_finite() && ceiling_gbs > 0.0, "{ceiling_gbs}");
            }
            other => panic!("a read ceiling bounds bytes, not {other:?}"),
        }
        assert_eq!(read.name(), "read");
    }

    /// The best is the largest pass, whatever the order the passes came in.
    #[test]
    fn the_best_pass_is_kept() {
        let mut state = State { source: Source::Arithmetic(Arithmetic::F32Fma), best: None };
        for rate in [3.0, 7.0, 5.0] {
            state.source = Source::Fixed(rate);
            state.pass();
        }
        assert_eq!(state.best, Some(7.0));
    }
}
