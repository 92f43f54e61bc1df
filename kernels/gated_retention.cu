// Gated retention: chunkwise prefill on tensor cores, and the recurrent decode step.
//
//   S_n = γ_n S_{n−1} + (s·k_n)ᵀ v_n,  o_n = q_n S_n,  log γ ≤ 0, state S (D × D per head) in f32.
//
// Chunkwise prefill, chunks of GRET_CHUNK = C tokens. With b the cumsum of log γ restarted in the
// chunk (every exponent below is ≤ 0), each chunk takes four steps:
//   1. A  = s · Q Kᵀ                     (C×C, tensor cores, f32 accumulate)
//   2. Ab = A ⊙ M, M[t,u] = e^(b_t−b_u)·[u ≤ t], rounded to the storage type
//      Qd = Q ⊙ e^b,  Kd = s · K ⊙ e^(b_last − b),  Sb = S — all rounded to the storage type
//   3. O  = Ab V + Qd Sb                  (C×BV, tensor cores) → rounded, stored
//   4. S  = e^(b_last) S + Kdᵀ V          (D×BV, tensor cores, accumulated onto the f32 state)
// Those roundings are exactly where flash-linear-attention's chunk_simple_gla rounds; the tests'
// "plain" reference (reference::chunkwise_plain) rounds at the same places. The per-token factors
// e^b and s·e^(b_last − b) are computed once per token, with the gate cumsum (gate_prefix).
// The sequential kernel multiplies with the WMMA API (16×16×16 bf16/f16 fragments, f32
// accumulators, operands and results through shared memory), one output tile per warp at a time
// so that no more than one accumulator fragment is live (no spills at D = 256); the parallel
// schedule's two passes on mma.sync with their operands, and the states pass its state, in
// registers (gret_states, gret_outputs below). A CTA owns a value block of BV columns of the
// state and outputs.
//
// Two schedules of those steps, both compiled; the host picks one (ChunkSchedule in lib.rs):
// - Parallel, three kernels (flash-linear-attention's schedule): gret_gates, a warp per (chunk,
//   head, sequence), scans every chunk's gates at once into a gate record per chunk (the sums and
//   the per-token factors, 1 KiB); gret_states_{bf16,f16}_d{64,128,256}_v{32,64}, one CTA per
//   (value block, head, sequence), walks the chunks in turn doing only steps 2 (Kd) and 4, and
//   writes each chunk's incoming state Sb (rounded) to a [batch, heads, chunks, D, D] buffer;
//   then gret_outputs_{bf16,f16}_d{D}, one CTA per (value block of GRET_OUTPUTS_BLOCK_V, chunk,
//   head, sequence), all independent, does steps 1–3 from that buffer, a warp per 16 tokens of
//   the chunk. The sequential chain shrinks to the state update, and the output work (over half
//   the FLOPs and most of the elementwise work) fills the GPU however few heads there are, for
//   2·D² bytes (and a 1 KiB gate record) per chunk and head written and read back.
// - Sequential, one kernel (gret_chunkwise_*): one CTA per (value block, head, sequence) does all
//   four steps chunk by chunk, carrying the state. No buffer; its chain is the whole per-chunk
//   work, so a launch lasts ~chunks × that. Kept as the measured alternative and the fallback.
//
// Versions of the sequential kernel (none measured on a GPU yet: the machines they were written on
// have none; each was checked against a numpy emulation of its exact tiling and the f64 recurrent
// reference):
//   1. The first: unpadded shared memory, estimated (by review, from the SASS) at ~20 µs per
//      chunk on H200, mostly 8-way bank conflicts on every fragment load.
//   2. Shared-memory rows padded (Strides): conflict-free fragment and accumulator accesses, ~8×
//      fewer shared-memory wavefronts per chunk (28.7K → 3.6K fragment + 3.1K → 0.8K accumulator
//      at D = 128).
//   3. The chunk's gate cumsum by one warp's shuffle scan (gate_prefix), its loads issued before
//      the tile loads, instead of thread 0 summing 64 strided global loads in turn (~2.5 µs per
//      chunk estimated by review → one load latency, overlapped, plus ~12 shuffles).
//   4. Q/K/V tiles by 16-byte cp.async, the next chunk's into a second stage while this one
//      computes (D = 64, 128; D = 256 has no room for a second stage and copies at the top of each
//      chunk), the gates loaded a chunk ahead into registers: takes the tile-load latency (~1–2 µs
//      per chunk) off the critical path at D ≤ 128.
//   5. 256 threads instead of 128, and a narrow value block (BV = 32) besides the wide one (64),
//      taken by the host while D/32 × heads × batch CTAs fit one wave. Estimated per chunk at
//      D = 128: ~5.5 µs (v4) → ~4 µs (256 threads) → ~3.5 µs (and BV = 32), the rest mostly
//      step 2 (~4.5K instructions per sub-partition per chunk).
//   6. The per-token decay factors once per token instead of once per element (two exponentials
//      per element of Q and K before), and the parallel schedule above: at YOCO-3B's prefill span
//      (2,048 tokens, 24 heads, D = 128) the states pass is estimated at ~1 µs per chunk on its
//      chain and the outputs pass at ~6 waves of ~2.5 µs, ~50 µs per call against ~110 µs.
//   7. The parallel schedule's passes on mma.sync with register-resident fragments (ldmatrix for
//      every operand; bf16's WMMA loads were generic 32-bit loads plus MOVM transposes). Outputs:
//      the scores decayed and rounded on their accumulators, Q decayed on its fragments, no f32
//      staging in shared memory and one barrier instead of four, causal key groups skipped per
//      warp; 62 KiB of shared memory at D = 128 (3 CTAs an SM) against 89 KiB (2). States: the
//      state in the accumulators across every chunk (before, each chunk loaded and stored it
//      between shared memory and WMMA fragments), K decayed on its fragments instead of in
//      shared memory, two barriers a chunk instead of three, and the gates scanned beforehand
//      for every chunk at once (gret_gates: the chain had waited on one warp's f64 scan each
//      chunk; flash-linear-attention scans them in a kernel of their own too). The sequential
//      kernel keeps the WMMA steps and its own scan (the measured alternative).
//
// Decode step (entries gret_step_{f32,bf16,f16}): one CTA per (head, batch, 32 value columns);
// each thread owns one column j and a quarter of the rows i, so every warp reads and writes 32
// consecutive floats of a state row: S[i][j] = γ S[i][j] + s k_i v_j, o_j = Σ_i q_i S[i][j].
// Memory-bound on the state: 8 D² bytes per head (read + write).
#include <mma.h>

#include "gated_retention.h"
#include "yoco_common.cuh"

