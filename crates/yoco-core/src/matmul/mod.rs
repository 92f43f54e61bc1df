//! CPU matrix products for the fast CPU paths: our own packed GEMM (`packed.rs`) from
//! `PACKED_ROWS` (32; 192 without AVX-512) rows, the `gemm` crate below, chosen by shape from
//! measurements (`benches/matmul.rs`, the 2-core Zen 5, FMA ceiling 539 GFLOP/s, GFLOP/s; the
//! packed GEMM as it was before it packed `a` too, which made it 13–40% faster on the 2-core
//! Xeon):
//!
//! | m × n × k | gemm | matrixmultiply | packed |
//! |---|---|---|---|
//! | 2048 × 704 × 256 (tiny-yoco's FFN, prefill) | 252 | 384 | 465 (86%) |
//! | 512 × 2048 × 768 (YOCO-160M's FFN, prefill) | 249 | 320 | 381 (71%) |
//! | 512 × 768 × 2048 | 244 | 318 | 391 (73%) |
//! | 128 × 2048 × 768 | 223 | 232 | 315 |
//! | 32 × 2048 × 768 | 165 | 113 | 170 |
//! | 8 × 2048 × 768 | 76 | 33 | — |
//! | 1 × 8192 × 3072 (decode row) | 19 (memory-bound) | 2.8 | — |
//!
//! So many-row products (prefill) take the packed GEMM, which replaced matrixmultiply there, and
//! few-row ones (decode, small batches) `gemm`, which also parallelises a single row over the
//! output columns — except that on a CPU with AVX-512 the products `x · wᵀ` of fewer than 192
//! rows (`DOT_ROWS`) take our dot form (`dots.rs`: 4 rows of x against 4 of w, 1 against 8 below
//! 4 rows, no packing): 8
//! rows 76 → 250–300 GFLOP/s, 32 rows 160 → 313, a decode row 2.9 → 2.4 ms (91–94% of the read
//! ceiling; the gemm crate's kernel is AVX2 on stable Rust). [`gemm_serial`] (products inside
//! already-parallel tasks) keeps both crates.
//!
//! 16-bit storage ([`matmul_nt_widened`]) multiplies in f32 too (neither crate has a bf16
//! kernel), except bf16 on CPUs with AVX512-BF16, which multiplies bf16 pairs natively
//! (`bf16_pairs.rs`, `bf16_pairs_in_place.rs`), and bf16 on CPUs with AMX, which multiplies
//! tiles on the matrix unit
//! (`amx.rs`, `bf16_amx.rs`, `bf16_amx_in_place.rs`) from 8 rows: on the 2-core Xeon with AMX,
//! 512 × 2048 × 768 in 1.9–2.0 ms against the pairs' 11.6, 32 rows 0.15 against 0.82–1.06 (the
//! matmul bench, operands aligned to cache lines as tensors are; 2.2–3.2 and 0.22 before the
//! packed operands and tensors were aligned). The VM's timings swing by half there, and its tile
//! ceiling between ~1.9 and ~4.4 TFLOP/s (one thread alone measured 2.2: its two CPUs seem to
//! share one core's tile unit at times and not at others).

#[cfg(target_arch = "x86_64")]
pub mod amx;
#[cfg(target_arch = "x86_64")]
mod bf16_amx;
#[cfg(target_arch = "x86_64")]
mod bf16_amx_in_place;
#[cfg(target_arch = "x86_64")]
mod bf16_pairs;
#[cfg(target_arch = "x86_64")]
mod bf16_pairs_in_place;
#[cfg(target_arch = "x86_64")]
mod dots;
mod packed;
mod scratch;
mod shared_out;
mod thread_block;
#[cfg(target_arch = "x86_64")]
mod words;

#[cfg(target_arch = "x86_64")]
pub use words::{transpose_16_strip, transpose_words};

use gemm::Parallelism;
use rayon::prelude::*;

use crate::dtype::{as_mut_slice_of, as_slice_of};
use crate::{DType, Element, Error, Result, Tensor};

/// `len` is exactly `rows × cols` (a product too large to count is a mismatch, not a wrap).
fn check_len(op: &'static str, what: &'static str, len: usize, rows: usize, cols: usize) -> Result<()> {
    match rows.checked_mul(cols) {
        Some(need) if need == len => Ok(()),
        _ => Err(Error::ShapeMismatch { op, what, expected: format!("{rows} × {cols} elements"), got: len.to_string() }),
    }
}

/// Rows from which a 16-bit product widens its weights as it packs them for the packed GEMM
/// rather than a block at a time for the serial one (at 32 and 100 rows the blocks were 20%
/// faster, at 512 the packing twice).
const MANY_ROWS: usize = 128;

/// Rows from which a bf16 product on a CPU with AMX multiplies on the tile unit, the weights read
/// in place (`bf16_amx_in_place.rs`; measured, 2048 × 768 weights, the 2-core Xeon: 0.25 ms at 8
/// to 32 rows, reading the weights, against the dot form's bf16 pairs 0.29 at 8 rows, 0.81 at 24,
/// 1.06 at 32; at 4, 0.26 against 0.15–0.20).
const AMX_IN_PLACE_ROWS: usize = 8;

/// Rows from which a bf16 product whose depth is not a multiple of 32 multiplies on the tile unit
/// with the weights packed (`bf16_amx.rs`; measured as above, depth 768: the pairs 0.36 ms at 16
/// rows against the packed tiles' 0.39, 0.58 against 0.39 at 24, 0.79 against 0.46 at 32).
const AMX_ROWS: usize = 24;

