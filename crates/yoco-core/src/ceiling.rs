//! This machine's ceilings, measured in the same run as the figures quoted against them:
//! peak f32 FMA throughput (and the bf16 units' where the CPU has them: AVX512-BF16's pairs,
//! AMX's tiles) and memory bandwidth (a copy, an update in place, a read), on every core rayon
//! uses.

use std::hint::black_box;
use std::time::Instant;

use rayon::prelude::*;

/// Median of `values` (sorted in place); NaN for an empty slice.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}

/// The CPU ceilings.
#[derive(Clone, Copy, Debug)]
pub struct CpuCeilings {
    /// Threads used (rayon's pool).
    pub threads: usize,
    /// Peak f32 FMA rate, GFLOP/s (an FMA counts 2 FLOPs), all threads.
    pub fma_gflops: f64,
    /// Memory copy bandwidth, GB/s of bytes read plus bytes written, all threads.
    pub copy_gbs: f64,
    /// Bandwidth of a buffer read and written back in place, GB/s of bytes read plus written.
    pub update_gbs: f64,
    /// Bandwidth of a buffer only read, GB/s.
    pub read_gbs: f64,
}

impl CpuCeilings {
    /// Measures the ceilings (a few seconds), the bandwidths over [`memory_bytes`] buffers.
    pub fn measure() -> Self {
        let bytes = memory_bytes();
        CpuCeilings {
            threads: rayon::current_num_threads(),
            fma_gflops: fma_gflops(),
            copy_gbs: copy_bandwidth_gbs(bytes),
            update_gbs: update_bandwidth_gbs(bytes),
            read_gbs: read_bandwidth_gbs(bytes),
        }
    }
}

/// The size of this CPU's last-level cache in bytes (the largest cache `cpu0` lists under
/// `/sys/devices/system/cpu/cpu0/cache`), or `None` where that is not readable.
pub fn last_level_cache_bytes() -> Option<usize> {
    let caches = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    caches
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("size")).ok())
        .filter_map(|size| parse_cache_size(&size))
        .max()
}

/// A sysfs cache size ("48K", "2048K", "307200K", "32M") in bytes.
fn parse_cache_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, ""),
    };
    let scale = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    digits.parse::<usize>().ok()?.checked_mul(scale)
}

/// The bytes a bandwidth ceiling is measured over, and that a memory-bound bench's operands must
/// span so that every call reads from memory rather than from a cache the previous one warmed:
/// twice the last-level cache, at least 256 MiB (a Zen 5's 32 MiB level 3 needs far less; the
/// Xeon VM's 300 MiB one held the 256 MiB that had been used everywhere, and a decode product
/// that cycled through it read at 128–140% of the read ceiling), at most 2 GiB.
pub fn memory_bytes() -> usize {
    const LEAST: usize = 256 << 20;
    const MOST: usize = 2 << 30;
    last_level_cache_bytes().map_or(LEAST, |llc| llc.saturating_mul(2).clamp(LEAST, MOST))
}

/// Independent FMA chains per thread: enough to cover the FMA latency (4 cycles) on two ports.
const CHAINS: usize = 12;
const LANES: usize = 8;

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains_avx2(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_set1_ps(1.0); CHAINS];
    let a = _mm256_set1_ps(0.999_999);
    let b = _mm256_set1_ps(1e-7);
    for _ in 0..iters {
        for r in acc.iter_mut() {
            *r = _mm256_fmadd_ps(*r, a, b);
        }
    }
    let mut out = [0f32; LANES];
    let mut sum = _mm256_setzero_ps();
    for r in acc {
        sum = _mm256_add_ps(sum, r);
    }
    _mm256_storeu_ps(out.as_mut_ptr(), sum);
    out.iter().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_chains_avx512(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_set1_ps(1.0); CHAINS];
    let a = _mm512_set1_ps(0.999_999);
    let b = _mm512_set1_ps(1e-7);
    for _ in 0..iters {
        for r in acc.iter_mut() {
            *r = _mm512_fmadd_ps(*r, a, b);
        }
    }
    total_avx512(acc)
}

/// The sum of every lane of the chains (kept, so that the compiler cannot drop them).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn total_avx512(acc: [std::arch::x86_64::__m512; CHAINS]) -> f32 {
    use std::arch::x86_64::*;
    let mut sum = _mm512_setzero_ps();
    for r in acc {
        sum = _mm512_add_ps(sum, r);
    }
    _mm512_reduce_add_ps(sum)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn bf16_pair_chains(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_set1_ps(1.0); CHAINS];
    // Pairs of small bf16 values (1/128 each): the sums grow by 16/128² an iteration, finite.
    let a: __m512bh = std::mem::transmute(_mm512_set1_epi16(0x3c00));
    let b: __m512bh = std::mem::transmute(_mm512_set1_epi16(0x3c00));
    for _ in 0..iters {
        for r in acc.iter_mut() {
            *r = _mm512_dpbf16_ps(*r, a, b);
        }
    }
    total_avx512(acc)
}