namespace {

using namespace nvcuda;
using yoco::from_f32;
using yoco::to_f32;

constexpr int C = GRET_CHUNK;
constexpr int WARPS = GRET_THREADS / 32;

// Row strides (in elements) of the shared-memory tiles, shared by every layout below: each row
// is followed by padding.
//
// Why the padding (bank conflicts): shared memory has 32 banks of 4 bytes, so addresses 128 bytes
// apart share banks. A tensor-core fragment load reads 8 rows of a tile per step — ldmatrix (the
// parallel schedule's passes, and WMMA's f16 loads: 8 rows × 16 bytes per phase) or 32-bit loads
// (WMMA's bf16 loads, which nvcc lowers to generic loads: 8 rows × 4 lanes × 4 bytes) — and every
// unpadded row is 128, 256 or 512 bytes long, so those 8 rows all landed on the same 4 banks:
// 8-way conflicts on every Q, K, V, scores and state operand. With 16 bytes of padding, row r
// starts at bank 4r (mod 32) and the 8 rows cover all 32 banks once. The sequential kernel's f32
// accumulator tiles (scores, state, output staging) are loaded and stored as 64-bit pairs,
// a half-warp (rows g..g+3 × 32 bytes) per step: 32 bytes of padding put those 4 rows on disjoint
// banks (16 would leave 2-way conflicts). Every row offset a fragment starts at is a multiple of
// 16 rows × a multiple of 16 bytes, so fragment pointers stay 256-bit aligned, and ldm stays a
// multiple of 8 (16-bit) or 4 (f32) elements as WMMA requires.
template <int D, int BV>
struct Strides {
    static constexpr int ld_qk = D + GRET_PAD_16BIT;   // sQ, sK
    static constexpr int ld_v = BV + GRET_PAD_16BIT;   // sV
    static constexpr int ld_a = C + GRET_PAD_F32;      // sA as the scores
    static constexpr int ld_o = BV + GRET_PAD_F32;     // sA as the O staging
    static constexpr int ld_ab = C + GRET_PAD_16BIT;   // sAb
    static constexpr int ld_s = BV + GRET_PAD_F32;     // sS
    static constexpr int ld_sb = BV + GRET_PAD_16BIT;  // sSb
    // Bytes of each region (16-bit elements: the tensor-core operands are 16-bit).
    static constexpr int tile_qk = C * ld_qk * 2;  // one stage of sQ (or sK)
    static constexpr int tile_v = C * ld_v * 2;    // and of sV
    static constexpr int scores = C * ld_a * 4;    // sA
    static constexpr int rounded_scores = C * ld_ab * 2;
    static constexpr int state = D * ld_s * 4;
    static constexpr int rounded_state = D * ld_sb * 2;
    static constexpr int gates = 2 * C * 4;        // sCum: the sums' f32 high parts, then low parts
    static constexpr int factors = 2 * C * 4;      // sFactors: key factors, then query factors
    static constexpr int record = GRET_GATE_RECORD * 4;  // sCum then sFactors: a chunk's gate record
    static_assert(record == gates + factors, "a gate record is the sums and the factors");
    static_assert(ld_o <= ld_a, "the O staging reuses sA");
    static_assert(ld_qk % 8 == 0 && ld_v % 8 == 0 && ld_ab % 8 == 0 && ld_sb % 8 == 0 && ld_a % 4 == 0 && ld_o % 4 == 0 && ld_s % 4 == 0,
                  "WMMA needs ldm a multiple of 16 bytes");
    // wmma::load/store_matrix_sync need 256-bit aligned pointers: every region starts 128-aligned
    // (each size below is a multiple of 128), and fragments start at 16-row multiples of a
    // 16-byte-multiple stride (and 16-column offsets).
    static_assert(tile_qk % 128 == 0 && tile_v % 128 == 0 && scores % 128 == 0 && rounded_scores % 128 == 0 && state % 128 == 0 &&
                      rounded_state % 128 == 0 && gates % 128 == 0 && factors % 128 == 0,
                  "shared-memory regions must stay 128-byte aligned");
};

// Shared-memory layout of the sequential kernel, in bytes: sQ, sK [stages][C][D], sV
// [stages][C][BV], sA [C][C] f32 (also the O staging [C][BV] f32), sAb [C][C], sS [D][BV] f32,
// sSb [D][BV], sCum [2][C] f32, sFactors [2][C] f32. Two stages of the Q/K/V tiles (the next
// chunk's copied in while this one computes) where they fit under GRET_SMEM_LIMIT (D = 64, 128),
// one where they do not (D = 256: 292 KB with two).
template <int D, int BV>
struct SequentialLayout : Strides<D, BV> {
    using S = Strides<D, BV>;
    static constexpr int rest = S::scores + S::rounded_scores + S::state + S::rounded_state + S::gates + S::factors;
    static constexpr int stages = 2 * (2 * S::tile_qk + S::tile_v) + rest <= GRET_SMEM_LIMIT ? 2 : 1;
    static constexpr int q = 0;
    static constexpr int k = q + stages * S::tile_qk;
    static constexpr int v = k + stages * S::tile_qk;
    static constexpr int a = v + stages * S::tile_v;
    static constexpr int ab = a + S::scores;
    static constexpr int s = ab + S::rounded_scores;
    static constexpr int sb = s + S::state;
    static constexpr int cum = sb + S::rounded_state;
    static constexpr int factors = cum + S::gates;
    static constexpr int bytes = factors + S::factors;
    static_assert(bytes <= GRET_SMEM_LIMIT, "more shared memory than an sm_90 CTA can have");
};

// The states pass: sK [2][C][D], sV [2][C][BV], and the chunks' gate records [2][4C] (always two
// stages); the state is in registers.
template <int D, int BV>
struct StatesLayout : Strides<D, BV> {
    using S = Strides<D, BV>;
    static constexpr int k = 0;
    static constexpr int v = k + 2 * S::tile_qk;
    static constexpr int records = v + 2 * S::tile_v;
    static constexpr int bytes = records + 2 * S::record;
    static_assert(bytes <= GRET_SMEM_LIMIT, "more shared memory than an sm_90 CTA can have");
};

// The outputs pass, one chunk per CTA (no pipeline: at D ≤ 128 two more CTAs on the SM hide the
// loads): sQ, sK [C][D], sV [C][BV], sSb [D][BV] (the chunk's incoming state, rounded by the
// states pass), sCum, sFactors (the chunk's gate record). The scores and outputs stay in
// registers.
template <int D>
struct OutputsLayout : Strides<D, GRET_OUTPUTS_BLOCK_V> {
    using S = Strides<D, GRET_OUTPUTS_BLOCK_V>;
    static constexpr int q = 0;
    static constexpr int k = q + S::tile_qk;
    static constexpr int v = k + S::tile_qk;
    static constexpr int sb = v + S::tile_v;
    static constexpr int cum = sb + S::rounded_state;
    static constexpr int factors = cum + S::gates;
    static constexpr int bytes = factors + S::factors;
    static_assert(bytes <= GRET_SMEM_LIMIT, "more shared memory than an sm_90 CTA can have");
};

// The sizes the host's smem_bytes functions must give too (their unit test pins the same
// numbers, so a change on one side only fails without a GPU as well as with one, where the kernel
// traps).
static_assert(SequentialLayout<64, 32>::bytes == 91136 && SequentialLayout<64, 64>::bytes == 111616, "see cuda.rs");
static_assert(SequentialLayout<128, 32>::bytes == 139264 && SequentialLayout<128, 64>::bytes == 172032, "see cuda.rs");
static_assert(SequentialLayout<256, 32>::bytes == 162816 && SequentialLayout<256, 64>::bytes == 216064, "see cuda.rs");
static_assert(SequentialLayout<128, 64>::stages == 2 && SequentialLayout<256, 32>::stages == 1, "see cuda.rs");
static_assert(StatesLayout<64, 32>::bytes == 30720 && StatesLayout<64, 64>::bytes == 38912, "see cuda.rs");
static_assert(StatesLayout<128, 32>::bytes == 47104 && StatesLayout<128, 64>::bytes == 55296, "see cuda.rs");
static_assert(StatesLayout<256, 32>::bytes == 79872 && StatesLayout<256, 64>::bytes == 88064, "see cuda.rs");
static_assert(OutputsLayout<64>::bytes == 37888 && OutputsLayout<128>::bytes == 63488 && OutputsLayout<256>::bytes == 114688, "see cuda.rs");

// Starts copying ROWS rows of COLS elements (a multiple of 8), by a block of THREADS, from global
// (row stride `stride` elements, 16-byte aligned: whole allocations, D and the value block
// multiples of 8) into shared (row stride `ld` elements) with 16-byte cp.async; rows from `valid`
// on are zero-filled (src-size 0, reading nothing from row 0's address). The caller commits the
// group and waits for it. The sizes are compile-time so that the loop unrolls with no division:
// it is issued on the states pass's chain once a chunk.
template <int ROWS, int COLS, int THREADS = GRET_THREADS, typename T>
__device__ __forceinline__ void load_rows_async(T* dst, int ld, const T* src, int64_t stride, int valid) {
    constexpr int N = 16 / sizeof(T);
    constexpr int PACKS_PER_ROW = COLS / N;
    static_assert(COLS % N == 0, "rows of whole 16-byte packs");
    constexpr int PACKS = ROWS * PACKS_PER_ROW;
#pragma unroll
    for (int it = 0; it < (PACKS + THREADS - 1) / THREADS; ++it) {
        const int idx = it * THREADS + static_cast<int>(threadIdx.x);
        if (PACKS % THREADS != 0 && idx >= PACKS) break;
        const int r = idx / PACKS_PER_ROW;
        const int c = idx % PACKS_PER_ROW;
        const bool in = r < valid;
        yoco::cp_async_16(dst + r * ld + c * N, src + (in ? r * stride : 0) + c * N, in);
    }
}

// Where one chunk's rows start: (sequence b, token `start`, head h) of a [batch, seq, heads, ·]
// tensor, in rows of that tensor.
__device__ __forceinline__ int64_t first_row(const GretChunkParams& p, int b, int h, int start) {
    return (static_cast<int64_t>(b) * p.seq + start) * p.heads + h;
}

// Chunk `chunk`'s gate record in p.chunk_gates ([batch, heads, chunks, GRET_GATE_RECORD] f32), of
// the (sequence, head) pair bh = b · heads + h.
__device__ __forceinline__ float* gate_record(const GretChunkParams& p, int64_t bh, int chunks, int chunk) {
    return p.chunk_gates + (bh * chunks + chunk) * GRET_GATE_RECORD;
}

// Starts copying a gate record into shared memory (16-byte cp.async by a block of THREADS; the
// caller commits the group and waits for it).
template <int THREADS>
__device__ __forceinline__ void load_record_async(float* dst, const float* src) {
    for (int idx = threadIdx.x; idx < GRET_GATE_RECORD / 4; idx += THREADS) yoco::cp_async_16(dst + 4 * idx, src + 4 * idx, true);
}

// A lane's two gates of the chunk starting at token `start` (tokens start + 2·lane and
// start + 2·lane + 1; 0 past the chunk's end and past the sequence), for gate_prefix.
__device__ __forceinline__ float2 load_gates(const GretChunkParams& p, int b, int h, int start) {
    float2 g = make_float2(0.0f, 0.0f);
    if (start >= p.seq) return g;
    const int len = min(C, p.seq - start), t0 = 2 * (threadIdx.x % 32);
    const int64_t first = first_row(p, b, h, start);
    // Floored (GRET_GATE_FLOOR_MAGNITUDE): a decay below it is 0 in f32 anyway, and the floor
    // keeps the cumsum finite where a gate near −FLT_MAX would take it to −inf (then NaN). Not
    // fmaxf, which would turn a NaN gate into the floor: a NaN must still reach the outputs.
    const float floor = -static_cast<float>(GRET_GATE_FLOOR_MAGNITUDE);
    if (t0 < len) {
        const float g0 = p.log_decay[first + static_cast<int64_t>(t0) * p.heads];
        g.x = g0 < floor ? floor : g0;
    }
    if (t0 + 1 < len) {
        const float g1 = p.log_decay[first + static_cast<int64_t>(t0 + 1) * p.heads];
        g.y = g1 < floor ? floor : g1;
    }
    return g;
}

// By one warp: the inclusive cumsum b of a chunk's C = 64 gates into sCum, and the per-token
// factors into sFactors: s·e^(b_last − b_t) (keys) in [0, C), e^(b_t) (queries) in [C, 2C)
// (shared memory in the sequential kernel; a gate record in global memory in the gate pass).
// Lane l holds the gates g0, g1 of tokens 2l and 2l + 1 (0 past `len`) and writes entries 2l and
// 2l + 1. A shuffle scan over the pair sums, then the sum before the pair plus g0.
//
// Summed in f64 and stored as two floats, b = hi + lo (hi in [0, C), lo in [C, 2C)): step 2's
// exponents b_t − b_u are taken as (hi_t − hi_u) + (lo_t − lo_u), as exact as the f64 difference.
// An f32 sum would keep only ~2⁻¹¹ of b's digits once floored gates (GRET_GATE_FLOOR_MAGNITUDE)
// have taken it to the thousands, and every later decay inside the chunk would be that far off
// (the check's Gates::Floored case: f16 state errors twice the plain implementation's).
//
// Summed in tree order rather than token order, the prefix sums can rise by an ulp where gates
// are ~0; a running minimum makes the sequence non-increasing again, as the exact one is, so that
// every exponent the chunk takes (b_t − b_u for u ≤ t, b_last − b_t, b_t) stays ≤ 0. It moves no
// value by more than that rounding. Tokens past `len` get exactly b_{len−1}, so the last entry
// is b_last as in the sequential sum.
__device__ __forceinline__ void gate_prefix(float* sCum, float* sFactors, float g0, float g1, int len, float scale) {
    static_assert(C == 64, "two gates per lane of one warp");
    constexpr unsigned all = 0xffffffffu;
    const int lane = threadIdx.x % 32;
    double pair = static_cast<double>(g0) + g1;
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
        const double other = __shfl_up_sync(all, pair, offset);
        if (lane >= offset) pair += other;
    }
    double before = __shfl_up_sync(all, pair, 1);  // the sum through token 2l − 1
    if (lane == 0) before = 0.0;
    double c0 = before + g0;
    double c1 = fmin(pair, c0);
    double running = c1;  // min over this lane's and the earlier lanes' values
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
        const double other = __shfl_up_sync(all, running, offset);
        if (lane >= offset) running = fmin(running, other);
    }
    double earlier = __shfl_up_sync(all, running, 1);
    if (lane == 0) earlier = 0.0;  // every sum is ≤ 0
    c0 = fmin(c0, earlier);
    c1 = fmin(c1, c0);
    const int last = len - 1;
    const double b_last = __shfl_sync(all, (last & 1) ? c1 : c0, last >> 1);
    if (2 * lane >= len) c0 = b_last;
    if (2 * lane + 1 >= len) c1 = b_last;
    const float2 hi = make_float2(static_cast<float>(c0), static_cast<float>(c1));
    reinterpret_cast<float2*>(sCum)[lane] = hi;
    reinterpret_cast<float2*>(sCum + C)[lane] = make_float2(static_cast<float>(c0 - hi.x), static_cast<float>(c1 - hi.y));
    reinterpret_cast<float2*>(sFactors)[lane] =
        make_float2(scale * expf(static_cast<float>(b_last - c0)), scale * expf(static_cast<float>(b_last - c1)));
    reinterpret_cast<float2*>(sFactors + C)[lane] = make_float2(expf(hi.x), expf(hi.y));
}

