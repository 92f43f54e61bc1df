// What the emulator reads from the cubin a module is loaded from: each kernel's register count
// (ptxas's, the one the H100 allocates) and its __launch_bounds__ thread limit, so that
// occupancy answers, the launch geometry the host derives from them, and the launches the GPU
// refuses are the GPU's.
#pragma once

#include <stddef.h>

#include <map>
#include <string>

namespace yoco_emu {

struct KernelLimits {
    int registers = 0;         // per thread; 0: unknown
    int max_threads = 0;       // __launch_bounds__'s, or 0: none given
    size_t static_shared = 0;  // bytes of __shared__ variables (.nv.shared.<name>)
};

// Kernel name -> its limits, from the ELF's .nv.info section (EIATTR_REGCOUNT, keyed by symbol
// index), each kernel's .nv.info.<name> (EIATTR_MAX_THREADS) and .nv.shared.<name> (its size). Empty for anything that is not
// a well-formed cubin (PTX text, or a truncated image).
std::map<std::string, KernelLimits> cubin_kernel_limits(const void* image);

}  // namespace yoco_emu
