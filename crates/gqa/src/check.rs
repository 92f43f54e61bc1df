//! Validation against the reference on fresh random inputs, shared by `tests/` (every device the
//! build and machine have), the SWA and cross-attention crates, and `yoco check` (which runs it
//! on a GPU machine at larger shapes too).

use yoco_core::testing::{case_rng, judge, once_rounded_bound, rel_l2, Outcome};
use yoco_core::{DType, Device, MemoryCategory, Result, Tensor};

use crate::{attention, attention_into, reference, AttentionOptions, Dims, KvCache, Mask};

/// One attention problem: sizes and mask.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub dims: Dims,
    pub mask: Mask,
}

/// Shorthand for a [`Case`]: (batch, q_len, kv_len, heads, kv_heads, head_dim, mask).
pub const fn case_of(batch: usize, q_len: usize, kv_len: usize, heads: usize, kv_heads: usize, head_dim: usize, mask: Mask) -> Case {
    Case { dims: Dims { batch, q_len, kv_len, heads, kv_heads, head_dim }, mask }
}

/// The test sweep: head dims 64/128/256; GQA ratios 1/2/3/8; one token; lengths just above tile
/// multiples (65, 129); chunks after a prefix and decode steps (q_len < kv_len); no mask.
/// Windows get their own sweep ([`window_cases`]).
pub const SHAPES: &[Case] = &[
    case_of(1, 1, 1, 1, 1, 64, Mask::Causal),
    case_of(2, 65, 65, 4, 2, 64, Mask::Causal),
    case_of(1, 129, 129, 3, 1, 128, Mask::Causal),
    case_of(1, 70, 70, 2, 1, 256, Mask::Causal),
    case_of(1, 33, 100, 8, 1, 64, Mask::Causal),
    case_of(2, 1, 200, 2, 2, 128, Mask::Causal),
    case_of(1, 1, 300, 8, 1, 64, Mask::Causal),
    case_of(1, 3, 77, 6, 2, 256, Mask::Causal),
    case_of(1, 40, 40, 2, 1, 64, Mask::None),
    case_of(1, 5, 67, 3, 3, 128, Mask::None),
    // A decode group wider than the CPU row path's scratch (64 query heads per K/V head).
    case_of(1, 2, 50, 130, 1, 64, Mask::Causal),
    // 9–16 query rows per K/V head (the CUDA tensor-core decode): 16 rows over a cache with a
    // partial last tile, 12 rows unmasked, 10 rows (padding in the fragment) at D = 256.
    case_of(2, 4, 300, 16, 4, 128, Mask::Causal),
    case_of(1, 2, 517, 12, 2, 64, Mask::None),
    case_of(1, 5, 129, 4, 2, 256, Mask::Causal),
    // The CPU decode path's blocks of 3 query rows per K/V head, and its key ranges (over 1024
    // keys there are several, merged after; their starts fall mid-tile): YOCO-3B's heads over
    // 4096 keys, 4 queries in a window of 1500, 2 queries over 1027 keys.
    case_of(1, 1, 300, 6, 2, 128, Mask::Causal),
    case_of(1, 1, 4096, 24, 8, 128, Mask::Causal),
    case_of(1, 4, 3000, 6, 2, 256, Mask::Window(1500)),
    case_of(1, 2, 1027, 3, 3, 64, Mask::Causal),
    // The CPU prefill's task blocks of a whole GQA group: 16 queries × 8 heads with a partly
    // filled last block; and a group too wide to share a block (one head per task).
    case_of(1, 45, 300, 8, 1, 128, Mask::None),
    case_of(1, 70, 70, 32, 1, 64, Mask::Causal),
];

/// GPU-filling shapes: YOCO-3B's heads (24 over 8, D = 128) causal over 16K tokens; D = 64 at
/// 8K; a sliding window of 1024 over 16K; a batch of chunks after a prefix.
pub const LARGE_SHAPES: &[Case] = &[
    case_of(1, 16384, 16384, 24, 8, 128, Mask::Causal),
    case_of(2, 8192, 8192, 16, 16, 64, Mask::Causal),
    case_of(1, 16384, 16384, 24, 8, 128, Mask::Window(1024)),
    case_of(4, 1000, 5000, 8, 2, 256, Mask::Causal),
];

