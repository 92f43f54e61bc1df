//! `yoco generate`: token ids in, token ids out, with the time to first token and decode rate;
//! on request the weights and every step's logits written out, for another implementation to check.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use yoco_core::{DType, Device, Error, Result, Tensor};

use crate::model::weights::write_safetensors;
use crate::model::{check_generation, generate, generate_observed, preset, AnyModel, Backend, ModelConfig, Ops, Sampler, Weights};

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

    /// The weights these arguments describe: read from `--weights`, or drawn from `--seed`.
    pub fn weights(&self, config: &ModelConfig) -> Result<Weights> {
        let device = Device::parse(&self.device)?;
        let dtype = parse_dtype(&self.dtype)?;
        // Before the weights are drawn or read, which can take a while.
        self.backend.check(dtype, &device)?;
        match &self.weights {
            Some(path) => Weights::load(config, path, dtype, &device),
            None => Weights::init(config, self.seed, dtype, &device),
        }
    }

    /// Builds the model these arguments describe, from `weights`.
    pub fn build(&self, config: &ModelConfig, weights: Weights) -> Result<AnyModel> {
        AnyModel::build(config, weights, Ops::new(self.backend), &Device::parse(&self.device)?)
    }
}

/// `yoco generate`'s arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Token ids, comma-separated; sequences of a batch separated by ';' (equal lengths).
    #[arg(long, required_unless_present = "prompt_file", conflicts_with = "prompt_file")]
    pub prompt: Option<String>,
    /// The prompt from a file instead (`-`: standard input), for prompts longer than a command
    /// line holds: as --prompt, and a line break also ends a sequence (blank lines are skipped).
    #[arg(long, value_name = "PATH")]
    pub prompt_file: Option<PathBuf>,
    /// Tokens to generate per sequence.
    #[arg(long, default_value_t = 16)]
    pub new_tokens: usize,
    /// 0 for greedy decoding.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Prefill span: prompt tokens per sequence processed per step.
    #[arg(long, default_value_t = 2048)]
    pub span: usize,
    /// Also write the weights the run used to this safetensors file (in the run's dtype), e.g.
    /// the random ones, for another implementation to load.
    #[arg(long, value_name = "PATH")]
    pub save_weights: Option<PathBuf>,
    /// Also write every step's logits to this safetensors file: `logits` f32
    /// `[new_tokens, batch, vocab]` (the prefill's last token, then each decode step) and
    /// `tokens` u32 `[batch, new_tokens]`. Copying them to the host counts in the timings.
    #[arg(long, value_name = "PATH")]
    pub save_logits: Option<PathBuf>,
    /// Replace the files --save-weights and --save-logits name if they exist.
    #[arg(long)]
    pub force: bool,
}

impl GenerateArgs {
    /// The prompt's tokens (row-major) and batch, from --prompt or --prompt-file.
    fn prompt(&self) -> Result<(Vec<u32>, usize)> {
        match (&self.prompt, &self.prompt_file) {
            (Some(text), _) => parse_prompt("--prompt", text),
            (None, Some(path)) => {
                let read = if path.as_os_str() == "-" { std::io::read_to_string(std::io::stdin()) } else { std::fs::read_to_string(path) };
                let text = read.map_err(|e| Error::invalid("--prompt-file", "path", format!("{}: {e}", path.display())))?;
                let sequences: Vec<&str> = text.lines().map(str::trim).filter(|line| !line.is_empty()).collect();
                if sequences.is_empty() {
                    return Err(Error::invalid("--prompt-file", "prompt", format!("{} holds no token ids", path.display())));
                }
                parse_prompt("--prompt-file", &sequences.join(";"))
            }
            // clap requires one of the two.
            (None, None) => Err(Error::invalid("--prompt", "prompt", "give --prompt or --prompt-file")),
        }
    }

    /// The files to write, refused before anything runs if one exists and --force is not given,
    /// if its folder does not exist, if it is a file the run reads (--weights, --config-file:
    /// --force replaces an earlier output, never the run's own input, which the weights in another
    /// dtype would have replaced for good), or if both name the same file (however spelled:
    /// `y.st` and `./y.st`, a link). The files are written whole or not at all, and one made by
    /// something else while the model runs is not replaced without --force either
    /// (`write_whole`).
    fn check_outputs(&self) -> Result<()> {
        let outputs = [("--save-weights", &self.save_weights), ("--save-logits", &self.save_logits)];
        let inputs = [("--weights", &self.model.weights), ("--config-file", &self.model.config_file)];
        for (flag, path) in outputs {
            if let Some(path) = path {
                if path.exists() && !self.force {
                    return Err(Error::invalid(flag, "path", format!("{} exists; pass --force to replace it", path.display())));
                }
                let folder = folder_of(path);
                if !folder.is_dir() {
                    return Err(Error::invalid(flag, "path", format!("{}: the folder {} does not exist", path.display(), folder.display())));
                }
                for (input_flag, input) in inputs {
                    if input.as_deref().is_some_and(|input| same_file(path, input)) {
                        return Err(Error::invalid(flag, "path", format!("{} is the {input_flag} file this run reads; it is never replaced, --force or not", path.display())));
                    }
                }
            }
        }
        if let (Some(a), Some(b)) = (&self.save_weights, &self.save_logits) {
            if same_file(a, b) {
                return Err(Error::invalid("--save-logits", "path", format!("{} is also --save-weights' file ({})", b.display(), a.display())));
            }
        }
        Ok(())
    }
}

