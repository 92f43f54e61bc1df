// Device helpers shared by every yoco kernel: storage-type conversions, 16-byte packs, warp and
// block reductions. One home for each, so that the kernels cannot drift apart.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

namespace yoco {

// ---- dynamic shared memory -----------------------------------------------------------------------
// `name`: the launch's dynamic shared memory as unsigned char[], aligned to `align` bytes. A macro
// so that the CPU emulator (emulator/, YOCO_EMULATED) can hand out its per-block buffer instead.
#ifdef YOCO_EMULATED
#define YOCO_DYNAMIC_SHARED(name, align) unsigned char* const name = ::yoco_emu::dynamic_shared(align)
#else
#define YOCO_DYNAMIC_SHARED(name, align) extern __shared__ __align__(align) unsigned char name[]
#endif

// ---- storage <-> f32 ----------------------------------------------------------------------------
__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }

// ---- 16-byte packs: one vectorised load or store ---------------------------------------------
// Callers guarantee 16-byte alignment (the host checks it and sets a `vectorized` flag). A pack is
// held as one uint4 (one LDG.128 / STG.128): four 32-bit words, 16-bit elements two to a word with
// the lower index in the low half, converted to and from f32 a word at a time. (A struct of eight
// bf16 values made the compiler keep each element in a register of its own, extracted with a PRMT
// apiece: twice the registers of a pack.)
template <typename T>
struct Pack {
    static constexpr int N = 16 / sizeof(T);  // elements per pack
};

template <typename T>
__device__ __forceinline__ uint4 load_pack(const T* base, int64_t pack_index) {
    return reinterpret_cast<const uint4*>(base)[pack_index];
}

template <typename T>
__device__ __forceinline__ void store_pack(T* base, int64_t pack_index, const uint4& p) {
    reinterpret_cast<uint4*>(base)[pack_index] = p;
}

// Two floats rounded to one 32-bit register of T (bf16 or f16), `lo` in the low half.
template <typename T> __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
}
template <> __device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
}

// The two elements of a word of T (bf16 or f16) as f32, the low half first.
template <typename T> __device__ __forceinline__ float2 unpack2(uint32_t w);
template <> __device__ __forceinline__ float2 unpack2<__nv_bfloat16>(uint32_t w) {
    // bf16 is the top half of an f32: placing the bits is the exact conversion.
    return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xffff0000u));
}
template <> __device__ __forceinline__ float2 unpack2<__half>(uint32_t w) {
    __half2 h;
    memcpy(&h, &w, sizeof(h));
    return __half22float2(h);
}

// A word of two T elements multiplied by f_lo and f_hi (the low and the high element), rounded
// back: a tensor-core operand scaled in registers, with the value from_f32(to_f32(x) · f) has.
template <typename T>
__device__ __forceinline__ uint32_t scale2(uint32_t w, float f_lo, float f_hi) {
    const float2 v = unpack2<T>(w);
    return pack2<T>(v.x * f_lo, v.y * f_hi);
}

// A pack's elements as f32 (to_f32 of each), and f32 values rounded into a pack (from_f32 of each).
template <typename T>
__device__ __forceinline__ void unpack(const uint4& p, float (&f)[Pack<T>::N]) {
    const uint32_t w[4] = {p.x, p.y, p.z, p.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        if constexpr (sizeof(T) == 4) {
            f[i] = __uint_as_float(w[i]);
        } else {
            const float2 v = unpack2<T>(w[i]);
            f[2 * i] = v.x;
            f[2 * i + 1] = v.y;
        }
    }
}

template <typename T>
__device__ __forceinline__ uint4 repack(const float (&f)[Pack<T>::N]) {
    uint32_t w[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        if constexpr (sizeof(T) == 4) {
            w[i] = __float_as_uint(f[i]);
        } else {
            w[i] = pack2<T>(f[2 * i], f[2 * i + 1]);
        }
    }
    return make_uint4(w[0], w[1], w[2], w[3]);
}

