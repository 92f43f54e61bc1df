// mma.sync m16n8k16, ldmatrix x4 and ex2.approx.ftz as the PTX ISA defines them, over the
// fragment layouts documented in kernels/include/yoco_common.cuh (groupID g = lane / 4,
// tig = lane % 4). Each lane publishes its registers in the warp's exchange slots, then computes
// its own outputs from everybody's.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "yoco_emu/device.h"

#include "racecheck.h"

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
    // The warp reads the row; it is this lane's to name, and its read as far as hazards go.
    racecheck::read(row, 16);
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

// ---- wgmma (sm_90a), over kernels/include/yoco_wgmma.cuh's operands ----------------------------

namespace yoco_emu {

namespace {

// A 16-bit operand in shared memory named by a wgmma descriptor, 128-byte swizzle, decoded once
// per instruction. Element (mn, k) by the PTX ISA's canonical layouts, in bytes: K-major, row mn at
// (mn % 8)·128 + (mn / 8)·SBO, column k at 2k; MN-major, mn at 2(mn % 64) + (mn / 64)·LBO, k at
// (k % 8)·128 + (k / 8)·SBO; the swizzle XORs address bits 4-6 with bits 7-9 of the shared-window
// address.
class Operand {
  public:
    Operand(bool bf16, uint64_t desc, bool mn_major) : bf16_(bf16), mn_major_(mn_major) {
        if (desc >> 62 != 1) trap("emulated wgmma: a descriptor without the 128-byte swizzle (the only layout emulated)");
        if ((desc >> 49 & 7) != 0) trap("emulated wgmma: a descriptor with a nonzero base offset (not emulated)");
        start_ = static_cast<uint32_t>(desc & 0x3FFF) << 4;
        lbo_ = static_cast<uint32_t>(desc >> 16 & 0x3FFF) << 4;
        sbo_ = static_cast<uint32_t>(desc >> 32 & 0x3FFF) << 4;
    }

    float at(int mn, int k) const {
        uint16_t bits;
        memcpy(&bits, element(mn, k), 2);
        return bits_to_float(bf16_, bits);
    }

    // Where element (mn, k) lies in shared memory.
    const unsigned char* element(int mn, int k) const {
        uint32_t address = start_ + (mn_major_ ? 2 * (mn % 64) + (mn / 64) * lbo_ + (k % 8) * 128 + (k / 8) * sbo_
                                               : (mn % 8) * 128 + (mn / 8) * sbo_ + 2 * k);
        address ^= (address >> 7 & 7) << 4;
        return shared_pointer(address, 2);
    }

