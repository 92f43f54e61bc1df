//! Model configurations: YOCO and its Transformer twin, the paper's presets, and validation.
//!
//! A config is a JSON file a user can write (`yoco config <name>` prints any preset as a
//! starting point). Validation names the field at fault.

use serde::{Deserialize, Serialize};
use yoco_core::{Error, Result};

/// Attention and retention head dims the kernels are built for.
pub const SUPPORTED_HEAD_DIMS: [usize; 3] = [64, 128, 256];

/// The token mixer of YOCO's self-decoder.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SelfDecoder {
    /// Gated retention with `heads` heads of `head_dim` (heads · head_dim = d_model: its q, k, v,
    /// g projections are d → d).
    GatedRetention { heads: usize, head_dim: usize },
    /// Sliding-window attention over the last `window` tokens, with the model's attention heads.
    SlidingWindow { window: usize },
}

/// Which model.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Architecture {
    /// Self-decoder (layers 1..L/2, `self_decoder` mixers), then cross-decoder (layers
    /// L/2+1..L) over one shared K̂/V̂ cache.
    Yoco { self_decoder: SelfDecoder },
    /// Llama-style: every layer GQA attention with its own K/V cache. (A struct variant with no
    /// fields rather than a unit one, so that a config giving it fields is refused.)
    Transformer {},
}

/// A model's shape. The attention fields describe the cross-decoder (YOCO), the SWA layers, and
/// every layer of the Transformer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: String,
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub d_model: usize,
    pub n_layers: usize,
    /// Attention query heads.
    pub n_heads: usize,
    /// Attention key/value heads (GQA: n_heads is a multiple).
    pub n_kv_heads: usize,
    /// Attention head dim.
    pub head_dim: usize,
    pub ffn_dim: usize,
    pub rope_theta: f64,
    pub norm_eps: f64,
    /// The longest sequence (prompt + generated tokens) the model accepts.
    pub max_seq_len: usize,
}

/// The longest `max_seq_len` a config may declare (and the longest cache the memory model
/// predicts): the positions RoPE takes exactly in f32 (2^24, `yoco_rope::MAX_POSITION`; past it
/// a prefill would be refused part way, its caches already written), far above any published
/// model, and low enough that every size computed from it stays inside a usize.
pub const MAX_SEQ_LEN_LIMIT: usize = yoco_rope::MAX_POSITION;

fn bad(field: &'static str, reason: impl Into<String>) -> Error {
    Error::invalid("ModelConfig", field, reason)
}