// ---- reductions ---------------------------------------------------------------------------------
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// A reduction over the whole block with `warp_reduce` (warp_sum or warp_max) and its `identity`;
// every thread gets the result. `scratch` holds 32 floats in shared memory. Needs blockDim.x to
// be a multiple of 32.
template <float (*warp_reduce)(float)>
__device__ __forceinline__ float block_reduce(float v, float identity, float* scratch) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    v = warp_reduce(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float total = lane < warps ? scratch[lane] : identity;
    total = warp_reduce(total);
    __syncthreads();  // scratch may be reused by the caller right after
    return total;
}

__device__ __forceinline__ float block_sum(float v, float* scratch) { return block_reduce<warp_sum>(v, 0.0f, scratch); }

// −∞ for a block of −∞.
__device__ __forceinline__ float block_max(float v, float* scratch) { return block_reduce<warp_max>(v, -INFINITY, scratch); }

__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }

// 2^x in one MUFU.EX2, flushing subnormal inputs and results to zero. Plain exp2f (without
// -ftz=true) also runs on ex2.approx, but wraps it in range fix-ups (compare, halve the
// argument, square the result) so that results below 2^-126 come out subnormal; where such
// values do not matter this saves three instructions per call. Special values (PTX ISA, ex2):
// 2^-inf = +0, 2^±0 = 1, 2^+inf = +inf, NaN stays NaN. Same accuracy as exp2f otherwise
// (ex2.approx: max relative error about 2^-22 over the normal range).
__device__ __forceinline__ float exp2_ftz(float x) {
#ifdef YOCO_EMULATED
    return yoco_emu::exp2_ftz(x);
#else
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
#endif
}

// ---- tensor cores and asynchronous copies (sm_80+: mma.sync, ldmatrix, cp.async) -------------
// Fragment layouts are PTX's for mma.m16n8k16 (groupID = lane / 4, tig = lane % 4):
//   A 16x16 row-major, 4 regs: a0 (g, 2tig..+1), a1 (g+8, 2tig..), a2 (g, 8+2tig..), a3 (g+8, 8+2tig..)
//   B 16x8 (k x n), 2 regs:    b0 (k = 2tig..+1, n = g), b1 (k = 8+2tig..+1, n = g)
//   C 16x8 f32, 4 regs:        c0, c1 (g, 2tig..+1), c2, c3 (g+8, 2tig..+1)
// Each 32-bit register holds two 16-bit elements, the lower column (or k) in the low half.


// d += a · b on tensor cores, 16x8x16, f32 accumulation; T is the input type (bf16 or f16).
template <typename T>
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma_m16n8k16<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#ifdef YOCO_EMULATED
    yoco_emu::mma_m16n8k16(true, d, a, b0, b1);
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}
template <>
__device__ __forceinline__ void mma_m16n8k16<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#ifdef YOCO_EMULATED
    yoco_emu::mma_m16n8k16(false, d, a, b0, b1);
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// Four 8x8 matrices of 16-bit elements from shared memory; lanes 8m..8m+7 give the row
// addresses (16-byte aligned) of matrix m, register m receives it in the fragment layout
// (lane holds row lane/4, elements 2(lane%4)..+1). `_trans` transposes each matrix.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem_row) {
#ifdef YOCO_EMULATED
    yoco_emu::ldmatrix_x4(false, r, smem_row);
#else
    const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem_row));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
#endif
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem_row) {
#ifdef YOCO_EMULATED
    yoco_emu::ldmatrix_x4(true, r, smem_row);
#else
    const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem_row));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
#endif
}