// acc += A · B over K (a multiple of 16) in 16×16×16 steps: A's fragments (layout LA, row stride
// lda) at a + kk · a_step, B's (layout LB, stride ldb) at b + kk · b_step, for kk = 0, 16, ….
template <typename T, typename LA, typename LB, int K>
__device__ __forceinline__ void mma_over_k(wmma::fragment<wmma::accumulator, 16, 16, 16, float>& acc, const T* a, int a_step, int lda, const T* b,
                                           int b_step, int ldb) {
    for (int kk = 0; kk < K; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, LA> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, LB> fb;
        wmma::load_matrix_sync(fa, a + kk * a_step, lda);
        wmma::load_matrix_sync(fb, b + kk * b_step, ldb);
        wmma::mma_sync(acc, fa, fb, acc);
    }
}

// Step 1, A = Q Kᵀ into sA (s is applied in step 2): warp w owns the 16×16 tiles w, w + WARPS, …
// in row-major tile order (two per warp with 8 warps).
template <typename T, int D, int BV>
__device__ __forceinline__ void chunk_scores(const T* sQ, const T* sK, float* sA) {
    using S = Strides<D, BV>;
    for (int tile = threadIdx.x / 32; tile < (C / 16) * (C / 16); tile += WARPS) {
        const int r0 = (tile / (C / 16)) * 16, c0 = (tile % (C / 16)) * 16;
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        wmma::fill_fragment(acc, 0.0f);
        mma_over_k<T, wmma::row_major, wmma::col_major, D>(acc, sQ + r0 * S::ld_qk, 1, S::ld_qk, sK + c0 * S::ld_qk, 1, S::ld_qk);  // Kᵀ
        wmma::store_matrix_sync(sA + r0 * S::ld_a + c0, acc, S::ld_a, wmma::mem_row_major);
    }
}

