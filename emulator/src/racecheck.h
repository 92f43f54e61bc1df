// Shared-memory hazards, as compute-sanitizer's racecheck reports them on a GPU: two threads of a
// block touching the same byte of shared memory, at least one of them writing, with nothing that
// orders the two (no __syncthreads between them, or, for two lanes of one warp, no __syncwarp
// either), and any access to shared memory that an asynchronous copy is still writing or a
// wgmma.mma_async is still reading, and any wgmma operand whose last write no fence.proxy.async
// made visible to the async proxy. Each is a failure of the launch, whatever the results (where
// compute-sanitizer grades some hazards as warnings: one value written by many threads, hazards
// within a warp).
//
// The kernel files are compiled with GCC's thread-sanitizer instrumentation (build.sh), whose
// calls before every load and store (`__tsan_read4`, …) land here rather than in a sanitizer
// runtime: racecheck.cpp defines them. The emulator's own reads and writes of shared memory on a
// thread's behalf (ldmatrix, cp.async, wgmma operands) are reported through the functions below.
//
// A byte's history is kept per barrier interval: the last writer, and the warps and (two of the)
// threads that read it since the last __syncthreads, each with its warp's __syncwarp count at
// the time. Intervals are numbered across blocks and launches, so the shadow is cleared only
// after a block that failed with copies or operand reads in flight.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace yoco_emu::racecheck {

// Whether launches are checked: on unless YOCO_EMU_RACECHECK=0 (read at each launch).
bool enabled();

// A module's section of __shared__ variables (registry.h), checked from now on.
void static_section(unsigned char* start, unsigned char* stop);

// A block starts: `dynamic` bytes of dynamic shared memory at `dynamic_start`; `threads` threads.
// Clears what a block that failed left in flight.
void begin_block(const unsigned char* dynamic_start, size_t dynamic, int threads);
// The block has ended (no more accesses are checked until the next begin_block).
void end_block();
// Every thread of the block passed a __syncthreads.
void block_barrier();
// Every lane of `warp` passed a __syncwarp.
void warp_barrier(int warp);

// The running thread reads or writes [p, p + bytes) (ignored outside shared memory).
void read(const void* p, size_t bytes);
void write(const void* p, size_t bytes);

// The running thread's cp.async to shared [p, p + bytes) is issued (checked as a write, then in
// flight: any access to it is a hazard) and later landed by its wait (a write by the thread).
void copy_issued(const void* p, size_t bytes);
void copy_landed(const void* p, size_t bytes);

// The running thread's wgmma.mma_async reads [p, p + bytes) of shared memory from its issue
// (checked as a read, then in flight: a write to it is a hazard) to the wait that covers it. The
// async proxy reads it: the last write to each byte must have been followed by its writer's
// fence.proxy.async, and that by a barrier unless the writer is the running thread.
void operand_issued(const void* p, size_t bytes);
void operand_retired(const void* p, size_t bytes);

// The running thread's fence.proxy.async.shared::cta.
void proxy_fence();

}  // namespace yoco_emu::racecheck
