//! The comparison harness: YOCO against its Transformer twin, measured and projected.

pub mod paper;
