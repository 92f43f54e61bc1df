// What emulated kernel code sees of the emulator's scheduler: the current thread's coordinates,
// the block and warp barriers, the per-warp exchange slots that warp-wide operations meet in, and
// a trap that ends the launch with a message.
//
// Every CUDA thread of a block runs as a fiber on one OS thread; a fiber runs until it reaches a
// barrier (or a warp-wide operation, which is one), so shared memory needs no locks; the order in
// which fibers run between barriers is shuffled, and warps run one after another or at random
// paces (scheduler.cpp), to expose missing barriers.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <vector>

struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x = 1, y = 1, z = 1;
    dim3() = default;
    dim3(unsigned int x_, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace yoco_emu {

// The warp-wide operations, named so that lanes meeting at different ones is reported.
enum class WarpOp : int { Shuffle, Vote, SyncWarp, Mma, LdMatrix, Wgmma, WgmmaFence };
const char* warp_op_name(WarpOp op);

// Bytes each lane may place in its exchange slot for one warp-wide operation.
constexpr size_t SLOT_BYTES = 64;

struct ThreadCoords {
    uint3 thread_idx;
    int lane;  // linear thread index % 32
    int warp;  // linear thread index / 32
};

// The running fiber's coordinates and its block's.
const ThreadCoords& current();
const uint3& block_idx();
const dim3& block_dim();
const dim3& grid_dim();
unsigned char* dynamic_shared(size_t align);

// __syncthreads(): waits until every thread of the block that has not exited arrives.
void sync_block();

// Waits until every live lane of the current warp arrives at `op`. Lanes at different ops, a mask
// naming a lane that has exited or does not exist, or one leaving out a live lane, end the launch
// with a trap.
void sync_warp(WarpOp op, uint32_t mask);

// Whether [p, p + bytes) lies in the running block's shared memory (static or dynamic).
bool is_shared(const void* p, size_t bytes);

// The current warp's exchange slots: 32 lanes × SLOT_BYTES.
unsigned char* warp_slots();

// Exchanges one value per lane: every lane's `mine` is visible in the returned array (indexed by
// lane) until `release_exchange` is called by all lanes.
template <typename T>
const T* exchange(const T& mine, WarpOp op, uint32_t mask) {
    static_assert(sizeof(T) <= SLOT_BYTES, "exchange slot too small");
    unsigned char* slots = warp_slots();
    *reinterpret_cast<T*>(slots + current().lane * SLOT_BYTES) = mine;
    sync_warp(op, mask);
    return reinterpret_cast<const T*>(slots);  // stride SLOT_BYTES: use slot<T>()
}
template <typename T>
const T& slot(const T* base, int lane) {
    return *reinterpret_cast<const T*>(reinterpret_cast<const unsigned char*>(base) + lane * SLOT_BYTES);
}
inline void release_exchange(WarpOp op, uint32_t mask) { sync_warp(op, mask); }

// cp.async: each copy lands either at its issue or when a wait_group leaves it out of the allowed
// in-flight groups (or the thread exits), drawn per copy (scheduler.cpp).
void cp_async_issue(void* shared_dst, const void* global_src, size_t bytes, bool valid);
void cp_async_commit();
void cp_async_wait(int groups_in_flight);

// The address of dynamic shared memory `p` in the emulated shared window (what wgmma descriptors
// hold), and back (`bytes` from there must lie in the block's dynamic shared memory, else a trap).
// The window puts the dynamic shared memory at 1 KiB plus a multiple of 128 bytes drawn per block,
// so that a kernel aligning its tiles to the window's 1024-byte boundaries must really do so.
uint32_t shared_address(const void* p);
const unsigned char* shared_pointer(uint32_t address, size_t bytes);

// One wgmma.mma_async a thread has issued and not yet waited for (tensor_core.cpp runs it).
struct WgmmaOp {
    bool bf16;
    int n;     // the instruction's N (its M is 64, K 16)
    float* d;  // this thread's n / 2 accumulators
    uint32_t a[4];
    bool a_in_registers;  // else A is read through desc_a
    uint64_t desc_a;
    uint64_t desc_b;
    bool trans_b;  // B MN-major
    long group;    // -1 until committed
    bool ran;      // at its issue; still in flight (its operands read) until the wait that covers it
};
// The running thread's wgmma.mma_async not yet waited for, in issue order, and its next group's
// number. A thread that exits with any left is a failure (its results would never arrive).
std::vector<WgmmaOp>& pending_wgmma();
long& next_wgmma_group();
// Whether the running thread has passed a wgmma.fence since it started or last waited
// (wgmma.wait_group): a wgmma.mma_async issued without one fails the launch.
bool& wgmma_fenced();

// What one warp of a warpgroup issued as its k-th wgmma.mma_async: the warpgroup's four warps
// must issue the same (PTX: a descriptor's contents must be the same across the warpgroup).
struct WgmmaIssue {
    bool bf16;
    int n;
    bool a_in_registers;
    bool trans_b;
    uint64_t desc_a;
    uint64_t desc_b;
    bool operator==(const WgmmaIssue& o) const {
        return bf16 == o.bf16 && n == o.n && a_in_registers == o.a_in_registers && trans_b == o.trans_b && desc_a == o.desc_a && desc_b == o.desc_b;
    }
};
// The running block's log of warp `warp`'s wgmma.mma_async issues (emptied at each block's start;
// at its end, a warpgroup whose warps issued different numbers fails the launch).
std::vector<WgmmaIssue>& wgmma_issues(int warp);

// A draw from the running block's random stream (the same seed gives the same draws).
uint64_t draw_random();

[[noreturn]] void trap(const char* why);

}  // namespace yoco_emu
