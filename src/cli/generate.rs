//! `yoco generate`: token ids in, token ids out, with the time to first token and decode rate.

use std::path::PathBuf;

use yoco_core::{DType, Device, Error, Result};

use crate::model::{generate, preset, AnyModel, Backend, ModelConfig, Ops, Sampler, Weights};

/// Where a model comes from: a preset or a config file, and a weights file or a seed.
#[derive(Clone, Debug, clap::Args)]
pub struct ModelArgs {
    /// A preset name (`yoco config --list` lists them), e.g. tiny-yoco or tiny-transformer.
    #[arg(long, default_value = "tiny-yoco", conflicts_with = "config_file")]
    pub config: String,
    /// A JSON config file instead of a preset.
    #[arg(long)]
    pub config_file: Option<PathBuf>,
    /// A safetensors file with the model's weights (names in src/model/weights.rs); random if absent.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Storage dtype of weights, activations and caches: f32, bf16 or f16 (products and sums in f32).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// fast (the primitives' fast paths) or reference (the f64 references, CPU only).
    #[arg(long, value_enum, default_value = "fast")]
    pub backend: Backend,
}

/// Parses a dtype name.
pub fn parse_dtype(name: &str) -> Result<DType> {
    DType::ALL.into_iter().find(|d| d.name() == name).ok_or_else(|| Error::invalid("--dtype", "dtype", format!("'{name}': expected f32, bf16 or f16")))
}

impl ModelArgs {
    pub fn config(&self) -> Result<ModelConfig> {
        match &self.config_file {
            Some(path) => ModelConfig::from_json_file(path),
            None => preset(&self.config),
        }
    }

    /// Builds the model these arguments describe.
    pub fn build(&self) -> Result<AnyModel> {
        let config = self.config()?;
        let device = Device::parse(&self.device)?;
        let dtype = parse_dtype(&self.dtype)?;
        // Before the weights are drawn or read, which can take a while.
        self.backend.check(dtype, &device)?;
        let weights = match &self.weights {
            Some(path) => Weights::load(&config, path, dtype, &device)?,
            None => Weights::init(&config, self.seed, dtype, &device)?,
        };
        AnyModel::build(&config, weights, Ops::new(self.backend), &device)
    }
}

/// Parses "1,2,3;4,5,6" into (row-major tokens, batch).
pub fn parse_prompt(text: &str) -> Result<(Vec<u32>, usize)> {
    let rows: Vec<Vec<u32>> = text
        .split(';')
        .map(|row| row.split(',').map(|t| t.trim().parse::<u32>().map_err(|_| Error::invalid("--prompt", "token", format!("'{t}' is not a token id")))).collect())
        .collect::<Result<_>>()?;
    let n = rows[0].len();
    if rows.iter().any(|r| r.len() != n) {
        return Err(Error::invalid("--prompt", "prompt", "every sequence of a batch must have the same length"));
    }
    Ok((rows.concat(), rows.len()))
}

/// Runs a generation and prints it.
pub fn run(model: &ModelArgs, prompt: &str, new_tokens: usize, temperature: f64, span: usize) -> Result<()> {
    let m = model.build()?;
    let (tokens, batch) = parse_prompt(prompt)?;
    let mut sampler = Sampler::new(temperature, model.seed)?;
    let g = generate(&m, &tokens, batch, new_tokens, &mut sampler, span)?;
    for (i, seq) in g.tokens.iter().enumerate() {
        println!("sequence {i}: {}", seq.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
    }
    let per_step = if new_tokens > 1 { g.decode_seconds / (new_tokens - 1) as f64 } else { 0.0 };
    println!(
        "{}: prefill {:.3} s (time to first token), decode {:.2} ms/step, {:.1} tokens/s",
        m.config().name,
        g.prefill_seconds,
        per_step * 1e3,
        (batch * new_tokens) as f64 / (g.prefill_seconds + g.decode_seconds)
    );
    Ok(())
}
