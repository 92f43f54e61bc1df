// Rotary position embeddings, both variants of SPEC.md:
//
//   YOCO   pairs (x[2i], x[2i+1]),   inv_freq_i = theta^(-i/(D/2-1))
//   Llama  pairs (x[i], x[i+D/2]),   inv_freq_i = theta^(-2i/D)
//   (a, b) at position p -> (a cos φ - b sin φ, a sin φ + b cos φ),  φ = f32(p) * inv_freq_i (f32)
//
// Storage f32, bf16 or f16; entries rope_{f32,bf16,f16}. The frequency table comes from the host
// (crates/rope Rope::new) so that the f32 angle is bit-identical to the CPU paths'; sinf/cosf are
// the accurate ones (no fast math), whose full range reduction keeps large angles (position 500K)
// right. Memory-bound: every element is read once and written once; the pairs of one thread are
// 2 elements apart (YOCO) or D/2 apart (Llama), so consecutive threads touch consecutive addresses
// in both variants.
//
// Versions:
//   1 — a grid-stride loop with one thread per pair, each computing its own angle: sincosf (~40
//       instructions, more with the range reduction) and two 64-bit divisions per 2 elements
//       moved, ~150 instructions per pair: issue-bound at about twice the bf16 memory time
//       (estimated from the SASS, not measured).
//   2 (this one) — one thread per (batch, token, pair): the angle once, then the pair of every
//       head (24 in YOCO-3B), HB heads' loads in flight together. Head dims 64 and 128 are
//       compiled apart, so that the heads' elements are immediate offsets from one pointer: the
//       heads loop is ~13 instructions per pair (sm_90a SASS, D = 128 bf16), the angle and the
//       index arithmetic ~6 more once shared by 24 heads. The grid is one full wave of blocks.
#include "rope.h"
#include "yoco_common.cuh"

namespace {

// HEAD_DIM: the head dim when known at compile time (the heads' elements are then immediate
// offsets from one pointer), 0 for any other (even) head dim, read from p.
template <typename T, int HEAD_DIM>
__device__ __forceinline__ void rope_heads(const RopeParams& p) {
    constexpr int HB = 8;  // heads whose loads are in flight together
    const T* x = static_cast<const T*>(p.x);
    T* out = static_cast<T*>(p.out);
    const int head_dim = HEAD_DIM > 0 ? HEAD_DIM : p.head_dim;
    const int half = head_dim / 2;
    const int heads = p.heads;
    const int64_t items = p.pairs / heads;  // (batch, token, pair) = batch * seq * half
    const int64_t stride = static_cast<int64_t>(gridDim.x) * ROPE_THREADS;
    for (int64_t k = static_cast<int64_t>(blockIdx.x) * ROPE_THREADS + threadIdx.x; k < items; k += stride) {
        const int64_t bt = k / half;  // (batch, token)
        const int i = static_cast<int>(k - bt * half);
        const int64_t token = bt % p.seq;
        // The angle depends on the token and the pair only: once for all the heads.
        const float phi = static_cast<float>(p.pos_offset + token) * p.inv_freq[i];
        float s, c;
        sincosf(phi, &s, &c);
        const int ia = p.variant == ROPE_VARIANT_YOCO ? 2 * i : i;
        const int ib = p.variant == ROPE_VARIANT_YOCO ? 2 * i + 1 : i + half;
        // Head h's pair is at xa[h * head_dim], xb[h * head_dim]. Each element is read, then
        // written, by this thread only (out may be x); a batch's loads all precede its stores.
        const int64_t row = bt * heads * head_dim;
        const T* xa = x + row + ia;
        const T* xb = x + row + ib;
        T* oa = out + row + ia;
        T* ob = out + row + ib;
        int h = 0;
        for (; h + HB <= heads; h += HB) {
            float a[HB], b[HB];
#pragma unroll
            for (int hb = 0; hb < HB; ++hb) {
                a[hb] = yoco::to_f32(xa[hb * head_dim]);
                b[hb] = yoco::to_f32(xb[hb * head_dim]);
            }
#pragma unroll
            for (int hb = 0; hb < HB; ++hb) {
                oa[hb * head_dim] = yoco::from_f32<T>(a[hb] * c - b[hb] * s);
                ob[hb * head_dim] = yoco::from_f32<T>(a[hb] * s + b[hb] * c);
            }
            xa += HB * head_dim;
            xb += HB * head_dim;
            oa += HB * head_dim;
            ob += HB * head_dim;
        }
        for (; h < heads; ++h) {
            const float a = yoco::to_f32(*xa);
            const float b = yoco::to_f32(*xb);
            *oa = yoco::from_f32<T>(a * c - b * s);
            *ob = yoco::from_f32<T>(a * s + b * c);
            xa += head_dim;
            xb += head_dim;
            oa += head_dim;
            ob += head_dim;
        }
    }
}

template <typename T>
__device__ __forceinline__ void rope(const RopeParams& p) {
    switch (p.head_dim) {
        case 64: rope_heads<T, 64>(p); break;
        case 128: rope_heads<T, 128>(p); break;
        default: rope_heads<T, 0>(p); break;
    }
}

}  // namespace

extern "C" __global__ void __launch_bounds__(ROPE_THREADS) rope_f32(RopeParams p) { rope<float>(p); }
extern "C" __global__ void __launch_bounds__(ROPE_THREADS) rope_bf16(RopeParams p) { rope<__nv_bfloat16>(p); }
extern "C" __global__ void __launch_bounds__(ROPE_THREADS) rope_f16(RopeParams p) { rope<__half>(p); }
