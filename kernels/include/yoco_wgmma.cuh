// Hopper's warpgroup tensor-core instructions (sm_90a: wgmma.mma_async and its fences), wrapped
// for the kernels as yoco_common.cuh wraps mma.sync: the CPU emulator (emulator/, YOCO_EMULATED)
// runs its own versions. PTX ISA 8.x, "Asynchronous Warpgroup Level Matrix Multiply-Accumulate".
//
// A warpgroup is 4 consecutive warps (128 threads, the first warp's index a multiple of 4). One
// wgmma.mma_async.m64nNk16 multiplies a 64 x 16 A by a 16 x N B into a 64 x N f32 accumulator that
// the warpgroup holds in registers: warp w of the group holds rows 16w .. 16w + 15 in mma.sync's
// C-fragment layout repeated over the N / 8 column tiles (register 4j + i of a thread: column tile
// j, element i of the m16n8 C fragment). An A in registers is likewise warp w's rows in the A
// fragment of mma.m16n8k16. Operands in shared memory are named by a 64-bit descriptor.
//
// Shared-memory layout (the only one these wrappers describe): 128-byte swizzle, 16-bit elements.
// A tile is stored as column blocks of 64 elements (128 bytes); in each, row r's 16-byte chunk c
// (elements 8c .. 8c + 7) sits at byte r * 128 + ((c ^ (r % 8)) * 16) of the block, the block
// starting on a 1024-byte boundary of the shared window (the swizzle XORs address bits 4-6 with
// bits 7-9, so a block must start where those are 0). swizzled_chunk() gives that offset. Read as
// K-major (rows are M or N, columns K: Q and K for S = Q Kᵀ), the descriptor's stride byte offset
// is 1024 (8 rows) and the leading one unused; read as MN-major (rows are K, columns N: V for
// O += P V, imm-trans-b = 1), the leading byte offset is the distance between column blocks and
// the stride byte offset 1024 (8 rows of K).
#pragma once

#include <stdint.h>

#include <type_traits>

#include "yoco_common.cuh"  // the 16-bit types, and the emulator's declarations where it runs

