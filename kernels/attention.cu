// Attention: out = softmax(scale · Q Kᵀ + mask) V per head, GQA (query head h reads K/V head
// h / group), masks none / causal bottom-right / sliding window (kernels/include/attention.h).
// Storage bf16 or f16, f32 accumulation; head dims 64, 128, 256.
//
// Versions (all three in the library; crates/gqa/src/cuda.rs picks by shape):
//   prefill  — flash-attention-2 on tensor cores (mma.sync m16n8k16, ldmatrix, cp.async). One
//              program per (query block, head, batch): by default a 64-query block, 4 warps x 16
//              queries (also 8 x 16, 4 x 32, and 2 warpgroups of 64 on wgmma for D 64 and 128,
//              `prefill` below). Q stays in registers in the 16-query warps at D <= 128 (re-read
//              from shared memory per k-step at D = 256, whose output accumulator alone takes 128
//              registers per thread, by the 32-query warps, and by wgmma itself). K/V tiles (64 keys;
//              32 for D = 256) are double-buffered in shared memory with cp.async, K and V in
//              separate commit groups: Q Kᵀ waits only for its K tile, P·V for its V tile, and
//              each copy is issued as soon as its buffer is free (K two tiles ahead, V one), so
//              loads stream in while the tiles before them are multiplied. Online softmax in
//              exp2 units (one MUFU.EX2 each, flushing subnormals) on the f32 accumulators; O is
//              rescaled only when a row of the warp has a new max. P is rounded to the storage
//              type only as the A operand of P·V
//              (flash-attention's choice; the row sums use the unrounded P). Only key tiles that
//              intersect the block's mask are visited, and only tiles that cross a mask edge pay
//              for the per-element mask: causal costs half, a window W costs O(N·W). Programs
//              run the longest query blocks (last, under a causal mask) first.
//   decode   — split-KV (flash-decoding) for a few query rows (q_len · group <= 8) over a long
//              cache. One program per (split of the keys, K/V head, batch) takes all the query
//              rows that read that K/V head (programs of 1, 2, 3, 4 or 8 rows), so the cache is
//              read from DRAM once whatever the GQA ratio.
//              Each lane owns one 16-byte pack of the head dim; D/8 lanes share a key, and a
//              warp covers 32/(D/8) keys per step, 4 steps per iteration (2 for 8 rows). Each
//              thread's K and V packs stream into a 32 KB shared-memory ring with cp.async, 1-3
//              iterations ahead of its arithmetic (it reads back only what it copied: no
//              barrier). Every lane group keeps its own online-softmax state (exp2 units, rescale
//              skipped while the max stands, the mask only on iterations that cross an edge);
//              the block merges them and writes one partial per split. The host sizes the
//              splits from the kernel's occupancy so that the programs make whole waves.
//   decode_mma — the same split-KV decode for 9 to 16 rows on tensor cores: the rows are one
//              m16n8k16 fragment, K/V stream through the prefill's tiles, each warp takes 16 keys
//              of every 64-key tile with the prefill's online softmax, and the warps' states are
//              merged into decode_split's partials. (Before it, 9-16 rows ran as two CUDA-core
//              programs of 8 per split, estimated issue-bound at about a third of the copy
//              bandwidth; now ~2 mma per 16 keys per k-step, which leaves the loop load-bound.)
//   combine  — merges the splits of each (row, K/V head, batch): weights 2^(m_s − max) once per
//              split in shared memory, then the partial rows summed with float4 loads.
//   exact_row — the cold path of prefill and combine: a row whose f32 arithmetic overflowed
//              (scores past f32's range) is computed again in f64 by one warp, key by key.
//
// Decode, reviewed from the SASS alone (sm_90a, D = 128 bf16, 128 threads): per iteration (8
// keys per warp), 983 instructions for 4 rows at first (each V pack converted once per row, bf16
// unpacked element by element, exp2f range fix-ups); 753 after; 640 for the 3-row instantiation
// (YOCO-3B's 24 query heads over 8) at 127 registers, 4 programs per SM. Estimated at B1 128K
// H24/8 D128: 131K warp-iterations x ~600 instructions = ~75 us of issue on 132 SMs against
// ~125 us of DRAM time for the 536 MB of K and V; with 16 KB per program in flight and 4
// programs per SM (~64 KB per SM; Little's law wants ~25 KB), the kernel should be near the
// copy bandwidth. Not so for 8-16 rows: 25 instructions per (row, key) make 16 rows
// issue-bound at roughly a third of the copy bandwidth, hence decode_mma for 9-16.
//
// What was tried: this is the first version; it has been compiled (no register spills) but,
// for lack of a GPU on the development machine, not yet run: `yoco check --large --device cuda`
// validates every launch configuration against the f64 reference before anything is timed.
// Reviewed from the SASS alone (sm_90a, D = 128 bf16, one key tile with no mask): exp2 without
// range fix-ups, a fully unrolled tile loader and the skipped rescale took the loop from ~1080
// issued instructions per tile to ~480 (HMMA 128 of them); K/V in separate groups costs ~5.
// wgmma (sm_90a) for prefill: a fourth shape (prefill<..., WGMMA = true>, the entries
// attention_prefill_wgmma_*), compiled and run on the emulator, not yet on a GPU. Not tried: TMA
// loads, warp-specialised producers, or overlapping one tile's softmax with the next's products.
#include <math.h>
#include <type_traits>

#include "attention.h"
#include "yoco_common.cuh"
#include "yoco_wgmma.cuh"

