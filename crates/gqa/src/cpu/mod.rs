//! The fast CPU path: f32 online softmax over blocks of keys, multi-threaded on rayon over
//! (batch, K/V head, block of queries), the most loaded blocks (last under a causal mask) first.
//! A task's [`BR`] rows are its block's queries for every query head of the K/V head (GQA
//! packing), so that each key and value tile serves the whole group.
//!
//! A block of more than [`ROWS_PATH_MAX`] queries goes to `tiles.rs`: register-blocked
//! micro-kernels for `S = Q Kᵀ` and `O += P V` on packed f32 tiles, laid out so that every inner
//! loop runs along contiguous memory and vectorises (AVX-512 when the CPU has it, chosen at run
//! time by [`yoco_core::simd::dispatch`]; AVX2 + FMA otherwise, one lane without them). A last
//! block of a few queries (the tail of a prefill) goes to `rows.rs`, which reads the keys where
//! they lie: a query-wide tile would be mostly padding there. A decode step (at most
//! [`ROWS_PATH_MAX`] queries per sequence) goes to `decode.rs`, which splits the keys, not the
//! heads, among the tasks. Rows whose scores pass f32's range are then computed again in f64 by
//! `exact.rs`.
//!
//! bf16 on a CPU with AMX (Sapphire Rapids and later Xeons) takes `amx_tiles` for the tiled
//! blocks instead: the same blocks of rows, both products on the tile unit, K and V packed once
//! per call ([`bf16_prefill_on_tiles`] says where).

#[cfg(target_arch = "x86_64")]
mod amx_tiles;
mod decode;
mod exact;
mod rows;
mod tiles;

use rayon::prelude::*;
use yoco_core::aligned::AlignedVec;
use yoco_core::half::{bf16, f16};
use yoco_core::simd::{dispatch, Simd, SimdKernel};
use yoco_core::{DType, Element, Result, Tensor};

use crate::{Mask, Problem};

/// Rows per task: (query, head) pairs, the rows of a tile. Each key and value tile is loaded,
/// widened and packed once per task, so more rows spread that cost thinner: measured at 2048
/// queries over 32K–64K keys (4 heads over 2, D 64), 64 rows ran at 280 GFLOP/s, 128 at 330,
/// 256 at 356; 128 keeps a task's scratch (128 KiB at D 64) within the level-2 cache at every
/// head dim and pads a short prefill less.
pub const BR: usize = 128;
/// Floats from one row of Qᵀ or Sᵀ to the next in the tiled path: [`BR`] and one cache line. At
/// BR's 512 bytes the rows a micro-kernel walks down (one block of queries over the head dim, or
/// over the tile's keys) fell in 8 of the level-1 cache's 64 sets, and outgrew them.
pub(crate) const ROW_STRIDE: usize = BR + 16;
/// Keys per tile of the row path, and of the tiled path under a window mask, whose tiles at the
/// window's two edges are partly masked (at 128 keys, 8192 tokens under a window of 1024 ran
/// 3–4% slower than at 64).
pub const BC: usize = 64;
/// Keys per tile of the tiled path without a window: half the tiles' softmax bookkeeping and
/// rescaling of the output per key (2-core Zen 4, in turn, five rounds: N 4096 causal, 8/8 heads
/// of 64, 104.2–105.2 → 100.3–103.1 ms; 4/4 heads of 128 and 2048 × 24/8 heads of 128 1–5%).
pub const BC_WIDE: usize = 128;
/// Blocks of at most this many queries take the row path.
pub const ROWS_PATH_MAX: usize = 4;