/// The folder a file path names its file in (`.` for a bare name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    }
}

/// Whether two paths name one file: where both exist, the same file (device and inode, so links
/// count); else the same name in the same folder once the folders' `.`, `..` and links are
/// resolved.
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    if let (Ok(a), Ok(b)) = (std::fs::metadata(a), std::fs::metadata(b)) {
        use std::os::unix::fs::MetadataExt;
        return (a.dev(), a.ino()) == (b.dev(), b.ino());
    }
    let place = |p: &Path| Some((std::fs::canonicalize(folder_of(p)).ok()?, p.file_name()?.to_owned()));
    match (place(a), place(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

/// Parses "1,2,3;4,5,6" into (row-major tokens, batch); `flag` names the argument in errors.
pub fn parse_prompt(flag: &'static str, text: &str) -> Result<(Vec<u32>, usize)> {
    let rows: Vec<Vec<u32>> = text
        .split(';')
        .map(|row| row.split(',').map(|t| t.trim().parse::<u32>().map_err(|_| Error::invalid(flag, "token", format!("'{t}' is not a token id")))).collect())
        .collect::<Result<_>>()?;
    let n = rows[0].len();
    if let Some((i, row)) = rows.iter().enumerate().find(|(_, r)| r.len() != n) {
        return Err(Error::invalid(flag, "prompt", format!("every sequence of a batch must have the same length: sequence 0 has {n} tokens, sequence {i} {}", row.len())));
    }
    Ok((rows.concat(), rows.len()))
}

/// Every step's logits, gathered on the host as f32, and written as a safetensors file.
struct StepLogits {
    values: Vec<f32>,
    steps: usize,
    rows: usize,
    vocab: usize,
}

impl StepLogits {
    fn new() -> Self {
        StepLogits { values: Vec::new(), steps: 0, rows: 0, vocab: 0 }
    }

    fn push(&mut self, logits: &Tensor) -> Result<()> {
        let vocab = logits.shape().last_dim();
        self.values.extend(logits.to_f64_vec()?.into_iter().map(|v| v as f32));
        self.rows = logits.numel() / vocab.max(1);
        self.vocab = vocab;
        self.steps += 1;
        Ok(())
    }

    fn save(&self, path: &Path, tokens: &[Vec<u32>], metadata: HashMap<String, String>, overwrite: bool) -> Result<()> {
        let logits: Vec<u8> = self.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let ids: Vec<u8> = tokens.iter().flatten().flat_map(|t| t.to_le_bytes()).collect();
        let tensors = [
            ("logits", safetensors::Dtype::F32, vec![self.steps, self.rows, self.vocab], &logits[..]),
            ("tokens", safetensors::Dtype::U32, vec![tokens.len(), self.steps], &ids[..]),
        ];
        write_safetensors("--save-logits", path, tensors, Some(metadata), overwrite)
    }
}

/// Runs a generation and prints it.
pub fn run(args: &GenerateArgs) -> Result<()> {
    args.check_outputs()?;
    let config = args.model.config()?;
    let (tokens, batch) = args.prompt()?;
    // Before the weights are written: a run the model refuses leaves no file behind.
    check_generation(&config, &tokens, batch, args.new_tokens, args.span)?;
    let mut sampler = Sampler::new(args.temperature, args.model.seed)?;
    let weights = args.model.weights(&config)?;
    if let Some(path) = &args.save_weights {
        weights.save(path, args.force)?;
    }
    let m = args.model.build(&config, weights)?;
    let mut step_logits = StepLogits::new();
    let g = match args.save_logits {
        Some(_) => generate_observed(&m, &tokens, batch, args.new_tokens, &mut sampler, args.span, &mut |l| step_logits.push(l))?,
        None => generate(&m, &tokens, batch, args.new_tokens, &mut sampler, args.span)?,
    };
    if let Some(path) = &args.save_logits {
        let metadata = HashMap::from([
            ("config".to_string(), config.name.clone()),
            ("dtype".to_string(), args.model.dtype.clone()),
            ("backend".to_string(), format!("{:?}", args.model.backend).to_lowercase()),
            ("span".to_string(), args.span.to_string()),
        ]);
        step_logits.save(path, &g.tokens, metadata, args.force)?;
    }
    for (i, seq) in g.tokens.iter().enumerate() {
        println!("sequence {i}: {}", seq.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
    }
    let new_tokens = args.new_tokens;
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