/// GPU decode shapes: one query (and a few) over a 128K-token cache, YOCO-3B's heads; and four
/// queries of 4 heads per K/V head (16 rows: the tensor-core decode), as the bench runs them.
pub const LARGE_DECODE_SHAPES: &[Case] = &[
    case_of(1, 1, 131_072, 24, 8, 128, Mask::Causal),
    case_of(4, 2, 65_537, 32, 8, 128, Mask::Causal),
    case_of(1, 1, 131_072, 16, 16, 64, Mask::Window(1024)),
    case_of(1, 4, 131_072, 32, 8, 128, Mask::Causal),
];

/// Sliding windows around the sequence length (W−1, W, W+1 with W = N), around the tile size,
/// and narrow, for prefill, a chunk after a prefix, and decode.
pub fn window_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let n = 100;
    for w in [n - 1, n, n + 1, 1, 16] {
        cases.push(case_of(1, n, n, 4, 2, 64, Mask::Window(w)));
    }
    for w in [63, 64, 65] {
        cases.push(case_of(1, 150, 150, 2, 1, 128, Mask::Window(w)));
    }
    for w in [129, 130, 131, 7] {
        cases.push(case_of(1, 1, 130, 2, 1, 64, Mask::Window(w)));
    }
    cases.push(case_of(2, 17, 130, 3, 1, 256, Mask::Window(40)));
    // A window in the tensor-core decode (3 queries × 4 heads per K/V head = 12 rows).
    cases.push(case_of(1, 3, 200, 8, 2, 128, Mask::Window(50)));
    // A window over the CPU prefill's blocks of a whole group (16 queries × 8 heads).
    cases.push(case_of(1, 45, 300, 8, 1, 64, Mask::Window(37)));
    cases
}

/// The dtypes a device runs attention in: the CPU all three; CUDA bf16 and f16 (tensor cores).
pub fn dtypes(device: &Device) -> &'static [DType] {
    if device.is_cpu() {
        &DType::ALL
    } else {
        &[DType::BF16, DType::F16]
    }
}

/// Random q, k, v on `device` for `dims` (dense), and their values as the path sees them.
pub struct Inputs {
    pub q: Tensor,
    pub k: Tensor,
    pub v: Tensor,
    pub q64: Vec<f64>,
    pub k64: Vec<f64>,
    pub v64: Vec<f64>,
}

impl Inputs {
    /// Fresh inputs for the case named `label`. Queries are scaled so that scores spread over a
    /// few units: the softmax is neither uniform nor one-hot.
    pub fn random(label: &str, dims: Dims, dtype: DType, device: &Device) -> Result<Inputs> {
        let mut rng = case_rng(label);
        let Dims { batch, q_len, kv_len, heads, kv_heads, head_dim } = dims;
        let qv: Vec<f64> = rng.normal_vec(batch * q_len * heads * head_dim).into_iter().map(|x| 1.5 * x).collect();
        let kv = rng.normal_vec(batch * kv_len * kv_heads * head_dim);
        let vv = rng.normal_vec(batch * kv_len * kv_heads * head_dim);
        let t = |vals: &[f64], dims: Vec<usize>| Tensor::from_f64(vals, dims, dtype, device, MemoryCategory::Activations);
        let q = t(&qv, vec![batch, q_len, heads, head_dim])?;
        let k = t(&kv, vec![batch, kv_len, kv_heads, head_dim])?;
        let v = t(&vv, vec![batch, kv_len, kv_heads, head_dim])?;
        let (q64, k64, v64) = (q.to_f64_vec()?, k.to_f64_vec()?, v.to_f64_vec()?);
        Ok(Inputs { q, k, v, q64, k64, v64 })
    }

    /// The reference output and the plain same-precision one.
    pub fn expected(&self, dims: Dims, mask: Mask, dtype: DType) -> (Vec<f64>, Vec<f64>) {
        expected(&self.q64, &self.k64, &self.v64, dims, mask, dtype)
    }
}

/// The reference output (default scale) and the plain same-precision one, for inputs as the
/// path saw them.
pub fn expected(q64: &[f64], k64: &[f64], v64: &[f64], dims: Dims, mask: Mask, dtype: DType) -> (Vec<f64>, Vec<f64>) {
    let scale = 1.0 / (dims.head_dim as f64).sqrt();
    let want = reference::attention(q64, k64, v64, dims, mask, scale);
    let plain = reference::attention_plain(q64, k64, v64, dims, mask, scale, dtype);
    (want, plain)
}

/// A tensor full of NaN: an element the kernel fails to write fails the comparison.
pub fn poisoned(dims: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
    Tensor::from_f64(&vec![f64::NAN; dims.iter().product()], dims.to_vec(), dtype, device, MemoryCategory::Activations)
}

