//! The paper's published inference figures (YOCO-3B vs Transformer-3B, H100-80GB), from
//! SPEC.md, so that every report can set the measured ratios beside them.

/// One length of the paper's comparison: Transformer / YOCO ratios.
#[derive(Clone, Copy, Debug)]
pub struct PaperRatios {
    pub length: usize,
    /// GPU memory, Transformer / YOCO.
    pub memory: f64,
    /// Prefill latency, Transformer / YOCO.
    pub prefill: f64,
    /// Throughput, YOCO / Transformer (`None` where the paper gives none).
    pub throughput: Option<f64>,
}

/// Tokens the paper generated after each prompt (the last 1,024 of each length).
pub const GENERATED_TOKENS: usize = 1024;

/// The paper's table by length (32K … 1M tokens).
pub const RATIOS: [PaperRatios; 6] = [
    PaperRatios { length: 32 << 10, memory: 1.95, prefill: 2.87, throughput: Some(2.72) },
    PaperRatios { length: 64 << 10, memory: 2.32, prefill: 5.05, throughput: Some(2.57) },
    PaperRatios { length: 128 << 10, memory: 3.01, prefill: 8.36, throughput: Some(2.77) },
    PaperRatios { length: 256 << 10, memory: 4.16, prefill: 15.55, throughput: Some(4.37) },
    PaperRatios { length: 512 << 10, memory: 6.39, prefill: 30.3, throughput: Some(9.56) },
    PaperRatios { length: 1 << 20, memory: 9.38, prefill: 71.8, throughput: None },
];

/// KV cache per token, Transformer / YOCO, by model size (parameters, ratio).
pub const KV_PER_TOKEN_RATIOS: [(&str, f64); 5] = [("1.2B", 24.0), ("6.4B", 32.0), ("13B", 40.0), ("30B", 64.0), ("65B", 80.0)];

/// The headline at 512K tokens: Transformer prefill ≈ 180 s vs under 6 s for YOCO; throughput
/// 4.5 vs 43.1 tokens/s; YOCO used 12.4 GB in all at 1M tokens.
pub const HEADLINE: &str = "512K tokens: memory 6.4x, prefill 30.3x (~180 s vs <6 s), throughput 9.6x (4.5 vs 43.1 tokens/s); YOCO 12.4 GB in all at 1M";