/// Whether a bf16 prefill (blocks of more than [`ROWS_PATH_MAX`] queries) at this head dim
/// multiplies on the AMX tile unit (`amx_tiles.rs`: a Xeon with AMX-BF16, the head dim a
/// multiple of 32) rather than widening to the f32 tiles: which ceiling a bench quotes it
/// against.
pub fn bf16_prefill_on_tiles(head_dim: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    return amx_tiles::usable(DType::BF16, head_dim);
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Shapes are checked by the caller (lib.rs).
pub(crate) fn attention(q: &Tensor, k: &Tensor, v: &Tensor, p: &Problem, out: &mut Tensor) -> Result<()> {
    match q.dtype() {
        DType::F32 => typed::<f32>(q.as_slice()?, k.as_slice()?, v.as_slice()?, p, out.as_mut_slice()?),
        DType::BF16 => typed::<bf16>(q.as_slice()?, k.as_slice()?, v.as_slice()?, p, out.as_mut_slice()?),
        DType::F16 => typed::<f16>(q.as_slice()?, k.as_slice()?, v.as_slice()?, p, out.as_mut_slice()?),
    }
    Ok(())
}

/// The inputs of one call and the row addressing of its layouts.
struct Inputs<'a, T> {
    q: &'a [T],
    k: &'a [T],
    v: &'a [T],
    p: Problem,
}

/// Inlined: the kernels call them per key and per query row, where `v_row` had been a call out
/// of the AVX-512 kernels (with `score_block`'s `array::from_fn`: one run to the next level to
/// +0.04 of the FMA round, within the probe's noise).
impl<T> Inputs<'_, T> {
    #[inline(always)]
    fn q_offset(&self, b: usize, i: usize, h: usize) -> usize {
        let d = &self.p.dims;
        ((b * d.q_len + i) * d.heads + h) * d.head_dim
    }

    #[inline(always)]
    fn q_row(&self, b: usize, i: usize, h: usize) -> &[T] {
        &self.q[self.q_offset(b, i, h)..][..self.p.dims.head_dim]
    }

    #[inline(always)]
    fn kv_offset(&self, b: usize, j: usize, hk: usize) -> usize {
        let d = &self.p.dims;
        ((b * self.p.kv_capacity + j) * d.kv_heads + hk) * d.head_dim
    }

    #[inline(always)]
    fn k_row(&self, b: usize, j: usize, hk: usize) -> &[T] {
        &self.k[self.kv_offset(b, j, hk)..][..self.p.dims.head_dim]
    }

    #[inline(always)]
    fn v_row(&self, b: usize, j: usize, hk: usize) -> &[T] {
        &self.v[self.kv_offset(b, j, hk)..][..self.p.dims.head_dim]
    }
}

/// The output, shared by the tasks. Each task writes only the rows `(b, i, h)` of its own
/// (batch, head, query block), or of its own sequence (decode's merge), and the rows of
/// different tasks are disjoint, so handing every task the same base pointer is sound;
/// [`OutRows::write`] is the one place that relies on it.
#[derive(Clone, Copy)]
struct OutRows<T> {
    ptr: *mut T,
    len: usize,
    q_len: usize,
    heads: usize,
    head_dim: usize,
}

// SAFETY: the pointer is only dereferenced through `row`, whose callers (one task per
// (b, h, query block)) write disjoint rows; T is Send + Sync (Element).
unsafe impl<T: Element> Send for OutRows<T> {}
// SAFETY: as above.
unsafe impl<T: Element> Sync for OutRows<T> {}

impl<T: Element> OutRows<T> {
    /// Writes `values / denom` to row `(b, i, h)`.
    fn write(&self, b: usize, i: usize, h: usize, values: &[f32], denom: f32) {
        let start = ((b * self.q_len + i) * self.heads + h) * self.head_dim;
        assert!(start + self.head_dim <= self.len, "output row out of bounds");
        // SAFETY: in bounds (asserted above); no other task writes row (b, i, h) (see the type's
        // comment), and nothing reads the output while the tasks run.
        let row = unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), self.head_dim) };
        let inv = 1.0 / denom;
        for (o, v) in row.iter_mut().zip(values) {
            *o = T::from_f32(v * inv);
        }
    }
}

