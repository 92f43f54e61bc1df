// Rotary position embeddings, both variants of SPEC.md:
//
//   YOCO   pairs (x[2i], x[2i+1]),   inv_freq_i = theta^(-i/(D/2-1))
//   Llama  pairs (x[i], x[i+D/2]),   inv_freq_i = theta^(-2i/D)
//   (a, b) at position p -> (a cos φ - b sin φ, a sin φ + b cos φ),  φ = f32(p) * inv_freq_i (f32)
//
// Storage f32, bf16 or f16; entries rope_{f32,bf16,f16}. One version: a grid-stride loop with one
// thread per pair. The frequency table comes from the host (crates/rope Rope::new) so that the
// f32 angle is bit-identical to the CPU paths'; sinf/cosf are the accurate ones (no fast math),
// whose full range reduction keeps large angles (position 500K) right. Memory-bound: every element
// is read once and written once; the pairs of one thread are 2 elements apart (YOCO) or D/2 apart
// (Llama), so consecutive threads touch consecutive addresses in both variants.
#include "rope.h"
#include "yoco_common.cuh"

namespace {

template <typename T>
__device__ __forceinline__ void rope(const RopeParams& p) {
    const T* x = static_cast<const T*>(p.x);
    T* out = static_cast<T*>(p.out);
    const int half = p.head_dim / 2;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * ROPE_THREADS;
    for (int64_t k = static_cast<int64_t>(blockIdx.x) * ROPE_THREADS + threadIdx.x; k < p.pairs; k += stride) {
        const int64_t row = k / half;  // (batch, token, head)
        const int i = static_cast<int>(k - row * half);
        const int64_t token = (row / p.heads) % p.seq;
        const float phi = static_cast<float>(p.pos_offset + token) * p.inv_freq[i];
        float s, c;
        sincosf(phi, &s, &c);
        const int64_t base = row * p.head_dim;
        const int64_t ia = base + (p.variant == ROPE_VARIANT_YOCO ? 2 * i : i);
        const int64_t ib = base + (p.variant == ROPE_VARIANT_YOCO ? 2 * i + 1 : i + half);
        const float a = yoco::to_f32(x[ia]);
        const float b = yoco::to_f32(x[ib]);
        out[ia] = yoco::from_f32<T>(a * c - b * s);
        out[ib] = yoco::from_f32<T>(a * s + b * c);
    }
}

}  // namespace

extern "C" __global__ void __launch_bounds__(ROPE_THREADS) rope_f32(RopeParams p) { rope<float>(p); }
extern "C" __global__ void __launch_bounds__(ROPE_THREADS) rope_bf16(RopeParams p) { rope<__nv_bfloat16>(p); }
extern "C" __global__ void __launch_bounds__(ROPE_THREADS) rope_f16(RopeParams p) { rope<__half>(p); }
