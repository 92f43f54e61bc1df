// The gate of the SwiGLU FFN: out = silu(gate) * up, elementwise, silu in f32.
//
//   FFN(x) = W2 · (silu(W1 x) ⊙ (W3 x)):  the three projections are cuBLAS GEMMs (crates/swiglu
//   src/cuda.rs); this kernel is the fused middle, which a plain implementation would do in three
//   passes (silu, round, multiply) over memory.
//
// Storage f32, bf16 or f16; entries silu_mul_{f32,bf16,f16}. Memory-bound: per element it reads
// two values and writes one, 3 · sizeof(T) bytes, which is what the bench divides by. One version:
// a grid-stride loop over 16-byte packs (element by element when the host says the buffers are
// not pack-aligned, e.g. n = 4095), two packs per trip with both loads in flight before the
// arithmetic, on a grid of exactly the blocks the GPU holds at once (one full wave: a fixed
// 132 x 16 blocks at 6 per SM was 2.67 waves, the last a third empty).
#include "swiglu.h"
#include "yoco_common.cuh"

namespace {

template <typename T>
__device__ __forceinline__ void silu_mul(const SiluMulParams& p) {
    const T* gate = static_cast<const T*>(p.gate);
    const T* up = static_cast<const T*>(p.up);
    T* out = static_cast<T*>(p.out);
    const int64_t stride = static_cast<int64_t>(gridDim.x) * SWIGLU_THREADS;
    const int64_t first = static_cast<int64_t>(blockIdx.x) * SWIGLU_THREADS + threadIdx.x;
    if (p.vectorized) {
        constexpr int N = yoco::Pack<T>::N;
        const int64_t packs = p.n / N;
        // Two packs per thread per trip, both loaded before either is used: 64 bytes in flight
        // per thread instead of 32 between a pack's load and the silu arithmetic that needs it.
        // A thread's packs are i, i + stride, i + 2 stride, ... as before (out may be gate).
        for (int64_t i = first; i < packs; i += 2 * stride) {
            const int64_t i1 = i + stride;
            const bool two = i1 < packs;
            const uint4 g0 = yoco::load_pack(gate, i);
            const uint4 u0 = yoco::load_pack(up, i);
            uint4 g1 = make_uint4(0, 0, 0, 0), u1 = make_uint4(0, 0, 0, 0);
            if (two) {
                g1 = yoco::load_pack(gate, i1);
                u1 = yoco::load_pack(up, i1);
            }
            // out's pack `at` from the gate and up packs g, u.
            const auto gate_pack = [&](int64_t at, const uint4& gp, const uint4& up_pack) {
                float g[N], u[N];
                yoco::unpack<T>(gp, g);
                yoco::unpack<T>(up_pack, u);
#pragma unroll
                for (int j = 0; j < N; ++j) g[j] = yoco::silu(g[j]) * u[j];
                yoco::store_pack(out, at, yoco::repack<T>(g));
            };
            gate_pack(i, g0, u0);
            if (two) gate_pack(i1, g1, u1);
        }
    } else {
        for (int64_t i = first; i < p.n; i += stride) out[i] = yoco::from_f32<T>(yoco::silu(yoco::to_f32(gate[i])) * yoco::to_f32(up[i]));
    }
}

}  // namespace

#define YOCO_SILU_MUL_ENTRY(suffix, T)                                                                   \
    extern "C" __global__ void __launch_bounds__(SWIGLU_THREADS) silu_mul_##suffix(const SiluMulParams p) { \
        silu_mul<T>(p);                                                                                  \
    }

YOCO_SILU_MUL_ENTRY(f32, float)
YOCO_SILU_MUL_ENTRY(bf16, __nv_bfloat16)
YOCO_SILU_MUL_ENTRY(f16, __half)