/// Label of a case: what, where, sizes, mask.
pub fn label(what: &str, device: &Device, dtype: DType, c: &Case) -> String {
    let d = c.dims;
    format!(
        "{what} {device} {dtype} B={} Nq={} Nk={} H={}/{} D={} mask={}",
        d.batch,
        d.q_len,
        d.kv_len,
        d.heads,
        d.kv_heads,
        d.head_dim,
        c.mask.label()
    )
}

/// One attention call on fresh inputs into a NaN-poisoned output, judged against the reference.
pub fn case(device: &Device, dtype: DType, c: &Case) -> Result<Outcome> {
    let label = label("attention", device, dtype, c);
    let x = Inputs::random(&label, c.dims, dtype, device)?;
    judged(label, &x, c, dtype, device)
}

/// One attention call on `x` into a NaN-poisoned output, judged against the reference.
fn judged(label: String, x: &Inputs, c: &Case, dtype: DType, device: &Device) -> Result<Outcome> {
    let mut out = poisoned(x.q.dims(), dtype, device)?;
    attention_into(&x.q, &x.k, &x.v, AttentionOptions { mask: c.mask, scale: None }, &mut out)?;
    let (want, plain) = x.expected(c.dims, c.mask, dtype);
    Ok(judge(label, dtype, &out.to_f64_vec()?, &plain, &want))
}

/// Scores that rise along the keys (key `j` scaled by `1 + 10 j / kv_len`), so that a row's
/// maximum rises by tens over its keys, past its first tiles' maximum several times: a path
/// that keeps its sums against an earlier maximum (the CPU's bf16 tiles rescale them only when
/// the maximum rises by more than a margin) must rescale them right, causal, windowed and
/// unmasked, at head dims 64 and 128.
pub fn rising_scores(device: &Device) -> Result<Vec<Outcome>> {
    let cases = [case_of(1, 300, 300, 4, 2, 128, Mask::Causal), case_of(2, 100, 600, 2, 1, 64, Mask::None), case_of(1, 300, 300, 4, 2, 64, Mask::Window(150))];
    let mut outcomes = Vec::new();
    for &dtype in dtypes(device) {
        for c in &cases {
            let label = label("attention rising scores", device, dtype, c);
            let mut x = Inputs::random(&label, c.dims, dtype, device)?;
            let Dims { kv_len, kv_heads, head_dim, .. } = c.dims;
            let row = kv_heads * head_dim;
            let rising: Vec<f64> = x.k64.iter().enumerate().map(|(e, v)| v * (1.0 + 10.0 * (e / row % kv_len) as f64 / kv_len as f64)).collect();
            x.k = Tensor::from_f64(&rising, x.k.dims().to_vec(), dtype, device, MemoryCategory::Activations)?;
            x.k64 = x.k.to_f64_vec()?;
            outcomes.push(judged(label, &x, c, dtype, device)?);
        }
    }
    Ok(outcomes)
}

/// The queries a check of a long sequence compares: the ends, both sides of the first tile
/// edges, the middle, and a few random ones (all of them when there are at most 64).
pub fn sample_rows(q_len: usize, label: &str) -> Vec<usize> {
    if q_len <= 64 {
        return (0..q_len).collect();
    }
    let mut rng = case_rng(&format!("{label} rows"));
    let mut rows: Vec<usize> = [0, 1, 63, 64, 65, 127, 128, q_len / 2, q_len - 2, q_len - 1].into_iter().filter(|&i| i < q_len).collect();
    rows.extend((0..22).map(|_| rng.below(q_len)));
    rows.sort_unstable();
    rows.dedup();
    rows
}

/// [`case`] for long sequences: the reference (f64, single-threaded) only for [`sample_rows`].
pub fn sampled_case(device: &Device, dtype: DType, c: &Case) -> Result<Outcome> {
    let label = label("attention (sampled rows)", device, dtype, c);
    let x = Inputs::random(&label, c.dims, dtype, device)?;
    let mut out = poisoned(x.q.dims(), dtype, device)?;
    attention_into(&x.q, &x.k, &x.v, AttentionOptions { mask: c.mask, scale: None }, &mut out)?;
    let rows = sample_rows(c.dims.q_len, &label);
    let scale = 1.0 / (c.dims.head_dim as f64).sqrt();
    let want = reference::attention_rows(&x.q64, &x.k64, &x.v64, c.dims, c.mask, scale, &rows);
    let plain = reference::attention_rows_plain(&x.q64, &x.k64, &x.v64, c.dims, c.mask, scale, &rows, dtype);
    let all = out.to_f64_vec()?;
    let row = c.dims.heads * c.dims.head_dim;
    let got: Vec<f64> = (0..c.dims.batch).flat_map(|b| rows.iter().flat_map(move |&i| (b * c.dims.q_len + i) * row..(b * c.dims.q_len + i + 1) * row)).map(|at| all[at]).collect();
    Ok(judge(label, dtype, &got, &plain, &want))
}

