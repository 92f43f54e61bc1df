// Runs a grid: block after block, every thread of a block a fiber (see runtime.h).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <string>

#include "yoco_emu/registry.h"
#include "yoco_emu/runtime.h"

namespace yoco_emu {

struct Launch {
    const KernelEntry* kernel;
    dim3 grid;
    dim3 block;
    size_t dynamic_shared_bytes;
    const void* params;
    uint64_t schedule_seed;  // the order fibers run in between barriers
};

// Runs every block. Returns an empty string, or what went wrong (a trap, a deadlock) with the
// block and thread where it happened.
std::string run_grid(const Launch& launch);

// The kernel, block and thread running now, for a fault report ("" outside a launch).
std::string where_now();

}  // namespace yoco_emu