/// Rows from which an AMX product packs the weights (`bf16_amx.rs`) rather than reading them in
/// place and packing `a` (measured as above, 2048 × 768 weights, interleaved: in place 0.25
/// against 0.62 ms at 32 rows, 0.47 against 0.78 at 64, 0.95 against 1.23 at 128, 1.4–1.7 against
/// 2.2 at 256, level at 512; 2048 × 704 × 256 packed 1.49 against 1.84). Since both forms keep
/// their buffers (`scratch.rs`), in place is the faster at 512 rows (interleaved, three rounds:
/// 512 × 2048 × 768 1.20–1.64 ms against 1.56–2.09, 512 × 704 × 256 0.19–0.35 against 0.26–0.41;
/// 768 weight rows at k 1024 and 1536, 3–23%) and at 768 either way (faster with k 768 and 256),
/// and packed the faster from 1,536 rows (8–25%).
const AMX_PACKED_ROWS: usize = 768;

/// Depths from which the packed form takes over from [`AMX_PACKED_ROWS_DEEP`] rows instead: with
/// 768 weight rows, packed was 5–8% faster at 512 rows and 15–20% at 640 for k 1984, 2048 and
/// 2112 alike (and 4–7% at k 4096), in place 3–23% faster at k 1024 and 1536.
const AMX_DEEP: usize = 1792;

/// [`AMX_PACKED_ROWS`] for depths from [`AMX_DEEP`].
const AMX_PACKED_ROWS_DEEP: usize = 512;

/// Whether a bf16 product on AMX tiles reads its weights in place (`bf16_amx_in_place.rs`), which
/// needs k a whole number of tile steps, or packs them (`bf16_amx.rs`).
#[cfg(target_arch = "x86_64")]
fn weights_in_place(m: usize, k: usize) -> bool {
    let packed_from = if k >= AMX_DEEP { AMX_PACKED_ROWS_DEEP } else { AMX_PACKED_ROWS };
    k.is_multiple_of(amx::STEP) && m < packed_from
}

/// Rows from which a bf16 product on AVX512-BF16 packs `a` into panels and reads the weights in
/// place (`bf16_pairs_in_place.rs`) rather than taking dot products of its rows (`dots.rs`).
/// Measured on the 2-core Zen 4, 2048 × 768 weights, the two forms in turn: 32 rows
/// 350–375 GFLOP/s against the dot form's 325–330, 64 rows 390–405 against 340–380, 128 rows
/// 400–420 against 360–375; at 24 rows the dot form was the faster (345–365 against 155–310),
/// and at 8 and 16 by 2–3×.
const PAIRS_IN_PLACE_ROWS: usize = 32;

/// Rows from which a bf16 product on AVX512-BF16 packs its weights (`bf16_pairs.rs`) rather than
/// reading them in place: packing them is repaid over many rows, and the in-place form's
/// transposes of its sums cost the more the shorter the reduction. Measured on the 2-core Zen 4
/// (GFLOP/s, in place against packed, in turn, the better of two rounds): 512 × 2048 × 768
/// 400–440 against 340–390, 512 × 3072 × 8192 and 256 × 8192 × 3072 (YOCO-3B's FFN) 400–430
/// against 340–365, 512 × 2048 × 2048 408 against 377, 768 rows of depth 768 and 2048 398–400
/// against 381; level at 1024 × 2048 × 768, 1024 × 768 × 2048 and 2048 × 704 × 256; packed the
/// faster by 8–12% at 8192 × 768 × 256 and 5–10% at 2048³.
const PAIRS_PACKED_ROWS: usize = 1024;

/// Rows below which an f32 product `x · wᵀ` takes the dot form (`dots.rs`) on a CPU with
/// AVX-512. The packed GEMM packs all of the weights per call, which few rows do not repay.
/// Measured on the 2-core Xeon, interleaved in one process, operands aligned to cache lines as a
/// tensor's are (GFLOP/s, dot form against packed, five rounds in different minutes): 2048 × 768
/// weights 158–231 against 114–160 at 64 rows, 156–237 against 122–170 at 128, 160–218 against
/// 133–179 at 160 and 192; 768 × 2048 weights 140–215 against 119–166 at 128 rows, level at
/// 192; 704 × 256 level to 12% faster at 96–192. At 256 rows the packed GEMM was the faster on
/// two of three shapes (768 × 2048: 20%), from 384 on all. The bound had been set to 64 on
/// operands in plain `Vec`s, which start 16 bytes into a cache line: every 64-byte row load of
/// the dot form then spans two lines, and there it is level with packing (which copies into
/// aligned buffers) or slower (92–126 against 112–125 at 128 rows).
const DOT_ROWS: usize = 192;

/// Rows below which an f16 product on AVX-512 takes the dot form (`dots.rs`, each vector widened
/// by `vcvtph2ps` as it is loaded) rather than widening its operands for the f32 paths. Measured
/// on the Xeon VM, 3072 × 8192 weights, old and new binaries in turn: 1 row 1.8–2.5 ms → 1.2–1.3
/// (dot products off the widened rows before), 16 rows 14–15 → 6.3–6.7, 64 rows 36–40 → 24–27
/// (blocked), 128 rows 68–69 → 46–49 (packed); at 256 rows the packed GEMM was level or faster
/// (97–113 against 98–112; 78–81 against 87–101 in another minute), at 512 faster by a fifth.
const F16_DOT_ROWS: usize = 192;

