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
enum class WarpOp : int { Shuffle, Vote, SyncWarp, Mma, LdMatrix, WmmaLoad, WmmaStore, WmmaMma, WmmaFill };
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

[[noreturn]] void trap(const char* why);

}  // namespace yoco_emu
