// Gated retention: chunkwise prefill on tensor cores, and the recurrent decode step.
//
//   S_n = γ_n S_{n−1} + (s·k_n)ᵀ v_n,  o_n = q_n S_n,  log γ ≤ 0, state S (D × D per head) in f32.
//
// Chunkwise prefill (entries gret_chunkwise_{bf16,f16}_d{64,128,256}_v{32,64}). One CTA of
// GRET_THREADS threads per (value block of BV = 32 or 64 columns, head, batch) walks the sequence
// chunk by chunk (GRET_CHUNK tokens), carrying its D × BV slice of the state in shared memory in
// f32. Per chunk, with b the cumsum of log γ restarted in the chunk (every exponent below is ≤ 0):
//   1. A  = s · Q Kᵀ                     (C×C, tensor cores, f32 accumulate)
//   2. Ab = A ⊙ M, M[t,u] = e^(b_t−b_u)·[u ≤ t], rounded to the storage type
//      Qd = Q ⊙ e^b,  Kd = s · K ⊙ e^(b_last − b),  Sb = S — all rounded to the storage type
//   3. O  = Ab V + Qd Sb                  (C×BV, tensor cores) → rounded, stored
//   4. S  = e^(b_last) S + Kdᵀ V          (D×BV, tensor cores, accumulated onto the f32 state)
// Those roundings are exactly where flash-linear-attention's chunk_simple_gla rounds; the tests'
// "plain" reference (reference::chunkwise_plain) rounds at the same places.
// Matrix products use the WMMA API (16×16×16 bf16/f16 fragments, f32 accumulators), one output
// tile per warp at a time so that no more than one accumulator fragment is live (no spills at
// D = 256). Value-dimension split: D / BV CTAs per head each recompute A and step 2 — redundant
// work of (D/BV − 1) · (2C²D FLOPs + C² + 2CD elementwise) per chunk — which buys more CTAs on a
// problem sequential in chunks; the host takes BV = 32 while its grid fits one wave, else 64.
//
// Versions (none measured on a GPU yet: the machines they were written on have none; each was
// checked against a numpy emulation of its exact tiling and the f64 recurrent reference):
//   1. The first: unpadded shared memory, estimated (by review, from the SASS) at ~20 µs per
//      chunk on H200, mostly 8-way bank conflicts on every fragment load.
//   2. Shared-memory rows padded (Layout): conflict-free fragment and accumulator accesses, ~8×
//      fewer shared-memory wavefronts per chunk (28.7K → 3.6K fragment + 3.1K → 0.8K accumulator
//      at D = 128).
//   3. The chunk's gate cumsum by one warp's shuffle scan (gate_cumsum), its loads issued before
//      the tile loads, instead of thread 0 summing 64 strided global loads in turn (~2.5 µs per
//      chunk estimated by review → one load latency, overlapped, plus ~12 shuffles).
//   4. Q/K/V tiles by 16-byte cp.async, the next chunk's into a second stage while this one
//      computes (D = 64, 128; D = 256 has no room for a second stage and copies at the top of each
//      chunk), the gates loaded a chunk ahead into registers: takes the tile-load latency (~1–2 µs
//      per chunk) off the critical path at D ≤ 128.
//   5. 256 threads instead of 128, and a narrow value block (BV = 32) besides the wide one (64),
//      taken by the host while D/32 × heads × batch CTAs fit one wave. Each CTA walks its chunks
//      in turn, so with fewer CTAs than SMs a launch lasts one CTA's chain, and that chain was
//      latency-bound: 4 warps, one per SM sub-partition, each running a dependent chain of MMAs
//      (k-steps per warp per chunk at D = 128: 112 with 128 threads and BV = 64, 56 with 256
//      threads, 36 with 256 and BV = 32; ~35 cycles each) and the elementwise step 2 with
//      nothing to hide its latencies. Estimated per chunk at D = 128: ~5.5 µs (v4) → ~4 µs (256
//      threads) → ~3.5 µs (and BV = 32), the rest mostly step 2 (~4.5K instructions per sub-
//      partition per chunk, which neither change reduces). BV = 32 doubles the CTAs (96 at 24
//      heads, D = 128) but also the recomputed scores and step 2: past one wave that costs ~1.7×
//      the SM time of BV = 64, hence the host's choice. BV = 16 would cut only steps 3–4 further.
// A mma.sync version with register-resident fragments (and ldmatrix for bf16, whose WMMA loads
// nvcc lowers to generic 32-bit loads plus MOVM transposes) and a two-phase (states, then outputs
// in parallel over chunks) schedule are the next steps if it falls short of chunk_simple_gla.
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

