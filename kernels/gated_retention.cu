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
// The chunkwise kernels multiply on mma.sync (m16n8k16, f32 accumulators) with their operands
// in registers, loaded by ldmatrix: the state in the accumulators of the CTA's warps from the first
// chunk to the last (WarpState), a chunk's outputs computed by a warp per 16 tokens
// (chunk_outputs). A CTA owns a value block of BV columns of the state and outputs.
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
//   four steps chunk by chunk, carrying the state: the same WarpState and chunk_outputs, the
//   outputs by 4 of its 8 warps while every warp adds the chunk to its part of the state, and
//   its own scan of the gates. No buffer; its chain is the whole per-chunk work, so a launch
//   lasts ~chunks × that. Kept as the measured alternative and the fallback.
//
// Versions of the sequential kernel (none measured on a GPU yet: the machines they were written on
// have none; 1–6 were checked against a numpy emulation of their exact tiling and the f64
// recurrent reference, 7 and 8 on the CPU emulator, emulator/, against the f64 reference):
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
//      chunk; flash-linear-attention scans them in a kernel of their own too).
//   8. The sequential kernel on the same two pieces (it had kept the WMMA steps: f32 scores,
//      state and output staging in shared memory, one stage of tiles at D = 256): 52–187 KiB of
//      shared memory instead of 89–211 KiB, two stages at every head dim, three barriers a chunk
//      instead of five.
//
// Decode step (entries gret_step_{f32,bf16,f16}): one CTA per (head, batch, 32 value columns);
// each thread owns one column j and a quarter of the rows i, so every warp reads and writes 32
// consecutive floats of a state row: S[i][j] = γ S[i][j] + s k_i v_j, o_j = Σ_i q_i S[i][j].
// Memory-bound on the state: 8 D² bytes per head (read + write).
#include "gated_retention.h"
#include "yoco_common.cuh"

