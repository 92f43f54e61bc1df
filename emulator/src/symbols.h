// The name of the variable at an address, from the ELF symbol table of the loaded file that holds
// it (.symtab: the kernels' function-local __shared__ arrays are local symbols, which dladdr,
// reading only the dynamic symbols, does not see).
#pragma once

#include <string>

namespace yoco_emu {

// "selftest_hidden_race(SelftestParams)::flag + 4" for an address 4 bytes into that variable, or
// "" where no symbol covers it (or the file cannot be read).
std::string variable_at(const void* p);

}  // namespace yoco_emu
