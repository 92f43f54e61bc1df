//! This machine's ceilings, measured in the same run as the figures quoted against them:
//! peak f32 FMA throughput (and the bf16 units' where the CPU has them: AVX512-BF16's pairs,
//! AMX's tiles) and memory bandwidth (a copy, an update in place, a read), on every core rayon
//! uses.

use std::hint::black_box;
use std::time::Instant;

use rayon::prelude::*;

use crate::aligned::AlignedVec;
use crate::simd::{dispatch, stream_fence, Simd, SimdKernel};

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
    /// The same copy with its stores streamed past the caches, GB/s of bytes read plus written.
    pub streamed_copy_gbs: f64,
    /// Bandwidth of a buffer read and written back in place, GB/s of bytes read plus written.
    pub update_gbs: f64,
    /// Bandwidth of a buffer only read, GB/s.
    pub read_gbs: f64,
    /// Bandwidth of two buffers read and a third written, GB/s of bytes read plus written.
    pub combine_gbs: f64,
}

impl CpuCeilings {
    /// Measures the ceilings (a few seconds), the bandwidths over [`memory_bytes`] buffers.
    pub fn measure() -> Self {
        let bytes = memory_bytes();
        CpuCeilings {
            threads: rayon::current_num_threads(),
            fma_gflops: fma_gflops(),
            copy_gbs: copy_bandwidth_gbs(bytes),
            streamed_copy_gbs: streamed_copy_bandwidth_gbs(bytes),
            update_gbs: update_bandwidth_gbs(bytes),
            read_gbs: read_bandwidth_gbs(bytes),
            combine_gbs: combine_bandwidth_gbs(bytes),
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
/// else AVX2): the best of five ~13 ms rounds, every thread running independent chains at once.
/// The GEMMs use AVX-512 where it exists, so a lower ISA's peak would not be a ceiling.
pub fn fma_gflops() -> f64 {
    // Every CPU has f32 FMAs (the widest it has), so the unit is always there.
    Arithmetic::F32Fma.peak_gflops().unwrap_or(f64::NAN)
}

/// Rounds a peak rate is the best of.
const ROUNDS: usize = 5;

/// One round of the widest f32 FMA's chains on every thread at once, GFLOP/s.
fn f32_fma_round_gflops() -> f64 {
    let (fma_chains, lanes) = widest_fma();
    one_round_gflops(&fma_chains, CHAINS * lanes * 2)
}

/// Peak bf16 GFLOP/s of `vdpbf16ps` (AVX512-BF16: 16 lanes, each adding two bf16 products to an
/// f32), measured as [`fma_gflops`]; `None` on a CPU without it. The ceiling of the bf16
/// products that use it (`matmul::matmul_nt_widened` on bf16 storage): about twice the f32 FMA
/// rate where the instruction runs at full rate.
pub fn bf16_pair_gflops() -> Option<f64> {
    Arithmetic::Bf16Pairs.peak_gflops()
}

/// The AMX tile unit's peak bf16 rate on every rayon thread, GFLOP/s (`tdpbf16ps` on operands
/// held in tiles, four independent sums), where the CPU has AMX-BF16 and lets this process use
/// it; `None` elsewhere. Measured as [`fma_gflops`] is: the ceiling of the bf16 products that
/// multiply on tiles (`matmul::bf16_unit`).
pub fn amx_bf16_gflops() -> Option<f64> {
    Arithmetic::AmxTiles.peak_gflops()
}

/// One round of `chains` on every thread at once, in GFLOP/s, each of its iterations
/// `flops_per_iter` FLOPs: 4M iterations, ~13 ms of f32 FMAs on this project's machines.
fn one_round_gflops(chains: &(impl Fn(u64) -> f32 + Sync), flops_per_iter: usize) -> f64 {
    let threads = rayon::current_num_threads();
    let iters: u64 = 4_000_000;
    let flops_per_thread = (iters as usize * flops_per_iter) as f64;
    let start = Instant::now();
    // broadcast: one run on every thread at once. A parallel iterator over `threads` items
    // may run two of them on one thread, one after the other, and a bench once quoted
    // itself against half the ceiling (269 of ~530 GFLOP/s) that way.
    let sink: f32 = rayon::broadcast(|_| chains(black_box(iters))).into_iter().sum();
    black_box(sink);
    flops_per_thread * threads as f64 / start.elapsed().as_secs_f64() / 1e9
}

/// An arithmetic unit whose peak rate is a ceiling: what [`fma_gflops`], [`bf16_pair_gflops`]
/// and [`amx_bf16_gflops`] measure, one round at a time ([`Arithmetic::round_gflops`]) for a
/// bench that measures its ceiling beside its samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arithmetic {
    /// f32 FMAs, the widest the CPU has.
    F32Fma,
    /// AVX512-BF16's `vdpbf16ps`.
    Bf16Pairs,
    /// AMX's `tdpbf16ps`.
    AmxTiles,
}

impl Arithmetic {
    /// Whether this CPU has the unit (and, for AMX, lets this process use it).
    pub fn available(self) -> bool {
        match self {
            Arithmetic::F32Fma => true,
            #[cfg(target_arch = "x86_64")]
            Arithmetic::Bf16Pairs => is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16"),
            #[cfg(target_arch = "x86_64")]
            Arithmetic::AmxTiles => crate::matmul::amx::available(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The name a fraction line gives this ceiling.
    pub fn name(self) -> &'static str {
        match self {
            Arithmetic::F32Fma => "FMA",
            Arithmetic::Bf16Pairs => "bf16-pair FMA",
            Arithmetic::AmxTiles => "AMX bf16 tile",
        }
    }

    /// One ~13 ms round of the unit's independent chains on every thread at once, GFLOP/s;
    /// `None` where the CPU lacks the unit.
    pub fn round_gflops(self) -> Option<f64> {
        if !self.available() {
            return None;
        }
        match self {
            Arithmetic::F32Fma => Some(f32_fma_round_gflops()),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU supports AVX-512F and AVX512-BF16 (`available`).
            Arithmetic::Bf16Pairs => Some(one_round_gflops(&|iters| unsafe { bf16_pair_chains(iters) }, CHAINS * 16 * 4)),
            #[cfg(target_arch = "x86_64")]
            Arithmetic::AmxTiles => {
                // 16 × 16 × 32 multiply-adds a tdpbf16ps, four an iteration; an iteration of the
                // loop is 16 of the chains' (a tile product takes ~16 cycles, an FMA chain's step
                // one).
                const FLOPS: usize = 4 * 2 * 16 * 16 * 32;
                let operands = [0x3c00u16; 16 * 32]; // bf16 1/128: finite sums
                let tiles = |iters: u64| {
                    // SAFETY: `amx::available` returned true.
                    let mut tiles = unsafe { crate::matmul::amx::Tiles::configure() };
                    tiles.peak_loop(&operands, iters / 16)
                };
                Some(one_round_gflops(&tiles, FLOPS / 16))
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => None,
        }
    }

    /// The best of five rounds, GFLOP/s; `None` where the CPU lacks the unit.
    pub fn peak_gflops(self) -> Option<f64> {
        (0..ROUNDS).map(|_| self.round_gflops()).try_fold(0.0, |best, round| round.map(|g| f64::max(best, g)))
    }
}

/// How a memory-bound kernel moves its bytes, which decides the ceiling it is quoted against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Traffic {
    /// Reads one buffer and writes another (a norm, an elementwise op).
    Copy,
    /// Reads one buffer and writes another past the caches (non-temporal stores): a kernel whose
    /// output is too large to stay in the cache (`simd::streams_past_cache`), which an ordinary
    /// store would first read from memory, line by line.
    StreamedCopy,
    /// Reads a buffer and writes it back in place (a recurrent state).
    Update,
    /// Reads far more than it writes (a decode step over a cache, a one-row product).
    Read,
    /// Reads two buffers and writes a third (the SwiGLU gate, `silu(a) ⊙ b`): two streams in
    /// for each one out, which a copy's one for one does not match (the f32 gate had read 107% of
    /// a copy ceiling measured beside its samples on the Zen 4 VM).
    Combine,
}

impl Traffic {
    /// The ceiling of a kernel that reads one buffer and writes `output_bytes` into another: the
    /// streamed copy where its stores stream past the caches, as
    /// [`crate::simd::streams_past_cache`] decides for the kernels, else the copy.
    pub fn copy_writing(output_bytes: usize) -> Traffic {
        if crate::simd::streams_past_cache(output_bytes) {
            Traffic::StreamedCopy
        } else {
            Traffic::Copy
        }
    }

    /// The name a fraction line gives its ceiling.
    pub fn name(self) -> &'static str {
        match self {
            Traffic::Copy => "copy",
            Traffic::StreamedCopy => "streamed copy",
            Traffic::Update => "in-place update",
            Traffic::Read => "read",
            Traffic::Combine => "two-in-one-out",
        }
    }
}

/// The buffers of one kind of bandwidth pass over `bytes`, kept so that the pass can be run
/// again and again: eleven times in a row for a ceiling ([`copy_bandwidth_gbs`] and its
/// siblings), or once beside each of a bench's samples (`bench::Ceiling`).
///
/// The buffers start on a cache line, as the kernels' tensors do (`aligned::AlignedVec`). In a
/// `Vec` (16 bytes into a line under glibc) every vector store straddled two lines: on the Zen 4
/// VM the copy ran at 46–49 GB/s against 59–62 aligned, the update 90–97 against 102–107, the
/// read 57–58 against 60–62, and the f32 SwiGLU gate had moved 1.13–1.19 times its two-in-one-out
/// ceiling (1.00–1.04 of the aligned one); a ceiling that low had flattered every memory-bound
/// fraction.
pub struct BandwidthPass {
    traffic: Traffic,
    source: AlignedVec<f32>,
    /// The combination's second source (empty for the other kinds).
    second: AlignedVec<f32>,
    /// The destination of a copy or a combination (empty for the other kinds).
    destination: AlignedVec<f32>,
}

impl BandwidthPass {
    /// Buffers of `bytes` each (two for a copy, three for a combination) for passes of
    /// `traffic`.
    pub fn new(traffic: Traffic, bytes: usize) -> Self {
        let n = bytes / 4;
        let counting = || {
            let mut values = AlignedVec::zeroed(n);
            values.par_chunks_mut(PIECE).enumerate().for_each(|(p, c)| c.iter_mut().enumerate().for_each(|(i, v)| *v = (p * PIECE + i) as f32));
            values
        };
        let source = counting();
        let second = if traffic == Traffic::Combine { counting() } else { AlignedVec::default() };
        let destination = if matches!(traffic, Traffic::Copy | Traffic::StreamedCopy | Traffic::Combine) { AlignedVec::zeroed(n) } else { AlignedVec::default() };
        BandwidthPass { traffic, source, second, destination }
    }

    /// The kind of traffic it moves.
    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    /// Bytes one pass moves: read plus written (a buffer's bytes twice for a copy or an update,
    /// three times for a combination), read for a read.
    fn bytes_moved(&self) -> f64 {
        let bytes = (self.source.len() * 4) as f64;
        match self.traffic {
            Traffic::Copy | Traffic::StreamedCopy | Traffic::Update => 2.0 * bytes,
            Traffic::Read => bytes,
            Traffic::Combine => 3.0 * bytes,
        }
    }

    /// One pass on all of rayon's threads, timed: GB/s.
    pub fn run(&mut self) -> f64 {
        let start = Instant::now();
        match self.traffic {
            Traffic::Copy => {
                self.destination.par_chunks_mut(PIECE).zip(self.source.par_chunks(PIECE)).for_each(|(d, s)| d.copy_from_slice(s));
                black_box(&mut self.destination);
            }
            Traffic::StreamedCopy => {
                self.destination.par_chunks_mut(PIECE).zip(self.source.par_chunks(PIECE)).for_each(|(d, s)| dispatch(StreamedPiece(s), d));
                black_box(&mut self.destination);
            }
            Traffic::Update => {
                self.source.par_chunks_mut(PIECE).for_each(|c| c.iter_mut().for_each(|v| *v *= 0.999_999));
                black_box(&mut self.source);
            }
            Traffic::Read => {
                let sum: f32 = self.source.par_chunks(PIECE).map(sum_in_streams).sum();
                black_box(sum);
            }
            Traffic::Combine => {
                let sources = self.source.par_chunks(PIECE).zip(self.second.par_chunks(PIECE));
                self.destination.par_chunks_mut(PIECE).zip(sources).for_each(|(d, (a, b))| d.iter_mut().zip(a).zip(b).for_each(|((d, a), b)| *d = a + b));
                black_box(&mut self.destination);
            }
        }
        self.bytes_moved() / start.elapsed().as_secs_f64() / 1e9
    }

    /// The fastest of eleven passes after a warm-up, GB/s.
    pub fn best_of_eleven(&mut self) -> f64 {
        self.run();
        (0..11).map(|_| self.run()).fold(0.0, f64::max)
    }
}

/// Copy bandwidth in GB/s (read + write bytes) of a `bytes`-sized buffer copied by all of
/// rayon's threads; the best of eleven copies after a warm-up. Use a buffer far larger than the
/// last-level cache.
///
/// The best, as STREAM reports and as [`fma_gflops`] takes its ceiling: a ceiling is what the
/// machine can do. On a shared VM the bandwidth swings by half from one moment to the next
/// (35–70 GB/s on the 2-core machine this was written on); the median of seven had let a
/// report's RMSNorm read 124% of the copy ceiling measured a minute earlier. (The benches
/// measure their ceilings beside their samples for that reason: `bench::Ceiling`.)
///
/// Its stores are ordinary ones, as the kernels' are (they leave their outputs in the cache for
/// the next operation to read), in 256 KiB pieces: glibc's `memcpy` of pieces past its non-temporal
/// threshold (about three quarters of a thread's share of the last-level cache) streams past the
/// cache, and on the Xeon VM moved 32–39 GB/s over 1 GiB against 21–23 with ordinary stores.
pub fn copy_bandwidth_gbs(bytes: usize) -> f64 {
    BandwidthPass::new(Traffic::Copy, bytes).best_of_eleven()
}

/// As [`copy_bandwidth_gbs`], the stores streamed past the caches (non-temporal): the ceiling of
/// kernels that stream an output too large for the cache (`simd::streams_past_cache`). Ordinary
/// stores read each destination line from memory before they write it, a third more traffic
/// than the bytes counted; these do not. On the Zen 4 VM RMSNorm, streaming its output, read
/// 102–123% of the ordinary copy ceiling beside it.
pub fn streamed_copy_bandwidth_gbs(bytes: usize) -> f64 {
    BandwidthPass::new(Traffic::StreamedCopy, bytes).best_of_eleven()
}

/// One piece of the streamed copy: the source's whole vectors streamed into the destination
/// (`Simd::stream`; the buffers start on a cache line, and so does every piece), the rest stored.
struct StreamedPiece<'a>(&'a [f32]);

impl SimdKernel for StreamedPiece<'_> {
    type Output = ();
    type Scratch = [f32];

    #[inline(always)]
    fn run<V: Simd>(self, destination: &mut [f32]) {
        let whole = self.0.len() / V::LANES * V::LANES;
        for c in (0..whole).step_by(V::LANES) {
            V::load(&self.0[c..]).stream(&mut destination[c..]);
        }
        destination[whole..].copy_from_slice(&self.0[whole..]);
        stream_fence();
    }
}

/// Bandwidth in GB/s (read + write bytes) of a `bytes`-sized buffer scaled in place by all of
/// rayon's threads, measured as [`copy_bandwidth_gbs`]: the ceiling of kernels that update their
/// data where it lies (a recurrent state). On the 2-core machine this was written on it ran at
/// 125 GB/s against a copy's 78 in the same minute (probably because a copy's stores go to lines
/// not yet in the cache, which the CPU fetches first or streams past).
pub fn update_bandwidth_gbs(bytes: usize) -> f64 {
    BandwidthPass::new(Traffic::Update, bytes).best_of_eleven()
}

/// Bandwidth in GB/s of a `bytes`-sized buffer summed by all of rayon's threads, measured as
/// [`copy_bandwidth_gbs`]: the ceiling of kernels that read far more than they write (a decode
/// step over a K/V cache, a product with one row of activations). Each thread reads eight
/// parts of its piece at once, as those kernels read several rows at once: one stream per thread
/// read 15–20 GB/s on the Xeon VM where eight read 28–30, and the decode kernels had read 23–30
/// against the one-stream ceiling.
pub fn read_bandwidth_gbs(bytes: usize) -> f64 {
    BandwidthPass::new(Traffic::Read, bytes).best_of_eleven()
}

/// Bandwidth in GB/s (bytes read plus written) of two `bytes`-sized buffers summed into a third
/// by all of rayon's threads, measured as [`copy_bandwidth_gbs`]: the ceiling of kernels that
/// read two streams for each one they write (the SwiGLU gate).
pub fn combine_bandwidth_gbs(bytes: usize) -> f64 {
    BandwidthPass::new(Traffic::Combine, bytes).best_of_eleven()
}

/// Elements per task of the bandwidth passes (256 KiB), handed to the threads as they free up, so
/// that they stream neighbouring addresses as the kernels' row blocks do. A quarter of each
/// thread's share of the buffer per task (contiguous 32 MiB pieces on the 2-core Zen 4 VM) copied
/// at 24–26 GB/s in the minutes that 256 KiB pieces copied at 28–31 and RMSNorm (read one buffer,
/// write another) ran at 27–31 in the same process; the update
/// and the read ran at the same rate either way.
const PIECE: usize = 64 << 10;

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

