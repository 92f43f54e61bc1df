// The root crate's own kernels: the small glue the models need between the primitives.
//
//   embed_{f32,bf16,f16}      out = √d · E[token], a gather of rows; one block per token,
//                             memory-bound (reads and writes d elements per token)
//   log_decay_{f32,bf16,f16}  log γ = logsigmoid(z) / 16 in f32, computed as
//                             min(z, 0) − log1p(e^−|z|), which never overflows
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

}  // namespace

#define YOCO_MODEL_ENTRIES(suffix, T)                                                                     \
    extern "C" __global__ void __launch_bounds__(MODEL_THREADS) embed_##suffix(const EmbedParams p) { embed<T>(p); } \
    extern "C" __global__ void __launch_bounds__(MODEL_THREADS) log_decay_##suffix(const LogDecayParams p) { log_decay<T>(p); }

YOCO_MODEL_ENTRIES(f32, float)
YOCO_MODEL_ENTRIES(bf16, __nv_bfloat16)
YOCO_MODEL_ENTRIES(f16, __half)