// Shared-memory layout of the chunkwise kernel, in bytes, every region 128-byte aligned:
//   sQ [stages][C][D] T, sK [stages][C][D] T, sV [stages][C][BV] T, sA [C][C] f32 (also the O
//   staging [C][BV] f32), sAb [C][C] T, sS [D][BV] f32, sSb [D][BV] T, sCum [C] f32,
// each row followed by padding: `ld_*` below are the row strides in elements. Two stages of the
// Q/K/V tiles (the next chunk's copied in while this one computes) where they fit under
// GRET_SMEM_LIMIT (D = 64, 128), one where they do not (D = 256: 292 KB with two).
//
// Why the padding (bank conflicts): shared memory has 32 banks of 4 bytes, so addresses 128 bytes
// apart share banks. A tensor-core fragment load reads 8 rows of a tile per step — ldmatrix (f16:
// 8 rows × 16 bytes per phase) or 32-bit loads (bf16, which nvcc lowers to generic loads: 8 rows ×
// 4 lanes × 4 bytes) — and every unpadded row is 128, 256 or 512 bytes long, so those 8 rows all
// landed on the same 4 banks: 8-way conflicts on every Q, K, V, scores and state operand. With
// 16 bytes of padding, row r starts at bank 4r (mod 32) and the 8 rows cover all 32 banks once.
// The f32 accumulator tiles (scores, state, output staging) are loaded and stored as 64-bit pairs,
// a half-warp (rows g..g+3 × 32 bytes) per step: 32 bytes of padding put those 4 rows on disjoint
// banks (16 would leave 2-way conflicts). Every row offset a fragment starts at is a multiple of
// 16 rows × a multiple of 16 bytes, so fragment pointers stay 256-bit aligned, and ldm stays a
// multiple of 8 (16-bit) or 4 (f32) elements as WMMA requires.
template <typename T, int D, int BV>
struct Layout {
    static_assert(sizeof(T) == 2, "the tensor-core operands are 16-bit");
    static constexpr int ld_qk = D + GRET_PAD_16BIT;   // sQ, sK
    static constexpr int ld_v = BV + GRET_PAD_16BIT;   // sV
    static constexpr int ld_a = C + GRET_PAD_F32;      // sA as the scores
    static constexpr int ld_o = BV + GRET_PAD_F32;     // sA as the O staging
    static constexpr int ld_ab = C + GRET_PAD_16BIT;   // sAb
    static constexpr int ld_s = BV + GRET_PAD_F32;     // sS
    static constexpr int ld_sb = BV + GRET_PAD_16BIT;  // sSb
    static constexpr int tile_qk = C * ld_qk * 2;  // bytes of one stage of sQ (or sK)
    static constexpr int tile_v = C * ld_v * 2;    // and of sV
    static constexpr int rest = C * ld_a * 4 + C * ld_ab * 2 + D * ld_s * 4 + D * ld_sb * 2 + C * 4;
    static constexpr int stages = 2 * (2 * tile_qk + tile_v) + rest <= GRET_SMEM_LIMIT ? 2 : 1;
    static constexpr int q = 0;
    static constexpr int k = q + stages * tile_qk;
    static constexpr int v = k + stages * tile_qk;
    static constexpr int a = v + stages * tile_v;
    static constexpr int ab = a + C * ld_a * 4;
    static constexpr int s = ab + C * ld_ab * 2;
    static constexpr int sb = s + D * ld_s * 4;
    static constexpr int cum = sb + D * ld_sb * 2;
    static constexpr int bytes = cum + C * 4;
    static_assert(ld_o <= ld_a, "the O staging reuses sA");
    static_assert(ld_qk % 8 == 0 && ld_v % 8 == 0 && ld_ab % 8 == 0 && ld_sb % 8 == 0 && ld_a % 4 == 0 && ld_o % 4 == 0 && ld_s % 4 == 0,
                  "WMMA needs ldm a multiple of 16 bytes");
    // wmma::load/store_matrix_sync need 256-bit aligned pointers: every region starts 128-aligned,
    // and fragments start at 16-row multiples of a 16-byte-multiple stride (and 16-column offsets).
    static_assert(tile_qk % 128 == 0 && tile_v % 128 == 0 && k % 128 == 0 && v % 128 == 0 && a % 128 == 0 && ab % 128 == 0 && s % 128 == 0 &&
                      sb % 128 == 0 && cum % 128 == 0,
                  "shared-memory regions must stay 128-byte aligned");
    static_assert(bytes == stages * (2 * tile_qk + tile_v) + rest && bytes <= GRET_SMEM_LIMIT, "more shared memory than an sm_90 CTA can have");
};