// Step 2 for the outputs: Ab = s·A ⊙ M and Qd = Q ⊙ e^b (in place), rounded to the storage type.
template <typename T, int D, int BV>
__device__ __forceinline__ void decay_scores_and_queries(const float* sA, T* sAb, T* sQ, const float* sCum, const float* sFactors, float scale) {
    using S = Strides<D, BV>;
    for (int idx = threadIdx.x; idx < C * C; idx += GRET_THREADS) {
        const int t = idx / C, u = idx % C;
        // Masked entries are 0, not a score times 0: a later key's inf or NaN must not reach
        // earlier tokens' outputs (in the recurrence they never meet).
        const float ab = u <= t ? sA[t * S::ld_a + u] * scale * expf((sCum[t] - sCum[u]) + (sCum[C + t] - sCum[C + u])) : 0.0f;
        sAb[t * S::ld_ab + u] = from_f32<T>(ab);
    }
    for (int idx = threadIdx.x; idx < C * D; idx += GRET_THREADS) {
        const int t = idx / D, e = t * S::ld_qk + idx % D;
        sQ[e] = from_f32<T>(to_f32(sQ[e]) * sFactors[C + t]);
    }
}

// Step 2 for the state: Kd = s · K ⊙ e^(b_last − b) in place, rounded to the storage type.
template <typename T, int D, int BV>
__device__ __forceinline__ void decay_keys(T* sK, const float* sFactors) {
    using S = Strides<D, BV>;
    for (int idx = threadIdx.x; idx < C * D; idx += GRET_THREADS) {
        const int t = idx / D, e = t * S::ld_qk + idx % D;
        sK[e] = from_f32<T>(to_f32(sK[e]) * sFactors[t]);
    }
}

// Step 3, O = Ab V + Qd Sb, into sO (f32, row stride ld_o: sA, the scores being no longer needed).
template <typename T, int D, int BV>
__device__ __forceinline__ void chunk_outputs(const T* sAb, const T* sV, const T* sQ, const T* sSb, float* sO) {
    using S = Strides<D, BV>;
    for (int tile = threadIdx.x / 32; tile < (C / 16) * (BV / 16); tile += WARPS) {
        const int r0 = (tile / (BV / 16)) * 16, c0 = (tile % (BV / 16)) * 16;
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        wmma::fill_fragment(acc, 0.0f);
        mma_over_k<T, wmma::row_major, wmma::row_major, C>(acc, sAb + r0 * S::ld_ab, 1, S::ld_ab, sV + c0, S::ld_v, S::ld_v);
        mma_over_k<T, wmma::row_major, wmma::row_major, D>(acc, sQ + r0 * S::ld_qk, 1, S::ld_qk, sSb + c0, S::ld_sb, S::ld_sb);
        wmma::store_matrix_sync(sO + r0 * S::ld_o + c0, acc, S::ld_o, wmma::mem_row_major);
    }
}

// Step 4, S = e^(b_last) S + Kdᵀ V in place on sS: each warp reads and writes only its own tiles
// of sS, and reads sK, sV, which nothing writes meanwhile.
template <typename T, int D, int BV>
__device__ __forceinline__ void update_state(float* sS, const T* sK, const T* sV, float decay) {
    using S = Strides<D, BV>;
    for (int tile = threadIdx.x / 32; tile < (D / 16) * (BV / 16); tile += WARPS) {
        const int r0 = (tile / (BV / 16)) * 16, c0 = (tile % (BV / 16)) * 16;
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        wmma::load_matrix_sync(acc, sS + r0 * S::ld_s + c0, S::ld_s, wmma::mem_row_major);
        for (int e = 0; e < acc.num_elements; ++e) acc.x[e] *= decay;
        mma_over_k<T, wmma::col_major, wmma::row_major, C>(acc, sK + r0, S::ld_qk, S::ld_qk, sV + c0, S::ld_v, S::ld_v);  // Kdᵀ
        wmma::store_matrix_sync(sS + r0 * S::ld_s + c0, acc, S::ld_s, wmma::mem_row_major);
    }
}