/// [`sampled_case`] for every dtype of `device` × `cases`.
pub fn sampled_sweep(device: &Device, cases: &[Case]) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for &dtype in dtypes(device) {
        for c in cases {
            outcomes.push(sampled_case(device, dtype, c)?);
        }
    }
    Ok(outcomes)
}

/// Every dtype of `device` × `cases`.
pub fn sweep(device: &Device, cases: &[Case]) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for &dtype in dtypes(device) {
        for c in cases {
            outcomes.push(case(device, dtype, c)?);
        }
    }
    Ok(outcomes)
}

/// Scores past f32's range (inputs near 1e19, or a scale of 1e37), which overflow the online
/// softmax: every path must still give the reference's answer, within one rounding of each
/// output (the rows are computed again in f64), straight and through a cache with room to spare
/// (strided rows); prefill at head dims 64, 128 and 256, and decode (on CUDA: the CUDA-core and
/// the tensor-core decode, over one split and several, through the combine), causal and
/// windowed. Then [`cancelling_products`] and [`non_finite_inputs`]. bf16 holds 1e19 (f16 does
/// not); CUDA runs no f32. The 1e19 inputs are positive (see below).
pub fn overflowing_scores(device: &Device) -> Result<Vec<Outcome>> {
    let dtypes: &[DType] = if device.is_cpu() { &[DType::F32, DType::BF16] } else { &[DType::BF16] };
    // q_len 40 and 70 prefill; 1 (2 rows per K/V head) the CUDA-core decode, 5 (10 rows) the
    // tensor-core one; 1100 keys make several decode splits.
    //
    // Inputs near 1e19 are drawn as magnitudes only: with products of both signs past f32's
    // range, a score's f32 sum can reach −∞ and stay there although the whole is the row's
    // maximum (the gap crate::lib documents; it failed one run in about 60 on the CPU). Positive
    // products make every overflow a +∞ score, which the paths catch. With the scale 1e37 the
    // products stay in range and the scores pass it only once scaled, so both signs are drawn:
    // at inputs ×3 most scores overflow, some rows every visible one below (−∞), some above; at
    // ×1 most rows stay in range with scores near 1e38.
    /// (q_len, kv_len, head_dim, input scale, attention scale, both signs).
    type OverflowCase = (usize, usize, usize, f64, Option<f32>, bool);
    const CASES: &[OverflowCase] = &[
        (70, 70, 64, 1e19, None, false),
        (70, 70, 128, 1e19, None, false),
        (40, 70, 256, 1e19, None, false),
        (1, 70, 64, 1e19, None, false),
        (5, 70, 128, 1e19, None, false),
        (1, 1100, 128, 1e19, None, false),
        (70, 70, 64, 3.0, Some(1e37), true),
        (70, 70, 128, 1.0, Some(1e37), true),
        (1, 70, 256, 3.0, Some(1e37), true),
        (5, 1100, 64, 3.0, Some(1e37), true),
    ];
    let mut outcomes = Vec::new();
    for &dtype in dtypes {
        let bound = once_rounded_bound(dtype);
        for mask in [Mask::Causal, Mask::Window(16)] {
            for &(q_len, kv_len, head_dim, input_scale, scale, both_signs) in CASES {
                let c = case_of(2, q_len, kv_len, 4, 2, head_dim, mask);
                let label = format!("{} inputs x{input_scale:e} scale {scale:?}", label("overflowing scores", device, dtype, &c));
                let x = Inputs::random(&label, c.dims, dtype, device)?;
                let big = |t: &Tensor| {
                    let values: Vec<f64> = t.to_f64_vec()?.iter().map(|&v| if both_signs { v } else { v.abs() } * input_scale).collect();
                    Tensor::from_f64(&values, t.dims().to_vec(), dtype, device, MemoryCategory::Activations)
                };
                let (q, k) = (big(&x.q)?, big(&x.k)?);
                let options = AttentionOptions { mask, scale };
                let scale64 = f64::from(scale.unwrap_or(1.0 / (head_dim as f32).sqrt()));
                let want = reference::attention(&q.to_f64_vec()?, &k.to_f64_vec()?, &x.v64, c.dims, mask, scale64);
                let direct = attention(&q, &k, &x.v, options)?.to_f64_vec()?;
                let mut cache = KvCache::new(2, kv_len + 30, 2, head_dim, dtype, device)?;
                cache.append(&k, &x.v)?;
                let cached = cache.attend(&q, options)?.to_f64_vec()?;
                for (how, out) in [("direct", direct), ("cached", cached)] {
                    // rel_l2 is +∞ for any non-finite output.
                    outcomes.push(Outcome { label: format!("{label} {how}"), error: rel_l2(&out, &want), plain_error: None, bound });
                }
            }
        }
    }
    for &dtype in dtypes {
        outcomes.extend(cancelling_products(device, dtype)?);
    }
    outcomes.extend(non_finite_inputs(device, dtypes[0])?);
    Ok(outcomes)
}

