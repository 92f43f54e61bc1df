// The root crate's own kernels: the small glue the models need between the primitives.
//
//   embed_{f32,bf16,f16}      out = √d · E[token], a gather of rows; one block per token,
//                             memory-bound (reads and writes d elements per token)
//   log_decay_{f32,bf16,f16}  log γ = logsigmoid(z) / 16 in f32, computed as
//                             min(z, 0) − log1p(e^−|z|), which never overflows
//   argmax_{f32,bf16,f16}     greedy sampling: each row's largest logit (lowest index on ties) and
//                             its count of non-finite logits; one block per row, so only B
//                             indices cross to the host instead of B × vocab logits
#include "model.h"
#include "yoco_common.cuh"

namespace {

template <typename T>
__device__ void embed(const EmbedParams& p) {
    const int64_t t = blockIdx.x;
    if (t >= p.n_tokens) return;
    const T* row = static_cast<const T*>(p.table) + static_cast<int64_t>(p.tokens[t]) * p.width;
    T* out = static_cast<T*>(p.out) + t * p.width;
    for (int i = threadIdx.x; i < p.width; i += MODEL_THREADS) out[i] = yoco::from_f32<T>(p.scale * yoco::to_f32(row[i]));
}

template <typename T>
__device__ void log_decay(const LogDecayParams& p) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * MODEL_THREADS;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * MODEL_THREADS + threadIdx.x; i < p.n; i += stride) {
        const float z = yoco::to_f32(static_cast<const T*>(p.z)[i]);
        p.out[i] = (fminf(z, 0.0f) - log1pf(expf(-fabsf(z)))) * (1.0f / 16.0f);
    }
}

// The better of two (value, index) candidates: the larger value, the lower index on a tie. A
// candidate with index -1 (nothing finite seen) never wins.
__device__ __forceinline__ void keep_better(float& v, int& i, float ov, int oi) {
    if (oi >= 0 && (i < 0 || ov > v || (ov == v && oi < i))) {
        v = ov;
        i = oi;
    }
}

template <typename T>
__device__ void argmax(const ArgmaxParams& p) {
    __shared__ float warp_v[MODEL_THREADS / 32];
    __shared__ int warp_i[MODEL_THREADS / 32];
    __shared__ unsigned warp_bad[MODEL_THREADS / 32];
    const int64_t r = blockIdx.x;
    if (r >= p.rows) return;  // whole block: the grid has one block per row
    const T* row = static_cast<const T*>(p.x) + r * p.width;
    float v = 0.0f;
    int idx = -1;
    unsigned bad = 0;
    // Each thread walks its indices in ascending order and keeps the first of equal values.
    for (int i = threadIdx.x; i < p.width; i += MODEL_THREADS) {
        const float x = yoco::to_f32(row[i]);
        if (!isfinite(x)) {
            ++bad;
        } else if (idx < 0 || x > v) {
            v = x;
            idx = i;
        }
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        keep_better(v, idx, __shfl_xor_sync(0xffffffffu, v, offset), __shfl_xor_sync(0xffffffffu, idx, offset));
        bad += __shfl_xor_sync(0xffffffffu, bad, offset);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) {
        warp_v[warp] = v;
        warp_i[warp] = idx;
        warp_bad[warp] = bad;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < MODEL_THREADS / 32; ++w) {
            keep_better(v, idx, warp_v[w], warp_i[w]);
            bad += warp_bad[w];
        }
        p.out[2 * r] = idx < 0 ? 0u : static_cast<uint32_t>(idx);
        p.out[2 * r + 1] = bad;
    }
}

}  // namespace

#define YOCO_MODEL_ENTRIES(suffix, T)                                                                     \
    extern "C" __global__ void __launch_bounds__(MODEL_THREADS) embed_##suffix(const EmbedParams p) { embed<T>(p); } \
    extern "C" __global__ void __launch_bounds__(MODEL_THREADS) log_decay_##suffix(const LogDecayParams p) { log_decay<T>(p); } \
    extern "C" __global__ void __launch_bounds__(MODEL_THREADS) argmax_##suffix(const ArgmaxParams p) { argmax<T>(p); }

YOCO_MODEL_ENTRIES(f32, float)
YOCO_MODEL_ENTRIES(bf16, __nv_bfloat16)
YOCO_MODEL_ENTRIES(f16, __half)