fn fma_chains_portable(iters: u64) -> f32 {
    let mut acc = [[1.0f32; LANES]; CHAINS];
    for _ in 0..iters {
        for chain in acc.iter_mut() {
            for lane in chain.iter_mut() {
                *lane = lane.mul_add(0.999_999, 1e-7);
            }
        }
    }
    acc.iter().flatten().sum()
}

/// The widest FMA the CPU has, and the f32 lanes it processes per instruction.
fn widest_fma() -> (fn(u64) -> f32, usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked above).
            return (|iters| unsafe { fma_chains_avx512(iters) }, 16);
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports AVX2 and FMA (checked above).
            return (|iters| unsafe { fma_chains_avx2(iters) }, 8);
        }
    }
    (fma_chains_portable, LANES)
}

/// Peak f32 FMA GFLOP/s on all of rayon's threads with the widest FMA the CPU has (AVX-512,
/// else AVX2): the best of five ~50 ms rounds, every thread running independent chains at once.
/// The GEMMs use AVX-512 where it exists, so a lower ISA's peak would not be a ceiling.
pub fn fma_gflops() -> f64 {
    let (fma_chains, lanes) = widest_fma();
    peak_gflops(fma_chains, CHAINS * lanes * 2)
}

/// Peak bf16 GFLOP/s of `vdpbf16ps` (AVX512-BF16: 16 lanes, each adding two bf16 products to an
/// f32), measured as [`fma_gflops`]; `None` on a CPU without it. The ceiling of the bf16
/// products that use it (`matmul::matmul_nt_widened` on bf16 storage): about twice the f32 FMA
/// rate where the instruction runs at full rate.
pub fn bf16_pair_gflops() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16") {
        // SAFETY: the CPU supports AVX-512F and AVX512-BF16 (checked above).
        return Some(peak_gflops(|iters| unsafe { bf16_pair_chains(iters) }, CHAINS * 16 * 4));
    }
    None
}

/// The AMX tile unit's peak bf16 rate on every rayon thread, GFLOP/s (`tdpbf16ps` on operands
/// held in tiles, four independent sums), where the CPU has AMX-BF16 and lets this process use
/// it; `None` elsewhere. Measured as [`fma_gflops`] is: the ceiling of the bf16 products that
/// multiply on tiles (`matmul::bf16_unit`).
pub fn amx_bf16_gflops() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if crate::matmul::amx::available() {
        // 16 × 16 × 32 multiply-adds a tdpbf16ps, four an iteration; an iteration of the loop
        // is 16 of the chains' (a tile product takes ~16 cycles, an FMA chain's step one).
        const FLOPS: usize = 4 * 2 * 16 * 16 * 32;
        let operands = [0x3c00u16; 16 * 32]; // bf16 1/128: finite sums
        return Some(peak_gflops(
            |iters| {
                // SAFETY: `amx::available` returned true.
                let mut tiles = unsafe { crate::matmul::amx::Tiles::configure() };
                tiles.peak_loop(&operands, iters / 16)
            },
            FLOPS / 16,
        ));
    }
    None
}

/// The best of five ~50 ms rounds of `chains` on every thread at once, in GFLOP/s, each of its
/// iterations `flops_per_iter` FLOPs.
pub(crate) fn peak_gflops(chains: impl Fn(u64) -> f32 + Sync, flops_per_iter: usize) -> f64 {
    let threads = rayon::current_num_threads();
    let iters: u64 = 4_000_000;
    let flops_per_thread = (iters as usize * flops_per_iter) as f64;
    let mut best = 0.0f64;
    for _ in 0..5 {
        let start = Instant::now();
        // broadcast: one run on every thread at once. A parallel iterator over `threads` items
        // may run two of them on one thread, one after the other, and a bench once quoted
        // itself against half the ceiling (269 of ~530 GFLOP/s) that way.
        let sink: f32 = rayon::broadcast(|_| chains(black_box(iters))).into_iter().sum();
        black_box(sink);
        let secs = start.elapsed().as_secs_f64();
        best = best.max(flops_per_thread * threads as f64 / secs / 1e9);
    }
    best
}

/// Copy bandwidth in GB/s (read + write bytes) of a `bytes`-sized buffer copied by all of
/// rayon's threads in contiguous pieces; the best of eleven copies after a warm-up. Use a buffer
/// far larger than the last-level cache.
///
/// The best, as STREAM reports and as [`fma_gflops`] takes its ceiling: a ceiling is what the
/// machine can do. On a shared VM the bandwidth swings by half from one moment to the next
/// (35–70 GB/s on the 2-core machine this was written on); the median of seven had let a
/// report's RMSNorm read 124% of the copy ceiling measured a minute earlier.
///
/// Its stores are ordinary ones, as the kernels' are (they leave their outputs in the cache for
/// the next operation to read): glibc's `memcpy` of pieces past its non-temporal threshold
/// (about three quarters of a thread's share of the last-level cache) streams past the cache, and
/// on the Xeon VM moved 32–39 GB/s over 1 GiB against 21–23 with ordinary stores. The pieces here
/// stay under it there.
pub fn copy_bandwidth_gbs(bytes: usize) -> f64 {
    let n = bytes / 4;
    let src: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let mut dst = vec![0f32; n];
    let piece = piece(n);
    best_gbs(2.0 * (n * 4) as f64, || {
        dst.par_chunks_mut(piece).zip(src.par_chunks(piece)).for_each(|(d, s)| d.copy_from_slice(s));
        black_box(&mut dst);
    })
}