/// Rows from which an f32 product takes the packed GEMM rather than the gemm crate where the dot
/// form does not take it (`b` not transposed, or more rows), on a CPU with AVX-512 (measured:
/// 10–20% faster at 32 and 64 rows, 25% slower at 16).
const PACKED_ROWS: usize = 32;

/// [`PACKED_ROWS`] without AVX-512, where the packed GEMM's register block is AVX2's 6 × 2 and
/// the gemm crate's kernel is AVX2 too. It had been 32 as well; measured with
/// `YOCO_CPU_ISA=avx2` on the Xeon (aligned operands, interleaved in one process, two rounds),
/// the gemm crate was the faster up to 128 rows (2048 × 768 weights: 1.3–1.8× at 8–32 rows,
/// 1.1–1.5× at 48–128; 768 × 2048: 1.2–1.4× at 32 and 128) and level from 192 to 512.
const PACKED_ROWS_AVX2: usize = 192;

fn parallelism(m: usize, n: usize, k: usize) -> Parallelism {
    // Below ~1 MFLOP the fork-join costs more than it saves.
    if m.saturating_mul(n).saturating_mul(k) < (1 << 20) {
        Parallelism::None
    } else {
        Parallelism::Rayon(0)
    }
}

/// Whether an f32 product of `m` rows takes the packed GEMM: from [`PACKED_ROWS`] with AVX-512
/// (from [`DOT_ROWS`] for `x · wᵀ`, which takes the dot form below that), from
/// [`PACKED_ROWS_AVX2`] without. (`dots`: the product could take the dot form, `x · wᵀ` with
/// k > 0.)
fn takes_packed(m: usize, dots: bool) -> bool {
    if crate::simd::Isa::detect() != crate::simd::Isa::Avx512 {
        return m >= PACKED_ROWS_AVX2;
    }
    let dots = cfg!(target_arch = "x86_64") && dots;
    m >= if dots { DOT_ROWS.max(PACKED_ROWS) } else { PACKED_ROWS }
}

/// `c[m, n] = a[m, k] · b[n, k]ᵀ`, row-major: a linear layer `x Wᵀ` with W stored `[out, in]`.
pub fn matmul_nt(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
    product("matmul_nt", m, n, k, a, b, true, c)
}

/// SwiGLU's gate from its two products, `c[m, n] = silu(a · gateᵀ) ⊙ (a · upᵀ)`, gate and up
/// stored `[n, k]` (w1 and w3 of a linear layer `x Wᵀ`), in f32: the FFN's first half without its
/// two `[m, n]` intermediates. Where [`matmul_nt`] takes the packed GEMM (many rows), both
/// products run in it at once and the gate is applied in registers (`packed.rs`); with fewer
/// rows, the gate's product is made in c, the up's in a buffer kept between calls, and the gate
/// applied over them. Either way the result is bit for bit `silu(g) · u` of [`matmul_nt`]'s two
/// products `g` and `u` (`math::silu`, in f32).
pub fn gated_matmul_nt(m: usize, n: usize, k: usize, a: &[f32], gate: &[f32], up: &[f32], c: &mut [f32]) -> Result<()> {
    const OP: &str = "gated_matmul_nt";
    check_len(OP, "a", a.len(), m, k)?;
    check_len(OP, "gate", gate.len(), n, k)?;
    check_len(OP, "up", up.len(), n, k)?;
    check_len(OP, "c", c.len(), m, n)?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    if takes_packed(m, k > 0) {
        packed::gated(m, n, k, a, gate, up, c);
        return Ok(());
    }
    product(OP, m, n, k, a, gate, true, c)?;
    let mut ups = scratch::Scratch::<f32>::take(m * n);
    product(OP, m, n, k, a, up, true, &mut ups)?;
    c.par_chunks_mut(GATE_CHUNK).zip(ups.par_chunks(GATE_CHUNK)).for_each(|(c, ups)| {
        for (g, u) in c.iter_mut().zip(ups) {
            *g = crate::math::silu(*g) * u;
        }
    });
    Ok(())
}

/// Elements per task of [`gated_matmul_nt`]'s gate over few rows.
const GATE_CHUNK: usize = 16 * 1024;

/// What a bf16 product of some number of rows multiplies on here ([`bf16_unit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bf16Unit {
    /// The AMX tile unit (`tdpbf16ps`; [`crate::ceiling::amx_bf16_gflops`] is the ceiling).
    Tiles,
    /// AVX512-BF16's `vdpbf16ps`, bf16 pairs in vector lanes
    /// ([`crate::ceiling::bf16_pair_gflops`] is the ceiling).
    Pairs,
    /// f32 FMAs on widened values ([`crate::ceiling::fma_gflops`] is the ceiling).
    F32,
}

/// The unit [`matmul_nt_widened`] multiplies a bf16 product of `rows` rows and reduction
/// `depth` on, on this CPU: AMX tiles where the CPU has AMX-BF16, from `AMX_IN_PLACE_ROWS` (8)
/// rows where the depth is a multiple of 32, else from `AMX_ROWS` (24); else bf16 pairs where it
/// has AVX512-BF16; else f32.
pub fn bf16_unit(rows: usize, depth: usize) -> Bf16Unit {
    #[cfg(target_arch = "x86_64")]
    {
        let from = if depth.is_multiple_of(amx::STEP) { AMX_IN_PLACE_ROWS } else { AMX_ROWS };
        if rows >= from && amx::available() {
            return Bf16Unit::Tiles;
        }
        if bf16_pairs::available() {
            return Bf16Unit::Pairs;
        }
    }
    let _ = (rows, depth);
    Bf16Unit::F32
}