namespace {

using yoco::from_f32;
using yoco::to_f32;

constexpr int C = GRET_CHUNK;
constexpr int WARPS = GRET_THREADS / 32;

// Row strides (in elements) of the shared-memory tiles, shared by every layout below: each row
// is followed by padding.
//
// Why the padding (bank conflicts): shared memory has 32 banks of 4 bytes, so addresses 128 bytes
// apart share banks. An ldmatrix reads 8 rows × 16 bytes of a tile per phase, and every unpadded
// row is a multiple of 64 bytes long (64 at BV = 32, up to 512 at D = 256), so those 8 rows fell
// on at most 2 groups of 4 banks: 4- to 8-way conflicts on every Q, K, V and state operand. With
// 16 bytes of padding a row is an odd multiple of 16 bytes, so 8 consecutive rows start in 8
// different groups of 4 banks and cover all 32 once; the 32-bit stores of the rounded state into
// sSb (rows g and g + 8, columns 2·tig) fall on distinct banks for the same reason.
template <int D, int BV>
struct Strides {
    static constexpr int ld_qk = D + GRET_PAD_16BIT;   // sQ, sK
    static constexpr int ld_v = BV + GRET_PAD_16BIT;   // sV
    static constexpr int ld_sb = BV + GRET_PAD_16BIT;  // sSb
    // Bytes of each region (16-bit elements: the tensor-core operands are 16-bit).
    static constexpr int tile_qk = C * ld_qk * 2;  // one stage of sQ (or sK)
    static constexpr int tile_v = C * ld_v * 2;    // and of sV
    static constexpr int rounded_state = D * ld_sb * 2;
    static constexpr int gates = 2 * C * 4;        // sCum: the sums' f32 high parts, then low parts
    static constexpr int factors = 2 * C * 4;      // sFactors: key factors, then query factors
    static constexpr int record = GRET_GATE_RECORD * 4;  // sCum then sFactors: a chunk's gate record
    static_assert(record == gates + factors, "a gate record is the sums and the factors");
    // ldmatrix reads 16-byte rows: every region starts 128-aligned (each size below is a
    // multiple of 128), and fragments start at multiples of 8 elements of 16-byte-multiple rows.
    static_assert(ld_qk % 8 == 0 && ld_v % 8 == 0 && ld_sb % 8 == 0, "rows of whole 16-byte packs");
    static_assert(tile_qk % 128 == 0 && tile_v % 128 == 0 && rounded_state % 128 == 0 && record % 128 == 0,
                  "shared-memory regions must stay 128-byte aligned");
};

// Shared-memory layout of the sequential kernel, in bytes: sQ, sK [2][C][D], sV [2][C][BV] (the
// next chunk's tiles copied in while this one computes), sSb [D][BV], sCum [2][C] f32, sFactors
// [2][C] f32; the state is in registers.
template <int D, int BV>
struct SequentialLayout : Strides<D, BV> {
    using S = Strides<D, BV>;
    static constexpr int q = 0;
    static constexpr int k = q + 2 * S::tile_qk;
    static constexpr int v = k + 2 * S::tile_qk;
    static constexpr int sb = v + 2 * S::tile_v;
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
static_assert(SequentialLayout<64, 32>::bytes == 53248 && SequentialLayout<64, 64>::bytes == 65536, "see cuda.rs");
static_assert(SequentialLayout<128, 32>::bytes == 91136 && SequentialLayout<128, 64>::bytes == 107520, "see cuda.rs");
static_assert(SequentialLayout<256, 32>::bytes == 166912 && SequentialLayout<256, 64>::bytes == 191488, "see cuda.rs");
static_assert(StatesLayout<64, 32>::bytes == 30720 && StatesLayout<64, 64>::bytes == 38912, "see cuda.rs");
static_assert(StatesLayout<128, 32>::bytes == 47104 && StatesLayout<128, 64>::bytes == 55296, "see cuda.rs");
static_assert(StatesLayout<256, 32>::bytes == 79872 && StatesLayout<256, 64>::bytes == 88064, "see cuda.rs");
static_assert(OutputsLayout<64>::bytes == 37888 && OutputsLayout<128>::bytes == 63488 && OutputsLayout<256>::bytes == 114688, "see cuda.rs");

// Starts copying ROWS rows of COLS elements (whole 16-byte packs), by a block of THREADS, from
// global (row stride `stride` elements, 16-byte aligned: whole allocations, D and the value block
// multiples of 8, gate records 1 KiB apart) into shared (row stride `ld` elements) with 16-byte cp.async; rows from `valid`
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

// Starts copying a gate record into shared memory: one row of load_rows_async.
template <int THREADS>
__device__ __forceinline__ void load_record_async(float* dst, const float* src) {
    load_rows_async<1, GRET_GATE_RECORD, THREADS>(dst, 0, src, 0, 1);
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

// Steps 1–3 of one chunk for the calling warp's 16 tokens (warp w < C / 16: tokens 16w .. 16w + 15)
// and BV value columns, on mma.sync with every operand in registers. From shared memory: sQ, sK
// [C][ld_qk], sV [C][ld_v] (BV columns), sSb [D][ld_sb] (the chunk's incoming state, rounded),
// and the chunk's gate record (sCum, sFactors); only the key groups at or before the warp's
// tokens are multiplied (the others are masked to 0):
//   1. A = Q Kᵀ over keys 0 .. 16w + 15: Q's A fragments and K's B fragments by ldmatrix.
//   2. Ab = s·A·e^(b_t − b_u)·[u ≤ t] on the accumulators, rounded as the A operand of step 3
//      (attention's P).
//   3. O = Ab V + Qd Sb: Qd's fragments are Q's, read again, each pair of elements multiplied by
//      its row's e^(b_t) and rounded (from_f32(q · e^(b_t)), where chunk_simple_gla rounds).
// The outputs are stored from the accumulators, rounded, a pair of columns per 32-bit store:
// rows of `o` from `first` (token rows of a [batch, seq, heads, D] tensor), value columns v0 ..
// v0 + BV, tokens below `len` only.
template <typename T, int D, int BV>
__device__ __forceinline__ void chunk_outputs(const T* sQ, const T* sK, const T* sV, const T* sSb, const float* sCum, const float* sFactors, float scale, T* o,
                                              int64_t first, int heads, int v0, int len) {
    using S = Strides<D, BV>;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int row0 = 16 * warp;
    const T* q_row = yoco::ldmatrix_a_row(sQ + row0 * S::ld_qk, S::ld_qk);

    // Step 1 (s[2j], s[2j + 1]: keys 16j .. + 7, + 8 .. + 15).
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
            yoco::ldmatrix_x4(kb, yoco::ldmatrix_b_nk_row(sK + j * 16 * S::ld_qk + kk * 16, S::ld_qk));
            yoco::mma_m16n8k16<T>(s[2 * j], a, kb[0], kb[1]);
            yoco::mma_m16n8k16<T>(s[2 * j + 1], a, kb[2], kb[3]);
        }
    }