namespace {

using yoco::to_f32;

// The keys query i sees: [lo, hi). Rows past q_len (padding of the last block) get ranges the
// formula gives; they are clamped to the keys that exist and their outputs are never written.
struct KeyRange {
    int lo;
    int hi;
};

__device__ __forceinline__ KeyRange key_range(const AttentionParams& p, int i) {
    if (p.mask == ATTN_MASK_NONE) return {0, p.kv_len};
    const int hi = min(i + p.kv_len - p.q_len + 1, p.kv_len);
    const int lo = p.mask == ATTN_MASK_WINDOW ? max(i + p.kv_len - p.q_len + 1 - p.window, 0) : 0;
    return {lo, hi};
}

// ---- rows whose f32 arithmetic overflows --------------------------------------------------------

// Whether a finished row must be computed again (exact_row): an output not finite, or a softmax
// sum that is not a positive finite number although the row sees keys (its largest term is 1
// otherwise; a scaled maximum past f32's range makes every term 0, or the sum ∞). Scores past
// f32's range cause both: inputs near 1e19, or a huge scale. Not caught: a score whose f32 sum
// passes −∞ on the way although the whole is the row's maximum, which then weighs 0 (products
// of both signs past f32's range; the CPU path has the same gap, crates/gqa/src/lib.rs).
__device__ __forceinline__ bool row_overflowed(bool outputs_finite, float sum, bool sees_keys) {
    return !outputs_finite || (sees_keys && !(sum > 0.0f && isfinite(sum)));
}

// Query row i of head h, batch b, computed again in f64 by the calling warp (all 32 lanes call
// it): scores scale · q·k summed in f64 from the stored values, the softmax and P·V in f64, the
// result rounded once more to T. For the rows row_overflowed flags, so that finite inputs never
// come out NaN (or 0), as on the CPU (crates/gqa/src/cpu/exact.rs). Slow — one warp walks the
// row's keys one at a time — and cold. A row with a NaN or +∞ score is NaN, as in the reference;
// the walk stops at that key. Inlined (a call's ABI made the D = 64 prefill spill at its
// 128-register bound); it runs after the row outputs are dead.
template <typename T>
__device__ __forceinline__ void exact_row(const AttentionParams& p, int b, int h, int i) {
    constexpr int PER_LANE = 256 / 32;  // largest head dim over the warp
    const int lane = threadIdx.x & 31;
    const int dim = p.head_dim;
    const int64_t q_stride = static_cast<int64_t>(p.heads) * dim;
    const int64_t kv_stride = static_cast<int64_t>(p.kv_heads) * dim;
    const T* q = static_cast<const T*>(p.q) + (static_cast<int64_t>(b) * p.q_len + i) * q_stride + static_cast<int64_t>(h) * dim;
    const int64_t kv_head = static_cast<int64_t>(h / p.group) * dim;
    const T* k = static_cast<const T*>(p.k) + b * p.kv_batch_stride + kv_head;
    const T* v = static_cast<const T*>(p.v) + b * p.kv_batch_stride + kv_head;
    double qd[PER_LANE], o[PER_LANE];
#pragma unroll
    for (int c = 0; c < PER_LANE; ++c) {
        const int d = lane + 32 * c;
        qd[c] = d < dim ? static_cast<double>(to_f32(q[d])) : 0.0;
        o[c] = 0.0;
    }
    // Online softmax in f64, whose range holds any score of f32-range inputs (|q·k| <= 256 ·
    // FLT_MAX² ≈ 3e79). A NaN or +∞ score makes the row NaN (the reference's max − max is NaN
    // there; fmax would drop a NaN): it ends the walk, at the same key in every lane, since the
    // butterfly leaves every lane the same sum.
    const KeyRange range = key_range(p, i);
    double m = -INFINITY, l = 0.0;
    bool nan = false;
    for (int j = range.lo; j < range.hi; ++j) {
        const T* kj = k + j * kv_stride;
        const T* vj = v + j * kv_stride;
        double s = 0.0;
#pragma unroll
        for (int c = 0; c < PER_LANE; ++c) {
            const int d = lane + 32 * c;
            if (d < dim) s = fma(qd[c], static_cast<double>(to_f32(kj[d])), s);
        }
#pragma unroll
        for (int offset = 16; offset > 0; offset >>= 1) s += __shfl_xor_sync(0xffffffffu, s, offset);
        s *= static_cast<double>(p.scale);
        nan = !(s < INFINITY) && s != -INFINITY;  // NaN or +∞
        if (nan) break;
        const double m_new = fmax(m, s);
        if (m_new == -INFINITY) continue;  // weight 0 so far (an input of −∞); no −∞ − −∞
        const double corr = exp(m - m_new);
        const double w = exp(s - m_new);
        l = fma(l, corr, w);
#pragma unroll
        for (int c = 0; c < PER_LANE; ++c) {
            const int d = lane + 32 * c;
            if (d < dim) o[c] = fma(o[c], corr, w * static_cast<double>(to_f32(vj[d])));
        }
        m = m_new;
    }
    T* out = static_cast<T*>(p.out) + (static_cast<int64_t>(b) * p.q_len + i) * q_stride + static_cast<int64_t>(h) * dim;
#pragma unroll
    for (int c = 0; c < PER_LANE; ++c) {
        const int d = lane + 32 * c;
        // A row that sees no key is 0, as the fast path and the reference have it.
        if (d < dim) out[d] = yoco::from_f32<T>(nan ? NAN : l > 0.0 ? static_cast<float>(o[c] / l) : 0.0f);
    }
}

// ---- prefill ----------------------------------------------------------------------------------

// Where this thread's 16-byte chunks of a tile start: row row0 + threadIdx.x / (D/8) of `base`
// (row stride `stride` elements), column (threadIdx.x % (D/8)) * 8. Callers advance it by
// ROWS * stride from one tile to the next instead of recomputing it.
template <typename T, int D>
__device__ __forceinline__ const T* tile_src(const T* base, int64_t stride, int row0) {
    constexpr int CHUNKS = D / 8;
    return base + static_cast<int64_t>(row0 + static_cast<int>(threadIdx.x) / CHUNKS) * stride + (threadIdx.x % CHUNKS) * 8;
}

// ROWS rows of D elements, rows row0 .. row0+ROWS of `base` (row stride `stride` elements; `src`
// = tile_src(base, stride, row0)), copied by the block's THREADS threads into shared memory: with
// row stride D + ATTN_SMEM_PAD (for ldmatrix), or SWIZZLED in wgmma's 128-byte-swizzled column
// blocks of 64 elements (yoco_wgmma.cuh; `smem` on a 1024-byte boundary of the shared window).
// Rows >= limit are zero-filled (keys past kv_len must weigh nothing and must not bring NaN from
// unused cache capacity into P·V), their copies reading nothing (`base` stands in as address).
template <typename T, int ROWS, int D, int THREADS, bool SWIZZLED = false>
__device__ __forceinline__ void load_tile(T* smem, const T* src, const T* base, int64_t stride, int row0, int limit) {
    constexpr int CHUNKS = D / 8;  // 16-byte chunks per row
    // A compile-time trip count, and every pass covers whole rows with the same column per
    // thread: the loop unrolls and only the row advances (by RSTEP) from one pass to the next.
    static_assert(THREADS % CHUNKS == 0 && ROWS * CHUNKS % THREADS == 0, "a tile is whole passes of whole rows");
    constexpr int RSTEP = THREADS / CHUNKS;  // rows per pass
    // Swizzled, a pass moves by whole groups of 8 rows, so each thread's chunk keeps its swizzle.
    static_assert(!SWIZZLED || RSTEP % 8 == 0, "swizzled passes of whole 8-row groups");
    constexpr int PITCH = SWIZZLED ? 64 : D + ATTN_SMEM_PAD;  // elements from one row to the next
    const int r = threadIdx.x / CHUNKS;
    const int c = threadIdx.x % CHUNKS;
    const int64_t src_step = RSTEP * stride;
    T* dst;
    if constexpr (SWIZZLED) {
        dst = smem + c / 8 * ROWS * 64 + yoco::swizzled_chunk(r, c % 8) / static_cast<int>(sizeof(T));
    } else {
        dst = smem + r * PITCH + c * 8;
    }
    if (row0 + ROWS <= limit) {  // every tile but the last: no row to check (block-uniform)
#pragma unroll
        for (int it = 0; it < ROWS / RSTEP; ++it) {
            yoco::cp_async_16(dst + it * RSTEP * PITCH, src, true);
            src += src_step;
        }
    } else {
#pragma unroll
        for (int it = 0; it < ROWS / RSTEP; ++it) {
            const bool valid = row0 + r + it * RSTEP < limit;
            yoco::cp_async_16(dst + it * RSTEP * PITCH, valid ? src : base, valid);
            src += src_step;
        }
    }
}

// The warp's Q fragment (A operand) of k-step kk: from registers (qf, loaded once) where they
// fit, else re-read from shared memory through this lane's ldmatrix row `q_frag_row`.
template <bool IN_REGS, int N, typename T>
__device__ __forceinline__ void q_fragment(uint32_t (&a)[4], const uint32_t (&qf)[N][4], const T* q_frag_row, int kk) {
    if constexpr (IN_REGS) {
        a[0] = qf[kk][0], a[1] = qf[kk][1], a[2] = qf[kk][2], a[3] = qf[kk][3];
    } else {
        yoco::ldmatrix_x4(a, q_frag_row + kk * 16);
    }
}

// S += Q Kᵀ for one k-step (head dims kk·16 .. kk·16 + 15) and the tile's keys np·16 .. np·16 + 15,
// for each of the warp's MT m-tiles of 16 query rows: a[mt] is m-tile mt's Q fragment of that
// k-step, `sK16` the first of the 16 keys' rows in shared memory; s[mt][2np] gets keys 0–7,
// s[mt][2np + 1] keys 8–15 (C fragments). One ldmatrix serves every m-tile: r0, r1 are B of keys
// 0–7 (dims 0–7, 8–15), r2, r3 of keys 8–15.
template <typename T, int D, int MT, int NT>
__device__ __forceinline__ void scores_16_keys(float (&s)[MT][NT][4], int np, const uint32_t (&a)[MT][4], const T* sK16, int kk) {
    constexpr int SMEM_STRIDE = D + ATTN_SMEM_PAD;
    uint32_t kb[4];
    yoco::ldmatrix_x4(kb, yoco::ldmatrix_b_nk_row(sK16 + kk * 16, SMEM_STRIDE));
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
        yoco::mma_m16n8k16<T>(s[mt][2 * np], a[mt], kb[0], kb[1]);
        yoco::mma_m16n8k16<T>(s[mt][2 * np + 1], a[mt], kb[2], kb[3]);
    }
}

// Online softmax over one tile of raw scores s (NT 8-key column tiles, C fragments: rows g and
// g + 8 of the warp's 16): updates the running max m (raw units) and sum l of this thread's two
// rows, rescales O where a row's max moved, and turns s into p = 2^(s·scale_log2 − base), base =
// m·scale_log2 rounded (see base_log2). A row's 8-key tiles are spread over the 4 lanes of a quad.
template <int NT, int DT>
__device__ __forceinline__ void online_softmax(float (&s)[NT][4], float (&m)[2], float (&l)[2], float (&o)[DT][4], float scale_log2) {
    float mx[2] = {m[0], m[1]};
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
        mx[0] = fmaxf(mx[0], fmaxf(s[nt][0], s[nt][1]));
        mx[1] = fmaxf(mx[1], fmaxf(s[nt][2], s[nt][3]));
    }
    float base[2], corr[2];