// The sizes the host's chunkwise_smem_bytes must give too (its unit test pins the same numbers,
// so a change on one side only fails without a GPU as well as with one, where the kernel traps).
static_assert(Layout<__half, 64, 32>::bytes == 90368 && Layout<__half, 64, 64>::bytes == 110848, "see cuda.rs");
static_assert(Layout<__half, 128, 32>::bytes == 138496 && Layout<__half, 128, 64>::bytes == 171264, "see cuda.rs");
static_assert(Layout<__half, 256, 32>::bytes == 162048 && Layout<__half, 256, 64>::bytes == 215296, "see cuda.rs");
static_assert(Layout<__half, 128, 64>::stages == 2 && Layout<__half, 256, 32>::stages == 1, "see cuda.rs");

// Starts copying C rows of `cols` elements (a multiple of 8) from global (row stride `stride`
// elements, 16-byte aligned: whole allocations, D and the value block multiples of 8) into shared
// (row stride `ld` elements) with 16-byte cp.async; rows from `valid` on are zero-filled (src-size
// 0, reading nothing from row 0's address). The caller commits the group and waits for it.
template <typename T>
__device__ __forceinline__ void load_rows_async(T* dst, int ld, const T* src, int64_t stride, int cols, int valid) {
    constexpr int N = 16 / sizeof(T);
    const int packs_per_row = cols / N;
    for (int idx = threadIdx.x; idx < C * packs_per_row; idx += GRET_THREADS) {
        const int r = idx / packs_per_row;
        const int c = idx % packs_per_row;
        const bool in = r < valid;
        yoco::cp_async_16(dst + r * ld + c * N, src + (in ? r * stride : 0) + c * N, in);
    }
}

// Inclusive cumsum of a chunk's C = 64 gates, by one warp: lane l holds the gates g0, g1 of
// tokens 2l and 2l + 1 (0 past `len`) and writes sCum[2l], sCum[2l + 1]. A shuffle scan over the
// pair sums, then the sum before the pair plus g0. Summed in tree order rather than token order,
// the prefix sums can rise by an ulp where gates are ~0 (the numpy emulation saw it in ~18% of
// random chunks); a running minimum makes the sequence non-increasing again, as the exact one is,
// so that every exponent the chunk takes (b_t − b_u for u ≤ t, b_last − b_t, b_t) stays ≤ 0. It
// moves no value by more than that rounding. Tokens past `len` get exactly b_{len−1}, so
// sCum[C − 1] = b_last as in the sequential sum.
__device__ __forceinline__ void gate_cumsum(float* sCum, float g0, float g1, int len) {
    static_assert(C == 64, "two gates per lane of one warp");
    constexpr unsigned all = 0xffffffffu;
    const int lane = threadIdx.x % 32;
    float pair = g0 + g1;
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
        const float other = __shfl_up_sync(all, pair, offset);
        if (lane >= offset) pair += other;
    }
    float before = __shfl_up_sync(all, pair, 1);  // the sum through token 2l − 1
    if (lane == 0) before = 0.0f;
    float c0 = before + g0;
    float c1 = fminf(pair, c0);
    float running = c1;  // min over this lane's and the earlier lanes' values