    // Step 2 on the accumulators: this thread's tokens t = row0 + g and row0 + g + 8 (e / 2), keys
    // u = 8·nt + 2·tig + e % 2. Masked entries are 0, not a score times 0: a later key's inf or NaN
    // must not reach earlier tokens' outputs (in the recurrence they never meet).
    const int g = lane / 4, tig = lane % 4;
    const int rows[2] = {row0 + g, row0 + g + 8};
#pragma unroll
    for (int nt = 0; nt < C / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int t = rows[e / 2], u = 8 * nt + 2 * tig + e % 2;
            s[nt][e] = u <= t ? s[nt][e] * scale * expf((sCum[t] - sCum[u]) + (sCum[C + t] - sCum[C + u])) : 0.0f;
        }
    }

    // Step 3: O = Ab V (key groups 0 .. warp) + Qd Sb.
    float acc[1][BV / 8][4];  // one m-tile (mma_kn_block's form)
#pragma unroll
    for (int nt = 0; nt < BV / 8; ++nt) acc[0][nt][0] = acc[0][nt][1] = acc[0][nt][2] = acc[0][nt][3] = 0.0f;
#pragma unroll
    for (int j = 0; j < C / 16; ++j) {
        if (j > warp) break;
        uint32_t a[1][4];
        yoco::a_from_accumulators<T>(a[0], s[2 * j], s[2 * j + 1]);  // Ab, rounded
        yoco::mma_kn_block<T, 1, BV>(acc, a, sV + j * 16 * S::ld_v, S::ld_v);
    }
    const float query_factor[2] = {sFactors[C + rows[0]], sFactors[C + rows[1]]};
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t a[1][4];
        yoco::ldmatrix_x4(a[0], q_row + kk * 16);
#pragma unroll
        for (int r = 0; r < 4; ++r) {  // a0, a2: row g; a1, a3: row g + 8
            a[0][r] = yoco::scale2<T>(a[0][r], query_factor[r % 2], query_factor[r % 2]);
        }
        yoco::mma_kn_block<T, 1, BV>(acc, a, sSb + kk * 16 * S::ld_sb, S::ld_sb);
    }

#pragma unroll
    for (int e = 0; e < 2; ++e) {
        if (rows[e] >= len) continue;
        uint32_t* out = reinterpret_cast<uint32_t*>(o + (first + static_cast<int64_t>(rows[e]) * heads) * D + v0);
#pragma unroll
        for (int nt = 0; nt < BV / 8; ++nt) out[4 * nt + tig] = yoco::pack2<T>(acc[0][nt][2 * e], acc[0][nt][2 * e + 1]);
    }
}