#pragma unroll
    for (int e = 0; e < 2; ++e) {
        mx[e] = fmaxf(mx[e], __shfl_xor_sync(0xffffffffu, mx[e], 1));
        mx[e] = fmaxf(mx[e], __shfl_xor_sync(0xffffffffu, mx[e], 2));
        // A row that has seen no visible key keeps max −∞: subtract 0, not −∞ (−∞ − −∞ = NaN).
        // base is the rounded product (no FMA contraction), so the factor between the old
        // and the new base is exactly 1 when the max has not moved (and 0 from max −∞).
        base[e] = mx[e] == -INFINITY ? 0.0f : __fmul_rn(mx[e], scale_log2);
        corr[e] = mx[e] == -INFINITY ? 1.0f : yoco::exp2_ftz(__fmul_rn(m[e], scale_log2) - base[e]);
        m[e] = mx[e];
        l[e] *= corr[e];
    }
    // Rescale O only if some row of the warp has a new max: past the first tiles the row
    // maxima rarely move, and multiplying by 1 is 2·DT·2 FMULs per thread for nothing.
    // The vote makes the branch warp-uniform.
    if (__any_sync(0xffffffffu, corr[0] != 1.0f || corr[1] != 1.0f)) {
#pragma unroll
        for (int dt = 0; dt < DT; ++dt) {
            o[dt][0] *= corr[0];
            o[dt][1] *= corr[0];
            o[dt][2] *= corr[1];
            o[dt][3] *= corr[1];
        }
    }
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) s[nt][e] = yoco::exp2_ftz(fmaf(s[nt][e], scale_log2, -base[e >> 1]));
        l[0] += s[nt][0] + s[nt][1];
        l[1] += s[nt][2] + s[nt][3];
    }
}

// O += P V for the tile's keys kk·16 .. kk·16 + 15, for each of the warp's MT m-tiles: P's C
// fragments s[mt][2kk] (keys 0–7) and s[mt][2kk + 1] (8–15) make m-tile mt's A fragment; `sV16`
// is the first of the 16 keys' rows in shared memory. One ldmatrix per 16 dims serves every m-tile.
template <typename T, int D, int MT, int NT>
__device__ __forceinline__ void accumulate_16_keys(float (&o)[MT][D / 8][4], const float (&s)[MT][NT][4], int kk, const T* sV16) {
    constexpr int SMEM_STRIDE = D + ATTN_SMEM_PAD;
    uint32_t a[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) yoco::a_from_accumulators<T>(a[mt], s[mt][2 * kk], s[mt][2 * kk + 1]);  // P rounded to T (flash-attention's choice)
    yoco::mma_kn_block<T, MT, D>(o, a, sV16, SMEM_STRIDE);
}

// The wgmma form of the two products (WGMMA entries): the warp's warpgroup (4 warps, 64 query rows
// of the program's BM) multiplies whole tiles from shared memory, swizzled (load_tile), and each
// warp gets its 16 rows in the same C fragments as the mma.sync form, so the softmax and the
// epilogue are shared. S = Q Kᵀ: KSTEPS instructions m64n{BN}k16, both operands K-major (rows of
// 128-byte column blocks; k-step kk is column block kk / 4, 32 bytes per k-step within it).
template <typename T, int D, int BN, int BM>
__device__ __forceinline__ void scores_wgmma(float (&s)[BN / 8][4], const T* sQ, const T* sK) {
    const int row0 = threadIdx.x / 128 * 64;  // the warpgroup's first row of the block's BM
    const uint32_t q = yoco::shared_address(sQ) + row0 * 128;
    const uint32_t k = yoco::shared_address(sK);
    float(&d)[BN / 2] = reinterpret_cast<float(&)[BN / 2]>(s);
    yoco::wgmma_pin(d);
    yoco::wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
        // Column block kk / 4 (rows 128 bytes apart), 32 bytes (16 elements) per k-step within it.
        const uint32_t col_block = kk / 4, within = kk % 4 * 32;
        yoco::wgmma_ss<T, BN>(d, yoco::wgmma_desc_sw128(q + col_block * BM * 128 + within, 16, 1024),
                              yoco::wgmma_desc_sw128(k + col_block * BN * 128 + within, 16, 1024));
    }
    yoco::wgmma_commit();
    yoco::wgmma_wait<0>();
    yoco::wgmma_pin(d);
}

// O += P V: BN / 16 instructions m64n{D}k16, P from registers (a_from_accumulators), V MN-major (16 keys =
// 2048 bytes of every column block per k-step; column blocks BN · 128 bytes apart).
template <typename T, int D, int BN>
__device__ __forceinline__ void accumulate_wgmma(float (&o)[D / 8][4], const float (&s)[BN / 8][4], const T* sV) {
    const uint32_t v = yoco::shared_address(sV);
    uint32_t a[BN / 16][4];
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) yoco::a_from_accumulators<T>(a[kk], s[2 * kk], s[2 * kk + 1]);
    float(&d)[D / 2] = reinterpret_cast<float(&)[D / 2]>(o);
    yoco::wgmma_pin(d);
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) yoco::wgmma_pin(a[kk]);
    yoco::wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) yoco::wgmma_rs<T, D>(d, a[kk], yoco::wgmma_desc_sw128(v + kk * 2048, BN * 128, 1024));
    yoco::wgmma_commit();
    yoco::wgmma_wait<0>();
    yoco::wgmma_pin(d);
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) yoco::wgmma_pin(a[kk]);
}