impl ModelConfig {
    /// Reads and validates a JSON config file.
    pub fn from_json_file(path: &std::path::Path) -> Result<ModelConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::invalid("ModelConfig", "file", format!("{}: {e}", path.display())))?;
        Self::from_json(&text)
    }

    /// Parses and validates a JSON config.
    pub fn from_json(text: &str) -> Result<ModelConfig> {
        let config: ModelConfig = serde_json::from_str(text).map_err(|e| Error::invalid("ModelConfig", "json", e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a config always serialises")
    }

    /// Checks every constraint the models rely on; the error names the field.
    pub fn validate(&self) -> Result<()> {
        // The limits sit far above any published model and keep every size the models, the
        // parameter count and the memory model compute from these fields inside a usize.
        for (field, v, limit) in [
            ("vocab_size", self.vocab_size, 1 << 24),
            ("d_model", self.d_model, 1 << 20),
            ("n_layers", self.n_layers, 1 << 12),
            ("n_heads", self.n_heads, 1 << 12),
            ("n_kv_heads", self.n_kv_heads, 1 << 12),
            ("ffn_dim", self.ffn_dim, 1 << 22),
            ("max_seq_len", self.max_seq_len, MAX_SEQ_LEN_LIMIT),
        ] {
            if v == 0 || v > limit {
                return Err(bad(field, format!("{v}: expected 1..={limit}")));
            }
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(bad("n_heads", format!("{} is not a multiple of n_kv_heads = {}", self.n_heads, self.n_kv_heads)));
        }
        if !SUPPORTED_HEAD_DIMS.contains(&self.head_dim) {
            return Err(bad("head_dim", format!("{}: supported head dims are {SUPPORTED_HEAD_DIMS:?}", self.head_dim)));
        }
        if !(self.rope_theta > 1.0 && self.rope_theta.is_finite()) {
            return Err(bad("rope_theta", format!("{}: expected a finite value > 1", self.rope_theta)));
        }
        // The kernels take eps in f32: a value that rounds to 0 or infinity there is refused here,
        // naming the field, rather than by the first norm after the weights are built.
        let eps_f32 = self.norm_eps as f32;
        if !(eps_f32 > 0.0 && eps_f32.is_finite()) {
            return Err(bad("norm_eps", format!("{}: expected a value > 0 that is finite and not 0 in f32", self.norm_eps)));
        }
        if let Architecture::Yoco { self_decoder } = self.architecture {
            if self.n_layers < 2 || !self.n_layers.is_multiple_of(2) {
                return Err(bad("n_layers", format!("{}: YOCO needs an even number of layers (half self-decoder, half cross-decoder)", self.n_layers)));
            }
            match self_decoder {
                SelfDecoder::GatedRetention { heads, head_dim } => {
                    if heads == 0 || heads > 1 << 12 {
                        return Err(bad("self_decoder.heads", format!("{heads}: expected 1..={}", 1 << 12)));
                    }
                    if !SUPPORTED_HEAD_DIMS.contains(&head_dim) {
                        return Err(bad("self_decoder.head_dim", format!("{head_dim}: supported head dims are {SUPPORTED_HEAD_DIMS:?}")));
                    }
                    if heads * head_dim != self.d_model {
                        return Err(bad("self_decoder.heads", format!("{heads} heads × {head_dim} = {} must equal d_model = {}", heads * head_dim, self.d_model)));
                    }
                }
                SelfDecoder::SlidingWindow { window } => {
                    // The ring holds the window whatever the context: one past max_seq_len would
                    // hold slots no sequence reaches (64 GiB for a window of 2^27 at tiny-yoco's
                    // width).
                    if window == 0 || window > self.max_seq_len {
                        return Err(bad("self_decoder.window", format!("{window}: expected a window of 1..={} tokens (max_seq_len)", self.max_seq_len)));
                    }
                }
            }
        }
        Ok(())
    }

    /// The Transformer of the same shape (same width, depth, heads, FFN, GQA, vocabulary).
    pub fn transformer_twin(&self) -> ModelConfig {
        ModelConfig { name: format!("{}-transformer", self.name.trim_end_matches("-yoco")), architecture: Architecture::Transformer {}, ..self.clone() }
    }

    pub fn is_yoco(&self) -> bool {
        matches!(self.architecture, Architecture::Yoco { .. })
    }

    /// Layers of the self-decoder (YOCO) — the first half.
    pub fn self_layers(&self) -> usize {
        if self.is_yoco() {
            self.n_layers / 2
        } else {
            0
        }
    }
}

/// Parameter counts by part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ParameterCount {
    /// Token embedding and output head (untied).
    pub embedding: usize,
    /// Everything else.
    pub non_embedding: usize,
}

impl ParameterCount {
    pub fn total(&self) -> usize {
        self.embedding + self.non_embedding
    }
}

impl ModelConfig {
    /// Parameters of an attention block's projections (q, k, v, o) and its pre-norm.
    fn attention_params(&self) -> usize {
        let (d, q, kv) = (self.d_model, self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim);
        d * q + 2 * d * kv + q * d + d
    }

    fn ffn_params(&self) -> usize {
        3 * self.d_model * self.ffn_dim + self.d_model
    }

    /// Counts parameters exactly as the weights are laid out (see `weights.rs`).
    pub fn parameter_count(&self) -> ParameterCount {
        let d = self.d_model;
        let embedding = 2 * self.vocab_size * d;
        let layers = match self.architecture {
            Architecture::Transformer {} => self.n_layers * (self.attention_params() + self.ffn_params()),
            Architecture::Yoco { self_decoder } => {
                let half = self.n_layers / 2;
                let mixer = match self_decoder {
                    // q, k, v, g, o (d → d each), γ (d → heads), the pre-norm.
                    SelfDecoder::GatedRetention { heads, .. } => 5 * d * d + d * heads + d,
                    SelfDecoder::SlidingWindow { .. } => self.attention_params(),
                };
                let (q, kv) = (self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim);
                // The shared K̂/V̂ projections and their norm, once; each cross layer its q, o, norm.
                let shared_kv = d + 2 * d * kv;
                let cross = d * q + q * d + d;
                half * (mixer + self.ffn_params()) + shared_kv + half * (cross + self.ffn_params())
            }
        };
        ParameterCount { embedding, non_embedding: layers + d }
    }
}