// A CTA's D × BV slice of the state (key dims × value dims, f32), held in its warps' mma.sync
// accumulators from the first chunk to the last. Each warp owns MT m-tiles of 16 rows and NW
// columns (D = 64: 4 row groups × 2 column halves; D = 128: 8 row groups of 16; D = 256: 8 row
// groups of 32); this thread's elements of m-tile mt, n-tile nt are rows i0 + 16mt + g (+ 8),
// columns n0 + 8nt + 2tig (+ 1) of the slice.
template <typename T, int D, int BV>
struct WarpState {
    static constexpr int row_tiles = D / 16;
    static constexpr int MT = row_tiles >= WARPS ? row_tiles / WARPS : 1;
    static constexpr int column_groups = WARPS / (row_tiles / MT);
    static constexpr int NW = BV / column_groups;
    static_assert(MT * (row_tiles / MT) == row_tiles && column_groups * (row_tiles / MT) == WARPS && NW % 16 == 0, "the warps tile the slice");

    float acc[MT][NW / 8][4];
    int i0, n0, g, tig;

    __device__ __forceinline__ WarpState() {
        const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
        i0 = warp / column_groups * 16 * MT;
        n0 = warp % column_groups * NW;
        g = lane / 4;
        tig = lane % 4;
    }

    // f(x, y, at) for each pair x, y of this thread's accumulators (acc[mt][nt][2e] and [2e + 1]),
    // `at` x's element in a matrix of row stride `ld` whose column `col0` is the slice's first.
    template <typename F>
    __device__ __forceinline__ void each_pair(int64_t ld, int col0, F&& f) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
            for (int nt = 0; nt < NW / 8; ++nt) {
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    f(acc[mt][nt][2 * e], acc[mt][nt][2 * e + 1], static_cast<int64_t>(i0 + 16 * mt + g + 8 * e) * ld + col0 + n0 + 8 * nt + 2 * tig);
                }
            }
        }
    }

    // From and to a head's [D][D] f32 state (value columns v0 ..).
    __device__ __forceinline__ void load(const float* state, int v0) {
        each_pair(D, v0, [&](float& x, float& y, int64_t at) {
            const float2 v = *reinterpret_cast<const float2*>(state + at);
            x = v.x;
            y = v.y;
        });
    }
    __device__ __forceinline__ void store(float* state, int v0) {
        each_pair(D, v0, [&](float& x, float& y, int64_t at) { *reinterpret_cast<float2*>(state + at) = make_float2(x, y); });
    }

    // The state rounded to T into `dst` (row stride ld, the slice's first column at col0: a
    // chunk's incoming state Sb), then S = e^(b_last) S.
    __device__ __forceinline__ void store_rounded_and_decay(T* dst, int64_t ld, int col0, float decay) {
        each_pair(ld, col0, [&](float& x, float& y, int64_t at) {
            *reinterpret_cast<uint32_t*>(dst + at) = yoco::pack2<T>(x, y);
            x *= decay;
            y *= decay;
        });
    }

    // S += Kdᵀ V over a chunk: K's A fragments read transposed by ldmatrix (sK [C][ld_qk]), each
    // element multiplied by its token's s·e^(b_last − b_t) (sFactors[t]) and rounded; V's B
    // fragments from sV [C][ld_v].
    __device__ __forceinline__ void add_chunk(const T* sK, const T* sV, const float* sFactors) {
        using S = Strides<D, BV>;
#pragma unroll
        for (int kk = 0; kk < C / 16; ++kk) {
            // Tokens kk·16 + 2tig, + 1 (the low and high halves of a0, a1) and + 8, + 9 (a2, a3).
            const float2 low = reinterpret_cast<const float2*>(sFactors)[kk * 8 + tig];
            const float2 high = reinterpret_cast<const float2*>(sFactors)[kk * 8 + 4 + tig];
            uint32_t a[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                yoco::ldmatrix_x4_trans(a[mt], yoco::ldmatrix_b_nk_row(sK + kk * 16 * S::ld_qk + i0 + 16 * mt, S::ld_qk));  // Kᵀ
#pragma unroll
                for (int r = 0; r < 4; ++r) {
                    const float2 factor = r < 2 ? low : high;
                    a[mt][r] = yoco::scale2<T>(a[mt][r], factor.x, factor.y);
                }
            }
            yoco::mma_kn_block<T, MT, NW>(acc, a, sV + kk * 16 * S::ld_v + n0, S::ld_v);
        }
    }
};