// WARPS warps of MT m-tiles of 16 query rows each: a block of BM = 16 · MT · WARPS queries shares
// every K and V tile it copies, and each of a warp's ldmatrix loads of K and V serves its MT
// m-tiles. The default entries are 4 warps × 1 (64 queries, Q's fragments held in registers),
// the wide ones 8 × 1 (128), the tall ones 4 × 2 (128; Q's fragments re-read from shared memory:
// two m-tiles' outputs and scores leave no registers for them). WGMMA: the products by
// warpgroups (scores_wgmma, accumulate_wgmma) instead of by warps, every tile swizzled.
template <typename T, int D, int BN, int WARPS, int MT, bool WGMMA = false>
__device__ __forceinline__ void prefill(const AttentionParams& p) {
    constexpr int WARP_ROWS = 16 * MT;
    constexpr int BM = WARP_ROWS * WARPS;
    constexpr int THREADS = 32 * WARPS;
    constexpr int SMEM_STRIDE = D + ATTN_SMEM_PAD;
    constexpr int TILE_ROW = WGMMA ? D : SMEM_STRIDE;  // elements a tile row takes in shared memory
    constexpr bool Q_IN_REGS = !WGMMA && MT == 1 && D <= 128;
    constexpr int KSTEPS = D / 16;  // k-steps of Q Kᵀ
    constexpr int NTILES = BN / 8;  // 8-key column tiles of S
    constexpr int DTILES = D / 8;   // 8-wide column tiles of O
    static_assert(BN % 16 == 0 && D % 16 == 0, "tile shapes");
    static_assert(!WGMMA || (MT == 1 && WARPS % 4 == 0 && BN == 64 && (D == 64 || D == 128)), "the wgmma form's shapes");

    YOCO_DYNAMIC_SHARED(smem_raw, 16);
    // The swizzled tiles start on 1024-byte boundaries of the shared window (the host adds 1 KiB).
    unsigned char* const smem = WGMMA ? smem_raw + (1024 - yoco::shared_address(smem_raw) % 1024) % 1024 : smem_raw;
    T* sQ = reinterpret_cast<T*>(smem);  // [BM][TILE_ROW]
    T* sK = sQ + BM * TILE_ROW;          // [2][BN][TILE_ROW]
    T* sV = sK + 2 * BN * TILE_ROW;      // [2][BN][TILE_ROW]

    const int m_block = gridDim.x - 1 - blockIdx.x;  // longest blocks first
    const int h = blockIdx.y;
    const int b = blockIdx.z;
    const int hk = h / p.group;
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2;
    const int tig = lane & 3;

    const int i0 = m_block * BM;
    const KeyRange first = key_range(p, i0);
    const KeyRange last = key_range(p, min(i0 + BM, p.q_len) - 1);
    const int n_begin = first.lo / BN * BN;
    const int n_tiles = (last.hi - n_begin + BN - 1) / BN;

    const int64_t q_stride = static_cast<int64_t>(p.heads) * D;
    const int64_t kv_stride = static_cast<int64_t>(p.kv_heads) * D;
    const T* q = static_cast<const T*>(p.q) + static_cast<int64_t>(b) * p.q_len * q_stride + static_cast<int64_t>(h) * D;
    const T* k = static_cast<const T*>(p.k) + b * p.kv_batch_stride + static_cast<int64_t>(hk) * D;
    const T* v = static_cast<const T*>(p.v) + b * p.kv_batch_stride + static_cast<int64_t>(hk) * D;

    // cp.async pipeline: K and V tiles go in separate commit groups, committed in the order
    // [Q K0] [V0] [K1] | per tile t: [V(t+1)] after the first barrier, [K(t+2)] after the second
    // (a group is committed even when empty, so that the counts below are the same every tile).
    // Before Q Kᵀ of tile t the three newest groups are V(t), K(t+1) and nothing newer: wait
    // until at most 2 are pending and K(t) is here. Before P·V: V(t), K(t+1), V(t+1): again 2.
    // Each copy into a buffer is issued after a barrier that every warp passes only once done
    // reading that buffer's previous tile: K(t+2) overwrites K(t) after the barrier before P·V
    // of tile t (Q Kᵀ of t is behind every warp), V(t+1) overwrites V(t-1) after the barrier
    // before Q Kᵀ of tile t (P·V of t-1 is behind every warp). So K has until Q Kᵀ of the tile
    // after next to land, V until P·V of the next tile, and Q Kᵀ of tile 0 does not wait for V0.
    // (WGMMA: "done reading" holds because scores_wgmma and accumulate_wgmma wait for their
    // products, whose shared-memory reads are asynchronous, before they return; leaving one in
    // flight across a barrier would need that barrier to come after its wait.)
    // k_src, v_src: this thread's first chunk of the next K, V tile to load.
    const int64_t tile_step = BN * kv_stride;
    const T* k_src = tile_src<T, D>(k, kv_stride, n_begin);
    const T* v_src = tile_src<T, D>(v, kv_stride, n_begin);
    load_tile<T, BM, D, THREADS, WGMMA>(sQ, tile_src<T, D>(q, q_stride, i0), q, q_stride, i0, p.q_len);
    load_tile<T, BN, D, THREADS, WGMMA>(sK, k_src, k, kv_stride, n_begin, p.kv_len);
    yoco::cp_async_commit();
    load_tile<T, BN, D, THREADS, WGMMA>(sV, v_src, v, kv_stride, n_begin, p.kv_len);
    yoco::cp_async_commit();
    k_src += tile_step;
    v_src += tile_step;
    if (n_tiles > 1) load_tile<T, BN, D, THREADS, WGMMA>(sK + BN * TILE_ROW, k_src, k, kv_stride, n_begin + BN, p.kv_len);
    yoco::cp_async_commit();
    k_src += tile_step;

    // This thread's query rows: C-fragment rows g and g + 8 of each of its warp's m-tiles.
    // (Row 2·mt + e of the thread: query row_of(mt, e).)
    const auto row_of = [&](int mt, int e) { return i0 + warp * WARP_ROWS + mt * 16 + g + 8 * e; };
    KeyRange range[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int e = 0; e < 2; ++e) range[mt][e] = key_range(p, row_of(mt, e));
    }

    float o[MT][DTILES][4];
    float m[MT][2], l[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int dt = 0; dt < DTILES; ++dt) o[mt][dt][0] = o[mt][dt][1] = o[mt][dt][2] = o[mt][dt][3] = 0.0f;
        m[mt][0] = m[mt][1] = -INFINITY;
        l[mt][0] = l[mt][1] = 0.0f;
    }
    uint32_t qf[Q_IN_REGS ? KSTEPS : 1][4];
    const T* q_frag_row = yoco::ldmatrix_a_row(sQ + warp * WARP_ROWS * SMEM_STRIDE, SMEM_STRIDE);

    for (int t = 0; t < n_tiles; ++t) {
        const int n0 = n_begin + t * BN;
        const int buf = t & 1;
        yoco::cp_async_wait<2>();  // K(t) (and Q) landed
        if constexpr (WGMMA) yoco::fence_proxy_async_shared();  // before the barrier: wgmma reads after it
        __syncthreads();
        if constexpr (Q_IN_REGS) {
            if (t == 0) {
#pragma unroll
                for (int kk = 0; kk < KSTEPS; ++kk) yoco::ldmatrix_x4(qf[kk], q_frag_row + kk * 16);
            }
        }
        if (t + 1 < n_tiles) load_tile<T, BN, D, THREADS, WGMMA>(sV + (buf ^ 1) * BN * TILE_ROW, v_src, v, kv_stride, n0 + BN, p.kv_len);
        yoco::cp_async_commit();
        v_src += tile_step;
        T* const sKb = sK + buf * BN * TILE_ROW;
        const T* sVb = sV + buf * BN * TILE_ROW;

        // S = Q Kᵀ (raw scores, f32).
        float s[MT][NTILES][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
            for (int nt = 0; nt < NTILES; ++nt) s[mt][nt][0] = s[mt][nt][1] = s[mt][nt][2] = s[mt][nt][3] = 0.0f;
        }
        if constexpr (WGMMA) {
            scores_wgmma<T, D, BN, BM>(s[0], sQ, sKb);
        } else {
#pragma unroll
            for (int kk = 0; kk < KSTEPS; ++kk) {
                uint32_t a[MT][4];
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) q_fragment<Q_IN_REGS>(a[mt], qf, q_frag_row + mt * 16 * SMEM_STRIDE, kk);
#pragma unroll
                for (int np = 0; np < NTILES / 2; ++np) scores_16_keys<T, D>(s, np, a, sKb + np * 16 * SMEM_STRIDE, kk);
            }
        }

        // The mask, only on tiles that cross one of its edges (or the end of the keys).
        const bool full = n0 + BN <= first.hi && n0 >= last.lo;
        if (!full) {
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
                for (int nt = 0; nt < NTILES; ++nt) {
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const int j = n0 + nt * 8 + 2 * tig + (e & 1);
                        const KeyRange& r = range[mt][e >> 1];
                        if (j < r.lo || j >= r.hi) s[mt][nt][e] = -INFINITY;
                    }
                }
            }
        }

#pragma unroll
        for (int mt = 0; mt < MT; ++mt) online_softmax<NTILES, DTILES>(s[mt], m[mt], l[mt], o[mt], p.scale_log2);
        yoco::cp_async_wait<2>();  // V(t) landed
        if constexpr (WGMMA) yoco::fence_proxy_async_shared();
        __syncthreads();
        if (t + 2 < n_tiles) load_tile<T, BN, D, THREADS, WGMMA>(sKb, k_src, k, kv_stride, n0 + 2 * BN, p.kv_len);
        yoco::cp_async_commit();
        k_src += tile_step;

        // O += P V: P's C fragments are the A fragments of the next product (two key tiles per k-step).
        if constexpr (WGMMA) {
            accumulate_wgmma<T, D, BN>(o[0], s[0], sVb);
        } else {
#pragma unroll
            for (int kk = 0; kk < BN / 16; ++kk) accumulate_16_keys<T, D>(o, s, kk, sVb + kk * 16 * SMEM_STRIDE);
        }
    }
    yoco::cp_async_wait<0>();  // nothing in flight at exit (only empty groups, unless n_tiles <= 0)

    T* out = static_cast<T*>(p.out) + static_cast<int64_t>(b) * p.q_len * q_stride + static_cast<int64_t>(h) * D;
    // A row whose f32 arithmetic overflowed (row_overflowed) is not written here but computed
    // again in f64 below. Its quad's 4 lanes agree through the shuffles.
    int overflowed = 0;  // bit 2·mt + e: row row_of(mt, e), C-fragment row 16·mt + 8·e + g
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
            float& sum = l[mt][e];
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
            bool finite = true;
#pragma unroll
            for (int dt = 0; dt < DTILES; ++dt) {
                o[mt][dt][2 * e] *= inv;
                o[mt][dt][2 * e + 1] *= inv;
                finite = finite && isfinite(o[mt][dt][2 * e]) && isfinite(o[mt][dt][2 * e + 1]);
            }
            const int qi = row_of(mt, e);
            int bad = row_overflowed(finite, sum, range[mt][e].lo < range[mt][e].hi) && qi < p.q_len;
            bad |= __shfl_xor_sync(0xffffffffu, bad, 1);
            bad |= __shfl_xor_sync(0xffffffffu, bad, 2);
            overflowed |= bad << (2 * mt + e);
            if (qi >= p.q_len || bad) continue;
            uint32_t* row = reinterpret_cast<uint32_t*>(out + qi * q_stride);
