// CUDA device code as host C++: the keywords, built-in variables, vector and 16-bit float types
// and the intrinsics that kernels/*.cu use, each with the semantics the CUDA C++ Programming
// Guide and the PTX ISA give it. Force-included (-include) ahead of every kernel file; the
// tensor-core helpers of kernels/include/yoco_common.cuh call the emulator's versions when
// YOCO_EMULATED is defined.
#pragma once

#define YOCO_EMULATED 1

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <cmath>
#include <type_traits>

#include "yoco_emu/runtime.h"

// ---- keywords -------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// Blocks run one at a time, so a function-local static is exactly one block's shared variable.
// They are the kernel files' only zero-initialised data: build.sh renames each kernel object's
// .bss to yoco_shared, which the scheduler fills with 0xff bytes (NaN) before each block, so a
// read of shared memory no thread of the block wrote shows in the results.
#define __shared__ static

#define threadIdx (::yoco_emu::current().thread_idx)
#define blockIdx (::yoco_emu::block_idx())
#define blockDim (::yoco_emu::block_dim())
#define gridDim (::yoco_emu::grid_dim())

// ---- vector types ---------------------------------------------------------------------------
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) uint2 { unsigned int x, y; };
struct alignas(16) uint4 { unsigned int x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }

// ---- bit casts and rounding ----------------------------------------------------------------
inline float __uint_as_float(unsigned int u) { float f; memcpy(&f, &u, 4); return f; }
inline unsigned int __float_as_uint(float f) { unsigned int u; memcpy(&u, &f, 4); return u; }
inline int __float_as_int(float f) { int u; memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int u) { float f; memcpy(&f, &u, 4); return f; }
// The emulator is compiled with -ffp-contract=off, so a * b is one rounded product, as __fmul_rn
// promises (no fusion into an FMA).
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __expf(float x) { return expf(x); }
inline float __fdividef(float a, float b) { return a / b; }
// CUDA's integer min/max overloads; the float ones are fminf/fmaxf (a NaN argument is dropped).
#define YOCO_EMU_MINMAX(T)                          \
    inline T min(T a, T b) { return b < a ? b : a; } \
    inline T max(T a, T b) { return a < b ? b : a; }
YOCO_EMU_MINMAX(int)
YOCO_EMU_MINMAX(unsigned int)
YOCO_EMU_MINMAX(long)
YOCO_EMU_MINMAX(unsigned long)
YOCO_EMU_MINMAX(long long)
YOCO_EMU_MINMAX(unsigned long long)
#undef YOCO_EMU_MINMAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
[[noreturn]] inline void __trap() { ::yoco_emu::trap("__trap() called by the kernel"); }

// ---- 16-bit floats ---------------------------------------------------------------------------
// bf16: the top half of an f32; rounding to nearest even; every NaN becomes the canonical 0x7fff,
// as CUDA's conversion gives.
struct __nv_bfloat16 {
    uint16_t bits;
};
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return {0x7fff};
    u += 0x7fffu + ((u >> 16) & 1u);
    return {static_cast<uint16_t>(u >> 16)};
}
inline float __bfloat162float(__nv_bfloat16 h) { return __uint_as_float(static_cast<uint32_t>(h.bits) << 16); }
struct alignas(4) __nv_bfloat162 {
    __nv_bfloat16 x, y;
};
inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) { return {__float2bfloat16_rn(lo), __float2bfloat16_rn(hi)}; }

// f16 through the compiler's _Float16 (IEEE binary16, conversions round to nearest even).
struct __half {
    uint16_t bits;
};
inline __half __float2half_rn(float f) {
    if (f != f) return {0x7fff};  // CUDA's canonical NaN
    const _Float16 h = static_cast<_Float16>(f);
    __half out;
    memcpy(&out.bits, &h, 2);
    return out;
}
inline float __half2float(__half h) {
    _Float16 v;
    memcpy(&v, &h.bits, 2);
    return static_cast<float>(v);
}
struct alignas(4) __half2 {
    __half x, y;
};
inline __half2 __floats2half2_rn(float lo, float hi) { return {__float2half_rn(lo), __float2half_rn(hi)}; }
inline float2 __half22float2(__half2 h) { return {__half2float(h.x), __half2float(h.y)}; }
static_assert(sizeof(__nv_bfloat16) == 2 && sizeof(__half) == 2 && sizeof(__half2) == 4 && sizeof(__nv_bfloat162) == 4,
              "16-bit float layouts");

// ---- warp-wide operations --------------------------------------------------------------------
namespace yoco_emu {
// Every lane publishes `v` and gets the value of lane `source(its lane)`.
template <typename T, typename Source>
T shuffle(unsigned mask, T v, Source source) {
    const T* all = exchange(v, WarpOp::Shuffle, mask);
    const T r = slot(all, source(current().lane));
    release_exchange(WarpOp::Shuffle, mask);
    return r;
}
}  // namespace yoco_emu
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask) {
    return yoco_emu::shuffle(mask, v, [&](int lane) { return (lane ^ lane_mask) & 31; });
}
// Lanes below `delta` keep their own value.
template <typename T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta) {
    return yoco_emu::shuffle(mask, v, [&](int lane) { return lane >= static_cast<int>(delta) ? lane - static_cast<int>(delta) : lane; });
}
template <typename T>
T __shfl_sync(unsigned mask, T v, int src_lane) {
    return yoco_emu::shuffle(mask, v, [&](int) { return src_lane & 31; });
}
inline int __any_sync(unsigned mask, int predicate) {
    using namespace yoco_emu;
    const int* all = exchange(predicate, WarpOp::Vote, mask);
    int any = 0;
    for (int lane = 0; lane < 32; ++lane)
        if ((mask >> lane) & 1u) any |= slot(all, lane) != 0;
    release_exchange(WarpOp::Vote, mask);
    return any;
}
inline void __syncwarp(unsigned mask = 0xffffffffu) { yoco_emu::sync_warp(yoco_emu::WarpOp::SyncWarp, mask); }
inline void __syncthreads() { yoco_emu::sync_block(); }

// ---- the tensor-core and asynchronous-copy instructions yoco_common.cuh wraps -------------------
namespace yoco_emu {
// mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}: d += a · b over the warp's fragments.
void mma_m16n8k16(bool bf16, float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16
void ldmatrix_x4(bool trans, uint32_t (&r)[4], const void* row);
// ex2.approx.ftz.f32: 2^x with subnormal inputs and results flushed to zero.
float exp2_ftz(float x);
// wgmma.mma_async.sync.aligned.m64nNk16.f32.{bf16,f16}: d += A · B over the warpgroup, A from
// registers `a` (this warp's rows) or, with a null `a`, from the K-major operand of descriptor
// `desc_a`; B from descriptor `desc_b`, MN-major if trans_b. Runs at its issue or at the
// wgmma.wait_group that covers it, drawn per instruction (a read of d, or a write of the
// operands' shared memory, before the wait shows).
void wgmma_issue(bool bf16, int n, float* d, const uint32_t* a, uint64_t desc_a, uint64_t desc_b, bool trans_b);
// fence.proxy.async.shared::cta: this thread's writes to shared memory so far become visible to
// wgmma's operand reads (racecheck.h checks that each operand byte's writer fenced after writing).
void fence_proxy_async();
// wgmma.fence / commit_group / wait_group.sync.aligned.
void wgmma_fence();
void wgmma_commit();
void wgmma_wait(int groups_pending);
}  // namespace yoco_emu
