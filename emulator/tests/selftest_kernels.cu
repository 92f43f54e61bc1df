// Kernels for emulator/tests/selftest.cpp: one correct kernel per mechanism, and one kernel per
// kind of bug the emulator must catch. Compiled exactly as kernels/*.cu are.
#include <stdint.h>

#include "yoco_common.cuh"
#include "yoco_wgmma.cuh"

struct SelftestParams {
    float* out;
    const float* in;
    int n;
    int mode;
};

// A block sum over shuffles and shared memory (yoco::block_sum), one block per output.
extern "C" __global__ void selftest_block_sum(SelftestParams p) {
    __shared__ float scratch[32];
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const float total = yoco::block_sum(i < p.n ? p.in[i] : 0.0f, scratch);
    if (threadIdx.x == 0) p.out[blockIdx.x] = total;
}

// Each thread writes its slot of shared memory and reads its neighbour's: with the barrier
// (mode 1) out[i] = in[i + 1]; without it (mode 0) some schedule reads the slot before it is
// written, and the emulator's shuffled schedules make that show.
extern "C" __global__ void selftest_neighbour(SelftestParams p) {
    YOCO_DYNAMIC_SHARED(smem, 16);
    float* s = reinterpret_cast<float*>(smem);
    const int t = threadIdx.x;
    s[t] = p.in[t];
    if (p.mode == 1) __syncthreads();
    p.out[t] = s[(t + 1) % blockDim.x];
}

// A static __shared__ array written (mode 1) or only read (mode 0): a read of what no thread of
// this block wrote must not see an earlier block's values.
extern "C" __global__ void selftest_static_shared(SelftestParams p) {
    __shared__ float s[64];
    if (p.mode == 1) s[threadIdx.x] = p.in[threadIdx.x];
    __syncthreads();
    p.out[threadIdx.x] = s[threadIdx.x];
}

// Each thread reads another warp's slot, then (after a warp reduction: many warp meeting points)
// overwrites its own. Without the barrier between (mode 0), a warp that runs ahead overwrites a
// slot another warp has yet to read; with it (mode 1) out[t] is always in[(t + 32) % n].
extern "C" __global__ void selftest_overwrite(SelftestParams p) {
    YOCO_DYNAMIC_SHARED(smem, 16);
    float* s = reinterpret_cast<float*>(smem);
    const int t = threadIdx.x, n = blockDim.x;
    s[t] = p.in[t];
    __syncthreads();
    const float other = s[(t + 32) % n];
    const float total = yoco::warp_sum(other);
    if (p.mode == 1) __syncthreads();
    s[t] = total;
    __syncthreads();
    p.out[t] = other;
}

// Lanes of one warp at different warp-wide operations (mode 0), or half a warp at __syncthreads
// while the other half waits at a shuffle (mode 1, a deadlock).
extern "C" __global__ void selftest_divergent(SelftestParams p) {
    const int lane = threadIdx.x & 31;
    if (p.mode == 0) {
        if (lane < 16)
            p.out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
        else
            __syncwarp();
    } else {
        if (lane < 16)
            __syncthreads();
        else
            p.out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
    }
}

// A 16-byte pack loaded from 4 bytes past a 16-byte boundary (a misaligned LDG.128).
extern "C" __global__ void selftest_misaligned(SelftestParams p) {
    if (threadIdx.x == 0) {
        const uint4 v = yoco::load_pack(p.in + 1, 0);
        p.out[0] = __uint_as_float(v.x);
    }
}

// Writes one element past the end of `out` (n elements).
extern "C" __global__ void selftest_out_of_bounds(SelftestParams p) {
    if (threadIdx.x == 0) p.out[p.n] = 1.0f;
}

// cp.async of 4 floats into shared memory, read before the wait (mode 0: stale, the 0xff poison)
// or after it (mode 1: the copied values).
extern "C" __global__ void selftest_cp_async(SelftestParams p) {
    YOCO_DYNAMIC_SHARED(smem, 16);
    float* s = reinterpret_cast<float*>(smem);
    if (threadIdx.x == 0) {
        yoco::cp_async_16(s, p.in, true);
        yoco::cp_async_commit();
        if (p.mode == 1) yoco::cp_async_wait<0>();
        for (int i = 0; i < 4; ++i) p.out[i] = s[i];
    }
}

// Races that no result shows, for racecheck. Mode 0: every thread writes the same value to one
// static __shared__ flag (a write-after-write hazard between warps; the value is right in any
// order); mode 1: thread 0 alone writes it (clean). Mode 2: lane 0 of each warp writes a slot that
// the lanes of its warp read after a shuffle, without a __syncwarp (the emulator's shuffle meets
// the whole warp, so the value is right here; CUDA's memory model does not order the two); mode 3:
// with the __syncwarp (clean).
extern "C" __global__ void selftest_hidden_race(SelftestParams p) {
    __shared__ float flag[1];
    YOCO_DYNAMIC_SHARED(smem, 16);
    float* s = reinterpret_cast<float*>(smem);
    const int t = threadIdx.x, warp = t / 32;
    float v;
    if (p.mode < 2) {
        if (p.mode == 0 || t == 0) flag[0] = 1.0f;
        __syncthreads();
        v = flag[0];
    } else {
        if (t % 32 == 0) s[warp] = p.in[warp];
        const float one = __shfl_sync(0xffffffffu, 1.0f, 0);
        if (p.mode == 3) __syncwarp();
        v = s[warp] * one;
    }
    p.out[t] = v;
}

