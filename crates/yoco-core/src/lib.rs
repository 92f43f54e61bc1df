//! yoco-core: what every yoco crate stands on.
//!
//! * [`Tensor`]: a dense, row-major tensor in f32, bf16 or f16, stored on the CPU or on a CUDA
//!   device. It is deliberately small: no views, no broadcasting, no autograd. The primitive crates
//!   check shapes and dtypes at their public API and then work on plain slices, which keeps every
//!   kernel's contract visible at the call site.
//! * [`Device`]: where a tensor lives, and also an *accounting scope*: every allocation made
//!   through a device is charged to that device's [`MemoryTracker`] under a [`MemoryCategory`]
//!   (weights, K/V cache, recurrent state, activations), with current and peak bytes. The harness
//!   reads these to reproduce the paper's memory comparison, so nothing may allocate around it.
//! * [`Error`]: the one error type of the workspace. Bad input is an error that says what was
//!   expected, never a panic.
//! * [`matmul`]: the CPU GEMMs the fast CPU paths use (our packed GEMM for many rows, the `gemm`
//!   crate for few, chosen by shape).
//! * [`simd`]: explicit vectors for the hand-written CPU micro-kernels, run on AVX-512 where the
//!   CPU has it.
//! * [`ceiling`]: measures this machine's FMA throughput and memory bandwidth, so that every speed
//!   can be quoted as a fraction of a ceiling measured in the same run.
//! * `cuda` (feature `cuda`): context creation that never panics without a driver, loading of the
//!   cubin/PTX that yoco-build embeds, launching, cuBLAS, and a CUDA-event timer.
//! * [`threads`]: the calling thread as a worker of rayon's pool, which the CPU kernels split
//!   their work over (a parallel call from outside the pool costs two thread wake-ups).
//! * [`testing`]: random inputs and the tolerance rules that every crate's tests share.

pub mod aligned;
pub mod bench;
pub mod ceiling;
pub mod contention;
pub mod device;
pub mod dtype;
pub mod error;
pub mod math;
pub mod matmul;
pub mod memory;
pub mod pages;
pub mod rng;
pub mod shape;
pub mod simd;
pub mod tensor;
pub mod testing;
pub mod threads;

#[cfg(feature = "cuda")]
pub mod cuda;

pub use device::{Device, DeviceKind};
pub use half;
pub use dtype::{DType, Element};
pub use error::{Error, Result};
pub use memory::{MemoryCategory, MemorySnapshot, MemoryTracker};
pub use shape::Shape;
pub use tensor::Tensor;
