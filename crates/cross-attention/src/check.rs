//! Validation against the reference, shared by `tests/` and `yoco check`: a prompt's K̂/V̂
//! written once, then several cross layers (each with its own queries) attending to it — the
//! early-exit prefill (last prompt token only) and decode steps — every output judged against
//! causal attention over the whole sequence.

use yoco_core::testing::{judge, Outcome};
use yoco_core::{DType, Device, Result};
use yoco_gqa::check::{dtypes, slice_positions, Inputs};
use yoco_gqa::{reference, Dims, Mask};

use crate::SharedKvCache;

/// (batch, prompt, total, heads, kv_heads, head_dim, layers)
pub type CrossCase = (usize, usize, usize, usize, usize, usize, usize);

/// GQA ratios 1/3/8, one-token prompts, prompts just past tile multiples.
pub const CASES: &[CrossCase] = &[(1, 1, 4, 2, 2, 64, 2), (2, 65, 70, 6, 2, 128, 3), (1, 129, 131, 8, 1, 64, 2), (1, 40, 42, 3, 1, 256, 2)];

/// GPU-filling: YOCO-3B's cross-decoder heads over a 128K-token prompt, early exit then decode.
pub const LARGE_CASES: &[CrossCase] = &[(1, 131_072, 131_074, 24, 8, 128, 2)];

/// Writes the prompt's K̂/V̂, runs `layers` cross layers for the last prompt token (early exit),
/// then one token at a time to `total`, every layer every step.
pub fn case(device: &Device, dtype: DType, c: CrossCase) -> Result<Vec<Outcome>> {
    let (batch, prompt, total, heads, kv_heads, head_dim, layers) = c;
    let dims = Dims { batch, q_len: total, kv_len: total, heads, kv_heads, head_dim };
    let label = format!("cross-attention {device} {dtype} B={batch} prompt={prompt} N={total} H={heads}/{kv_heads} D={head_dim}");
    // One K̂/V̂ for all layers; each layer its own queries. Each draw makes only what is read of
    // it (one position of the other side): with the unused queries and keys and their f64 copies,
    // the 128K-token case ran the CPU's `yoco check --large` out of 24 GiB; it peaks at 17 GB now.
    let shared = Inputs::random(&label, Dims { q_len: 1, ..dims }, dtype, device)?;
    let layer_q: Vec<Inputs> = (0..layers).map(|l| Inputs::random(&format!("{label} layer {l}"), Dims { kv_len: 1, ..dims }, dtype, device)).collect::<Result<_>>()?;
    // The reference for the rows queried only (the last token of each write): the prompt may be long.
    let rows: Vec<usize> = (prompt - 1..total).collect();
    let scale = 1.0 / (head_dim as f64).sqrt();
    let expected: Vec<(Vec<f64>, Vec<f64>)> = layer_q
        .iter()
        .map(|lq| {
            let want = reference::attention_rows(&lq.q64, &shared.k64, &shared.v64, dims, Mask::Causal, scale, &rows);
            let plain = reference::attention_rows_plain(&lq.q64, &shared.k64, &shared.v64, dims, Mask::Causal, scale, &rows, dtype);
            (want, plain)
        })
        .collect();
    let mut cache = SharedKvCache::new(batch, total, kv_heads, head_dim, dtype, device)?;
    let row = heads * head_dim;
    let mut outcomes = Vec::new();
    let mut pos = 0;
    for n in std::iter::once(prompt).chain(std::iter::repeat_n(1, total - prompt)) {
        cache.write(&slice_positions(&shared.k, pos, n)?, &slice_positions(&shared.v, pos, n)?)?;
        pos += n;
        // Early exit: only the last token of the chunk goes through the cross layers.
        for (l, (lq, (want, plain))) in layer_q.iter().zip(&expected).enumerate() {
            let out = cache.attend(&slice_positions(&lq.q, pos - 1, 1)?)?;
            // Row pos − 1 is entry pos − prompt of the sampled rows.
            let at = pos - prompt;
            let n_rows = rows.len();
            let rows = |vals: &[f64]| -> Vec<f64> { (0..batch).flat_map(|b| vals[(b * n_rows + at) * row..(b * n_rows + at + 1) * row].to_vec()).collect() };
            outcomes.push(judge(format!("{label} layer {l} token {}", pos - 1), dtype, &out.to_f64_vec()?, &rows(plain), &rows(want)));
        }
    }
    Ok(outcomes)
}

/// Every dtype of `device` × `cases`.
pub fn sweep(device: &Device, cases: &[CrossCase]) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for &dtype in dtypes(device) {
        for &c in cases {
            outcomes.extend(case(device, dtype, c)?);
        }
    }
    Ok(outcomes)
}