// Hazards on the accesses the emulator reports on a thread's behalf, for racecheck. Mode 0: lane 1
// writes over the destination of lane 0's cp.async before its wait (the launch must fail); mode
// 1: after the wait (clean; a __syncwarp orders the two lanes in both, another keeps lane 0 from
// exiting, which lands its copies, before lane 1 writes). Mode 2: warp 1 stores a
// 16x16 tile that warp 0 reads by ldmatrix, with no barrier between (must fail); mode 3: with one
// (clean).
extern "C" __global__ void selftest_async_hazards(SelftestParams p) {
    YOCO_DYNAMIC_SHARED(smem, 16);
    const int t = threadIdx.x;
    if (p.mode < 2) {
        float* s = reinterpret_cast<float*>(smem);
        if (t == 0) {
            yoco::cp_async_16(s, p.in, true);
            yoco::cp_async_commit();
            if (p.mode == 1) yoco::cp_async_wait<0>();
        }
        __syncwarp();
        if (t == 1) s[0] = 2.0f;
        __syncwarp();
        p.out[t] = 0.0f;
        return;
    }
    __nv_bfloat16* tile = reinterpret_cast<__nv_bfloat16*>(smem);
    if (t >= 32)
        for (int e = t - 32; e < 256; e += 32) tile[e] = __float2bfloat16_rn(p.in[e % p.n]);
    if (p.mode == 3) __syncthreads();
    if (t < 32) {
        uint32_t r[4];
        yoco::ldmatrix_x4(r, &tile[(t % 16) * 16 + (t / 16) * 8]);
        p.out[t] = __uint_as_float(r[0]);
    }
}

// A 16x8x16 product on the tensor-core path: A and B from shared memory through ldmatrix (B
// transposed, as the attention kernel loads V), mma.sync, out = A·B (16x8, row-major).
extern "C" __global__ void selftest_mma(SelftestParams p) {
    __shared__ __align__(16) __nv_bfloat16 a[16 * 16];
    __shared__ __align__(16) __nv_bfloat16 b[16 * 8];  // k-major: b[k * 8 + n]
    const int lane = threadIdx.x;
    for (int e = lane; e < 256; e += 32) a[e] = __float2bfloat16_rn(p.in[e]);
    for (int e = lane; e < 128; e += 32) b[e] = __float2bfloat16_rn(p.in[256 + e]);
    __syncwarp();
    // A: lanes 0–15 give rows 0–15 of columns 0–7, lanes 16–31 rows 0–15 of columns 8–15.
    uint32_t fa[4];
    yoco::ldmatrix_x4(fa, &a[(lane % 16) * 16 + (lane / 16) * 8]);
    // B (k x n, stored k-major): ldmatrix.trans of rows k = 0..15 gives the col-major fragment;
    // x4 reads k 0–7 and 8–15 twice over (matrices 2 and 3 repeat 0 and 1).
    uint32_t fb[4];
    yoco::ldmatrix_x4_trans(fb, &b[(lane % 16) * 8]);
    float d[4] = {0, 0, 0, 0};
    yoco::mma_m16n8k16<__nv_bfloat16>(d, fa, fb[0], fb[1]);
    const int g = lane / 4, tig = lane % 4;
    p.out[g * 8 + 2 * tig] = d[0];
    p.out[g * 8 + 2 * tig + 1] = d[1];
    p.out[(g + 8) * 8 + 2 * tig] = d[2];
    p.out[(g + 8) * 8 + 2 * tig + 1] = d[3];
}