#pragma unroll
            for (int dt = 0; dt < DTILES; ++dt) row[(dt * 8 + 2 * tig) / 2] = yoco::pack2<T>(o[mt][dt][2 * e], o[mt][dt][2 * e + 1]);
        }
    }
    if (__any_sync(0xffffffffu, overflowed)) {
        // The warp's rows in turn, each row's flags read from the first lane of its quad: row rr
        // is C-fragment row rr % 16 of m-tile rr / 16.
        for (int rr = 0; rr < WARP_ROWS; ++rr) {
            const int flags = __shfl_sync(0xffffffffu, overflowed, (rr & 7) * 4);
            if (flags >> (rr >> 3) & 1) exact_row<T>(p, b, h, i0 + warp * WARP_ROWS + rr);
        }
    }
}

// ---- decode: split-KV --------------------------------------------------------------------------

// Merges a block's STREAMS online-softmax states of `nrows` rows — max in log2 units s_m[st·ROWS +
// r], sum s_l[st·ROWS + r], unnormalised output s_o[(st·ROWS + r)·o_stride + d] — and writes them
// as rows row0 .. row0 + nrows of split `split`'s partial for (batch b, K/V head hk).
template <int D, int STREAMS, int ROWS, int THREADS>
__device__ __forceinline__ void write_partials(const AttentionParams& p, const float* s_m, const float* s_l, const float* s_o, int o_stride, int b, int hk,
                                               int split, int row0, int nrows) {
    for (int idx = threadIdx.x; idx < nrows * D; idx += THREADS) {
        const int r = idx / D;
        const int d = idx % D;
        float mx = -INFINITY;
#pragma unroll
        for (int st = 0; st < STREAMS; ++st) mx = fmaxf(mx, s_m[st * ROWS + r]);
        float o = 0.0f, lsum = 0.0f;
        if (mx != -INFINITY) {
#pragma unroll
            for (int st = 0; st < STREAMS; ++st) {
                const float w = exp2f(s_m[st * ROWS + r] - mx);
                o = fmaf(w, s_o[(st * ROWS + r) * o_stride + d], o);
                lsum = fmaf(w, s_l[st * ROWS + r], lsum);
            }
        }
        const int64_t slot = ((static_cast<int64_t>(b) * p.kv_heads + hk) * p.splits + split) * p.rows + row0 + r;
        p.partial_o[slot * D + d] = o;
        if (d == 0) {
            p.partial_ml[slot * 2] = mx;
            p.partial_ml[slot * 2 + 1] = lsum;
        }
    }
}

template <typename T, int D, int ROWS>
__device__ __forceinline__ void decode_split(const AttentionParams& p) {
    static_assert(sizeof(T) == 2, "16-bit storage: a pack is 8 elements");
    constexpr int LPK = D / 8;    // lanes per key, one 16-byte pack each
    constexpr int KPW = 32 / LPK;  // keys per warp step
    constexpr int WARPS = ATTN_DECODE_THREADS / 32;
    constexpr int STREAMS = WARPS * KPW;  // independent online-softmax states in the block
    constexpr int UNROLL = ROWS >= 8 ? 2 : 4;
    constexpr int STEP = STREAMS * UNROLL;  // keys per block iteration
    constexpr int THREADS = ATTN_DECODE_THREADS;
    // Copies in flight: each thread's K and V packs of the next STAGES - 1 iterations stream into
    // shared memory (cp.async) while it computes on the current one: 32 KB per block, of which
    // 16-24 KB are in flight at any time (the current stage has been read into registers).
    constexpr int STAGES = 8 / UNROLL;
    constexpr int PIPE_PACKS = STAGES * UNROLL * 2 * THREADS;  // [stage][u][K, V][thread]
    static_assert(STAGES >= 2 && (STAGES & (STAGES - 1)) == 0, "a power-of-two ring of at least two stages");

    // The pipeline's ring, then (after the loop and a barrier) the streams' outputs to merge.
    constexpr int SMEM_BYTES = PIPE_PACKS * 16 > STREAMS * ROWS * D * 4 ? PIPE_PACKS * 16 : STREAMS * ROWS * D * 4;
    __shared__ __align__(16) unsigned char s_raw[SMEM_BYTES];
    uint4* const s_pipe = reinterpret_cast<uint4*>(s_raw);
    float (*const s_o)[ROWS][D] = reinterpret_cast<float (*)[ROWS][D]>(s_raw);
    __shared__ float s_m[STREAMS][ROWS];
    __shared__ float s_l[STREAMS][ROWS];

    // blockIdx.x = split * chunks + chunk: the programs that share a split's keys (one per chunk
    // of ROWS rows, when more rows than ROWS read a K/V head) are neighbours in launch order, so
    // that all but the first find the keys in L2.
    const int chunks = (p.rows + ROWS - 1) / ROWS;
    const int split = blockIdx.x / chunks;
    const int row0 = (blockIdx.x - split * chunks) * ROWS;
    const int nrows = min(ROWS, p.rows - row0);
    const int hk = blockIdx.y;
    const int b = blockIdx.z;
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int part = lane % LPK;  // which 8 dims of the head
    const int stream = warp * KPW + lane / LPK;

    const int64_t q_stride = static_cast<int64_t>(p.heads) * D;
    const int64_t kv_stride = static_cast<int64_t>(p.kv_heads) * D;
    const T* k = static_cast<const T*>(p.k) + b * p.kv_batch_stride + static_cast<int64_t>(hk) * D + part * 8;
    const T* v = static_cast<const T*>(p.v) + b * p.kv_batch_stride + static_cast<int64_t>(hk) * D + part * 8;

    // Program row r is row row0 + r of the K/V head: query (row0 + r) / group of head
    // hk * group + (row0 + r) % group. Rows past nrows (padding of the instantiation) see nothing.
    float qv[ROWS][8];
    KeyRange range[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
        if (r < nrows) {
            const int i = (row0 + r) / p.group;
            const int h = hk * p.group + (row0 + r) % p.group;
            const T* qrow = static_cast<const T*>(p.q) + (static_cast<int64_t>(b) * p.q_len + i) * q_stride + static_cast<int64_t>(h) * D + part * 8;
            yoco::unpack<T>(yoco::load_pack(qrow, 0), qv[r]);
#pragma unroll
            for (int e = 0; e < 8; ++e) qv[r][e] *= p.scale_log2;
            range[r] = key_range(p, i);
        } else {
#pragma unroll
            for (int e = 0; e < 8; ++e) qv[r][e] = 0.0f;
            range[r] = {0, 0};
        }
    }

    float acc[ROWS][8];
    float m[ROWS];
    float l[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[r][e] = 0.0f;
    }

    // Keys every row of the program sees: a block iteration inside [vis_lo, vis_hi) skips the
    // per-key mask (under a causal mask at q_len = 1, every iteration but none).
    int vis_lo = 0, vis_hi = p.kv_len;
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
        if (r < nrows) {
            vis_lo = max(vis_lo, range[r].lo);
            vis_hi = min(vis_hi, range[r].hi);
        }
    }

    const int begin = p.key_begin + split * p.keys_per_split;
    const int end = min(begin + p.keys_per_split, p.kv_len);
    vis_hi = min(vis_hi, end);
    const int n_iter = end > begin ? (end - begin + STEP - 1) / STEP : 0;

    // Iteration `it`'s packs into its ring slot; keys at or past `end` are zero-filled (reading
    // nothing: the head's first row stands in as address). Every thread copies only packs that
    // it reads back itself, after its own cp.async.wait_group: no barrier is involved.
    uint4* const my_pipe = s_pipe + threadIdx.x;
    const int64_t first_row = static_cast<int64_t>(begin + stream) * kv_stride;  // key of (0, u = 0)
    const int64_t u_step = STREAMS * kv_stride;
    auto issue = [&](int it) {
        uint4* dst = my_pipe + (it & (STAGES - 1)) * (UNROLL * 2 * THREADS);
        const int j0 = begin + it * STEP + stream;
        const int64_t row0 = first_row + static_cast<int64_t>(it) * STEP * kv_stride;
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            const bool valid = j0 + u * STREAMS < end;
            const int64_t off = valid ? row0 + u * u_step : 0;
            yoco::cp_async_16(dst + (2 * u) * THREADS, k + off, valid);
            yoco::cp_async_16(dst + (2 * u + 1) * THREADS, v + off, valid);
        }
    };
    // A group is committed per iteration even when empty, so that the wait count is constant.