  private:
    bool bf16_;
    bool mn_major_;
    uint32_t start_ = 0, lbo_ = 0, sbo_ = 0;
};

// The running thread's share of a wgmma: rows row0 + g and + 8 of A's 64 (row0 = 16·(warp % 4)),
// and columns 8j + 2·tig + c (c = 0, 1) of B's every 8-column tile j, with g = lane / 4 and
// tig = lane % 4: what run_wgmma reads, and what racecheck is told it reads.
struct Share {
    int row0 = 16 * (current().warp % 4);
    int g = current().lane / 4;
    int tig = current().lane % 4;
    int a_row(int e) const { return row0 + g + 8 * e; }
    int b_column(int j, int c) const { return 8 * j + 2 * tig + c; }
};

// Calls `each(element)` for each operand element in shared memory that the running thread's share
// of `op` reads: its two rows of A (if A is in shared memory), each of its columns of B.
template <typename F>
void for_each_operand_element(const WgmmaOp& op, F each) {
    const Share share;
    if (!op.a_in_registers) {
        const Operand a_smem(op.bf16, op.desc_a, false);
        for (int e = 0; e < 2; ++e)
            for (int k = 0; k < 16; ++k) each(a_smem.element(share.a_row(e), k));
    }
    const Operand b_smem(op.bf16, op.desc_b, op.trans_b);
    for (int j = 0; j < op.n / 8; ++j)
        for (int c = 0; c < 2; ++c)
            for (int k = 0; k < 16; ++k) each(b_smem.element(share.b_column(j, c), k));
}

// One thread's share of a wgmma (Share): its accumulators, in the m16n8 C layout per 8-column
// tile. The warp meets to see each other's A registers. Its two rows of A are read once, each of
// its columns of B once for both rows; every sum runs over k in order from the accumulator.
void run_wgmma(const WgmmaOp& op) {
    const MmaSlot mine{{op.a[0], op.a[1], op.a[2], op.a[3]}, {0, 0}};
    const MmaSlot* all = exchange(mine, WarpOp::Wgmma, 0xffffffffu);
    const Share share;
    float a[2][16];
    if (op.a_in_registers) {
        // This warp's 16 rows are the registers' m16 fragment: row a_row(e) − row0 of it.
        for (int e = 0; e < 2; ++e)
            for (int k = 0; k < 16; ++k) a[e][k] = a_at(op.bf16, all, share.a_row(e) - share.row0, k);
    } else {
        const Operand a_smem(op.bf16, op.desc_a, false);
        for (int e = 0; e < 2; ++e)
            for (int k = 0; k < 16; ++k) a[e][k] = a_smem.at(share.a_row(e), k);
    }
    const Operand b_smem(op.bf16, op.desc_b, op.trans_b);
    for (int j = 0; j < op.n / 8; ++j) {
        for (int c = 0; c < 2; ++c) {
            float b[16];
            for (int k = 0; k < 16; ++k) b[k] = b_smem.at(share.b_column(j, c), k);
            for (int e = 0; e < 2; ++e) {
                float& acc = op.d[4 * j + 2 * e + c];  // row a_row(e), column b_column(j, c)
                for (int k = 0; k < 16; ++k) acc += a[e][k] * b[k];
            }
        }
    }
    release_exchange(WarpOp::Wgmma, 0xffffffffu);
}

// Logs this warp's issue and compares it with the k-th issue of every other warp of its
// warpgroup that has got that far (whichever warp comes later does the comparing).
void expect_same_across_warpgroup(const WgmmaIssue& mine) {
    const int warp = current().warp;
    std::vector<WgmmaIssue>& log = wgmma_issues(warp);
    log.push_back(mine);
    const size_t k = log.size() - 1;
    for (int other = warp - warp % 4; other < warp - warp % 4 + 4; ++other) {
        const std::vector<WgmmaIssue>& theirs = wgmma_issues(other);
        if (other != warp && k < theirs.size() && !(theirs[k] == mine))
            trap("warps of one warpgroup issued different wgmma.mma_async (shape, operand forms or descriptors)");
    }
}

}  // namespace

void wgmma_issue(bool bf16, int n, float* d, const uint32_t* a, uint64_t desc_a, uint64_t desc_b, bool trans_b) {
    if (block_dim().x * block_dim().y * block_dim().z % 128 != 0) trap("wgmma.mma_async in a block that is not whole warpgroups");
    // PTX: a wgmma.fence before the first wgmma.mma_async, and between the threads' accesses to
    // the accumulator or A registers and a wgmma.mma_async that uses them. Asked here after every
    // wait, where the kernels read their accumulators (stricter than PTX only where nothing
    // touched them between a wait and the next issue).
    if (!wgmma_fenced()) trap("wgmma.mma_async issued with no wgmma.fence since the thread started or last waited (wgmma.wait_group)");
    WgmmaOp op{bf16, n, d, {0, 0, 0, 0}, a != nullptr, desc_a, desc_b, trans_b, -1, false};
    if (a) memcpy(op.a, a, sizeof op.a);
    // Now or at the wait: one draw for the warp (its lanes must run it together), lane 0's. Only
    // while nothing issued before it waits: they run in issue order, as the hardware's do.
    const uint64_t* draws = exchange(draw_random(), WarpOp::Wgmma, 0xffffffffu);
    const bool now = slot(draws, 0) & 1;
    release_exchange(WarpOp::Wgmma, 0xffffffffu);
    if (current().lane == 0) expect_same_across_warpgroup(WgmmaIssue{bf16, n, a != nullptr, trans_b, desc_a, desc_b});
    for_each_operand_element(op, [](const unsigned char* e) { racecheck::operand_issued(e, 2); });
    bool earlier_waiting = false;
    for (const WgmmaOp& p : pending_wgmma()) earlier_waiting = earlier_waiting || !p.ran;
    if (now && !earlier_waiting) {
        run_wgmma(op);
        op.ran = true;
    }
    pending_wgmma().push_back(op);
}

void fence_proxy_async() { racecheck::proxy_fence(); }

void wgmma_fence() {
    sync_warp(WarpOp::WgmmaFence, 0xffffffffu);
    wgmma_fenced() = true;
}

void wgmma_commit() {
    for (WgmmaOp& op : pending_wgmma())
        if (op.group == -1) op.group = next_wgmma_group();
    next_wgmma_group() += 1;
}

void wgmma_wait(int groups_pending) {
    wgmma_fenced() = false;
    std::vector<WgmmaOp>& pending = pending_wgmma();
    const long below = next_wgmma_group() - groups_pending;
    size_t done = 0;
    for (; done < pending.size() && pending[done].group >= 0 && pending[done].group < below; ++done) {
        if (!pending[done].ran) run_wgmma(pending[done]);
        for_each_operand_element(pending[done], [](const unsigned char* e) { racecheck::operand_retired(e, 2); });
    }
    pending.erase(pending.begin(), pending.begin() + static_cast<long>(done));
}

}  // namespace yoco_emu