// One warpgroup's wgmma.mma_async from 128-byte-swizzled shared memory, out = the 64 x N product
// (row-major). in: A (64 x 16, row-major), then B. Modes: 0, A and B K-major from shared memory
// (B given as 64 rows of n, 16 of k), N = 64; 1, A from registers and B MN-major (given as 16 rows
// of k, 128 of n: two 64-column blocks), N = 128; 2, mode 0 with out written before the wait; 3,
// mode 0 with the tiles 128 bytes off the 1024-byte boundary the swizzle needs; 4, mode 0 with
// the last warp's B descriptor 16 bytes off the others' (the launch must fail); 5, mode 0 with A
// overwritten (by zeros) between the issue and the wait; 6, mode 0 without the fence.proxy.async
// between the operands' stores and the barrier (right here; the GPU's wgmma may not see them); 7,
// mode 0 without the wgmma.fence before the issue (the launch must fail); 8, mode 0 with the
// fence.proxy.async after the barrier, by the threads that issue the wgmma (as good as before).
extern "C" __global__ void selftest_wgmma(SelftestParams p) {
    YOCO_DYNAMIC_SHARED(raw, 16);
    unsigned char* base = raw + (1024 - yoco::shared_address(raw) % 1024) % 1024 + (p.mode == 3 ? 128 : 0);
    __nv_bfloat16* sa = reinterpret_cast<__nv_bfloat16*>(base);         // 64 rows of 16: one column block
    __nv_bfloat16* sb = reinterpret_cast<__nv_bfloat16*>(base + 8192);  // mode 1: blocks 16 rows (2 KiB) apart
    const auto put = [](__nv_bfloat16* block, int r, int c, float v) {
        block[(yoco::swizzled_chunk(r, c / 8) + (c % 8) * 2) / 2] = __float2bfloat16_rn(v);
    };
    const int t = threadIdx.x;
    for (int e = t; e < 64 * 16; e += 128) put(sa, e / 16, e % 16, p.in[e]);
    if (p.mode == 1) {
        for (int e = t; e < 16 * 128; e += 128) put(sb + e % 128 / 64 * 16 * 64, e / 128, e % 64, p.in[1024 + e]);
    } else {
        for (int e = t; e < 64 * 16; e += 128) put(sb, e / 16, e % 16, p.in[1024 + e]);
    }
    if (p.mode != 6 && p.mode != 8) yoco::fence_proxy_async_shared();
    __syncthreads();
    if (p.mode == 8) yoco::fence_proxy_async_shared();
    const int lane = t % 32, row0 = t / 32 * 16 + lane / 4, tig = lane % 4;
    const uint32_t a_addr = yoco::shared_address(sa), b_addr = yoco::shared_address(sb);
    const auto store = [&](const float* d, int n) {
        for (int j = 0; j < n / 8; ++j)
            for (int i = 0; i < 4; ++i) p.out[(row0 + 8 * (i / 2)) * n + 8 * j + 2 * tig + i % 2] = d[4 * j + i];
    };
    if (p.mode == 1) {
        const float* a = p.in;
        const uint32_t frag[4] = {yoco::pack2<__nv_bfloat16>(a[row0 * 16 + 2 * tig], a[row0 * 16 + 2 * tig + 1]),
                                  yoco::pack2<__nv_bfloat16>(a[(row0 + 8) * 16 + 2 * tig], a[(row0 + 8) * 16 + 2 * tig + 1]),
                                  yoco::pack2<__nv_bfloat16>(a[row0 * 16 + 2 * tig + 8], a[row0 * 16 + 2 * tig + 9]),
                                  yoco::pack2<__nv_bfloat16>(a[(row0 + 8) * 16 + 2 * tig + 8], a[(row0 + 8) * 16 + 2 * tig + 9])};
        float d[64] = {};
        yoco::wgmma_pin(d);
        yoco::wgmma_fence();
        yoco::wgmma_rs<__nv_bfloat16, 128>(d, frag, yoco::wgmma_desc_sw128(b_addr, 16 * 128, 1024));
        yoco::wgmma_commit();
        yoco::wgmma_wait<0>();
        yoco::wgmma_pin(d);
        store(d, 128);
        return;
    }
    float d[32] = {};
    yoco::wgmma_pin(d);
    if (p.mode != 7) yoco::wgmma_fence();
    const uint32_t b_skew = p.mode == 4 && t / 32 == 3 ? 16 : 0;
    yoco::wgmma_ss<__nv_bfloat16, 64>(d, yoco::wgmma_desc_sw128(a_addr, 16, 1024), yoco::wgmma_desc_sw128(b_addr + b_skew, 16, 1024));
    yoco::wgmma_commit();
    if (p.mode == 5)
        for (int e = t; e < 64 * 16; e += 128) put(sa, e / 16, e % 16, 0.0f);
    if (p.mode != 2) yoco::wgmma_wait<0>();
    yoco::wgmma_pin(d);
    store(d, 64);
    yoco::wgmma_wait<0>();
}

// __trap().
// A double's f32 rounding and what it leaves, for two values side by side: IEEE arithmetic keeps
// the remainder (~1e-8 here). GCC 12's SLP vectoriser folded the pair to 0, until build.sh turned
// it off; gated retention's split cumsum (gate_prefix) depends on it.
extern "C" __global__ void selftest_round_trip(SelftestParams p) {
    const double c0 = static_cast<double>(p.in[0]) / 3.0, c1 = static_cast<double>(p.in[1]) / 3.0;
    const float2 hi = make_float2(static_cast<float>(c0), static_cast<float>(c1));
    reinterpret_cast<float2*>(p.out)[threadIdx.x] = make_float2(static_cast<float>(c0 - hi.x), static_cast<float>(c1 - hi.y));
}

extern "C" __global__ void selftest_trap(SelftestParams) { __trap(); }