/// Scores whose products pass f32's range once scaled although the scores do not, at the scale
/// 1e37: every query all ones; the even keys −20 over the first half of the head dim and +20
/// over the second, the last element raised by 0.5–1 (their scores), the odd keys zero but the
/// last element, 0–0.4 (theirs). An even key is the maximum of every row that sees one, and a
/// path that multiplied the scaled query by the key (the CPU's f32 paths once folded the scale
/// into the queries) would see its sum pass −∞ within two products and weigh it 0. Prefill (a
/// last block on the CPU's row path: 68 queries), decode, and decode over several key ranges.
pub fn cancelling_products(device: &Device, dtype: DType) -> Result<Vec<Outcome>> {
    let scale = 1e37f32;
    let mut outcomes = Vec::new();
    for (q_len, kv_len, head_dim) in [(68, 68, 64), (68, 68, 128), (1, 70, 128), (5, 1100, 64)] {
        let c = case_of(2, q_len, kv_len, 4, 2, head_dim, Mask::Causal);
        let label = label("cancelling products, scale 1e37", device, dtype, &c);
        let mut rng = case_rng(&label);
        let x = Inputs::random(&label, c.dims, dtype, device)?;
        let q64 = vec![1.0; x.q64.len()];
        let mut k64 = vec![0.0; x.k64.len()];
        for (row, k) in k64.chunks_exact_mut(head_dim).enumerate() {
            // Row `(b · kv_len + j) · kv_heads + hk`: position j.
            if (row / c.dims.kv_heads % kv_len).is_multiple_of(2) {
                k[..head_dim / 2].fill(-20.0);
                k[head_dim / 2..].fill(20.0);
                k[head_dim - 1] += rng.uniform_in(0.5, 1.0);
            } else {
                k[head_dim - 1] = rng.uniform_in(0.0, 0.4);
            }
        }
        let t = |vals: &[f64], like: &Tensor| Tensor::from_f64(vals, like.dims().to_vec(), dtype, device, MemoryCategory::Activations);
        let (q, k) = (t(&q64, &x.q)?, t(&k64, &x.k)?);
        let want = reference::attention(&q.to_f64_vec()?, &k.to_f64_vec()?, &x.v64, c.dims, Mask::Causal, f64::from(scale));
        let out = attention(&q, &k, &x.v, AttentionOptions::causal().with_scale(scale))?.to_f64_vec()?;
        outcomes.push(Outcome { label, error: rel_l2(&out, &want), plain_error: None, bound: once_rounded_bound(dtype) });
    }
    Ok(outcomes)
}

