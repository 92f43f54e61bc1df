#include "fiber.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#if !defined(__x86_64__)
#error "the emulator's context switch is written for x86-64"
#endif

// yoco_emu_switch(save = rdi, load = rsi): push the callee-saved registers, store rsp, load the
// other rsp, pop its registers, return into it. A fresh stack (FiberStack::prepare) holds six
// register slots and a return address that lands in yoco_emu_fiber_start, which calls r13(r12).
asm(R"(
    .text
    .globl yoco_emu_switch
    .type yoco_emu_switch, @function
yoco_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size yoco_emu_switch, .-yoco_emu_switch

    .globl yoco_emu_fiber_start
    .type yoco_emu_fiber_start, @function
yoco_emu_fiber_start:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size yoco_emu_fiber_start, .-yoco_emu_fiber_start
)");

extern "C" void yoco_emu_fiber_start();

namespace yoco_emu {

namespace {
size_t page_size() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }
}  // namespace

FiberStack::FiberStack(size_t bytes) {
    const size_t page = page_size();
    const size_t usable = (bytes + page - 1) / page * page;
    mapping_bytes_ = usable + page;
    void* m = mmap(nullptr, mapping_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        fprintf(stderr, "yoco emulator: cannot map a %zu-byte fiber stack\n", mapping_bytes_);
        abort();
    }
    mapping_ = static_cast<unsigned char*>(m);
    mprotect(mapping_, page, PROT_NONE);  // the guard below the stack
    top_ = mapping_ + mapping_bytes_;
}

FiberStack::~FiberStack() { munmap(mapping_, mapping_bytes_); }

void* FiberStack::prepare(void (*entry)(void*), void* arg) {
    // After yoco_emu_switch pops six registers and returns, rsp = top - 16: 16-byte aligned at
    // the call in yoco_emu_fiber_start, as the ABI requires.
    uint64_t* sp = reinterpret_cast<uint64_t*>(top_ - 16 - 7 * 8);
    sp[0] = 0;                                                  // r15
    sp[1] = 0;                                                  // r14
    sp[2] = reinterpret_cast<uint64_t>(entry);                  // r13
    sp[3] = reinterpret_cast<uint64_t>(arg);                    // r12
    sp[4] = 0;                                                  // rbx
    sp[5] = 0;                                                  // rbp
    sp[6] = reinterpret_cast<uint64_t>(&yoco_emu_fiber_start);  // return address
    return sp;
}

}  // namespace yoco_emu
