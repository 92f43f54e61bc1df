//! The workspace's one error type.
//!
//! Every variant names the operation that refused and says what it expected, so that a message
//! read on its own (in a log, in a failed test) tells the user what to change.

use crate::DType;

/// Result with the workspace's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in a yoco call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor had the wrong shape.
    #[error("{op}: shape mismatch for {what}: expected {expected}, got {got}")]
    ShapeMismatch { op: &'static str, what: &'static str, expected: String, got: String },

    /// A tensor had the wrong element type.
    #[error("{op}: dtype mismatch for {what}: expected {expected}, got {got}")]
    DTypeMismatch { op: &'static str, what: &'static str, expected: DType, got: DType },

    /// Tensors that must share a device did not.
    #[error("{op}: device mismatch for {what}: expected {expected}, got {got}")]
    DeviceMismatch { op: &'static str, what: &'static str, expected: String, got: String },

    /// A tensor with no elements where at least one is needed.
    #[error("{op}: {what} is empty (shape {shape}); at least one element is required")]
    Empty { op: &'static str, what: &'static str, shape: String },

    /// A scalar argument out of its domain (eps <= 0, chunk size 0, ...).
    #[error("{op}: invalid {what}: {reason}")]
    InvalidArgument { op: &'static str, what: &'static str, reason: String },

    /// A buffer could not be allocated (or its size does not fit an address space).
    #[error("{op}: could not allocate {what}: {reason}")]
    OutOfMemory { op: &'static str, what: String, reason: String },

    /// The data handed to a constructor does not fill the shape.
    #[error("{len} elements given for shape {shape}, which holds {expected}")]
    ElementCount { len: usize, shape: String, expected: usize },

    /// The build has CUDA support but this machine cannot run it (no driver, no device).
    #[error("CUDA unavailable: {0}")]
    CudaUnavailable(String),

    /// The build has no CUDA support at all.
    #[error("this build has no CUDA support: rebuild with `--features cuda` after scripts/setup-cuda.sh")]
    CudaNotCompiled,

    /// A CUDA driver, cuBLAS or module-loading call failed.
    #[error("CUDA error in {op}: {message}")]
    Cuda { op: &'static str, message: String },

    /// The operation exists but not for this combination (dtype on a device, head dim, ...).
    #[error("{op}: not supported: {what}")]
    Unsupported { op: &'static str, what: String },
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(op: &'static str, what: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument { op, what, reason: reason.into() }
    }

    /// Shorthand for [`Error::Cuda`] from anything printable (driver, cuBLAS errors).
    pub fn cuda(op: &'static str, err: impl std::fmt::Display) -> Self {
        Error::Cuda { op, message: err.to_string() }
    }
}