/// `c[m, n] = a[m, k] · b[n, k]ᵀ` stored in a 16-bit type (any [`Element`], though f32 has
/// [`matmul_nt`] without the copies): products and sums in f32, `c` rounded once, as cuBLAS does
/// with f32 accumulation. By the number of rows:
/// - bf16 on a CPU with AMX-BF16 (Sapphire Rapids and later Xeons), from 8 rows (24 where k is
///   not a multiple of 32; [`bf16_unit`]): the AMX tile unit, many times the vector units' rate,
///   with the weights read in place below `AMX_PACKED_ROWS` (768; 512 from a depth of 1792)
///   (`bf16_amx_in_place.rs`), packed from there (`bf16_amx.rs`);
/// - bf16 on a CPU with AVX512-BF16 (`bf16_pairs.rs`), the other numbers of rows: bf16 pairs
///   multiplied natively, at about twice the f32 FMA rate, with no widening: dot products of the
///   rows below `PAIRS_IN_PLACE_ROWS` (32; a decode row reads its 2-byte weights once), then `a`
///   packed and the weights read in place (`bf16_pairs_in_place.rs`) below `PAIRS_PACKED_ROWS`
///   (1024), the weights packed into pairs from there. Denormal values count as zero there;
/// - f16 on a CPU with AVX-512, below `F16_DOT_ROWS` (192): the dot form (`dots.rs`), each vector
///   of either operand widened as it is loaded;
/// - otherwise, fewer than `FEW_ROWS` (decode): dot products off the 16-bit rows of `b` (the
///   weights), widened in registers: one pass over 2-byte weights, as a memory-bound product
///   should be;
/// - up to `MANY_ROWS`: `b` widened a cache-sized block of rows per task, each block one GEMM;
/// - more (prefill, where the arithmetic dominates): the packed GEMM, which widens `b` as it
///   packs it.
///
/// On the widening paths `a` is widened once. The widened copies are transient host buffers.
pub fn matmul_nt_widened<T: Element>(m: usize, n: usize, k: usize, a: &[T], b: &[T], c: &mut [T]) -> Result<()> {
    const OP: &str = "matmul_nt_widened";
    check_len(OP, "a", a.len(), m, k)?;
    check_len(OP, "b", b.len(), n, k)?;
    check_len(OP, "c", c.len(), m, n)?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    #[cfg(target_arch = "x86_64")]
    if let (Some(a), Some(b), Some(c)) = (as_slice_of::<T, half::bf16>(a), as_slice_of::<T, half::bf16>(b), as_mut_slice_of::<T, half::bf16>(c)) {
        // An empty reduction takes the widening path, which writes the zeros.
        let unit = if k > 0 { bf16_unit(m, k) } else { Bf16Unit::F32 };
        match unit {
            Bf16Unit::Tiles if weights_in_place(m, k) => bf16_amx_in_place::in_place(m, n, k, a, b, c),
            Bf16Unit::Tiles => bf16_amx::amx(m, n, k, a, b, c),
            Bf16Unit::Pairs if m < PAIRS_IN_PLACE_ROWS => dots::dots(m, n, k, a, b, c),
            Bf16Unit::Pairs if m < PAIRS_PACKED_ROWS => bf16_pairs_in_place::in_place(m, n, k, a, b, c),
            Bf16Unit::Pairs => bf16_pairs::packed(m, n, k, a, b, c),
            Bf16Unit::F32 => {}
        }
        if unit != Bf16Unit::F32 {
            return Ok(());
        }
    }
    #[cfg(target_arch = "x86_64")]
    if let (Some(a), Some(b), Some(c)) = (as_slice_of::<T, half::f16>(a), as_slice_of::<T, half::f16>(b), as_mut_slice_of::<T, half::f16>(c)) {
        if m < F16_DOT_ROWS && k > 0 && crate::simd::Isa::detect() == crate::simd::Isa::Avx512 {
            dots::dots(m, n, k, a, b, c);
            return Ok(());
        }
    }
    let a32: Vec<f32> = a.par_iter().map(|x| x.to_f32()).collect();
    if m < FEW_ROWS {
        let ct = dot_products(&a32, b, m, n, k);
        for (i, c_row) in c.chunks_mut(n).enumerate() {
            for (j, out) in c_row.iter_mut().enumerate() {
                *out = T::from_f32(ct[j * m + i]);
            }
        }
        return Ok(());
    }
    let mut c32 = vec![0.0f32; m * n];
    if m >= MANY_ROWS {
        packed::gemm(m, n, k, &a32, b, 1, k, &mut c32);
        c.par_iter_mut().zip(c32.par_iter()).for_each(|(c, v)| *c = T::from_f32(*v));
        return Ok(());
    }
    let rows = weight_block_rows(k);
    blocked_products(&a32, b, m, k, rows, &mut c32)?;
    // Block j's [m, count] product sits at c32[m · j · rows ..]: each row of c gathers its columns.
    c.par_chunks_mut(n).enumerate().for_each(|(i, c_row)| {
        for (j, c_cols) in c_row.chunks_mut(rows).enumerate() {
            let block = &c32[m * j * rows..];
            let count = c_cols.len();
            for (c, v) in c_cols.iter_mut().zip(&block[i * count..(i + 1) * count]) {
                *c = T::from_f32(*v);
            }
        }
    });
    Ok(())
}

