// Device helpers shared by every yoco kernel: storage-type conversions, 16-byte packs, warp and
// block reductions. One home for each, so that the kernels cannot drift apart.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

namespace yoco {

// ---- storage <-> f32 ----------------------------------------------------------------------------
__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }

// ---- 16-byte packs: one vectorised load or store ---------------------------------------------
// Callers guarantee 16-byte alignment (the host checks it and sets a `vectorized` flag).
template <typename T>
struct alignas(16) Pack {
    static constexpr int N = 16 / sizeof(T);
    T v[N];
};

template <typename T>
__device__ __forceinline__ Pack<T> load_pack(const T* base, int64_t pack_index) {
    return reinterpret_cast<const Pack<T>*>(base)[pack_index];
}

template <typename T>
__device__ __forceinline__ void store_pack(T* base, int64_t pack_index, const Pack<T>& p) {
    reinterpret_cast<Pack<T>*>(base)[pack_index] = p;
}

// ---- reductions ---------------------------------------------------------------------------------
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// Sum over the whole block; every thread gets the result. `scratch` holds 32 floats in shared
// memory. Needs blockDim.x to be a multiple of 32.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    v = warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float total = lane < warps ? scratch[lane] : 0.0f;
    total = warp_sum(total);
    __syncthreads();  // scratch may be reused by the caller right after
    return total;
}

__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }

}  // namespace yoco
