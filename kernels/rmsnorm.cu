// RMSNorm, and RMSNorm fused with the residual add that precedes it in every pre-norm block.
//
//   y = x * rsqrt(mean(x^2) + eps) * w          statistics in f32 whatever the storage type
//   h = x + r;  y = RMSNorm(h)                  residual variant: h is stored (rounded to the
//                                               storage type) and y normalises the stored h,
//                                               so the next residual add sees what y saw
//
// Storage f32, bf16 or f16; entries rmsnorm[_residual]_{warp,block}_{f32,bf16,f16}.
//
// Versions (one promoted here; see crates/rmsnorm/benches for the measurements):
//   warp per row  — RMSNORM_THREADS/32 rows per block, a row's sum of squares is one warp
//                   shuffle reduction, no shared memory and no __syncthreads. Used for rows of
//                   at most RMSNORM_WARP_MAX_ROW_BYTES, where a block per row would leave most
//                   threads idle.
//   block per row — wide rows (d = 3072..8192 in the YOCO configs): the whole block shares the
//                   row, so each thread issues only a few 16-byte loads; block_sum reduces.
// Both read the row twice: pass 1 for the sum of squares, pass 2 to scale. Pass 2 hits L1/L2
// (a row is at most tens of KiB), so DRAM sees one read of x (and r) and one write of y (and h):
// the byte count the bench divides by. Loads are 16-byte packs when the host says the rows are
// aligned (`vectorized`), element by element otherwise (odd widths such as 4095). A thread issues
// its packs' loads in batches of BATCH before using any (a plain loop waited for each load in
// turn: a 3072-wide f32 row was three dependent DRAM round trips per thread, now one).
//
// Not tried: keeping the row in registers across the reduction instead of re-reading it. With
// a fixed bound on packs per thread (4-8) the bf16 kernels took 80-150 registers (ptxas keeps
// the converted f32 values), 1-2 blocks per SM, less in flight than the re-read costs.
#include "rmsnorm.h"
#include "yoco_common.cuh"