/// FFN width for a model width in the paper's configurations: 8/3 · d rounded up to 256.
fn ffn_for(d: usize) -> usize {
    (8 * d).div_ceil(3).div_ceil(256) * 256
}

// One argument per column of the paper's configuration table.
#[allow(clippy::too_many_arguments)]
fn yoco(name: &str, d: usize, layers: usize, heads: usize, kv_heads: usize, ffn: usize, gret_head_dim: usize, vocab: usize, max_seq: usize) -> ModelConfig {
    ModelConfig {
        name: name.to_string(),
        architecture: Architecture::Yoco { self_decoder: SelfDecoder::GatedRetention { heads: d / gret_head_dim, head_dim: gret_head_dim } },
        vocab_size: vocab,
        d_model: d,
        n_layers: layers,
        n_heads: heads,
        n_kv_heads: kv_heads,
        head_dim: d / heads,
        ffn_dim: ffn,
        rope_theta: 10_000.0,
        norm_eps: 1e-5,
        max_seq_len: max_seq,
    }
}

/// The paper's tokenizer's vocabulary.
pub const PAPER_VOCAB: usize = 100_288;

/// Every preset: YOCO-3B, the scaling series, and the small CPU configs. Each has a Transformer
/// twin (`<name>-transformer`, from [`preset`]).
pub fn presets() -> Vec<ModelConfig> {
    let mut v = vec![
        // The project's CPU configs: the same structure, sized to run in seconds on 2 cores.
        yoco("tiny-yoco", 256, 4, 4, 2, 704, 64, 1024, 1 << 17),
        // The same with a sliding-window self-decoder (the paper's other choice).
        ModelConfig {
            name: "tiny-swa-yoco".into(),
            architecture: Architecture::Yoco { self_decoder: SelfDecoder::SlidingWindow { window: 512 } },
            ..yoco("tiny-yoco", 256, 4, 4, 2, 704, 64, 1024, 1 << 17)
        },
        yoco("small-yoco", 512, 8, 8, 4, 1408, 128, 8192, 65_536),
        // YOCO-3B (the inference-efficiency model): 13 gRet + 13 cross layers, GQA 24/8.
        yoco("yoco-3b", 3072, 26, 24, 8, 8192, 128, PAPER_VOCAB, 1 << 20),
    ];
    // The scaling series (gRet head dim 256). The paper states only d / layers / heads: heads are
    // taken as MHA (n_kv_heads = n_heads) and the FFN as 8/3 · d rounded up to 256.
    for (name, d, layers, heads) in [
        ("yoco-160m", 768, 12, 12),
        ("yoco-400m", 1024, 24, 16),
        ("yoco-830m", 1536, 24, 12),
        ("yoco-1.4b", 2048, 24, 16),
        ("yoco-2.7b", 2560, 32, 20),
        ("yoco-6.8b", 4096, 32, 32),
        ("yoco-13b", 5120, 40, 40),
    ] {
        v.push(yoco(name, d, layers, heads, heads, ffn_for(d), 256, PAPER_VOCAB, 1 << 20));
    }
    v
}