#pragma unroll
    for (int st = 0; st < STAGES - 1; ++st) {
        if (st < n_iter) issue(st);
        yoco::cp_async_commit();
    }

    for (int it = 0; it < n_iter; ++it) {
        const int base = begin + it * STEP;
        yoco::cp_async_wait<STAGES - 2>();  // iteration it's group has landed
        uint4 kp[UNROLL], vp[UNROLL];
        int j[UNROLL];
        {
            const uint4* src = my_pipe + (it & (STAGES - 1)) * (UNROLL * 2 * THREADS);
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
                j[u] = base + u * STREAMS + stream;
                kp[u] = src[(2 * u) * THREADS];
                vp[u] = src[(2 * u + 1) * THREADS];
            }
        }
        // Refill the slot read last iteration (its packs are consumed: the arithmetic that used
        // them has run), STAGES - 1 iterations ahead.
        if (it + STAGES - 1 < n_iter) issue(it + STAGES - 1);
        yoco::cp_async_commit();
        // Raw scores (log2 units), each reduced over the LPK lanes of its key.
        float s[UNROLL][ROWS];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            float kf[8];
            yoco::unpack<T>(kp[u], kf);
#pragma unroll
            for (int r = 0; r < ROWS; ++r) {
                float d = 0.0f;
#pragma unroll
                for (int e = 0; e < 8; ++e) d = fmaf(qv[r][e], kf[e], d);
                // The LPK lanes of a key are consecutive: xor offsets below LPK stay in the group.
#pragma unroll
                for (int off = LPK / 2; off > 0; off >>= 1) d += __shfl_xor_sync(0xffffffffu, d, off);
                s[u][r] = d;
            }
        }
        // The mask (and the end of the split), only where the iteration crosses an edge; the
        // condition is the same for the whole block.
        if (base < vis_lo || base + STEP > vis_hi) {
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
#pragma unroll
                for (int r = 0; r < ROWS; ++r) {
                    const bool visible = j[u] < end && j[u] >= range[r].lo && j[u] < range[r].hi;
                    if (!visible) s[u][r] = -INFINITY;
                }
            }
        }
        // Online softmax: s becomes p = 2^(s - max). A row whose max has not moved keeps its
        // accumulator as it is (the factor would be exactly 1); one that has seen nothing visible
        // yet keeps max −∞ and gets p = 2^(−∞ − 0) = 0 (−∞ − −∞ would be NaN).
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
            float mx = m[r];
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) mx = fmaxf(mx, s[u][r]);
            if (mx != m[r]) {
                const float corr = yoco::exp2_ftz(m[r] - mx);  // m = −∞ gives 0
                l[r] *= corr;
#pragma unroll
                for (int e = 0; e < 8; ++e) acc[r][e] *= corr;
                m[r] = mx;
            }
            const float sub = mx == -INFINITY ? 0.0f : mx;
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
                s[u][r] = yoco::exp2_ftz(s[u][r] - sub);
                l[r] += s[u][r];
            }
        }
        // O += p V: each V pack is converted once for all the rows.
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            float vf[8];
            yoco::unpack<T>(vp[u], vf);
#pragma unroll
            for (int r = 0; r < ROWS; ++r) {
#pragma unroll
                for (int e = 0; e < 8; ++e) acc[r][e] = fmaf(s[u][r], vf[e], acc[r][e]);
            }
        }
    }

    // Merge the block's streams, then write this split's partial. s_o reuses the ring: every
    // thread must be done reading its slots (only empty groups can still be pending).
    yoco::cp_async_wait<0>();
    __syncthreads();
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
#pragma unroll
        for (int e = 0; e < 8; ++e) s_o[stream][r][part * 8 + e] = acc[r][e];
        if (part == 0) {
            s_m[stream][r] = m[r];
            s_l[stream][r] = l[r];
        }
    }
    __syncthreads();
    write_partials<D, STREAMS, ROWS, ATTN_DECODE_THREADS>(p, &s_m[0][0], &s_l[0][0], &s_o[0][0][0], D, b, hk, split, row0, nrows);
}

// ---- decode on tensor cores: 9 to 16 rows ------------------------------------------------------

// Split-KV decode for 9 to 16 query rows per K/V head (q_len · group), where decode_split would
// run two CUDA-core programs of 8 rows, each issue-bound at ~25 instructions per (row, key). One
// program per (split of the keys, K/V head, batch) takes all the rows as the 16 rows of an
// m16n8k16 fragment (row r: query r / group of head hk·group + r % group; rows past p.rows are
// zero and never written). K and V stream through the prefill's double-buffered cp.async tiles of
// ATTN_DECODE_MMA_BLOCK_N keys, and each of the 4 warps takes its own 16 keys of every tile (two
// 8-key column tiles of Q Kᵀ, one k-step of P·V) with the prefill's online softmax, so a warp
// holds all 16 rows of its quarter of the keys. At the end the block merges its warps' states
// and writes the split's partial, in decode_split's format, for decode_combine.
template <typename T, int D>
__device__ __forceinline__ void decode_mma(const AttentionParams& p) {
    constexpr int BN = ATTN_DECODE_MMA_BLOCK_N;
    constexpr int ROWS = ATTN_DECODE_MMA_ROWS;
    constexpr int THREADS = ATTN_PREFILL_THREADS;
    constexpr int WARPS = THREADS / 32;
    static_assert(ROWS == 16 && BN == 16 * WARPS, "16 rows, 16 keys per warp per tile");
    constexpr int SMEM_STRIDE = D + ATTN_SMEM_PAD;
    constexpr bool Q_IN_REGS = D <= 128;
    constexpr int KSTEPS = D / 16;
    constexpr int DTILES = D / 8;

    YOCO_DYNAMIC_SHARED(smem_raw, 16);
    T* sQ = reinterpret_cast<T*>(smem_raw);  // [ROWS][SMEM_STRIDE]
    T* sK = sQ + ROWS * SMEM_STRIDE;         // [2][BN][SMEM_STRIDE]
    T* sV = sK + 2 * BN * SMEM_STRIDE;       // [2][BN][SMEM_STRIDE]
    // After the loop, the warps' outputs to merge, over the K and V tiles: [WARPS][ROWS][O_STRIDE]
    // f32, rows padded by 8 floats so that the 8 rows of a fragment's stores spread over the banks.
    constexpr int O_STRIDE = D + 8;
    float* s_o = reinterpret_cast<float*>(sK);
    static_assert(WARPS * ROWS * O_STRIDE * 4 <= 4 * BN * SMEM_STRIDE * 2, "the merge fits in the tiles");
    __shared__ float s_m[WARPS][ROWS];
    __shared__ float s_l[WARPS][ROWS];

    const int split = blockIdx.x;
    const int hk = blockIdx.y;
    const int b = blockIdx.z;
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2;
    const int tig = lane & 3;

    const int64_t q_stride = static_cast<int64_t>(p.heads) * D;
    const int64_t kv_stride = static_cast<int64_t>(p.kv_heads) * D;
    const T* q = static_cast<const T*>(p.q);
    const T* k = static_cast<const T*>(p.k) + b * p.kv_batch_stride + static_cast<int64_t>(hk) * D;
    const T* v = static_cast<const T*>(p.v) + b * p.kv_batch_stride + static_cast<int64_t>(hk) * D;
    const int begin = p.key_begin + split * p.keys_per_split;
    const int end = min(begin + p.keys_per_split, p.kv_len);
    const int n_tiles = end > begin ? (end - begin + BN - 1) / BN : 0;

    // Q's rows (each its own query and head, so no common stride), in the first group with K0, V0.
    {
        constexpr int CHUNKS = D / 8;
        for (int idx = threadIdx.x; idx < ROWS * CHUNKS; idx += THREADS) {
            const int r = idx / CHUNKS;
            const int c = (idx % CHUNKS) * 8;
            const bool valid = r < p.rows;
            const T* src = valid ? q + (static_cast<int64_t>(b) * p.q_len + r / p.group) * q_stride + static_cast<int64_t>(hk * p.group + r % p.group) * D + c : q;
            yoco::cp_async_16(sQ + r * SMEM_STRIDE + c, src, valid);
        }
    }
    // Tile t's keys [begin + t·BN, ..) into buffer t & 1, zero-filled from `end` on (the keys of
    // the next split, or past kv_len, read nothing). One group per tile, committed even when
    // empty, so that wait_group 1 always means "tile t has landed".
    const int64_t tile_step = BN * kv_stride;
    const T* k_src = tile_src<T, D>(k, kv_stride, begin);
    const T* v_src = tile_src<T, D>(v, kv_stride, begin);
    if (n_tiles > 0) {
        load_tile<T, BN, D, THREADS>(sK, k_src, k, kv_stride, begin, end);
        load_tile<T, BN, D, THREADS>(sV, v_src, v, kv_stride, begin, end);
    }
    yoco::cp_async_commit();
    k_src += tile_step;
    v_src += tile_step;

    // This thread's two rows (C-fragment rows g and g + 8) and the keys they see in this split;
    // and the keys every real row sees, where a tile needs no per-element mask.
    KeyRange range[2];
#pragma unroll
    for (int e = 0; e < 2; ++e) {
        const int r = g + 8 * e;
        const KeyRange kr = r < p.rows ? key_range(p, r / p.group) : KeyRange{0, 0};
        range[e] = {max(kr.lo, begin), min(kr.hi, end)};
    }
    int vis_lo = begin, vis_hi = end;
    for (int r = 0; r < p.rows; ++r) {
        const KeyRange kr = key_range(p, r / p.group);
        vis_lo = max(vis_lo, kr.lo);
        vis_hi = min(vis_hi, kr.hi);
    }

    float o[1][DTILES][4];  // one m-tile (the helpers take a warp's m-tiles)
#pragma unroll
    for (int dt = 0; dt < DTILES; ++dt) o[0][dt][0] = o[0][dt][1] = o[0][dt][2] = o[0][dt][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY};
    float l[2] = {0.0f, 0.0f};
    uint32_t qf[Q_IN_REGS ? KSTEPS : 1][4];
    const T* q_frag_row = yoco::ldmatrix_a_row(sQ, SMEM_STRIDE);

    for (int t = 0; t < n_tiles; ++t) {
        const int n0 = begin + t * BN;
        const int buf = t & 1;
        // The other buffer was last read by tile t − 1's products, behind the barrier that ended it.
        if (t + 1 < n_tiles) {
            load_tile<T, BN, D, THREADS>(sK + (buf ^ 1) * BN * SMEM_STRIDE, k_src, k, kv_stride, n0 + BN, end);
            load_tile<T, BN, D, THREADS>(sV + (buf ^ 1) * BN * SMEM_STRIDE, v_src, v, kv_stride, n0 + BN, end);
        }
        yoco::cp_async_commit();
        k_src += tile_step;
        v_src += tile_step;
        yoco::cp_async_wait<1>();  // tile t (and Q) landed
        __syncthreads();
        if constexpr (Q_IN_REGS) {
            if (t == 0) {
#pragma unroll
                for (int kk = 0; kk < KSTEPS; ++kk) yoco::ldmatrix_x4(qf[kk], q_frag_row + kk * 16);
            }
        }
        // This warp's 16 keys of the tile: n0 + warp·16 + 0..15.
        const T* sK16 = sK + (buf * BN + warp * 16) * SMEM_STRIDE;
        const T* sV16 = sV + (buf * BN + warp * 16) * SMEM_STRIDE;

        float s[1][2][4] = {{{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}}};
#pragma unroll
        for (int kk = 0; kk < KSTEPS; ++kk) {
            uint32_t a[1][4];
            q_fragment<Q_IN_REGS>(a[0], qf, q_frag_row, kk);
            scores_16_keys<T, D>(s, 0, a, sK16, kk);
        }
        // The mask and the split's end, only on tiles that cross an edge (the same for the block).
        // Padding rows are left unmasked: their Q is zero, so their scores are 0, and they are
        // never written.
        if (!(n0 >= vis_lo && n0 + BN <= vis_hi)) {
#pragma unroll
            for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int j = n0 + warp * 16 + nt * 8 + 2 * tig + (e & 1);
                    const KeyRange& r = range[e >> 1];
                    if (g + 8 * (e >> 1) < p.rows && (j < r.lo || j >= r.hi)) s[0][nt][e] = -INFINITY;
                }
            }
        }
        online_softmax<2, DTILES>(s[0], m, l, o[0], p.scale_log2);
        accumulate_16_keys<T, D>(o, s, 0, sV16);
        __syncthreads();  // every warp is done with buffer buf before tile t + 2 is copied into it
    }
    yoco::cp_async_wait<0>();  // only empty groups can be pending; the tiles become s_o below

    // Each warp's state, rows g and g + 8: the sums over the quad, the max in log2 units (the base
    // its p were taken against), O unnormalised.