/// `cᵀ [n, m]` (each task's rows of b contiguous in it) of `a32 [m, k] · b [n, k]ᵀ` as dot
/// products, `DOT_ROWS_PER_TASK` rows of b per task.
fn dot_products<T: Element>(a32: &[f32], b: &[T], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut ct = vec![0.0f32; n * m];
    ct.par_chunks_mut(m * DOT_ROWS_PER_TASK).enumerate().for_each(|(task, ct)| {
        for (jj, ct_row) in ct.chunks_mut(m).enumerate() {
            let j = task * DOT_ROWS_PER_TASK + jj;
            for (i, out) in ct_row.iter_mut().enumerate() {
                *out = crate::math::dot(&a32[i * k..(i + 1) * k], &b[j * k..(j + 1) * k]);
            }
        }
    });
    ct
}

/// `a32 [m, k] · b [n, k]ᵀ` a block of `rows` rows of b per task, each widened into the task's
/// buffer and multiplied on its thread: block j's `[m, count]` product into
/// `c32[m · j · rows ..]`.
fn blocked_products<T: Element>(a32: &[f32], b: &[T], m: usize, k: usize, rows: usize, c32: &mut [f32]) -> Result<()> {
    c32.par_chunks_mut(m * rows).enumerate().try_for_each_init(Vec::new, |b32: &mut Vec<f32>, (j, block)| {
        let first = j * rows;
        let count = block.len() / m;
        b32.clear();
        b32.extend(b[first * k..(first + count) * k].iter().map(|x| x.to_f32()));
        gemm_serial(MatMut { data: block, rows: m, cols: count }, MatRef::row_major(a32, m, k), MatRef::row_major(b32, count, k).t(), false)
    })
}

/// Below this many rows a 16-bit product is dot products over the weights' rows (decode: one row
/// per sequence), at or above it blocked GEMMs on widened weights.
const FEW_ROWS: usize = 4;

/// Weight rows per task of the dot-product path: enough work to amortise a task.
const DOT_ROWS_PER_TASK: usize = 64;

/// Rows of a 16-bit weight matrix widened per task: 128 KiB of f32, within a core's L2 with the
/// inputs, in multiples of 16 rows (at least 16).
fn weight_block_rows(k: usize) -> usize {
    ((128 * 1024 / 4 / k.max(1)) / 16 * 16).max(16)
}

/// `out = x · wᵀ` for tensors on the CPU: x `[.., k]`, w `[n, k]`, out `[.., n]` with as many
/// rows as x (its leading dims may group them otherwise), one dtype.
pub fn linear_into(x: &Tensor, w: &Tensor, out: &mut Tensor) -> Result<()> {
    const OP: &str = "linear_into";
    fn widened<T: Element>(x: &Tensor, w: &Tensor, out: &mut Tensor, (m, n, k): (usize, usize, usize)) -> Result<()> {
        matmul_nt_widened(m, n, k, x.as_slice::<T>()?, w.as_slice::<T>()?, out.as_mut_slice::<T>()?)
    }
    if x.dims().is_empty() {
        return Err(Error::ShapeMismatch { op: OP, what: "x", expected: "[.., k]".into(), got: x.shape().to_string() });
    }
    let (n, k) = (w.dims().first().copied().unwrap_or(0), x.shape().last_dim());
    w.expect_dims(OP, "w", &[n, k])?;
    let rows = x.shape().rows();
    if out.dims().is_empty() || out.shape().last_dim() != n || out.shape().rows() != rows {
        return Err(Error::ShapeMismatch { op: OP, what: "out", expected: format!("[.., {n}] of {rows} rows"), got: out.shape().to_string() });
    }
    for (what, t) in [("w", w), ("out", &*out)] {
        t.expect_dtype(OP, what, x.dtype())?;
    }
    let mnk = (rows, n, k);
    match x.dtype() {
        DType::F32 => matmul_nt(mnk.0, mnk.1, mnk.2, x.as_slice()?, w.as_slice()?, out.as_mut_slice()?),
        DType::BF16 => widened::<half::bf16>(x, w, out, mnk),
        DType::F16 => widened::<half::f16>(x, w, out, mnk),
    }
}

/// `c[m, n] = a[m, k] · b[k, n]`, row-major.
pub fn matmul_nn(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
    product("matmul_nn", m, n, k, a, b, false, c)
}