/// What a row's exponentials `e^(score · scale − base)` are taken against, given its running
/// maximum of scaled scores: that maximum; 0 while it is −∞ (no visible key yet, or every visible
/// score below f32's range once scaled), so that the exponents stay −∞ and weigh 0 (the row's sum
/// stays 0 until a finite score comes, and a row that ends so comes out NaN for `exact.rs`); NaN
/// where it is +∞ (a score past f32's range once scaled), so that the row comes out NaN for
/// `exact.rs` whatever its other scores.
///
/// The exponent is `score · scale` rounded, then `− base`, not a fused multiply-add: the
/// maximum's exponent is then exactly 0 and every other one at most 0 (the rounding is
/// monotone), where a fused one would leave the product's rounding error, up to 1e31 at a scale
/// near 1e37, which the exponential turns into ∞ or its clamp.
#[inline(always)]
fn exponent_base(max: f32) -> f32 {
    if max == f32::NEG_INFINITY {
        0.0
    } else if max == f32::INFINITY {
        f32::NAN
    } else {
        max
    }
}

/// Per-thread scratch: the packed tiles and the running softmax state of one task. The tiles are
/// aligned to cache lines (a 64-byte load from a row split over two lines costs two).
pub(crate) struct Scratch {
    /// Qᵀ of the block: [head_dim][BR], rows [`ROW_STRIDE`] apart.
    qt: AlignedVec<f32>,
    /// K tile, widened from bf16 or f16: [BC_WIDE][head_dim] (a window's tiles use the first
    /// [`BC`] rows); before the tiles, 16 of the block's query rows at a time, widened to be
    /// transposed (`tiles::pack_queries`).
    k: AlignedVec<f32>,
    /// V tile in column panels (`tiles::pack_value_panels`): BC_WIDE × head_dim floats.
    v: AlignedVec<f32>,
    /// Scores, then probabilities, transposed: [BC_WIDE][BR] (or [BC][BR]), rows [`ROW_STRIDE`]
    /// apart.
    st: AlignedVec<f32>,
    /// Unnormalised output: [BR][head_dim].
    o: AlignedVec<f32>,
    /// Each query's maximum score over the current tile: [BR].
    tile_max: Vec<f32>,
    /// Running max, running sum, per-tile correction: [BR].
    m: Vec<f32>,
    l: Vec<f32>,
    corr: Vec<f32>,
    /// Visible key range [lo, hi) per query of the block.
    lo: Vec<usize>,
    hi: Vec<usize>,
    /// The bf16 tile path's (empty where it does not run).
    #[cfg(target_arch = "x86_64")]
    bf16_tiles: amx_tiles::Buffers,
}

impl Scratch {
    fn new(head_dim: usize) -> Self {
        Scratch {
            qt: AlignedVec::zeroed(head_dim * ROW_STRIDE),
            k: AlignedVec::zeroed(BC_WIDE * head_dim),
            v: AlignedVec::zeroed(BC_WIDE * head_dim),
            st: AlignedVec::zeroed(BC_WIDE * ROW_STRIDE),
            o: AlignedVec::zeroed(BR * head_dim),
            tile_max: vec![0.0; BR],
            m: vec![0.0; BR],
            l: vec![0.0; BR],
            corr: vec![0.0; BR],
            lo: vec![0; BR],
            hi: vec![0; BR],
            #[cfg(target_arch = "x86_64")]
            bf16_tiles: amx_tiles::Buffers::default(),
        }
    }
}

fn typed<T: Element>(q: &[T], k: &[T], v: &[T], p: &Problem, out: &mut [T]) {
    let x = Inputs { q, k, v, p: *p };
    attend(&x, out);
    exact::recompute_overflowed_rows(&x, out);
}