/// A preset by name: a YOCO name, or `<name without -yoco>-transformer` for its twin.
pub fn preset(name: &str) -> Result<ModelConfig> {
    let all = presets();
    if let Some(c) = all.iter().find(|c| c.name == name) {
        return Ok(c.clone());
    }
    if let Some(base) = name.strip_suffix("-transformer") {
        for c in &all {
            if c.name.trim_end_matches("-yoco") == base {
                return Ok(c.transformer_twin());
            }
        }
    }
    let names: Vec<String> = all.iter().flat_map(|c| [c.name.clone(), c.transformer_twin().name]).collect();
    Err(Error::invalid("preset", "name", format!("'{name}': expected one of {}", names.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yoco_3b_has_the_papers_parameter_count() {
        let c = preset("yoco-3b").unwrap();
        let n = c.parameter_count().non_embedding as f64 / 1e9;
        assert!((n - 2.83).abs() < 0.01, "{n} B non-embedding parameters");
    }

    #[test]
    fn every_preset_validates_and_round_trips() {
        for c in presets() {
            c.validate().unwrap();
            c.transformer_twin().validate().unwrap();
            assert_eq!(ModelConfig::from_json(&c.to_json()).unwrap(), c);
        }
        assert_eq!(preset("yoco-3b-transformer").unwrap().architecture, Architecture::Transformer {});
        assert_eq!(preset("tiny-transformer").unwrap().d_model, 256);
        assert_eq!(preset("tiny-swa-transformer").unwrap().architecture, Architecture::Transformer {});
    }

    #[test]
    fn bad_configs_name_the_field() {
        let base = preset("tiny-yoco").unwrap();
        let cases: Vec<(&str, ModelConfig)> = vec![
            ("n_heads", ModelConfig { n_kv_heads: 3, ..base.clone() }),
            ("n_layers", ModelConfig { n_layers: 5, ..base.clone() }),
            ("head_dim", ModelConfig { head_dim: 48, ..base.clone() }),
            ("self_decoder.window", ModelConfig { architecture: Architecture::Yoco { self_decoder: SelfDecoder::SlidingWindow { window: 0 } }, ..base.clone() }),
            ("self_decoder.window", ModelConfig { architecture: Architecture::Yoco { self_decoder: SelfDecoder::SlidingWindow { window: 1025 } }, max_seq_len: 1024, ..base.clone() }),
            ("self_decoder.heads", ModelConfig { architecture: Architecture::Yoco { self_decoder: SelfDecoder::GatedRetention { heads: 3, head_dim: 64 } }, ..base.clone() }),
            ("vocab_size", ModelConfig { vocab_size: 0, ..base.clone() }),
            // Sizes past the limits (the product of heads and head_dim would wrap), and an eps
            // that is 0 in f32.
            ("vocab_size", ModelConfig { vocab_size: 1_000_000_000_000_000, ..base.clone() }),
            ("self_decoder.heads", ModelConfig { architecture: Architecture::Yoco { self_decoder: SelfDecoder::GatedRetention { heads: (1 << 58) + 4, head_dim: 64 } }, ..base.clone() }),
            ("norm_eps", ModelConfig { norm_eps: 1e-50, ..base.clone() }),
            // Positions RoPE cannot take exactly (a prefill there was refused part way).
            ("max_seq_len", ModelConfig { max_seq_len: (1 << 24) + 1, ..base.clone() }),
        ];
        for (field, c) in cases {
            match c.validate() {
                Err(Error::InvalidArgument { what, .. }) => assert_eq!(what, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        assert!(ModelConfig::from_json("{\"name\": 1}").is_err());
        // A field the architecture or its self-decoder does not have is refused, not dropped (a
        // window in a Transformer's architecture had built full attention).
        let json = base.to_json();
        for (from, to) in [
            ("\"kind\": \"gated_retention\"", "\"kind\": \"gated_retention\", \"window\": 4"),
            ("\"architecture\": {", "\"architecture\": {\"window\": 4, "),
        ] {
            assert!(json.contains(from), "{from} in {json}");
            let err = ModelConfig::from_json(&json.replacen(from, to, 1)).unwrap_err().to_string();
            assert!(err.contains("window"), "{to}: {err}");
        }
        let transformer = base.transformer_twin().to_json();
        assert!(ModelConfig::from_json(&transformer).is_ok());
        let with_decoder = transformer.replacen("\"kind\": \"transformer\"", "\"kind\": \"transformer\", \"self_decoder\": {\"kind\": \"sliding_window\", \"window\": 4}", 1);
        assert_ne!(with_decoder, transformer);
        assert!(ModelConfig::from_json(&with_decoder).unwrap_err().to_string().contains("self_decoder"), "{with_decoder}");
        assert!(preset("nope").unwrap_err().to_string().contains("yoco-3b"));
    }
}