/// `c = a · op(b)` with `op(b) = bᵀ` for b stored `[n, k]` (`b_transposed`), else b `[k, n]`;
/// all row-major. Picks the kernel by the number of rows and the CPU (see the module's docs).
#[allow(clippy::too_many_arguments)]
fn product(op: &'static str, m: usize, n: usize, k: usize, a: &[f32], b: &[f32], b_transposed: bool, c: &mut [f32]) -> Result<()> {
    check_len(op, "a", a.len(), m, k)?;
    check_len(op, "b", b.len(), n, k)?;
    check_len(op, "c", c.len(), m, n)?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    // op(b)'s (row stride, column stride) as a [k, n] matrix.
    let (b_rs, b_cs) = if b_transposed { (1, k) } else { (n, 1) };
    #[cfg(target_arch = "x86_64")]
    if m < DOT_ROWS && b_transposed && k > 0 && crate::simd::Isa::detect() == crate::simd::Isa::Avx512 {
        dots::dots(m, n, k, a, b, c);
        return Ok(());
    }
    if takes_packed(m, b_transposed && k > 0) {
        packed::gemm(m, n, k, a, b, b_rs, b_cs, c);
        return Ok(());
    }
    let (b_rs, b_cs) = (b_rs as isize, b_cs as isize);
    // SAFETY: lengths checked above: a is [m, k] row-major, op(b) [k, n] through its strides, c
    // [m, n] row-major, so every index lies inside its slice; gemm takes (column stride, row
    // stride) pairs.
    unsafe {
        gemm::gemm(
            m, n, k,
            c.as_mut_ptr(), 1, n as isize,
            false,
            a.as_ptr(), 1, k as isize,
            b.as_ptr(), b_cs, b_rs,
            0.0, 1.0,
            false, false, false,
            parallelism(m, n, k),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn naive_nt(m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] as f64 * b[j * k + p] as f64).sum();
            }
        }
        c
    }

    /// 16-bit storage: the f32 product of the stored values, rounded once, on the paths the rows
    /// choose (dot products, blocked weights, the packed GEMM widening as it packs; bf16 pairs
    /// multiplied natively instead on a CPU with AVX512-BF16, whose forms `bf16_pairs.rs` also
    /// tests directly, and f16 in the dot form on AVX-512: CI runs this under YOCO_CPU_ISA=avx2
    /// too), with block edges that do not divide n.
    #[test]
    fn widened_products_round_the_f32_product_once() {
        fn check<T: Element>(ulp: f64, rng: &mut Rng) {
            let shapes = [(1, 1, 1), (3, 517, 300), (1, 2048, 64), (FEW_ROWS, 100, 70), (9, 300, 45), (MANY_ROWS, 45, 33), (MANY_ROWS + 5, 530, 257), (F16_DOT_ROWS + 1, 70, 45), (PAIRS_IN_PLACE_ROWS + 1, 70, 45), (PAIRS_PACKED_ROWS + 3, 70, 45)];
            for (m, n, k) in shapes {
                let a: Vec<T> = (0..m * k).map(|_| T::from_f64(rng.normal())).collect();
                let b: Vec<T> = (0..n * k).map(|_| T::from_f64(rng.normal())).collect();
                let mut c = vec![T::from_f32(f32::NAN); m * n];
                matmul_nt_widened(m, n, k, &a, &b, &mut c).unwrap();
                let wide = |v: &[T]| v.iter().map(|x| x.to_f32()).collect::<Vec<f32>>();
                let want = naive_nt(m, n, k, &wide(&a), &wide(&b));
                for (i, (got, want)) in c.iter().zip(&want).enumerate() {
                    // One rounding to T (half an ulp; a whole ulp allowed) plus the f32
                    // summation's error.
                    let tolerance = want.abs() * ulp + 1e-4 * (k as f64).sqrt();
                    assert!((got.to_f64() - want).abs() <= tolerance, "{} m={m} n={n} k={k} element {i}: {got:?} vs {want}", T::DTYPE);
                }
            }
        }
        use half::{bf16, f16};
        let mut rng = Rng::new(11);
        check::<bf16>(2f64.powi(-8), &mut rng);
        check::<f16>(2f64.powi(-10), &mut rng);
        let mut short = vec![bf16::ZERO; 3];
        assert!(matmul_nt_widened(2, 2, 2, &[bf16::ONE; 4], &[bf16::ONE; 4], &mut short).is_err());
    }

    #[test]
    fn nt_and_nn_match_naive_on_odd_shapes() {
        let mut rng = Rng::new(11);
        // From PACKED_ROWS rows the packed GEMM (nt from DOT_ROWS with AVX-512, below it the dot
        // form; CI runs this under YOCO_CPU_ISA=avx2 too): rows past its groups of 12 (6 with
        // AVX2) and its tasks' 96, columns past a panel of 32 and a packed block's 512, depths
        // past its slices of 256 (packed.rs tests its edges directly).
        for &(m, n, k) in &[(1, 1, 1), (7, 13, 5), (9, 70, 37), (31, 130, 16), (65, 33, 130), (128, 96, 257), (300, 17, 64), (133, 530, 520), (PACKED_ROWS, 64, 1), (DOT_ROWS + 5, 530, 257)] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.normal() as f32).collect();
            let b: Vec<f32> = (0..n * k).map(|_| rng.normal() as f32).collect();
            let want = naive_nt(m, n, k, &a, &b);
            let mut c = vec![f32::NAN; m * n];
            matmul_nt(m, n, k, &a, &b, &mut c).unwrap();
            let c64: Vec<f64> = c.iter().map(|&v| v as f64).collect();
            assert!(crate::testing::rel_l2(&c64, &want) < 1e-6, "nt {m}x{n}x{k}");
            // b as [k, n] is the transpose of b as [n, k].
            let bt: Vec<f32> = (0..k * n).map(|idx| b[(idx % n) * k + idx / n]).collect();
            let mut c2 = vec![f32::NAN; m * n];
            matmul_nn(m, n, k, &a, &bt, &mut c2).unwrap();
            let c64: Vec<f64> = c2.iter().map(|&v| v as f64).collect();
            assert!(crate::testing::rel_l2(&c64, &want) < 1e-6, "nn {m}x{n}x{k}");
        }
    }

    /// SwiGLU's gate from its two products, on both sides of the packed GEMM's bound (few rows:
    /// the two products, then the gate; many: both at once in the packed GEMM; CI runs this under
    /// YOCO_CPU_ISA=avx2 too): against f64 on fresh random inputs, and bit for bit `silu(g) · u`
    /// of matmul_nt's products, which the unfused FFN computes.
    #[test]
    fn the_gated_product_is_the_gate_of_the_two_products() {
        let mut rng = Rng::new(13);
        for &(m, n, k) in &[(1, 7, 5), (PACKED_ROWS, 40, 33), (DOT_ROWS - 1, 70, 64), (DOT_ROWS + 5, 530, 257), (PACKED_ROWS_AVX2 + 1, 33, 300)] {
            let draw = |rng: &mut Rng, len: usize| -> Vec<f32> { (0..len).map(|_| rng.normal() as f32).collect() };
            let (a, gate, up) = (draw(&mut rng, m * k), draw(&mut rng, n * k), draw(&mut rng, n * k));
            let mut c = vec![f32::NAN; m * n];
            gated_matmul_nt(m, n, k, &a, &gate, &up, &mut c).unwrap();
            let (g64, u64) = (naive_nt(m, n, k, &a, &gate), naive_nt(m, n, k, &a, &up));
            let want: Vec<f64> = g64.iter().zip(&u64).map(|(&g, &u)| g / (1.0 + (-g).exp()) * u).collect();
            let c64: Vec<f64> = c.iter().map(|&v| v as f64).collect();
            assert!(crate::testing::rel_l2(&c64, &want) < 1e-5, "{m}x{n}x{k}: {}", crate::testing::rel_l2(&c64, &want));
            let (mut g, mut u) = (vec![0.0; m * n], vec![0.0; m * n]);
            matmul_nt(m, n, k, &a, &gate, &mut g).unwrap();
            matmul_nt(m, n, k, &a, &up, &mut u).unwrap();
            for (i, ((&c, &g), &u)) in c.iter().zip(&g).zip(&u).enumerate() {
                assert_eq!(c.to_bits(), (crate::math::silu(g) * u).to_bits(), "{m}x{n}x{k}, element {i}");
            }
        }
        let mut c = vec![f32::NAN; 2 * 3];
        gated_matmul_nt(2, 3, 0, &[], &[], &[], &mut c).unwrap();
        assert!(c.iter().all(|&x| x == 0.0), "an empty reduction gives zeros");
        assert!(matches!(gated_matmul_nt(2, 2, 2, &[0.0; 4], &[0.0; 4], &[0.0; 3], &mut c[..4]), Err(Error::ShapeMismatch { what: "up", .. })));
    }

    #[test]
    fn an_empty_reduction_gives_zeros() {
        for m in [1, PACKED_ROWS] {
            let mut c = vec![f32::NAN; m * 3];
            matmul_nt(m, 3, 0, &[], &[], &mut c).unwrap();
            assert!(c.iter().all(|&x| x == 0.0), "{m} rows");
        }
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let mut c = vec![0.0; 4];
        assert!(matches!(matmul_nt(2, 2, 2, &[0.0; 3], &[0.0; 4], &mut c), Err(Error::ShapeMismatch { what: "a", .. })));
    }

    /// `linear_into` checks shapes, not only element counts: an `out` of x's rows laid out
    /// otherwise, or a `w` of another rank, holding the right number of elements, is refused.
    #[test]
    fn linear_into_checks_shapes_and_dtypes() {
        use crate::{Device, MemoryCategory};
        let t = |dims: &[usize], dtype| Tensor::zeros(dims.to_vec(), dtype, &Device::cpu(), MemoryCategory::Activations).unwrap();
        let (x, w) = (t(&[2, 3], DType::F32), t(&[4, 3], DType::F32));
        linear_into(&x, &w, &mut t(&[2, 4], DType::F32)).unwrap();
        for (w, mut out, what) in [
            (t(&[4, 3], DType::F32), t(&[4, 2], DType::F32), "out"),
            (t(&[4, 3], DType::F32), t(&[8], DType::F32), "out"),
            (t(&[4, 1, 3], DType::F32), t(&[2, 4], DType::F32), "w"),
            (t(&[4, 2], DType::F32), t(&[2, 4], DType::F32), "w"),
        ] {
            assert!(matches!(linear_into(&x, &w, &mut out), Err(Error::ShapeMismatch { what: w, .. }) if w == what), "{:?} · {:?}ᵀ → {:?}", x.dims(), w.dims(), out.dims());
        }
        assert!(matches!(linear_into(&x, &t(&[4, 3], DType::BF16), &mut t(&[2, 4], DType::F32)), Err(Error::DTypeMismatch { .. })));
    }
}