/// A NaN key, a +∞ key and a NaN value (sequence 0, position 30, K/V head 0, dim 0), in prefill
/// and decode: each row must be non-finite exactly where the reference's is (a NaN key reaches
/// every row that sees it; a +∞ key the rows whose query makes its score +∞; a NaN value every
/// row that sees it, and no row that only shares its tile), and the finite rows must meet the
/// sweep's rule. Two outcomes each: the count of rows whose finiteness differs (bound 0), and the
/// finite rows' error.
pub fn non_finite_inputs(device: &Device, dtype: DType) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for (what, value, in_keys) in [("a NaN key", f64::NAN, true), ("a +∞ key", f64::INFINITY, true), ("a NaN value", f64::NAN, false)] {
        for q_len in [70, 5] {
            let c = case_of(2, q_len, 70, 4, 2, 64, Mask::Causal);
            let label = label(what, device, dtype, &c);
            let x = Inputs::random(&label, c.dims, dtype, device)?;
            let (mut k64, mut v64) = (x.k64.clone(), x.v64.clone());
            let with_it = if in_keys { &mut k64 } else { &mut v64 };
            with_it[30 * 2 * 64] = value;
            let t = |vals: &[f64]| Tensor::from_f64(vals, x.k.dims().to_vec(), dtype, device, MemoryCategory::Activations);
            let out = attention(&x.q, &t(&k64)?, &t(&v64)?, AttentionOptions::causal())?.to_f64_vec()?;
            let (want, plain) = expected(&x.q64, &k64, &v64, c.dims, Mask::Causal, dtype);
            let finite = |row: &[f64]| row.iter().all(|v| v.is_finite());
            let (mut wrong, mut kept) = (0, Vec::new());
            for (row, (o, w)) in out.chunks(64).zip(want.chunks(64)).enumerate() {
                if finite(o) != finite(w) {
                    wrong += 1;
                } else if finite(w) {
                    kept.push(row);
                }
            }
            let rows = |vals: &[f64]| -> Vec<f64> { kept.iter().flat_map(|&r| vals[r * 64..(r + 1) * 64].iter().copied()).collect() };
            outcomes.push(Outcome { label: format!("{label}: rows whose finiteness differs from the reference's"), error: wrong as f64, plain_error: None, bound: 0.0 });
            outcomes.push(judge(format!("{label}: the {} finite rows", kept.len()), dtype, &rows(&out), &rows(&plain), &rows(&want)));
        }
    }
    Ok(outcomes)
}

/// Rows `[q_len − rows, q_len)` of every (batch, query, head) of `full` `[batch, q_len, heads, D]`.
pub fn last_rows(full: &[f64], dims: Dims, rows: usize) -> Vec<f64> {
    let row = dims.heads * dims.head_dim;
    (0..dims.batch).flat_map(|b| full[(b * dims.q_len + dims.q_len - rows) * row..(b + 1) * dims.q_len * row].iter().copied()).collect()
}

/// Prefill of `prefix` positions through a [`KvCache`], then one decode step per remaining
/// position (append, attend), each step judged against the last row of the reference over the
/// whole sequence: a cached decode equals a full forward. `c.dims.q_len` is ignored.
pub fn kv_cache_case(device: &Device, dtype: DType, c: &Case, prefix: usize) -> Result<Vec<Outcome>> {
    let d = c.dims;
    let full = Dims { q_len: d.kv_len, ..d };
    let label = label(&format!("kv_cache prefix={prefix}"), device, dtype, c);
    let x = Inputs::random(&label, full, dtype, device)?;
    let (want, plain) = x.expected(full, c.mask, dtype);
    let options = AttentionOptions { mask: c.mask, scale: None };
    let mut cache = KvCache::new(d.batch, d.kv_len, d.kv_heads, d.head_dim, dtype, device)?;
    let mut outcomes = Vec::new();
    let mut pos = 0;
    for step in std::iter::once(prefix).chain(std::iter::repeat_n(1, d.kv_len - prefix)) {
        let (q, k, v) = (slice_positions(&x.q, pos, step)?, slice_positions(&x.k, pos, step)?, slice_positions(&x.v, pos, step)?);
        let out = cache.append_and_attend(&q, &k, &v, options)?;
        pos += step;
        let row = d.heads * d.head_dim;
        let rows = |vals: &[f64]| -> Vec<f64> { (0..d.batch).flat_map(|b| vals[(b * d.kv_len + pos - step) * row..(b * d.kv_len + pos) * row].to_vec()).collect() };
        outcomes.push(judge(format!("{label} step to {pos}"), dtype, &out.to_f64_vec()?, &rows(&plain), &rows(&want)));
    }
    Ok(outcomes)
}

/// Positions `start .. start + n` of `t` `[batch, len, heads, D]` as a new tensor.
pub fn slice_positions(t: &Tensor, start: usize, n: usize) -> Result<Tensor> {
    let d = t.dims();
    let row = d[2] * d[3];
    let mut out = Tensor::zeros(vec![d[0], n, d[2], d[3]], t.dtype(), t.device(), MemoryCategory::Activations)?;
    for b in 0..d[0] {
        out.copy_range_from(b * n * row, t, (b * d[1] + start) * row, n * row)?;
    }
    Ok(out)
}
