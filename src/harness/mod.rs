//! The comparison harness: YOCO against its Transformer twin, measured and projected.

pub mod calibrate;
pub mod compare;
pub mod measure;
pub mod paper;
pub mod plot;
pub mod projection;
pub mod report;
pub mod rss;