// The staged outputs' first `len` rows (f32, row stride ld_o) to o, rounded: value columns
// v0 .. v0 + BV of the rows starting at `first` ([batch, seq, heads, D]).
template <typename T, int D, int BV>
__device__ __forceinline__ void store_outputs(T* o, int64_t first, int heads, int v0, const float* sO, int len) {
    using S = Strides<D, BV>;
    for (int idx = threadIdx.x; idx < len * BV; idx += GRET_THREADS) {
        const int t = idx / BV, j = idx % BV;
        o[(first + static_cast<int64_t>(t) * heads) * D + v0 + j] = from_f32<T>(sO[t * S::ld_o + j]);
    }
}

// The D × BV state slice (value columns v0 ..) between global ([D][D] f32 at `state`) and sS.
template <int D, int BV>
__device__ __forceinline__ void load_state(float* sS, const float* state, int v0) {
    for (int idx = threadIdx.x; idx < D * BV; idx += GRET_THREADS) sS[(idx / BV) * Strides<D, BV>::ld_s + idx % BV] = state[(idx / BV) * D + v0 + idx % BV];
}
template <int D, int BV>
__device__ __forceinline__ void store_state(float* state, const float* sS, int v0) {
    for (int idx = threadIdx.x; idx < D * BV; idx += GRET_THREADS) state[(idx / BV) * D + v0 + idx % BV] = sS[(idx / BV) * Strides<D, BV>::ld_s + idx % BV];
}

// The sequential schedule: one CTA per (value block, head, sequence), all four steps per chunk.
template <typename T, int D, int BV>
__device__ void gret_chunkwise(const GretChunkParams& p) {
    using L = SequentialLayout<D, BV>;
    YOCO_DYNAMIC_SHARED(smem, 128);
    if (p.smem_bytes != L::bytes) __trap();  // the host's layout must be this one
    constexpr int STAGES = L::stages;
    float* sA = reinterpret_cast<float*>(smem + L::a);
    T* sAb = reinterpret_cast<T*>(smem + L::ab);
    float* sS = reinterpret_cast<float*>(smem + L::s);
    T* sSb = reinterpret_cast<T*>(smem + L::sb);
    float* sCum = reinterpret_cast<float*>(smem + L::cum);
    float* sFactors = reinterpret_cast<float*>(smem + L::factors);

    const int v0 = blockIdx.x * BV;
    const int h = blockIdx.y;
    const int b = blockIdx.z;
    const int64_t row_stride = static_cast<int64_t>(p.heads) * D;  // between tokens
    const T* q = static_cast<const T*>(p.q);
    const T* k = static_cast<const T*>(p.k);
    const T* v = static_cast<const T*>(p.v);
    float* state = p.state + (static_cast<int64_t>(b) * p.heads + h) * D * D;
    load_state<D, BV>(sS, state, v0);

    // The Q, K, V tiles of the chunk starting at token `start` into stage `stage` (copies started,
    // not committed).
    const auto load_tiles = [&](int start, int stage) {
        const int len = min(C, p.seq - start);
        const int64_t first = first_row(p, b, h, start);
        load_rows_async<C, D>(reinterpret_cast<T*>(smem + L::q + stage * L::tile_qk), L::ld_qk, q + first * D, row_stride, len);
        load_rows_async<C, D>(reinterpret_cast<T*>(smem + L::k + stage * L::tile_qk), L::ld_qk, k + first * D, row_stride, len);
        load_rows_async<C, BV>(reinterpret_cast<T*>(smem + L::v + stage * L::tile_v), L::ld_v, v + first * D + v0, row_stride, len);
    };

    // Pipeline. With two stages the next chunk's tiles are copied into the other stage while this
    // chunk computes: that stage was last read by the previous chunk's steps 1–4, which every
    // thread finished before the previous chunk's last barriers, so the copy is issued only after
    // them (top of the loop). One cp.async group per chunk, committed even when empty (last
    // chunk), so that wait_group 1 always means "all but the newest group — this chunk's — done";
    // the barrier after the wait makes every thread's copies visible to all. With one stage the
    // chunk's own tiles are copied and waited for at the top. The gates are loaded a chunk ahead
    // into registers, out of the way of the copies.
    // Warp 0 scans the gates (gate_prefix); the others load none.
    const bool scans = threadIdx.x < 32;
    float2 gates = scans ? load_gates(p, b, h, 0) : float2{};
    if (STAGES == 2) {
        load_tiles(0, 0);
        yoco::cp_async_commit();
    }
    for (int start = 0, stage = 0; start < p.seq; start += C, stage ^= STAGES - 1) {
        const int len = min(C, p.seq - start);
        if (STAGES == 2) {
            if (start + C < p.seq) load_tiles(start + C, stage ^ 1);
        } else {
            load_tiles(start, 0);
        }
        yoco::cp_async_commit();
        const float2 next_gates = scans ? load_gates(p, b, h, start + C) : float2{};
        T* sQ = reinterpret_cast<T*>(smem + L::q + stage * L::tile_qk);
        T* sK = reinterpret_cast<T*>(smem + L::k + stage * L::tile_qk);
        T* sV = reinterpret_cast<T*>(smem + L::v + stage * L::tile_v);
        if (scans) gate_prefix(sCum, sFactors, gates.x, gates.y, len, p.scale);
        gates = next_gates;
        yoco::cp_async_wait<STAGES - 1>();
        __syncthreads();

        chunk_scores<T, D, BV>(sQ, sK, sA);
        __syncthreads();

        decay_scores_and_queries<T, D, BV>(sA, sAb, sQ, sCum, sFactors, p.scale);
        decay_keys<T, D, BV>(sK, sFactors);
        for (int idx = threadIdx.x; idx < D * BV; idx += GRET_THREADS) {
            const int i = idx / BV, j = idx % BV;
            sSb[i * L::ld_sb + j] = from_f32<T>(sS[i * L::ld_s + j]);
        }
        __syncthreads();

        // Step 3 stages O in sA; step 4 reads sK, sV, sS only, none of which step 3 writes.
        chunk_outputs<T, D, BV>(sAb, sV, sQ, sSb, sA);
        update_state<T, D, BV>(sS, sK, sV, expf(sCum[C - 1]));
        __syncthreads();
        store_outputs<T, D, BV>(static_cast<T*>(p.o), first_row(p, b, h, start), p.heads, v0, sA, len);
        __syncthreads();  // the next chunk overwrites sCum, sA and (one stage) the tiles
    }
    yoco::cp_async_wait<0>();  // nothing is in flight here (the last group is empty or waited for); say so
    store_state<D, BV>(state, sS, v0);
}