    /// Each pass moves every element of its buffers, whatever the remainder past whole pieces:
    /// the copies (ordinary and streamed) leave the destination equal to the source, the update
    /// scales every element, the combination sums every pair, and each reports a finite,
    /// positive rate.
    #[test]
    fn the_passes_cover_their_whole_buffers() {
        let bytes = 4 * (2 * PIECE + 37);
        let mut copy = BandwidthPass::new(Traffic::Copy, bytes);
        assert!(copy.destination.iter().all(|&v| v == 0.0));
        let rate = copy.run();
        assert!(rate.is_finite() && rate > 0.0, "{rate}");
        assert_eq!(*copy.destination, *copy.source);
        assert_eq!(copy.source.len(), bytes / 4);
        assert!(copy.source.iter().enumerate().all(|(i, &v)| v == i as f32), "the source counts up");

        let mut streamed = BandwidthPass::new(Traffic::StreamedCopy, bytes);
        let rate = streamed.run();
        assert!(rate.is_finite() && rate > 0.0, "{rate}");
        assert_eq!(*streamed.destination, *streamed.source);

        let mut update = BandwidthPass::new(Traffic::Update, bytes);
        update.run();
        assert!(update.source.iter().enumerate().all(|(i, &v)| v == i as f32 * 0.999_999), "every element scaled once");
        assert!(BandwidthPass::new(Traffic::Read, bytes).best_of_eleven() > 0.0);

        let mut combine = BandwidthPass::new(Traffic::Combine, bytes);
        combine.run();
        assert!(combine.destination.iter().enumerate().all(|(i, &v)| v == 2.0 * i as f32), "every pair summed once");
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