namespace yoco {

// Byte offset of row r's 16-byte chunk c (c < 8) in a 128-byte-swizzled column block.
__host__ __device__ constexpr int swizzled_chunk(int r, int c) { return r * 128 + ((c ^ (r & 7)) << 4); }

// The address of a shared-memory pointer in the shared window (what descriptors hold).
__device__ __forceinline__ uint32_t shared_address(const void* p) {
#ifdef YOCO_EMULATED
    return yoco_emu::shared_address(p);
#else
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
#endif
}

// The descriptor of a 128-byte-swizzled operand starting at shared address `addr`, with leading
// and stride byte offsets `lbo`, `sbo` (PTX: bits 0-13 address >> 4, 16-29 lbo >> 4, 32-45 sbo >>
// 4, 49-51 base offset 0 (blocks start on 1024-byte boundaries), 62-63 swizzle mode 1 = 128 B).
__device__ __forceinline__ uint64_t wgmma_desc_sw128(uint32_t addr, uint32_t lbo, uint32_t sbo) {
    return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | static_cast<uint64_t>((lbo & 0x3FFFF) >> 4) << 16 |
           static_cast<uint64_t>((sbo & 0x3FFFF) >> 4) << 32 | uint64_t{1} << 62;
}

// Orders the registers' earlier accesses before the wgmma.mma_async that follow (needed before
// the first of a batch, and whenever other instructions wrote its accumulators or A registers).
__device__ __forceinline__ void wgmma_fence() {
#ifdef YOCO_EMULATED
    yoco_emu::wgmma_fence();
#else
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
// Closes the batch of wgmma.mma_async issued since the last commit into one group.
__device__ __forceinline__ void wgmma_commit() {
#ifdef YOCO_EMULATED
    yoco_emu::wgmma_commit();
#else
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
// Waits until at most N committed groups are pending; their accumulators may be read after.
template <int N>
__device__ __forceinline__ void wgmma_wait() {
#ifdef YOCO_EMULATED
    yoco_emu::wgmma_wait(N);
#else
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
// Pins registers to this point of the program (CUTLASS's warpgroup_fence_operand): the compiler
// sees a wgmma.mma_async read and write its accumulators (and A registers) only at its own asm
// statement, and could otherwise move their other writes below wgmma_fence or their reads above
// wgmma_wait, where the hardware is still using them. Before wgmma_fence and after wgmma_wait.
template <typename E, int N>
__device__ __forceinline__ void wgmma_pin(E (&x)[N]) {
    static_assert(std::is_same_v<E, float> || std::is_same_v<E, uint32_t>, "accumulators (f32) or A registers (b32)");
#ifndef YOCO_EMULATED
#pragma unroll
    for (int i = 0; i < N; ++i) {
        if constexpr (std::is_same_v<E, float>) {
            asm volatile("" : "+f"(x[i])::"memory");
        } else {
            asm volatile("" : "+r"(x[i])::"memory");
        }
    }
#endif
}

// Makes this thread's generic-proxy writes to shared memory (stores, cp.async that have landed)
// visible to the async proxy, which wgmma reads its shared-memory operands through; a barrier
// after it extends that to the other threads' wgmma. (The emulator has one proxy; its racecheck
// fails a wgmma that reads a write no such fence and barrier followed.)
__device__ __forceinline__ void fence_proxy_async_shared() {
#ifdef YOCO_EMULATED
    yoco_emu::fence_proxy_async();
#else
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// The accumulator operand lists of the inline assembly below: "+f"(d[i]) .. "+f"(d[i + 7]).
#define YOCO_WGMMA_D8(i)                                                                                            \
    "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), \
        "+f"(d[i + 7])
#define YOCO_WGMMA_D32(i) YOCO_WGMMA_D8(i), YOCO_WGMMA_D8(i + 8), YOCO_WGMMA_D8(i + 16), YOCO_WGMMA_D8(i + 24)
#define YOCO_WGMMA_REGS32                                                                                            \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, " \
    "%24, %25, %26, %27, %28, %29, %30, %31}"
#define YOCO_WGMMA_REGS64                                                                                              \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, "   \
    "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, " \
    "%47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"

template <typename T>
struct WgmmaType;
template <>
struct WgmmaType<__nv_bfloat16> {
    static constexpr bool BF16 = true;
};
template <>
struct WgmmaType<__half> {
    static constexpr bool BF16 = false;
};

// d += A · B, 64 x N x 16, A and B K-major in shared memory (descriptors a, b); N = 64 only
// (the instantiations the kernels use; others would add their operand lists here).
template <typename T, int N>
__device__ __forceinline__ void wgmma_ss(float (&d)[N / 2], uint64_t a, uint64_t b) {
    static_assert(N == 64, "wgmma_ss: N = 64");
#ifdef YOCO_EMULATED
    yoco_emu::wgmma_issue(WgmmaType<T>::BF16, N, d, nullptr, a, b, false);
#else
    if constexpr (WgmmaType<T>::BF16) {
        asm volatile("wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " YOCO_WGMMA_REGS32 ", %32, %33, 1, 1, 1, 0, 0;\n"
                     : YOCO_WGMMA_D32(0)
                     : "l"(a), "l"(b));
    } else {
        asm volatile("wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 " YOCO_WGMMA_REGS32 ", %32, %33, 1, 1, 1, 0, 0;\n"
                     : YOCO_WGMMA_D32(0)
                     : "l"(a), "l"(b));
    }
#endif
}

// d += A · B, 64 x N x 16, A in registers (this warp's rows, mma.m16n8k16's A fragment), B
// MN-major in shared memory (descriptor b, imm-trans-b = 1); N = 64 or 128.
template <typename T, int N>
__device__ __forceinline__ void wgmma_rs(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t b) {
    static_assert(N == 64 || N == 128, "wgmma_rs: N = 64 or 128");
#ifdef YOCO_EMULATED
    yoco_emu::wgmma_issue(WgmmaType<T>::BF16, N, d, a, 0, b, true);
#else
    if constexpr (N == 64 && WgmmaType<T>::BF16) {
        asm volatile("wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " YOCO_WGMMA_REGS32 ", {%32, %33, %34, %35}, %36, 1, 1, 1, 1;\n"
                     : YOCO_WGMMA_D32(0)
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
    } else if constexpr (N == 64) {
        asm volatile("wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 " YOCO_WGMMA_REGS32 ", {%32, %33, %34, %35}, %36, 1, 1, 1, 1;\n"
                     : YOCO_WGMMA_D32(0)
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
    } else if constexpr (WgmmaType<T>::BF16) {
        asm volatile("wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " YOCO_WGMMA_REGS64 ", {%64, %65, %66, %67}, %68, 1, 1, 1, 1;\n"
                     : YOCO_WGMMA_D32(0), YOCO_WGMMA_D32(32)
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
    } else {
        asm volatile("wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 " YOCO_WGMMA_REGS64 ", {%64, %65, %66, %67}, %68, 1, 1, 1, 1;\n"
                     : YOCO_WGMMA_D32(0), YOCO_WGMMA_D32(32)
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
    }
#endif
}

#undef YOCO_WGMMA_D8
#undef YOCO_WGMMA_D32
#undef YOCO_WGMMA_REGS32
#undef YOCO_WGMMA_REGS64

}  // namespace yoco