/// Bandwidth in GB/s (read + write bytes) of a `bytes`-sized buffer scaled in place by all of
/// rayon's threads, measured as [`copy_bandwidth_gbs`]: the ceiling of kernels that update their
/// data where it lies (a recurrent state). On the 2-core machine this was written on it ran at
/// 125 GB/s against a copy's 78 in the same minute (probably because a copy's stores go to lines
/// not yet in the cache, which the CPU fetches first or streams past).
pub fn update_bandwidth_gbs(bytes: usize) -> f64 {
    let n = bytes / 4;
    let mut x: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let piece = piece(n);
    best_gbs(2.0 * (n * 4) as f64, || {
        x.par_chunks_mut(piece).for_each(|c| c.iter_mut().for_each(|v| *v *= 0.999_999));
        black_box(&mut x);
    })
}

/// Bandwidth in GB/s of a `bytes`-sized buffer summed by all of rayon's threads, measured as
/// [`copy_bandwidth_gbs`]: the ceiling of kernels that read far more than they write (a decode
/// step over a K/V cache, a product with one row of activations). Each thread reads eight
/// parts of its piece at once, as those kernels read several rows at once: one stream per thread
/// read 15–20 GB/s on the Xeon VM where eight read 28–30, and the decode kernels had read 23–30
/// against the one-stream ceiling.
pub fn read_bandwidth_gbs(bytes: usize) -> f64 {
    let n = bytes / 4;
    let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let piece = piece(n);
    best_gbs((n * 4) as f64, || {
        let sum: f32 = x.par_chunks(piece).map(sum_in_streams).sum();
        black_box(sum);
    })
}

/// Parts of a piece [`read_bandwidth_gbs`] reads at once.
const READ_STREAMS: usize = 8;

/// The sum of `values`, read as [`READ_STREAMS`] contiguous parts in lockstep, sixteen running
/// sums each so that the loop vectorises (an in-order sum would not); the tail past the parts'
/// whole runs of sixteen after them.
fn sum_in_streams(values: &[f32]) -> f32 {
    const RUN: usize = 16;
    let part = values.len() / READ_STREAMS / RUN * RUN;
    let mut acc = [[0f32; RUN]; READ_STREAMS];
    for at in (0..part).step_by(RUN) {
        for (s, acc) in acc.iter_mut().enumerate() {
            acc.iter_mut().zip(&values[s * part + at..][..RUN]).for_each(|(a, v)| *a += v);
        }
    }
    let tail: f32 = values[READ_STREAMS * part..].iter().sum();
    acc.iter().flatten().sum::<f32>() + tail
}

/// Elements per task of the bandwidth passes: four contiguous pieces per thread.
fn piece(n: usize) -> usize {
    n.div_ceil(rayon::current_num_threads() * 4).max(1)
}

/// `bytes_moved` per pass over the fastest of eleven passes after a warm-up, in GB/s.
fn best_gbs(bytes_moved: f64, mut pass: impl FnMut()) -> f64 {
    pass();
    let fastest = (0..11)
        .map(|_| {
            let start = Instant::now();
            pass();
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    bytes_moved / fastest / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed read sums every element once, whatever the length's remainder.
    #[test]
    fn the_streamed_read_sums_every_element() {
        for len in [0, 1, 15, 16, READ_STREAMS * 16 - 1, READ_STREAMS * 16, READ_STREAMS * 16 * 3 + 37, 10_000] {
            // Small integers: every partial sum is exact in f32, so any order gives the same.
            let values: Vec<f32> = (0..len).map(|i| (i % 7) as f32 + 1.0).collect();
            let want: f32 = values.iter().sum();
            assert_eq!(sum_in_streams(&values), want, "{len} values");
        }
    }

    #[test]
    fn sysfs_cache_sizes_parse() {
        assert_eq!(parse_cache_size("48K\n"), Some(48 << 10));
        assert_eq!(parse_cache_size("307200K"), Some(300 << 20));
        assert_eq!(parse_cache_size("32M"), Some(32 << 20));
        assert_eq!(parse_cache_size("1G"), Some(1 << 30));
        assert_eq!(parse_cache_size("512"), Some(512));
        assert_eq!(parse_cache_size("K"), None);
        assert_eq!(parse_cache_size("12Q"), None);
        assert_eq!(parse_cache_size(""), None);
    }

    #[test]
    fn ceilings_span_at_least_256_mib() {
        let bytes = memory_bytes();
        assert!((256 << 20..=2 << 30).contains(&bytes), "{bytes}");
        if let Some(llc) = last_level_cache_bytes() {
            assert!(bytes >= (2 * llc).min(2 << 30), "{bytes} against a {llc}-byte last-level cache");
        }
    }
}