/// A strided f32 matrix: element (i, j) at `data[i * row_stride + j * col_stride]`, so a
/// transpose is the same data with the strides swapped.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A dense row-major `[rows, cols]` matrix.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        MatRef { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }
}

/// A dense row-major `[rows, cols]` output matrix.
#[derive(Debug)]
pub struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub rows: usize,
    pub cols: usize,
}

/// A strided view's last element lies inside its buffer, computed without wrapping; strides
/// also fit the `isize` the GEMM crates take.
fn fits(len: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    let last = (rows - 1).checked_mul(rs).zip((cols - 1).checked_mul(cs)).and_then(|(r, c)| r.checked_add(c));
    rs <= isize::MAX as usize && cs <= isize::MAX as usize && last.is_some_and(|last| last < len)
}

/// Below this `m·k + k·n`, matrixmultiply runs a product on the calling thread (0.3's
/// heuristic gives a product one thread per 2^14 of it), so [`gemm_serial`] can use its AVX-512
/// kernel there; the gemm crate's is AVX2 on stable Rust. Measured when the CPU gated retention
/// ran its 64 × 64 chunk products here (it has kernels of its own now), 2-core AVX-512: 178 → 223
/// GFLOP/s at D = 64, 206 → 285 at D = 128. Larger products stay on the gemm crate, which never
/// leaves the calling thread with `Parallelism::None`.
const MATRIXMULTIPLY_SERIAL_BELOW: usize = 2 << 14;