#pragma unroll
    for (int e = 0; e < 2; ++e) {
        l[e] += __shfl_xor_sync(0xffffffffu, l[e], 1);
        l[e] += __shfl_xor_sync(0xffffffffu, l[e], 2);
        const int r = g + 8 * e;
#pragma unroll
        for (int dt = 0; dt < DTILES; ++dt) {
            reinterpret_cast<float2*>(s_o + (warp * ROWS + r) * O_STRIDE + dt * 8)[tig] = make_float2(o[0][dt][2 * e], o[0][dt][2 * e + 1]);
        }
        if (tig == 0) {
            s_m[warp][r] = m[e] == -INFINITY ? -INFINITY : __fmul_rn(m[e], p.scale_log2);
            s_l[warp][r] = l[e];
        }
    }
    __syncthreads();
    write_partials<D, WARPS, ROWS, THREADS>(p, &s_m[0][0], &s_l[0][0], s_o, O_STRIDE, b, hk, split, 0, p.rows);
}

// One (row, K/V head, batch) per program: merges the splits and writes the output row. The
// splits' weights 2^(m_s - max) are computed once each (threads over splits) and kept in shared
// memory; then each warp sums a quarter of the splits' partial rows, a lane per 4 columns (16-byte
// loads, independent across splits), and the warps' sums are added.
template <typename T>
__device__ __forceinline__ void decode_combine(const AttentionParams& p) {
    constexpr int THREADS = ATTN_COMBINE_THREADS;
    constexpr int WARPS = THREADS / 32;
    constexpr int MAX_D4 = 256 / 4;  // largest head dim, in float4
    __shared__ float s_w[ATTN_DECODE_MAX_SPLITS];
    __shared__ float s_scratch[32];
    __shared__ float4 s_sum[WARPS][MAX_D4];
    const int head_dim = p.head_dim;
    const int r = blockIdx.x;
    const int hk = blockIdx.y;
    const int b = blockIdx.z;
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int64_t first = ((static_cast<int64_t>(b) * p.kv_heads + hk) * p.splits) * p.rows + r;  // split s: first + s * rows

    float mx = -INFINITY;
    for (int s = threadIdx.x; s < p.splits; s += THREADS) mx = fmaxf(mx, p.partial_ml[(first + static_cast<int64_t>(s) * p.rows) * 2]);
    mx = yoco::block_max(mx, s_scratch);
    float lsum = 0.0f;
    for (int s = threadIdx.x; s < p.splits; s += THREADS) {
        const int64_t slot = first + static_cast<int64_t>(s) * p.rows;
        // No row saw a key in any split: every weight 0 (and no −∞ − −∞).
        const float w = mx == -INFINITY ? 0.0f : exp2f(p.partial_ml[slot * 2] - mx);
        s_w[s] = w;
        lsum = fmaf(w, p.partial_ml[slot * 2 + 1], lsum);
    }
    lsum = yoco::block_sum(lsum, s_scratch);  // its barriers also publish s_w
    const float inv = lsum > 0.0f ? 1.0f / lsum : 0.0f;

    const int d4s = head_dim / 4;
    for (int d4 = lane; d4 < d4s; d4 += 32) {
        float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 4
        for (int s = warp; s < p.splits; s += WARPS) {
            const float w = s_w[s];
            const float4 x = reinterpret_cast<const float4*>(p.partial_o + (first + static_cast<int64_t>(s) * p.rows) * head_dim)[d4];
            o.x = fmaf(w, x.x, o.x);
            o.y = fmaf(w, x.y, o.y);
            o.z = fmaf(w, x.z, o.z);
            o.w = fmaf(w, x.w, o.w);
        }
        s_sum[warp][d4] = o;
    }
    __syncthreads();
    const int i = r / p.group;
    const int h = hk * p.group + r % p.group;
    T* out = static_cast<T*>(p.out) + ((static_cast<int64_t>(b) * p.q_len + i) * p.heads + h) * head_dim;
    // One float4 of the row per thread (head_dim / 4 <= 64 < THREADS).
    static_assert(MAX_D4 <= THREADS, "one float4 of the output per thread");
    const int d4 = threadIdx.x;
    float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (d4 < d4s) {
        o = s_sum[0][d4];
#pragma unroll
        for (int w = 1; w < WARPS; ++w) {
            const float4 x = s_sum[w][d4];
            o.x += x.x;
            o.y += x.y;
            o.z += x.z;
            o.w += x.w;
        }
        o = make_float4(o.x * inv, o.y * inv, o.z * inv, o.w * inv);
    }
    // A row whose f32 arithmetic overflowed in some split (row_overflowed) is computed again in
    // f64 by the first warp instead of written from the partials.
    const KeyRange range = key_range(p, i);
    const bool finite = isfinite(o.x) && isfinite(o.y) && isfinite(o.z) && isfinite(o.w);
    if (yoco::block_max(row_overflowed(finite, lsum, range.lo < range.hi) ? 1.0f : 0.0f, s_scratch) > 0.0f) {
        if (warp == 0) exact_row<T>(p, b, h, i);
        return;
    }
    if (d4 < d4s) {
        uint2 packed;
        packed.x = yoco::pack2<T>(o.x, o.y);
        packed.y = yoco::pack2<T>(o.z, o.w);
        reinterpret_cast<uint2*>(out)[d4] = packed;
    }
}

}  // namespace

