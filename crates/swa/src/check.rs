//! Validation against the reference, shared by `tests/` and `yoco check`: the ring buffer
//! driven through prefills, chunks and decode steps, each output judged against windowed
//! attention over the whole sequence, and the ring's contents against the last `W` keys.
//! (Windowed attention itself is swept in yoco-gqa's check, window edges included.)

use yoco_core::testing::{judge, rel_l2, Outcome};
use yoco_core::{DType, Device, Result};
use yoco_gqa::check::{dtypes, slice_positions, Inputs};
use yoco_gqa::{Dims, Mask};

use crate::SwaCache;

/// One ring case: sizes of the whole sequence, the window, how the sequence is fed (chunk
/// lengths summing to `dims.kv_len`; `dims.q_len` is ignored), and whether the ring is made
/// [`SwaCache::with_capacity`] this many positions (else [`SwaCache::new`]).
#[derive(Clone, Debug)]
pub struct RingCase {
    pub dims: Dims,
    pub window: usize,
    pub chunks: Vec<usize>,
    pub capacity: Option<usize>,
}

/// A prefill of `first` positions, then decode steps to `total`.
pub fn prefill_then_decode(first: usize, total: usize) -> Vec<usize> {
    std::iter::once(first).chain(std::iter::repeat_n(1, total - first)).collect()
}

/// Windows below, at and above the prefill and total lengths; decode from the first token;
/// chunks after a prefix longer and shorter than the window; rings bounded by a capacity of
/// exactly the sequence, with fewer, as many and more slots than the window.
pub fn ring_cases() -> Vec<RingCase> {
    let dims = |batch, total, heads, kv_heads, head_dim| Dims { batch, q_len: 0, kv_len: total, heads, kv_heads, head_dim };
    let mut cases = Vec::new();
    for window in [1, 7, 19, 20, 21, 45, 46, 47] {
        cases.push(RingCase { dims: dims(2, 46, 4, 2, 64), window, chunks: prefill_then_decode(20, 46), capacity: None });
    }
    for window in [19, 46, 47, 200] {
        cases.push(RingCase { dims: dims(2, 46, 4, 2, 64), window, chunks: prefill_then_decode(20, 46), capacity: Some(46) });
    }
    cases.push(RingCase { dims: dims(1, 30, 3, 1, 128), window: 8, chunks: prefill_then_decode(1, 30), capacity: None });
    for (window, capacity) in [(16, None), (128, Some(90))] {
        cases.push(RingCase { dims: dims(1, 90, 2, 2, 64), window, chunks: vec![13, 13, 1, 13, 40, 1, 9], capacity });
    }
    cases.push(RingCase { dims: dims(2, 70, 8, 1, 256), window: 64, chunks: vec![65, 1, 1, 3], capacity: None });
    cases
}

/// Feeds the sequence through a [`SwaCache`] chunk by chunk; judges every chunk's output and,
/// at the end, that the ring holds exactly the last `W` keys and values.
pub fn ring_case(device: &Device, dtype: DType, c: &RingCase) -> Result<Vec<Outcome>> {
    let d = c.dims;
    let full = Dims { q_len: d.kv_len, ..d };
    let label = format!(
        "swa ring {device} {dtype} B={} N={} H={}/{} D={} W={} chunks={:?} capacity={:?}",
        d.batch, d.kv_len, d.heads, d.kv_heads, d.head_dim, c.window, c.chunks, c.capacity
    );
    let x = Inputs::random(&label, full, dtype, device)?;
    let (want, plain) = x.expected(full, Mask::Window(c.window), dtype);
    let mut ring = match c.capacity {
        Some(capacity) => SwaCache::with_capacity(d.batch, c.window, capacity, d.kv_heads, d.head_dim, dtype, device)?,
        None => SwaCache::new(d.batch, c.window, d.kv_heads, d.head_dim, dtype, device)?,
    };
    let mut outcomes = Vec::new();
    let row = d.heads * d.head_dim;
    let mut pos = 0;
    for &n in &c.chunks {
        let (q, k, v) = (slice_positions(&x.q, pos, n)?, slice_positions(&x.k, pos, n)?, slice_positions(&x.v, pos, n)?);
        let out = ring.forward(&q, &k, &v, None)?;
        let rows = |vals: &[f64]| -> Vec<f64> { (0..d.batch).flat_map(|b| vals[(b * d.kv_len + pos) * row..(b * d.kv_len + pos + n) * row].to_vec()).collect() };
        outcomes.push(judge(format!("{label} positions {pos}..{}", pos + n), dtype, &out.to_f64_vec()?, &rows(&plain), &rows(&want)));
        pos += n;
    }
    // The ring holds exactly the last min(N, W) keys and values: bit for bit.
    let held = c.window.min(d.kv_len);
    let (rk, rv) = ring.recent(held)?;
    let (lk, lv) = (slice_positions(&x.k, d.kv_len - held, held)?, slice_positions(&x.v, d.kv_len - held, held)?);
    let error = rel_l2(&rk.to_f64_vec()?, &lk.to_f64_vec()?).max(rel_l2(&rv.to_f64_vec()?, &lv.to_f64_vec()?));
    outcomes.push(Outcome { label: format!("{label} ring holds the last {held} positions"), error, plain_error: None, bound: 0.0 });
    Ok(outcomes)
}

/// Every dtype of `device` × `cases`.
pub fn sweep(device: &Device, cases: &[RingCase]) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for &dtype in dtypes(device) {
        for c in cases {
            outcomes.extend(ring_case(device, dtype, c)?);
        }
    }
    Ok(outcomes)
}