namespace {

using yoco::from_f32;
using yoco::to_f32;

// 16-byte packs per thread whose loads are in flight together (vectorised path): 3 covers the
// model widths in one round trip (3072 bf16: 1.5 packs per thread of a block, 3072 f32: 3; 768
// bf16: 3 per lane of a warp) at 40-48 registers, 5 blocks per SM (4 took 56: 4 blocks).
constexpr int BATCH = 3;

// Starts the loads of this thread's next BATCH packs of `base` (packs i0, i0 + step, …, those
// below `packs`) into v, all in flight before any is used.
template <typename T>
__device__ __forceinline__ void load_batch(uint4 (&v)[BATCH], const T* base, int i0, int step, int packs) {
#pragma unroll
    for (int k = 0; k < BATCH; ++k) {
        const int i = i0 + k * step;
        if (i < packs) v[k] = yoco::load_pack(base, i);
    }
}

// Pass 1 over this thread's share of one row: returns the partial sum of squares. In the
// residual variant also writes h = x + r, rounded to T, and sums the squares of the rounded h.
template <typename T, bool RESIDUAL>
__device__ __forceinline__ float row_sum_squares(const RmsNormParams& p, int64_t row, int tid, int nthreads) {
    const int64_t base = row * p.width;
    const T* x = static_cast<const T*>(p.x) + base;
    const T* r = static_cast<const T*>(p.residual) + base;
    T* h = static_cast<T*>(p.h) + base;
    float acc = 0.0f;
    if (p.vectorized) {
        constexpr int N = yoco::Pack<T>::N;
        const int packs = p.width / N;
        // Batches of BATCH packs per thread, every load of a batch issued before the first is
        // used (a plain loop waits for each before issuing the next; its unrolled form still ran
        // a row of 1-3 packs per thread as 1-3 dependent round trips). Same elements, same order.
        for (int i0 = tid; i0 < packs; i0 += BATCH * nthreads) {
            uint4 xv[BATCH];
            load_batch(xv, x, i0, nthreads, packs);
            if constexpr (RESIDUAL) {
                uint4 rv[BATCH];
                load_batch(rv, r, i0, nthreads, packs);
#pragma unroll
                for (int k = 0; k < BATCH; ++k) {
                    const int i = i0 + k * nthreads;
                    if (i < packs) {
                        float xf[N], rf[N];
                        yoco::unpack<T>(xv[k], xf);
                        yoco::unpack<T>(rv[k], rf);
#pragma unroll
                        for (int j = 0; j < N; ++j) xf[j] += rf[j];
                        xv[k] = yoco::repack<T>(xf);  // h, rounded to T: what is stored and squared
                        yoco::store_pack(h, i, xv[k]);
                    }
                }
            }
#pragma unroll
            for (int k = 0; k < BATCH; ++k) {
                if (i0 + k * nthreads < packs) {
                    float xf[N];
                    yoco::unpack<T>(xv[k], xf);
#pragma unroll
                    for (int j = 0; j < N; ++j) acc = fmaf(xf[j], xf[j], acc);
                }
            }
        }
    } else {
        for (int i = tid; i < p.width; i += nthreads) {
            T xv = x[i];
            if constexpr (RESIDUAL) {
                xv = from_f32<T>(to_f32(xv) + to_f32(r[i]));
                h[i] = xv;
            }
            const float v = to_f32(xv);
            acc = fmaf(v, v, acc);
        }
    }
    return acc;
}

// Pass 2: y = src * inv_rms * w over this thread's share, where src is h (residual) or x. Each
// thread reads back exactly the h elements it wrote in pass 1, so no barrier is needed.
template <typename T, bool RESIDUAL>
__device__ __forceinline__ void row_scale(const RmsNormParams& p, int64_t row, int tid, int nthreads, float inv_rms) {
    const int64_t base = row * p.width;
    const T* src = static_cast<const T*>(RESIDUAL ? p.h : p.x) + base;
    const T* w = static_cast<const T*>(p.weight);
    T* y = static_cast<T*>(p.y) + base;
    if (p.vectorized) {
        constexpr int N = yoco::Pack<T>::N;
        const int packs = p.width / N;
        // As in pass 1: a batch's loads all issued before its first store (y may alias src, so
        // the compiler could not hoist them itself).
        for (int i0 = tid; i0 < packs; i0 += BATCH * nthreads) {
            uint4 sv[BATCH], wv[BATCH];
            load_batch(sv, src, i0, nthreads, packs);
            load_batch(wv, w, i0, nthreads, packs);
#pragma unroll
            for (int k = 0; k < BATCH; ++k) {
                const int i = i0 + k * nthreads;
                if (i < packs) {
                    float sf[N], wf[N];
                    yoco::unpack<T>(sv[k], sf);
                    yoco::unpack<T>(wv[k], wf);
#pragma unroll
                    for (int j = 0; j < N; ++j) sf[j] = sf[j] * inv_rms * wf[j];
                    yoco::store_pack(y, i, yoco::repack<T>(sf));
                }
            }
        }
    } else {
        for (int i = tid; i < p.width; i += nthreads) y[i] = from_f32<T>(to_f32(src[i]) * inv_rms * to_f32(w[i]));
    }
}

// Rows whose squares overflow f32 (elements past ~1.8e19, which f32 and bf16 can hold) take the
// sum again over the row divided by its largest magnitude, so that they still normalise to a unit
// RMS (the CPU path sums such rows in f64). Cold. These read the row element by element, so in the
// residual variant a thread reads h that others wrote: the callers put a barrier first.
template <typename T, bool RESIDUAL>
__device__ __forceinline__ float row_max_abs(const RmsNormParams& p, int64_t row, int tid, int nthreads) {
    const T* src = static_cast<const T*>(RESIDUAL ? p.h : p.x) + row * p.width;
    float m = 0.0f;
    for (int i = tid; i < p.width; i += nthreads) m = fmaxf(m, fabsf(to_f32(src[i])));
    return m;
}

template <typename T, bool RESIDUAL>
__device__ __forceinline__ float row_scaled_sum_squares(const RmsNormParams& p, int64_t row, int tid, int nthreads, float scale) {
    const T* src = static_cast<const T*>(RESIDUAL ? p.h : p.x) + row * p.width;
    float acc = 0.0f;
    for (int i = tid; i < p.width; i += nthreads) {
        const float v = to_f32(src[i]) * scale;
        acc = fmaf(v, v, acc);
    }
    return acc;
}

// rsqrt(mean(x²) + eps) from the sum of (x / m)² of a row (with no NaN) whose largest magnitude
// is m. An infinite m gives 0, so that finite elements come out 0 and infinite ones NaN, as in the
// f64 reference.
__device__ __forceinline__ float inv_rms_scaled(float scaled_ss, float m, const RmsNormParams& p) {
    if (isinf(m)) return 0.0f;
    return 1.0f / (m * sqrtf(scaled_ss / static_cast<float>(p.width) + p.eps / (m * m)));
}

template <typename T, bool RESIDUAL>
__device__ __forceinline__ void rmsnorm_warp(const RmsNormParams& p) {
    const int lane = threadIdx.x & 31;
    const int64_t row = static_cast<int64_t>(blockIdx.x) * (RMSNORM_THREADS / 32) + (threadIdx.x >> 5);
    if (row >= p.rows) return;  // whole warps exit together: the shuffles below stay full-warp
    const float ss = yoco::warp_sum(row_sum_squares<T, RESIDUAL>(p, row, lane, 32));
    float inv_rms = rsqrtf(ss / static_cast<float>(p.width) + p.eps);
    if (isnan(ss)) {
        inv_rms = ss;  // a NaN element: the whole row is NaN, as in the f64 reference
    } else if (isinf(ss)) {  // warp-uniform: every lane holds the same sum
        __syncwarp();
        const float m = yoco::warp_max(row_max_abs<T, RESIDUAL>(p, row, lane, 32));
        inv_rms = inv_rms_scaled(yoco::warp_sum(row_scaled_sum_squares<T, RESIDUAL>(p, row, lane, 32, 1.0f / m)), m, p);
    }
    row_scale<T, RESIDUAL>(p, row, lane, 32, inv_rms);
}

template <typename T, bool RESIDUAL>
__device__ __forceinline__ void rmsnorm_block(const RmsNormParams& p) {
    __shared__ float scratch[32];
    const int64_t row = blockIdx.x;
    const float ss = yoco::block_sum(row_sum_squares<T, RESIDUAL>(p, row, threadIdx.x, RMSNORM_THREADS), scratch);
    float inv_rms = rsqrtf(ss / static_cast<float>(p.width) + p.eps);
    if (isnan(ss)) {
        inv_rms = ss;  // a NaN element: the whole row is NaN, as in the f64 reference
    } else if (isinf(ss)) {  // block-uniform: block_sum gives every thread the same sum
        __syncthreads();
        const float m = yoco::block_max(row_max_abs<T, RESIDUAL>(p, row, threadIdx.x, RMSNORM_THREADS), scratch);
        inv_rms = inv_rms_scaled(yoco::block_sum(row_scaled_sum_squares<T, RESIDUAL>(p, row, threadIdx.x, RMSNORM_THREADS, 1.0f / m), scratch), m, p);
    }
    row_scale<T, RESIDUAL>(p, row, threadIdx.x, RMSNORM_THREADS, inv_rms);
}

}  // namespace