// Entries: attention_prefill_d{64,128,256}_{bf16,f16}, attention_prefill_{wide,tall,wgmma}_d{64,128}_{dtype}, attention_decode_d{D}_r{1,2,3,4,8}_{dtype},
// attention_decode_mma_d{D}_{dtype}, attention_combine_{dtype}.
// MIN_BLOCKS of the default entries: the programs per SM that shared memory allows (Q tile +
// double-buffered K and V, row stride D + ATTN_SMEM_PAD): 45 KB at D = 64 -> 4, 85 KB at 128 and 99 KB at 256 -> 2 of
// the 227 KB. Telling ptxas so keeps D = 64 at <= 128 registers (4 programs) and lets D = 128 use
// up to 255 where its default heuristic would stop near 170 for an occupancy it cannot reach.
static_assert(ATTN_PREFILL_THREADS == 32 * ATTN_PREFILL_WARPS, "the default and tall entries' launch bounds are their warps'");
#define PREFILL_ENTRY(D, BN, MIN_BLOCKS, NAME, T)                                                                      \
    extern "C" __global__ void __launch_bounds__(ATTN_PREFILL_THREADS, MIN_BLOCKS) attention_prefill_d##D##_##NAME( \
        AttentionParams p) {                                                                                        \
        prefill<T, D, BN, ATTN_PREFILL_WARPS, 1>(p);                                                                \
    }
// The wide prefill (8 warps, 128 queries a block: each K and V tile copied once for twice the
// rows, half the L2 traffic per FLOP). Registers set its programs per SM, not shared memory (55
// and 104 KB at D = 64 and 128 would allow 4 and 2): at D = 64, 2 programs of <= 128 registers
// (16 warps, as the default's 4); at D = 128, 1 whose registers may reach 255 (8 warps, as the
// default's 2, but one program: its barriers stall every warp of the SM).
#define PREFILL_WIDE_ENTRY(D, BN, MIN_BLOCKS, NAME, T)                                                                          \
    extern "C" __global__ void __launch_bounds__(ATTN_PREFILL_WIDE_WARPS * 32, MIN_BLOCKS) attention_prefill_wide_d##D##_##NAME( \
        AttentionParams p) {                                                                                                    \
        prefill<T, D, BN, ATTN_PREFILL_WIDE_WARPS, 1>(p);                                                                       \
    }
// The tall prefill (4 warps of two 16-row m-tiles, 128 queries a program: each ldmatrix of K and V
// feeds both m-tiles' products, as flash-attention-2 runs D = 128 on sm80 and later): 2 programs
// per SM (8 warps) for registers up to 255 (ptxas: 240 at D = 64; 251 at D = 128, with 32-key
// tiles: two m-tiles' scores of 64 keys spilled); shared memory would allow 4 and 3.
#define PREFILL_TALL_ENTRY(D, BN, MIN_BLOCKS, NAME, T)                                                                      \
    extern "C" __global__ void __launch_bounds__(ATTN_PREFILL_THREADS, MIN_BLOCKS) attention_prefill_tall_d##D##_##NAME( \
        AttentionParams p) {                                                                                            \
        prefill<T, D, BN, ATTN_PREFILL_WARPS, 2>(p);                                                                    \
    }
// The wgmma prefill (2 warpgroups, 128 queries a program, yoco_wgmma.cuh): sm_90a only, so the
// module's compute_90 PTX (for other GPUs' JIT) gets a trap in its place; the host refuses the
// shape on a GPU other than sm_90 (crates/gqa cuda.rs). 2 programs per SM at least: ptxas keeps
// D = 128 at 127 registers (145 at 1, which would leave one 8-warp program an SM, its barriers
// stalling all of them); shared memory (49 and 97 KB with the alignment) would allow 4 and 2.
#if defined(YOCO_EMULATED) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define PREFILL_WGMMA_BODY(D, BN, T) prefill<T, D, BN, ATTN_PREFILL_WGMMA_WARPS, 1, true>(p);
#else
#define PREFILL_WGMMA_BODY(D, BN, T) __trap();
#endif
#define PREFILL_WGMMA_ENTRY(D, BN, MIN_BLOCKS, NAME, T)                                                                            \
    extern "C" __global__ void __launch_bounds__(ATTN_PREFILL_WGMMA_WARPS * 32, MIN_BLOCKS) attention_prefill_wgmma_d##D##_##NAME( \
        AttentionParams p) {                                                                                                     \
        PREFILL_WGMMA_BODY(D, BN, T)                                                                                             \
    }
#define DECODE_ENTRY(D, R, NAME, T)                                                                                  \
    extern "C" __global__ void __launch_bounds__(ATTN_DECODE_THREADS, R >= 8 ? 2 : 4) attention_decode_d##D##_r##R##_##NAME( \
        AttentionParams p) {                                                                                            \
        decode_split<T, D, R>(p);                                                                                       \
    }
// The tensor-core decode: at least 2, 2 and 1 programs per SM at D = 64, 128, 256 (shared memory
// for Q and the double-buffered tiles: 39, 74 and 143 KB; ptxas stays at 119, 166 and 230
// registers, so D = 64 fits ~4 and D = 128 ~3; the host asks the driver).
#define DECODE_MMA_ENTRY(D, MIN_BLOCKS, NAME, T)                                                                           \
    extern "C" __global__ void __launch_bounds__(ATTN_PREFILL_THREADS, MIN_BLOCKS) attention_decode_mma_d##D##_##NAME( \
        AttentionParams p) {                                                                                            \
        decode_mma<T, D>(p);                                                                                            \
    }
#define DECODE_ENTRIES(D, NAME, T) \
    DECODE_ENTRY(D, 1, NAME, T) DECODE_ENTRY(D, 2, NAME, T) DECODE_ENTRY(D, 3, NAME, T) DECODE_ENTRY(D, 4, NAME, T) DECODE_ENTRY(D, 8, NAME, T)
// The combine (in DTYPE_ENTRIES): "1 program per SM at least", so that ptxas takes the registers
// exact_row needs (86) instead of spilling at the 80 its default heuristic stopped at; it is one
// program per row and moves little, so its occupancy matters little.
#define DTYPE_ENTRIES(NAME, T)                              \
    PREFILL_ENTRY(64, ATTN_BLOCK_N_SMALL_D, 4, NAME, T)     \
    PREFILL_ENTRY(128, ATTN_BLOCK_N_SMALL_D, 2, NAME, T)    \
    PREFILL_ENTRY(256, ATTN_BLOCK_N_D256, 2, NAME, T)       \
    PREFILL_WIDE_ENTRY(64, ATTN_BLOCK_N_SMALL_D, 2, NAME, T) \
    PREFILL_WIDE_ENTRY(128, ATTN_BLOCK_N_SMALL_D, 1, NAME, T) \
    PREFILL_TALL_ENTRY(64, ATTN_BLOCK_N_SMALL_D, 2, NAME, T) \
    PREFILL_TALL_ENTRY(128, ATTN_BLOCK_N_TALL_D128, 2, NAME, T) \
    PREFILL_WGMMA_ENTRY(64, ATTN_BLOCK_N_SMALL_D, 2, NAME, T) \
    PREFILL_WGMMA_ENTRY(128, ATTN_BLOCK_N_SMALL_D, 2, NAME, T) \
    DECODE_ENTRIES(64, NAME, T)                             \
    DECODE_ENTRIES(128, NAME, T)                            \
    DECODE_ENTRIES(256, NAME, T)                            \
    DECODE_MMA_ENTRY(64, 2, NAME, T)                        \
    DECODE_MMA_ENTRY(128, 2, NAME, T)                       \
    DECODE_MMA_ENTRY(256, 1, NAME, T)                       \
    extern "C" __global__ void __launch_bounds__(ATTN_COMBINE_THREADS, 1) attention_combine_##NAME(AttentionParams p) { \
        decode_combine<T>(p);                               \
    }

DTYPE_ENTRIES(bf16, __nv_bfloat16)
DTYPE_ENTRIES(f16, __half)