/// `c = a · b`, or `c += a · b` with `accumulate`, on the calling thread only: for callers that
/// are already parallel and multiply small matrices (a 16-bit product's block of widened
/// weights, one task each).
pub fn gemm_serial(c: MatMut<'_>, a: MatRef<'_>, b: MatRef<'_>, accumulate: bool) -> Result<()> {
    const OP: &str = "gemm_serial";
    if a.cols != b.rows || a.rows != c.rows || b.cols != c.cols {
        return Err(Error::ShapeMismatch {
            op: OP,
            what: "operands",
            expected: format!("a [m, k] · b [k, n] = c [m, n] with c [{}, {}]", c.rows, c.cols),
            got: format!("a [{}, {}], b [{}, {}]", a.rows, a.cols, b.rows, b.cols),
        });
    }
    for (what, ok) in [
        ("a", fits(a.data.len(), a.rows, a.cols, a.row_stride, a.col_stride)),
        ("b", fits(b.data.len(), b.rows, b.cols, b.row_stride, b.col_stride)),
        ("c", fits(c.data.len(), c.rows, c.cols, c.cols, 1)),
    ] {
        if !ok {
            return Err(Error::ShapeMismatch { op: OP, what, expected: "strides inside the buffer".into(), got: "a view past its end".into() });
        }
    }
    if c.rows == 0 || c.cols == 0 {
        return Ok(());
    }
    let (m, k, n) = (c.rows, a.cols, c.cols);
    // Saturating: a view with zero strides can stand for more elements than its buffer holds.
    if m.saturating_mul(k).saturating_add(k.saturating_mul(n)) < MATRIXMULTIPLY_SERIAL_BELOW {
        // SAFETY: as below; matrixmultiply does not read c when beta is 0.
        unsafe {
            matrixmultiply::sgemm(
                m, k, n, 1.0,
                a.data.as_ptr(), a.row_stride as isize, a.col_stride as isize,
                b.data.as_ptr(), b.row_stride as isize, b.col_stride as isize,
                if accumulate { 1.0 } else { 0.0 },
                c.data.as_mut_ptr(), n as isize, 1,
            );
        }
        return Ok(());
    }
    // SAFETY: every index the strides describe was checked to lie inside its buffer above.
    unsafe {
        gemm::gemm(
            c.rows, c.cols, a.cols,
            c.data.as_mut_ptr(), 1, c.cols as isize,
            accumulate,
            a.data.as_ptr(), a.col_stride as isize, a.row_stride as isize,
            b.data.as_ptr(), b.col_stride as isize, b.row_stride as isize,
            1.0, 1.0,
            false, false, false,
            Parallelism::None,
        );
    }
    Ok(())
}

#[cfg(test)]
mod serial_tests {
    use super::*;

    #[test]
    fn gemm_serial_handles_transposes_and_accumulation() {
        // a = [[1, 2], [3, 4]], b = [[5, 6], [7, 8]]
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [5.0, 6.0, 7.0, 8.0];
        let mut c = [0.0; 4];
        gemm_serial(MatMut { data: &mut c, rows: 2, cols: 2 }, MatRef::row_major(&a, 2, 2), MatRef::row_major(&b, 2, 2), false).unwrap();
        assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
        // aᵀ · b = [[26, 30], [38, 44]], added to c.
        gemm_serial(MatMut { data: &mut c, rows: 2, cols: 2 }, MatRef::row_major(&a, 2, 2).t(), MatRef::row_major(&b, 2, 2), true).unwrap();
        assert_eq!(c, [45.0, 52.0, 81.0, 94.0]);
        let err = gemm_serial(MatMut { data: &mut c, rows: 2, cols: 2 }, MatRef::row_major(&a, 2, 2), MatRef::row_major(&b[..3], 1, 3), false);
        assert!(err.is_err());
    }

    /// Both crates behind gemm_serial (either side of MATRIXMULTIPLY_SERIAL_BELOW), with a
    /// transposed operand and accumulation, against f64 on fresh random matrices.
    #[test]
    fn gemm_serial_is_right_on_both_sides_of_its_crate_threshold() {
        let mut rng = crate::rng::Rng::new(29);
        for (m, k, n) in [(64, 64, 64), (33, 70, 65), (64, 256, 256), (256, 64, 256)] {
            let small = m * k + k * n < MATRIXMULTIPLY_SERIAL_BELOW;
            assert_eq!(small, (m, k, n) == (64, 64, 64) || (m, k, n) == (33, 70, 65));
            let a: Vec<f32> = (0..k * m).map(|_| rng.normal() as f32).collect(); // stored [k, m], used transposed
            let b: Vec<f32> = (0..k * n).map(|_| rng.normal() as f32).collect();
            let c0: Vec<f32> = (0..m * n).map(|_| rng.normal() as f32).collect();
            let mut c = c0.clone();
            gemm_serial(MatMut { data: &mut c, rows: m, cols: n }, MatRef::row_major(&a, k, m).t(), MatRef::row_major(&b, k, n), true).unwrap();
            for i in 0..m {
                for j in 0..n {
                    let want = c0[i * n + j] as f64 + (0..k).map(|p| a[p * m + i] as f64 * b[p * n + j] as f64).sum::<f64>();
                    assert!((c[i * n + j] as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()), "{m}×{k}×{n} at ({i}, {j}): {} vs {want}", c[i * n + j]);
                }
            }
        }
    }
}
