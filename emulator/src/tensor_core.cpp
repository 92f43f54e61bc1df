// mma.sync m16n8k16, ldmatrix x4 and ex2.approx.ftz as the PTX ISA defines them, over the
// fragment layouts documented in kernels/include/yoco_common.cuh (groupID g = lane / 4,
// tig = lane % 4). Each lane publishes its registers in the warp's exchange slots, then computes
// its own outputs from everybody's.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "yoco_emu/device.h"

namespace yoco_emu {

namespace {

float bits_to_float(bool bf16, uint32_t bits16) {
    if (bf16) return __uint_as_float(bits16 << 16);
    __half h;
    h.bits = static_cast<uint16_t>(bits16);
    return __half2float(h);
}

uint32_t half_of(uint32_t word, int which) { return which ? word >> 16 : word & 0xffffu; }

struct MmaSlot {
    uint32_t a[4];
    uint32_t b[2];
};

// A (16x16, row-major) element (r, k): register (r ≥ 8) + 2 (k ≥ 8) of lane (r % 8)·4 + (k % 8)/2.
float a_at(bool bf16, const MmaSlot* all, int r, int k) {
    const MmaSlot& s = slot(all, (r % 8) * 4 + (k % 8) / 2);
    return bits_to_float(bf16, half_of(s.a[(r >= 8) + 2 * (k >= 8)], k % 2));
}

// B (16x8, k x n) element (k, n): register (k ≥ 8) of lane n·4 + (k % 8)/2.
float b_at(bool bf16, const MmaSlot* all, int k, int n) {
    const MmaSlot& s = slot(all, n * 4 + (k % 8) / 2);
    return bits_to_float(bf16, half_of(s.b[k >= 8], k % 2));
}

}  // namespace

void mma_m16n8k16(bool bf16, float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    const MmaSlot mine{{a[0], a[1], a[2], a[3]}, {b0, b1}};
    const MmaSlot* all = exchange(mine, WarpOp::Mma, 0xffffffffu);
    const int lane = current().lane;
    const int g = lane / 4, tig = lane % 4;
    // c0, c1: row g, columns 2tig, 2tig+1; c2, c3: row g + 8.
    for (int i = 0; i < 4; ++i) {
        const int row = g + 8 * (i / 2);
        const int col = 2 * tig + i % 2;
        float acc = d[i];
        for (int k = 0; k < 16; ++k) acc += a_at(bf16, all, row, k) * b_at(bf16, all, k, col);
        d[i] = acc;
    }
    release_exchange(WarpOp::Mma, 0xffffffffu);
}

void ldmatrix_x4(bool trans, uint32_t (&r)[4], const void* row) {
    if (reinterpret_cast<uintptr_t>(row) % 16 != 0) trap("ldmatrix row address not 16-byte aligned");
    if (!is_shared(row, 16)) trap("ldmatrix row address outside shared memory");
    const void* const* all = exchange(row, WarpOp::LdMatrix, 0xffffffffu);
    const int lane = current().lane;
    for (int m = 0; m < 4; ++m) {
        uint16_t e[2];
        for (int j = 0; j < 2; ++j) {
            // Plain: row lane/4, column 2(lane%4)+j. Transposed: row 2(lane%4)+j, column lane/4.
            const int mat_row = trans ? 2 * (lane % 4) + j : lane / 4;
            const int mat_col = trans ? lane / 4 : 2 * (lane % 4) + j;
            const unsigned char* src = static_cast<const unsigned char*>(slot(all, 8 * m + mat_row));
            memcpy(&e[j], src + 2 * mat_col, 2);
        }
        r[m] = static_cast<uint32_t>(e[0]) | (static_cast<uint32_t>(e[1]) << 16);
    }
    release_exchange(WarpOp::LdMatrix, 0xffffffffu);
}

float exp2_ftz(float x) {
    if (fpclassify(x) == FP_SUBNORMAL) x = 0.0f;
    const float y = exp2f(x);
    return fpclassify(y) == FP_SUBNORMAL ? 0.0f : y;
}

}  // namespace yoco_emu