// Thin extern "C" entries, one per (variant, storage type): the names the Rust side loads.
#define YOCO_RMSNORM_ENTRIES(suffix, T)                                                              \
    extern "C" __global__ void __launch_bounds__(RMSNORM_THREADS) rmsnorm_warp_##suffix(const RmsNormParams p) { \
        rmsnorm_warp<T, false>(p);                                                                   \
    }                                                                                                \
    extern "C" __global__ void __launch_bounds__(RMSNORM_THREADS) rmsnorm_block_##suffix(const RmsNormParams p) { \
        rmsnorm_block<T, false>(p);                                                                  \
    }                                                                                                \
    extern "C" __global__ void __launch_bounds__(RMSNORM_THREADS) rmsnorm_residual_warp_##suffix(const RmsNormParams p) { \
        rmsnorm_warp<T, true>(p);                                                                    \
    }                                                                                                \
    extern "C" __global__ void __launch_bounds__(RMSNORM_THREADS) rmsnorm_residual_block_##suffix(const RmsNormParams p) { \
        rmsnorm_block<T, true>(p);                                                                   \
    }

YOCO_RMSNORM_ENTRIES(f32, float)
YOCO_RMSNORM_ENTRIES(bf16, __nv_bfloat16)
YOCO_RMSNORM_ENTRIES(f16, __half)
