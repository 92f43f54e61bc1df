//! The two models the paper compares, and what they are made of.

pub mod config;
pub mod weights;

pub use config::{preset, presets, Architecture, ModelConfig, ParameterCount, SelfDecoder};