/// Every row of `out` by the f32 paths.
fn attend<T: Element>(x: &Inputs<T>, out: &mut [T]) {
    let d = x.p.dims;
    let rows = OutRows { ptr: out.as_mut_ptr(), len: out.len(), q_len: d.q_len, heads: d.heads, head_dim: d.head_dim };
    if d.q_len <= ROWS_PATH_MAX {
        decode::attend(x, rows);
        return;
    }
    // The query heads of a K/V head share its tiles: a task takes all of them over BR / group
    // queries, so each key and value tile is loaded and widened once for the group. Not where
    // that leaves a task so few queries that it would take the row path (groups of 26 and more:
    // 9× slower measured at 26): there a task takes one head's BR queries.
    let heads = if BR / d.group() > ROWS_PATH_MAX { d.group() } else { 1 };
    let queries = BR / heads;
    // bf16 on a CPU with AMX: keys and values packed once for the tile unit, for every task.
    #[cfg(target_arch = "x86_64")]
    let packed = amx_tiles::usable(T::DTYPE, d.head_dim).then(|| amx_tiles::Packed::new(x));
    let blocks = d.q_len.div_ceil(queries);
    let head_sets = d.heads / heads;
    (0..d.batch * head_sets * blocks).into_par_iter().for_each_init(
        || Scratch::new(d.head_dim),
        |s, t| {
            // Last blocks first: under a causal mask they have the most keys.
            let block = blocks - 1 - t % blocks;
            let (b, set) = ((t / blocks) / head_sets, (t / blocks) % head_sets);
            let i0 = block * queries;
            let block = Block { b, h0: set * heads, heads, i0, queries: (d.q_len - i0).min(queries) };
            dispatch(
                Task {
                    x,
                    block,
                    out: rows,
                    #[cfg(target_arch = "x86_64")]
                    packed: packed.as_ref(),
                },
                s,
            );
        },
    );
}

/// The rows of one task: queries `i0 .. i0 + queries` of the query heads `h0 .. h0 + heads`
/// (all reading one K/V head), row `r` being query `i0 + r / heads` of head `h0 + r % heads`.
#[derive(Clone, Copy)]
struct Block {
    b: usize,
    h0: usize,
    heads: usize,
    i0: usize,
    queries: usize,
}

impl Block {
    fn rows(&self) -> usize {
        self.queries * self.heads
    }

    /// (query, head) of row `r`.
    fn row(&self, r: usize) -> (usize, usize) {
        (self.i0 + r / self.heads, self.h0 + r % self.heads)
    }
}

/// One task, on the CPU's widest vectors.
struct Task<'a, T> {
    x: &'a Inputs<'a, T>,
    block: Block,
    out: OutRows<T>,
    /// This call's keys and values packed for the tile unit, where its blocks go there.
    #[cfg(target_arch = "x86_64")]
    packed: Option<&'a amx_tiles::Packed>,
}

impl<T: Element> SimdKernel for Task<'_, T> {
    type Output = ();
    type Scratch = Scratch;

    /// `R` × `NV`, the register block of the micro-kernels (rows broadcast × vectors of `V`):
    /// 8 × 2 with AVX-512 (16 of its 32 registers), 6 × 2 with AVX2's 16.
    #[inline(always)]
    fn run<V: Simd>(self, s: &mut Scratch) {
        let Task { x, block, out, .. } = self;
        if block.queries <= ROWS_PATH_MAX {
            for h in block.h0..block.h0 + block.heads {
                rows::attend(x, s, block.b, h, block.i0, block.queries, out);
            }
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(packed) = self.packed {
            // SAFETY: `packed` exists only where `amx_tiles::usable` returned true for this call.
            unsafe { amx_tiles::attend(x, s, packed, block, out) };
            return;
        }
        let window = matches!(x.p.mask, Mask::Window(_));
        match (V::LANES >= 16, window) {
            (true, false) => tiles::attend::<T, V, 8, 2, BC_WIDE>(x, s, block, out),
            (true, true) => tiles::attend::<T, V, 8, 2, BC>(x, s, block, out),
            (false, false) => tiles::attend::<T, V, 6, 2, BC_WIDE>(x, s, block, out),
            (false, true) => tiles::attend::<T, V, 6, 2, BC>(x, s, block, out),
        }
    }
}