// The sequential schedule: one CTA per (value block, head, sequence) carries the state through
// the chunks, all four steps per chunk: the state (WarpState) written rounded to sSb and decayed,
// then warps 0–3 compute the chunk's outputs from sSb (chunk_outputs) while every warp adds the
// chunk to its part of the state. The last warp, which computes no outputs, scans each chunk's
// gates (gate_prefix) itself: no buffer.
template <typename T, int D, int BV>
__device__ void gret_chunkwise(const GretChunkParams& p) {
    using L = SequentialLayout<D, BV>;
    YOCO_DYNAMIC_SHARED(smem, 128);
    if (p.smem_bytes != L::bytes) __trap();
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
    WarpState<T, D, BV> slice;
    slice.load(state, v0);

    // The Q, K, V tiles of the chunk starting at token `start` into stage `stage` (copies started,
    // not committed).
    const auto load_tiles = [&](int start, int stage) {
        const int len = min(C, p.seq - start);
        const int64_t first = first_row(p, b, h, start);
        load_rows_async<C, D>(reinterpret_cast<T*>(smem + L::q + stage * L::tile_qk), L::ld_qk, q + first * D, row_stride, len);
        load_rows_async<C, D>(reinterpret_cast<T*>(smem + L::k + stage * L::tile_qk), L::ld_qk, k + first * D, row_stride, len);
        load_rows_async<C, BV>(reinterpret_cast<T*>(smem + L::v + stage * L::tile_v), L::ld_v, v + first * D + v0, row_stride, len);
    };

    // Pipeline: the next chunk's tiles are copied into the other stage while this chunk computes;
    // that stage was last read by the previous chunk, which every thread finished before the
    // previous chunk's last barrier, so the copy is issued only after it (top of the loop). One
    // cp.async group per chunk, committed even when empty (last chunk), so that wait_group 1
    // always means "all but the newest group — this chunk's — done"; the barrier after the wait
    // makes every thread's copies visible to all. The gates are loaded a chunk ahead into the
    // scanning warp's registers, out of the way of the copies.
    const bool scans = threadIdx.x / 32 == WARPS - 1;
    float2 gates = scans ? load_gates(p, b, h, 0) : float2{};
    load_tiles(0, 0);
    yoco::cp_async_commit();
    for (int start = 0, stage = 0; start < p.seq; start += C, stage ^= 1) {
        const int len = min(C, p.seq - start);
        if (start + C < p.seq) load_tiles(start + C, stage ^ 1);
        yoco::cp_async_commit();
        const float2 next_gates = scans ? load_gates(p, b, h, start + C) : float2{};
        const T* sQ = reinterpret_cast<const T*>(smem + L::q + stage * L::tile_qk);
        const T* sK = reinterpret_cast<const T*>(smem + L::k + stage * L::tile_qk);
        const T* sV = reinterpret_cast<const T*>(smem + L::v + stage * L::tile_v);
        if (scans) gate_prefix(sCum, sFactors, gates.x, gates.y, len, p.scale);
        gates = next_gates;
        yoco::cp_async_wait<1>();
        __syncthreads();

        slice.store_rounded_and_decay(sSb, L::ld_sb, 0, expf(sCum[C - 1]));
        __syncthreads();  // sSb complete

        static_assert(WARPS >= C / 16, "a warp per 16 tokens of the chunk for the outputs");
        if (threadIdx.x < C / 16 * 32) {
            chunk_outputs<T, D, BV>(sQ, sK, sV, sSb, sCum, sFactors, p.scale, static_cast<T*>(p.o), first_row(p, b, h, start), p.heads, v0, len);
        }
        slice.add_chunk(sK, sV, sFactors);
        __syncthreads();  // the next chunk overwrites sSb, sCum, sFactors and this stage's tiles
    }
    yoco::cp_async_wait<0>();  // the last group is empty; say so
    slice.store(state, v0);
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


// The parallel schedule's states pass: one CTA per (value block, head, sequence) walks the chunks
// with its slice of the state in registers (WarpState), writing each chunk's incoming state
// (rounded to the storage type: step 2's Sb) straight from them to p.chunk_states [batch, heads,
// chunks, D, D], then adding the chunk (steps 2 (Kd) and 4 only). Shared memory holds only the K
// and V tiles and the chunk's gate record (sums and factors, from the gate pass), two stages of
// each.
template <typename T, int D, int BV>
__device__ void gret_states(const GretChunkParams& p) {
    using L = StatesLayout<D, BV>;
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
    WarpState<T, D, BV> slice;
    slice.load(state, v0);

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

        slice.store_rounded_and_decay(chunk_states + static_cast<int64_t>(chunk) * D * D, D, v0, expf(sCum[C - 1]));
        slice.add_chunk(sK, sV, sFactors);
        __syncthreads();  // the next chunk overwrites this stage's tiles and gate record
    }
    yoco::cp_async_wait<0>();  // the last group is empty; say so
    slice.store(state, v0);
}

