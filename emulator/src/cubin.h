// What the emulator reads from the cubin a module is loaded from: each kernel's register count
// (ptxas's, the one the H100 allocates), so that occupancy answers, and the launch geometry the
// host derives from them, are the GPU's.
#pragma once

#include <stddef.h>

#include <map>
#include <string>

namespace yoco_emu {

// Kernel name -> registers per thread, from the ELF's .nv.info section (EIATTR_REGCOUNT entries
// keyed by symbol index). Empty for anything that is not a well-formed sm_XX cubin (PTX text, or
// a truncated image).
std::map<std::string, int> cubin_register_counts(const void* image);

}  // namespace yoco_emu