// The parallel schedule's gate pass: warp w of CTA x scans chunk GATES_WARPS · x + w of (head,
// sequence) blockIdx.y (gate_prefix) into the chunk's record in p.chunk_gates, which the states
// and outputs passes copy beside their tiles. Off the states pass's chain, which walks the chunks
// in turn, and done once a chunk instead of once per CTA of the outputs pass (D / 64 of them).
__device__ void scan_gates(const GretChunkParams& p) {
    constexpr int GATES_WARPS = GRET_GATES_THREADS / 32;
    const int chunk = blockIdx.x * GATES_WARPS + threadIdx.x / 32;
    const int chunks = (p.seq + C - 1) / C;
    if (chunk >= chunks) return;  // a whole warp
    const int h = blockIdx.y % p.heads;
    const int b = blockIdx.y / p.heads;
    const int start = chunk * C;
    const float2 gates = load_gates(p, b, h, start);
    float* record = gate_record(p, static_cast<int64_t>(b) * p.heads + h, chunks, chunk);
    gate_prefix(record, record + 2 * C, gates.x, gates.y, min(C, p.seq - start), p.scale);
}

// How the states pass's warps split the D × BV state slice: each warp owns MT m-tiles of 16 rows
// (key dims) and NW columns (value dims). D = 64: 4 row groups × 2 column halves; D = 128: 8 row
// groups of 16; D = 256: 8 row groups of 32 (two m-tiles).
template <int D, int BV>
struct StateTiles {
    static constexpr int row_tiles = D / 16;
    static constexpr int MT = row_tiles >= WARPS ? row_tiles / WARPS : 1;
    static constexpr int column_groups = WARPS / (row_tiles / MT);
    static constexpr int NW = BV / column_groups;
    static_assert(MT * (row_tiles / MT) == row_tiles && column_groups * (row_tiles / MT) == WARPS && NW % 16 == 0, "the warps tile the slice");
};

// The parallel schedule's states pass: one CTA per (value block, head, sequence) walks the chunks,
// writing each chunk's incoming state (rounded to the storage type: step 2's Sb) to
// p.chunk_states [batch, heads, chunks, D, D], then doing steps 2 (Kd) and 4 only. The state stays
// in the warps' mma.sync accumulators from the first chunk to the last (StateTiles): per chunk a
// warp writes its part of the incoming state from them, scales them by e^(b_last), and adds
// Kdᵀ V, whose A fragments are K's, read transposed by ldmatrix and each element multiplied by its
// token's s·e^(b_last − b_t) and rounded (the value decay_keys stores). Shared memory holds only
// the K and V tiles and the chunk's gate record (sums and factors), two stages of each.
template <typename T, int D, int BV>
__device__ void gret_states(const GretChunkParams& p) {
    using L = StatesLayout<D, BV>;
    using Tiles = StateTiles<D, BV>;
    constexpr int MT = Tiles::MT, NW = Tiles::NW;
    YOCO_DYNAMIC_SHARED(smem, 128);
    if (p.smem_bytes != L::bytes) __trap();

    const int v0 = blockIdx.x * BV;
    const int h = blockIdx.y;
    const int b = blockIdx.z;
    const int chunks = (p.seq + C - 1) / C;
    const int64_t row_stride = static_cast<int64_t>(p.heads) * D;
    const T* k = static_cast<const T*>(p.k);
    const T* v = static_cast<const T*>(p.v);
    const int64_t bh = static_cast<int64_t>(b) * p.heads + h;
    float* state = p.state + bh * D * D;
    T* chunk_states = static_cast<T*>(p.chunk_states) + bh * chunks * D * D;

    // This warp's slice: rows (key dims) i0 .. i0 + 16·MT, columns (value dims, within the block)
    // n0 .. n0 + NW; this thread's elements of m-tile mt, n-tile nt: rows i0 + 16mt + g (+ 8),
    // columns n0 + 8nt + 2tig (+ 1).
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, tig = lane % 4;
    const int i0 = warp / Tiles::column_groups * 16 * MT;
    const int n0 = warp % Tiles::column_groups * NW;
    const auto element = [&](int mt, int e, int nt) {  // offset in a [D][D] matrix of pair e (row g or g + 8)
        return static_cast<int64_t>(i0 + 16 * mt + g + 8 * e) * D + v0 + n0 + 8 * nt + 2 * tig;
    };
    // f(mt, nt, e) for each pair of this thread's accumulators, acc[mt][nt][2e] and [2e + 1]: the
    // elements at element(mt, e, nt) and the next one.
    const auto each_pair = [&](auto&& f) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
            for (int nt = 0; nt < NW / 8; ++nt) {
#pragma unroll
                for (int e = 0; e < 2; ++e) f(mt, nt, e);
            }
        }
    };
    float acc[MT][NW / 8][4];
    each_pair([&](int mt, int nt, int e) {
        const float2 pair = *reinterpret_cast<const float2*>(state + element(mt, e, nt));
        acc[mt][nt][2 * e] = pair.x;
        acc[mt][nt][2 * e + 1] = pair.y;
    });

    // The K and V tiles and the gate record of chunk `chunk` into stage `stage` (copies started,
    // not committed).
    const auto load_chunk = [&](int chunk, int stage) {
        const int start = chunk * C;
        const int len = min(C, p.seq - start);
        const int64_t first = first_row(p, b, h, start);
        load_rows_async<C, D>(reinterpret_cast<T*>(smem + L::k + stage * L::tile_qk), L::ld_qk, k + first * D, row_stride, len);
        load_rows_async<C, BV>(reinterpret_cast<T*>(smem + L::v + stage * L::tile_v), L::ld_v, v + first * D + v0, row_stride, len);
        load_record_async<GRET_THREADS>(reinterpret_cast<float*>(smem + L::records + stage * L::record), gate_record(p, bh, chunks, chunk));
    };

    // The sequential kernel's two-stage pipeline, over K, V and the gate records (the gate pass
    // scanned the gates: nothing on this chain but copies, the update and two barriers).
    load_chunk(0, 0);
    yoco::cp_async_commit();
    for (int chunk = 0, stage = 0; chunk < chunks; ++chunk, stage ^= 1) {
        if (chunk + 1 < chunks) load_chunk(chunk + 1, stage ^ 1);
        yoco::cp_async_commit();
        const T* sK = reinterpret_cast<const T*>(smem + L::k + stage * L::tile_qk);
        const T* sV = reinterpret_cast<const T*>(smem + L::v + stage * L::tile_v);
        const float* sCum = reinterpret_cast<const float*>(smem + L::records + stage * L::record);
        const float* sFactors = sCum + 2 * C;
        yoco::cp_async_wait<1>();
        __syncthreads();

        // The incoming state, rounded, then S = e^(b_last) S + Kdᵀ V.
        T* incoming = chunk_states + static_cast<int64_t>(chunk) * D * D;
        const float decay = expf(sCum[C - 1]);
        each_pair([&](int mt, int nt, int e) {
            *reinterpret_cast<uint32_t*>(incoming + element(mt, e, nt)) = yoco::pack2<T>(acc[mt][nt][2 * e], acc[mt][nt][2 * e + 1]);
            acc[mt][nt][2 * e] *= decay;
            acc[mt][nt][2 * e + 1] *= decay;
        });
#pragma unroll
        for (int kk = 0; kk < C / 16; ++kk) {
            // Tokens kk·16 + 2tig, + 1 (the low and high halves of a0, a1) and + 8, + 9 (a2, a3).
            const float2 low = reinterpret_cast<const float2*>(sFactors)[kk * 8 + tig];
            const float2 high = reinterpret_cast<const float2*>(sFactors)[kk * 8 + 4 + tig];
            uint32_t a[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                yoco::ldmatrix_x4_trans(a[mt], yoco::ldmatrix_b_nk_row(sK + kk * 16 * L::ld_qk + i0 + 16 * mt, L::ld_qk));  // Kᵀ
#pragma unroll
                for (int r = 0; r < 4; ++r) {
                    const float2 factor = r < 2 ? low : high;
                    const float2 pair = yoco::unpack2<T>(a[mt][r]);
                    a[mt][r] = yoco::pack2<T>(pair.x * factor.x, pair.y * factor.y);
                }
            }
            yoco::mma_kn_block<T, MT, NW>(acc, a, sV + kk * 16 * L::ld_v + n0, L::ld_v);
        }
        __syncthreads();  // the next chunk overwrites sCum, sFactors and this stage's tiles
    }
    yoco::cp_async_wait<0>();  // the last group is empty; say so
    each_pair([&](int mt, int nt, int e) {
        *reinterpret_cast<float2*>(state + element(mt, e, nt)) = make_float2(acc[mt][nt][2 * e], acc[mt][nt][2 * e + 1]);
    });
}