// The parallel schedule's outputs pass: one CTA per (value block, chunk) in blockIdx.x (value
// blocks of the same chunk adjacent, so they share its Q and K in L2) and (head, sequence) in
// blockIdx.y, a warp per 16 tokens: steps 1–3 (chunk_outputs) from the chunk's incoming state
// written by the states pass and its gate record written by the gate pass.
template <typename T, int D>
__device__ void gret_outputs(const GretChunkParams& p) {
    constexpr int BV = GRET_OUTPUTS_BLOCK_V;
    constexpr int THREADS = GRET_OUTPUTS_THREADS;
    static_assert(C == 16 * THREADS / 32, "a warp per 16 tokens of the chunk");
    using L = OutputsLayout<D>;
    YOCO_DYNAMIC_SHARED(smem, 128);
    if (p.smem_bytes != L::bytes) __trap();
    float* sCum = reinterpret_cast<float*>(smem + L::cum);
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

    load_record_async<THREADS>(sCum, gate_record(p, bh, chunks, chunk));  // sCum, then sFactors
    load_rows_async<C, D, THREADS>(reinterpret_cast<T*>(smem + L::q), L::ld_qk, static_cast<const T*>(p.q) + first * D, row_stride, len);
    load_rows_async<C, D, THREADS>(reinterpret_cast<T*>(smem + L::k), L::ld_qk, static_cast<const T*>(p.k) + first * D, row_stride, len);
    load_rows_async<C, BV, THREADS>(reinterpret_cast<T*>(smem + L::v), L::ld_v, static_cast<const T*>(p.v) + first * D + v0, row_stride, len);
    load_rows_async<D, BV, THREADS>(reinterpret_cast<T*>(smem + L::sb), L::ld_sb, incoming, D, D);
    yoco::cp_async_commit();
    yoco::cp_async_wait<0>();
    __syncthreads();

    chunk_outputs<T, D, BV>(reinterpret_cast<const T*>(smem + L::q), reinterpret_cast<const T*>(smem + L::k), reinterpret_cast<const T*>(smem + L::v),
                            reinterpret_cast<const T*>(smem + L::sb), sCum, sCum + 2 * C, p.scale, static_cast<T*>(p.o), first, p.heads, v0, len);
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