#pragma unroll
    for (int offset = 1; offset < 32; offset <<= 1) {
        const float other = __shfl_up_sync(all, running, offset);
        if (lane >= offset) running = fminf(running, other);
    }
    float earlier = __shfl_up_sync(all, running, 1);
    if (lane == 0) earlier = 0.0f;  // every sum is ≤ 0
    c0 = fminf(c0, earlier);
    c1 = fminf(c1, c0);
    const int last = len - 1;
    const float b_last = __shfl_sync(all, (last & 1) ? c1 : c0, last >> 1);
    if (2 * lane >= len) c0 = b_last;
    if (2 * lane + 1 >= len) c1 = b_last;
    reinterpret_cast<float2*>(sCum)[lane] = make_float2(c0, c1);
}

template <typename T, int D, int BV>
__device__ void gret_chunkwise(const GretChunkParams& p) {
    using L = Layout<T, D, BV>;
    extern __shared__ __align__(128) unsigned char smem[];
    if (p.smem_bytes != L::bytes) __trap();  // the host's layout must be this one
    constexpr int STAGES = L::stages;
    float* sA = reinterpret_cast<float*>(smem + L::a);
    T* sAb = reinterpret_cast<T*>(smem + L::ab);
    float* sS = reinterpret_cast<float*>(smem + L::s);
    T* sSb = reinterpret_cast<T*>(smem + L::sb);
    float* sCum = reinterpret_cast<float*>(smem + L::cum);

    const int v0 = blockIdx.x * BV;
    const int h = blockIdx.y;
    const int b = blockIdx.z;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t row_stride = static_cast<int64_t>(p.heads) * D;  // between tokens
    const T* q = static_cast<const T*>(p.q);
    const T* k = static_cast<const T*>(p.k);
    const T* v = static_cast<const T*>(p.v);
    T* o = static_cast<T*>(p.o);
    float* state = p.state + (static_cast<int64_t>(b) * p.heads + h) * D * D;

    for (int idx = threadIdx.x; idx < D * BV; idx += GRET_THREADS) sS[(idx / BV) * L::ld_s + idx % BV] = state[(idx / BV) * D + v0 + idx % BV];

    // load_tiles: the Q, K, V tiles of the chunk starting at token `start` into stage `stage`
    // (copies started, not committed). load_gates: warp 0's two gates of that chunk (tokens
    // 2·lane, 2·lane + 1; 0 past its end or past the sequence).
    const auto load_tiles = [&](int start, int stage) {
        const int len = min(C, p.seq - start);
        const int64_t first = (static_cast<int64_t>(b) * p.seq + start) * p.heads + h;  // (b, start, h)
        load_rows_async(reinterpret_cast<T*>(smem + L::q + stage * L::tile_qk), L::ld_qk, q + first * D, row_stride, D, len);
        load_rows_async(reinterpret_cast<T*>(smem + L::k + stage * L::tile_qk), L::ld_qk, k + first * D, row_stride, D, len);
        load_rows_async(reinterpret_cast<T*>(smem + L::v + stage * L::tile_v), L::ld_v, v + first * D + v0, row_stride, BV, len);
    };
    const auto load_gates = [&](int start) {
        float2 g = make_float2(0.0f, 0.0f);
        if (warp != 0 || start >= p.seq) return g;
        const int len = min(C, p.seq - start), t0 = 2 * lane;
        const int64_t first = (static_cast<int64_t>(b) * p.seq + start) * p.heads + h;
        if (t0 < len) g.x = p.log_decay[first + static_cast<int64_t>(t0) * p.heads];
        if (t0 + 1 < len) g.y = p.log_decay[first + static_cast<int64_t>(t0 + 1) * p.heads];
        return g;
    };

    // Pipeline. With two stages the next chunk's tiles are copied into the other stage while this
    // chunk computes: that stage was last read by the previous chunk's steps 1–4, which every
    // thread finished before the previous chunk's last barriers, so the copy is issued only after
    // them (top of the loop). One cp.async group per chunk, committed even when empty (last
    // chunk), so that wait_group 1 always means "all but the newest group — this chunk's — done";
    // the barrier after the wait makes every thread's copies visible to all. With one stage the
    // chunk's own tiles are copied and waited for at the top. The gates are loaded a chunk ahead
    // into registers, out of the way of the copies.
    float2 gates = load_gates(0);
    if (STAGES == 2) {
        load_tiles(0, 0);
        yoco::cp_async_commit();
    }
    for (int start = 0, stage = 0; start < p.seq; start += C, stage ^= STAGES - 1) {
        const int len = min(C, p.seq - start);
        const int64_t first = (static_cast<int64_t>(b) * p.seq + start) * p.heads + h;  // (b, start, h)
        if (STAGES == 2) {
            if (start + C < p.seq) load_tiles(start + C, stage ^ 1);
        } else {
            load_tiles(start, 0);
        }
        yoco::cp_async_commit();
        const float2 next_gates = load_gates(start + C);
        T* sQ = reinterpret_cast<T*>(smem + L::q + stage * L::tile_qk);
        T* sK = reinterpret_cast<T*>(smem + L::k + stage * L::tile_qk);
        T* sV = reinterpret_cast<T*>(smem + L::v + stage * L::tile_v);
        if (warp == 0) gate_cumsum(sCum, gates.x, gates.y, len);
        gates = next_gates;
        yoco::cp_async_wait<STAGES - 1>();
        __syncthreads();

        // 1. A = s · Q Kᵀ (s applied in step 2): warp w owns the 16×16 tiles w, w + WARPS, … in
        //    row-major tile order (two per warp with 8 warps).
        for (int tile = warp; tile < (C / 16) * (C / 16); tile += WARPS) {
            const int r0 = (tile / (C / 16)) * 16, c0 = (tile % (C / 16)) * 16;
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
            for (int kk = 0; kk < D; kk += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> fb;  // Kᵀ
                wmma::load_matrix_sync(fa, sQ + r0 * L::ld_qk + kk, L::ld_qk);
                wmma::load_matrix_sync(fb, sK + c0 * L::ld_qk + kk, L::ld_qk);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            wmma::store_matrix_sync(sA + r0 * L::ld_a + c0, acc, L::ld_a, wmma::mem_row_major);
        }
        __syncthreads();

        // 2. The masked, decayed scores and the decayed operands, rounded to the storage type.
        const float last = sCum[C - 1];
        for (int idx = threadIdx.x; idx < C * C; idx += GRET_THREADS) {
            const int t = idx / C, u = idx % C;
            const float m = u <= t ? expf(sCum[t] - sCum[u]) : 0.0f;
            sAb[t * L::ld_ab + u] = from_f32<T>(sA[t * L::ld_a + u] * p.scale * m);
        }
        for (int idx = threadIdx.x; idx < C * D; idx += GRET_THREADS) {
            const int t = idx / D, e = t * L::ld_qk + idx % D;
            sQ[e] = from_f32<T>(to_f32(sQ[e]) * expf(sCum[t]));
            sK[e] = from_f32<T>(to_f32(sK[e]) * (p.scale * expf(last - sCum[t])));
        }
        for (int idx = threadIdx.x; idx < D * BV; idx += GRET_THREADS) {
            const int i = idx / BV, j = idx % BV;
            sSb[i * L::ld_sb + j] = from_f32<T>(sS[i * L::ld_s + j]);
        }
        __syncthreads();

        // 3. O = Ab V + Qd Sb, staged in sA as f32 (A is no longer needed), then stored.
        for (int tile = warp; tile < (C / 16) * (BV / 16); tile += WARPS) {
            const int r0 = (tile / (BV / 16)) * 16, c0 = (tile % (BV / 16)) * 16;
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
            for (int kk = 0; kk < C; kk += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb;
                wmma::load_matrix_sync(fa, sAb + r0 * L::ld_ab + kk, L::ld_ab);
                wmma::load_matrix_sync(fb, sV + kk * L::ld_v + c0, L::ld_v);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            for (int kk = 0; kk < D; kk += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb;
                wmma::load_matrix_sync(fa, sQ + r0 * L::ld_qk + kk, L::ld_qk);
                wmma::load_matrix_sync(fb, sSb + kk * L::ld_sb + c0, L::ld_sb);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            wmma::store_matrix_sync(sA + r0 * L::ld_o + c0, acc, L::ld_o, wmma::mem_row_major);
        }
        // 4. S = e^(b_last) S + Kdᵀ V: reads sK, sV, sS only, none of which step 3 writes.
        const float decay = expf(last);
        for (int tile = warp; tile < (D / 16) * (BV / 16); tile += WARPS) {
            const int r0 = (tile / (BV / 16)) * 16, c0 = (tile % (BV / 16)) * 16;
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::load_matrix_sync(acc, sS + r0 * L::ld_s + c0, L::ld_s, wmma::mem_row_major);
            for (int e = 0; e < acc.num_elements; ++e) acc.x[e] *= decay;
            for (int kk = 0; kk < C; kk += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::col_major> fa;  // Kdᵀ
                wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb;
                wmma::load_matrix_sync(fa, sK + kk * L::ld_qk + r0, L::ld_qk);
                wmma::load_matrix_sync(fb, sV + kk * L::ld_v + c0, L::ld_v);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            wmma::store_matrix_sync(sS + r0 * L::ld_s + c0, acc, L::ld_s, wmma::mem_row_major);
        }
        __syncthreads();
        for (int idx = threadIdx.x; idx < len * BV; idx += GRET_THREADS) {
            const int t = idx / BV, j = idx % BV;
            o[(first + static_cast<int64_t>(t) * p.heads) * D + v0 + j] = from_f32<T>(sA[t * L::ld_o + j]);
        }
        __syncthreads();  // the next chunk overwrites sCum, sA and (one stage) the tiles
    }
    yoco::cp_async_wait<0>();  // nothing is in flight here (the last group is empty or waited for); say so
    for (int idx = threadIdx.x; idx < D * BV; idx += GRET_THREADS) state[(idx / BV) * D + v0 + idx % BV] = sS[(idx / BV) * L::ld_s + idx % BV];
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

#define YOCO_GRET_CHUNKWISE(suffix, T, D, BV)                                                              \
    extern "C" __global__ void __launch_bounds__(GRET_THREADS, 1) gret_chunkwise_##suffix##_d##D##_v##BV(const GretChunkParams p) { \
        gret_chunkwise<T, D, BV>(p);                                                                       \
    }
#define YOCO_GRET_STEP(suffix, T, D)                                                                       \
    extern "C" __global__ void __launch_bounds__(GRET_STEP_THREADS) gret_step_##suffix##_d##D(const GretStepParams p) { \
        gret_step<T, D>(p);                                                                                \
    }

// The value-block widths must be literal in the entry names: GRET_BLOCK_V_NARROW and _WIDE.
static_assert(GRET_BLOCK_V_NARROW == 32 && GRET_BLOCK_V_WIDE == 64, "entry names below");
YOCO_GRET_CHUNKWISE(bf16, __nv_bfloat16, 64, 32)
YOCO_GRET_CHUNKWISE(bf16, __nv_bfloat16, 64, 64)
YOCO_GRET_CHUNKWISE(bf16, __nv_bfloat16, 128, 32)
YOCO_GRET_CHUNKWISE(bf16, __nv_bfloat16, 128, 64)
YOCO_GRET_CHUNKWISE(bf16, __nv_bfloat16, 256, 32)
YOCO_GRET_CHUNKWISE(bf16, __nv_bfloat16, 256, 64)
YOCO_GRET_CHUNKWISE(f16, __half, 64, 32)
YOCO_GRET_CHUNKWISE(f16, __half, 64, 64)
YOCO_GRET_CHUNKWISE(f16, __half, 128, 32)
YOCO_GRET_CHUNKWISE(f16, __half, 128, 64)
YOCO_GRET_CHUNKWISE(f16, __half, 256, 32)
YOCO_GRET_CHUNKWISE(f16, __half, 256, 64)
YOCO_GRET_STEP(f32, float, 64)
YOCO_GRET_STEP(f32, float, 128)
YOCO_GRET_STEP(f32, float, 256)
YOCO_GRET_STEP(bf16, __nv_bfloat16, 64)
YOCO_GRET_STEP(bf16, __nv_bfloat16, 128)
YOCO_GRET_STEP(bf16, __nv_bfloat16, 256)
YOCO_GRET_STEP(f16, __half, 64)
YOCO_GRET_STEP(f16, __half, 128)
YOCO_GRET_STEP(f16, __half, 256)