// This lane's row address for one ldmatrix_x4 of a 16x16 block of a row-major tile in shared
// memory (`block` its first element, `ld` the tile's row stride in elements), by the block's role:
// - ldmatrix_a_row: the block as an A operand (rows m, columns k): registers a0..a3.
// - ldmatrix_b_nk_row: the block stored [n][k] (keys by head dims, for Q Kᵀ) as the B operand of
//   two 8-column n-tiles, with ldmatrix_x4: r0, r1 = n 0–7 (k 0–7, 8–15), r2, r3 = n 8–15. With
//   ldmatrix_x4_trans the same addresses give the A operand of the block's transpose (a tile
//   stored [k][m]): r0..r3 = a0..a3.
// - ldmatrix_b_kn_row: the block stored [k][n] (keys by value columns, for P·V) as the B operand
//   of two n-tiles, with ldmatrix_x4_trans: r0, r1 = n 0–7, r2, r3 = n 8–15.
template <typename T>
__device__ __forceinline__ const T* ldmatrix_a_row(const T* block, int ld) {
    const int lane = threadIdx.x & 31;
    return block + (lane & 15) * ld + (lane >> 4) * 8;
}
template <typename T>
__device__ __forceinline__ const T* ldmatrix_b_nk_row(const T* block, int ld) {
    const int lane = threadIdx.x & 31;
    return block + ((lane & 7) + ((lane >> 4) << 3)) * ld + ((lane >> 3) & 1) * 8;
}
template <typename T>
__device__ __forceinline__ const T* ldmatrix_b_kn_row(const T* block, int ld) {
    const int lane = threadIdx.x & 31;
    return block + ((lane & 7) + (((lane >> 3) & 1) << 3)) * ld + (lane >> 4) * 8;
}

// Two C fragments of 8 columns each (c_lo: columns 0–7, c_hi: 8–15 of the same 16 rows), rounded
// to T, as the A fragment of a k-step over those 16 columns: a product's output fed to the next
// product from registers (attention's P before P·V).
template <typename T>
__device__ __forceinline__ void a_from_accumulators(uint32_t (&a)[4], const float (&c_lo)[4], const float (&c_hi)[4]) {
    a[0] = pack2<T>(c_lo[0], c_lo[1]);
    a[1] = pack2<T>(c_lo[2], c_lo[3]);
    a[2] = pack2<T>(c_hi[0], c_hi[1]);
    a[3] = pack2<T>(c_hi[2], c_hi[3]);
}

// d[mt] += a[mt] · B for one k-step of 16 and each of MT m-tiles, B the 16 rows at `rows16` of a
// tile stored [k][n] (row stride `ld`) and N columns wide: one ldmatrix_x4_trans per 16 columns
// serves every m-tile.
template <typename T, int MT, int N>
__device__ __forceinline__ void mma_kn_block(float (&d)[MT][N / 8][4], const uint32_t (&a)[MT][4], const T* rows16, int ld) {
#pragma unroll
    for (int np = 0; np < N / 16; ++np) {
        uint32_t b[4];  // r0, r1: columns 16np + 0–7; r2, r3: + 8–15
        ldmatrix_x4_trans(b, ldmatrix_b_kn_row(rows16 + np * 16, ld));
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
            mma_m16n8k16<T>(d[mt][2 * np], a[mt], b[0], b[1]);
            mma_m16n8k16<T>(d[mt][2 * np + 1], a[mt], b[2], b[3]);
        }
    }
}

// 16 bytes global -> shared without passing through registers; `valid == false` writes 16 zero
// bytes instead (src-size 0: `src` is not read, but must still be a valid global address).
__device__ __forceinline__ void cp_async_16(void* smem_dst, const void* src, bool valid) {
#ifdef YOCO_EMULATED
    yoco_emu::cp_async_issue(smem_dst, src, 16, valid);
#else
    const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem_dst));
    const int src_size = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_size) : "memory");
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#ifdef YOCO_EMULATED
    yoco_emu::cp_async_commit();
#else
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
// Waits until at most N committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#ifdef YOCO_EMULATED
    yoco_emu::cp_async_wait(N);
#else
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

}  // namespace yoco
