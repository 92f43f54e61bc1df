//! yoco: YOCO ("You Only Cache Once") and its Transformer twin, assembled from the primitive
//! crates, and the harness that measures one against the other.
//!
//! Today this crate holds the command line's building blocks: the correctness check of every
//! primitive on every device ([`cli::check`]) and the measurement of the machine's ceilings
//! ([`cli::ceilings`]). The models, caches and the comparison harness build on them.

pub mod cli;
pub mod harness;
pub mod model;
mod scratch;

/// What built this binary: commit, profile, and whether the CUDA kernels are embedded.
pub fn build_info() -> String {
    format!(
        "yoco {} (commit {}, {} build, {})",
        env!("CARGO_PKG_VERSION"),
        env!("YOCO_BUILD_COMMIT"),
        env!("YOCO_BUILD_PROFILE"),
        env!("YOCO_BUILD_CUDA")
    )
}