// The parallel schedule's outputs pass: one CTA per (value block, chunk) in blockIdx.x (value
// blocks of the same chunk adjacent, so they share its Q and K in L2) and (head, sequence) in
// blockIdx.y, steps 1–3 from the chunk's incoming state written by the states pass, on mma.sync
// with every operand in registers (unlike the WMMA steps above, which pass the scores and the
// outputs through shared memory in f32 and decay Q there element by element). Warp w owns the
// chunk's rows 16w .. 16w + 15, so a warp's scores are C fragments it turns into Ab's A fragments
// itself (attention's P), and only the key groups at or before its rows are multiplied (the
// others are masked to 0):
//   1. A = Q Kᵀ over keys 0 .. 16w + 15: Q's A fragments and K's B fragments by ldmatrix.
//   2. Ab = s·A·e^(b_t − b_u)·[u ≤ t] on the accumulators, rounded as the A operand of step 3.
//   3. O = Ab V + Qd Sb: Qd's fragments are Q's, read again, each pair of elements multiplied by
//      its row's e^(b_t) and rounded — the same value as the WMMA form's from_f32(q · e^(b_t)).
// Outputs are stored from the accumulators, rounded, a pair of columns per 32-bit store.
template <typename T, int D>
__device__ void gret_outputs(const GretChunkParams& p) {
    constexpr int BV = GRET_OUTPUTS_BLOCK_V;
    static_assert(C == 16 * GRET_OUTPUTS_THREADS / 32, "a warp per 16 rows of the chunk");
    using L = OutputsLayout<D>;
    YOCO_DYNAMIC_SHARED(smem, 128);
    if (p.smem_bytes != L::bytes) __trap();
    const T* sQ = reinterpret_cast<const T*>(smem + L::q);
    const T* sK = reinterpret_cast<const T*>(smem + L::k);
    const T* sV = reinterpret_cast<const T*>(smem + L::v);
    const T* sSb = reinterpret_cast<const T*>(smem + L::sb);
    float* sCum = reinterpret_cast<float*>(smem + L::cum);
    const float* sFactors = reinterpret_cast<const float*>(smem + L::factors);
    static_assert(L::factors == L::cum + L::gates, "the gate record is copied whole");

    constexpr int blocks_v = D / BV;
    const int chunk = blockIdx.x / blocks_v;
    const int v0 = (blockIdx.x % blocks_v) * BV;
    const int h = blockIdx.y % p.heads;
    const int b = blockIdx.y / p.heads;
    const int chunks = (p.seq + C - 1) / C;
    const int start = chunk * C;
    const int len = min(C, p.seq - start);
    const int64_t row_stride = static_cast<int64_t>(p.heads) * D;
    const int64_t first = first_row(p, b, h, start);
    const int64_t bh = static_cast<int64_t>(b) * p.heads + h;
    const T* incoming = static_cast<const T*>(p.chunk_states) + (bh * chunks + chunk) * D * D + v0;

    constexpr int THREADS = GRET_OUTPUTS_THREADS;
    load_record_async<THREADS>(sCum, gate_record(p, bh, chunks, chunk));  // sCum, then sFactors
    load_rows_async<C, D, THREADS>(reinterpret_cast<T*>(smem + L::q), L::ld_qk, static_cast<const T*>(p.q) + first * D, row_stride, len);
    load_rows_async<C, D, THREADS>(reinterpret_cast<T*>(smem + L::k), L::ld_qk, static_cast<const T*>(p.k) + first * D, row_stride, len);
    load_rows_async<C, BV, THREADS>(reinterpret_cast<T*>(smem + L::v), L::ld_v, static_cast<const T*>(p.v) + first * D + v0, row_stride, len);
    load_rows_async<D, BV, THREADS>(reinterpret_cast<T*>(smem + L::sb), L::ld_sb, incoming, D, D);
    yoco::cp_async_commit();
    yoco::cp_async_wait<0>();
    __syncthreads();

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int row0 = 16 * warp;
    const T* q_row = yoco::ldmatrix_a_row(sQ + row0 * L::ld_qk, L::ld_qk);

    // Step 1: A = Q Kᵀ, key groups 0 .. warp (16 keys each; s[2j], s[2j + 1]: keys 16j .. + 7, + 8 .. + 15).
    float s[C / 8][4];
#pragma unroll
    for (int nt = 0; nt < C / 8; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t a[4];
        yoco::ldmatrix_x4(a, q_row + kk * 16);
#pragma unroll
        for (int j = 0; j < C / 16; ++j) {
            if (j > warp) break;  // warp-uniform
            uint32_t kb[4];
            yoco::ldmatrix_x4(kb, yoco::ldmatrix_b_nk_row(sK + j * 16 * L::ld_qk + kk * 16, L::ld_qk));
            yoco::mma_m16n8k16<T>(s[2 * j], a, kb[0], kb[1]);
            yoco::mma_m16n8k16<T>(s[2 * j + 1], a, kb[2], kb[3]);
        }
    }

    // Step 2 on the accumulators: this thread's rows t = row0 + g and row0 + g + 8 (e / 2), keys
    // u = 8·nt + 2·tig + e % 2.
    const int g = lane / 4, tig = lane % 4;
    const int rows[2] = {row0 + g, row0 + g + 8};
#pragma unroll
    for (int nt = 0; nt < C / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int t = rows[e / 2], u = 8 * nt + 2 * tig + e % 2;
            // Masked entries are 0, not a score times 0 (see decay_scores_and_queries).
            s[nt][e] = u <= t ? s[nt][e] * p.scale * expf((sCum[t] - sCum[u]) + (sCum[C + t] - sCum[C + u])) : 0.0f;
        }
    }

    // Step 3: O = Ab V (key groups 0 .. warp) + Qd Sb.
    float o[1][BV / 8][4];  // one m-tile (mma_kn_block's form)
