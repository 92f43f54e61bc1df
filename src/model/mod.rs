//! The two models the paper compares, and what they are made of.

pub mod any;
pub mod blocks;
pub mod check;
pub mod config;
#[cfg(feature = "cuda")]
mod cuda_ops;
pub mod memory;
pub mod ops;
pub mod profile;
pub mod transformer;
pub mod weights;
pub mod yoco;

pub use any::{check_generation, generate, generate_observed, AnyCache, AnyModel, Generation, Sampler};
pub use config::{preset, presets, Architecture, ModelConfig, ParameterCount, SelfDecoder};
pub use ops::{Backend, Ops};
pub use transformer::{Transformer, TransformerCache};
pub use weights::Weights;
pub use yoco::{Yoco, YocoCache};
