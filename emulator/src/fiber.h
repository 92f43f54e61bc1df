// Fibers: stacks of their own and a context switch that saves only what the x86-64 System V ABI
// asks a callee to keep (rbx, rbp, r12–r15, the stack pointer). glibc's swapcontext would also
// save the signal mask with a system call on every switch, and the emulator switches at every
// barrier and every warp-wide operation of every thread.
#pragma once

#include <stddef.h>

namespace yoco_emu {

class FiberStack {
  public:
    // `bytes` of stack with an inaccessible page below it, so an overflow faults instead of
    // writing over a neighbour.
    explicit FiberStack(size_t bytes);
    ~FiberStack();
    FiberStack(const FiberStack&) = delete;
    FiberStack& operator=(const FiberStack&) = delete;

    // A fresh stack pointer that, when switched to, calls `entry(arg)` (which must never return).
    void* prepare(void (*entry)(void*), void* arg);

  private:
    unsigned char* mapping_;
    size_t mapping_bytes_;
    unsigned char* top_;
};

}  // namespace yoco_emu

// Saves the current context's stack pointer in *save and resumes the one at `load`.
extern "C" void yoco_emu_switch(void** save, void* load);