#pragma unroll
    for (int nt = 0; nt < BV / 8; ++nt) o[0][nt][0] = o[0][nt][1] = o[0][nt][2] = o[0][nt][3] = 0.0f;
#pragma unroll
    for (int j = 0; j < C / 16; ++j) {
        if (j > warp) break;
        uint32_t a[1][4];
        yoco::a_from_accumulators<T>(a[0], s[2 * j], s[2 * j + 1]);  // Ab, rounded
        yoco::mma_kn_block<T, 1, BV>(o, a, sV + j * 16 * L::ld_v, L::ld_v);
    }
    const float query_factor[2] = {sFactors[C + rows[0]], sFactors[C + rows[1]]};
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t a[1][4];
        yoco::ldmatrix_x4(a[0], q_row + kk * 16);
#pragma unroll
        for (int r = 0; r < 4; ++r) {  // a0, a2: row g; a1, a3: row g + 8
            const float2 pair = yoco::unpack2<T>(a[0][r]);
            a[0][r] = yoco::pack2<T>(pair.x * query_factor[r % 2], pair.y * query_factor[r % 2]);
        }
        yoco::mma_kn_block<T, 1, BV>(o, a, sSb + kk * 16 * L::ld_sb, L::ld_sb);
    }

#pragma unroll
    for (int e = 0; e < 2; ++e) {
        if (rows[e] >= len) continue;
        uint32_t* out = reinterpret_cast<uint32_t*>(static_cast<T*>(p.o) + (first + static_cast<int64_t>(rows[e]) * p.heads) * D + v0);
#pragma unroll
        for (int nt = 0; nt < BV / 8; ++nt) out[4 * nt + tig] = yoco::pack2<T>(o[0][nt][2 * e], o[0][nt][2 * e + 1]);
    }
}

template <typename T, int D>
__device__ void gret_step(const GretStepParams& p) {
    __shared__ float partial[GRET_STEP_THREADS / 32][32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int bh = blockIdx.x;  // b * heads + h: with one token, also the row of q, k, v, o
    const int j = blockIdx.y * GRET_STEP_COLUMNS + lane;
    const T* q = static_cast<const T*>(p.q) + static_cast<int64_t>(bh) * D;
    const T* k = static_cast<const T*>(p.k) + static_cast<int64_t>(bh) * D;
    const T* v = static_cast<const T*>(p.v) + static_cast<int64_t>(bh) * D;
    float* s = p.state + static_cast<int64_t>(bh) * D * D;
    const float gamma = expf(p.log_decay[bh]);
    const float vj = to_f32(v[j]);
    float acc = 0.0f;
    for (int i = warp; i < D; i += GRET_STEP_THREADS / 32) {
        const float updated = fmaf(gamma, s[i * D + j], p.scale * to_f32(k[i]) * vj);
        s[i * D + j] = updated;
        acc = fmaf(to_f32(q[i]), updated, acc);
    }
    partial[warp][lane] = acc;
    __syncthreads();
    if (warp == 0) {
        float sum = 0.0f;
#pragma unroll
        for (int w = 0; w < GRET_STEP_THREADS / 32; ++w) sum += partial[w][lane];
        static_cast<T*>(p.o)[static_cast<int64_t>(bh) * D + j] = from_f32<T>(sum);
    }
}

}  // namespace

// One entry per dtype, head dim and value block; `kind` is chunkwise (sequential) or states (the
// parallel schedule's second pass), GRET_THREADS each, one CTA per SM's worth of work (they walk
// the chunks). The outputs pass (one value block, GRET_OUTPUTS_BLOCK_V; GRET_OUTPUTS_THREADS) asks
// for three CTAs per SM at D ≤ 128 (≤ 62 KiB of shared memory each) and two at D = 256 (112 KiB),
// so that the CTAs' loads overlap the others' products.
#define YOCO_GRET_PREFILL(kind, suffix, T, D, BV, name_tail)                                                  \
    extern "C" __global__ void __launch_bounds__(GRET_THREADS, 1) gret_##kind##_##suffix##_d##D##name_tail(const GretChunkParams p) { \
        gret_##kind<T, D, BV>(p);                                                                          \
    }
#define YOCO_GRET_OUTPUTS(suffix, T, D)                                                                    \
    extern "C" __global__ void __launch_bounds__(GRET_OUTPUTS_THREADS, D <= 128 ? 3 : 2) gret_outputs_##suffix##_d##D(const GretChunkParams p) { \
        gret_outputs<T, D>(p);                                                                             \
    }
extern "C" __global__ void __launch_bounds__(GRET_GATES_THREADS) gret_gates(const GretChunkParams p) { scan_gates(p); }
#define YOCO_GRET_STEP(suffix, T, D)                                                                       \
    extern "C" __global__ void __launch_bounds__(GRET_STEP_THREADS) gret_step_##suffix##_d##D(const GretStepParams p) { \
        gret_step<T, D>(p);                                                                                \
    }
// Every value block of the sequential kernel and the states pass (the names carry the widths,
// GRET_BLOCK_V_NARROW and _WIDE, which must be literal there), and the outputs pass.
static_assert(GRET_BLOCK_V_NARROW == 32 && GRET_BLOCK_V_WIDE == 64, "entry names below");
#define YOCO_GRET_DTYPE_DIM(suffix, T, D)                 \
    YOCO_GRET_PREFILL(chunkwise, suffix, T, D, 32, _v32)   \
    YOCO_GRET_PREFILL(chunkwise, suffix, T, D, 64, _v64)   \
    YOCO_GRET_PREFILL(states, suffix, T, D, 32, _v32)      \
    YOCO_GRET_PREFILL(states, suffix, T, D, 64, _v64)      \
    YOCO_GRET_OUTPUTS(suffix, T, D)
YOCO_GRET_DTYPE_DIM(bf16, __nv_bfloat16, 64)
YOCO_GRET_DTYPE_DIM(bf16, __nv_bfloat16, 128)
YOCO_GRET_DTYPE_DIM(bf16, __nv_bfloat16, 256)
YOCO_GRET_DTYPE_DIM(f16, __half, 64)
YOCO_GRET_DTYPE_DIM(f16, __half, 128)
YOCO_GRET_DTYPE_DIM(f16, __half, 256)
YOCO_GRET_STEP(f32, float, 64)
YOCO_GRET_STEP(f32, float, 128)
YOCO_GRET_STEP(f32, float, 256)
YOCO_GRET_STEP(bf16, __nv_bfloat16, 64)
YOCO_GRET_STEP(bf16, __nv_bfloat16, 128)
YOCO_GRET_STEP(bf16, __nv_bfloat16, 256)
YOCO_GRET_STEP(f16, __half, 64)
YOCO_GRET_STEP(f16, __half, 128)
YOCO_GRET_STEP(f16, __half, 256)
