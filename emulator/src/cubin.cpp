#include "cubin.h"

#include <elf.h>
#include <stdint.h>
#include <string.h>

#include <vector>

namespace yoco_emu {

namespace {

// .nv.info records are a format byte, an attribute byte and 16 bits: for format 4 (EIFMT_SVAL) the
// size of the payload that follows; for the others a value (or nothing) in place.
constexpr uint8_t EIFMT_SVAL = 4;
constexpr uint8_t EIATTR_REGCOUNT = 0x2f;  // payload: u32 symbol index, u32 registers

}  // namespace

std::map<std::string, int> cubin_register_counts(const void* image) {
    std::map<std::string, int> registers;
    const unsigned char* data = static_cast<const unsigned char*>(image);
    if (memcmp(data, ELFMAG, SELFMAG) != 0 || data[EI_CLASS] != ELFCLASS64) return registers;
    Elf64_Ehdr header;
    memcpy(&header, data, sizeof header);
    if (header.e_shentsize != sizeof(Elf64_Shdr) || header.e_shstrndx >= header.e_shnum) return registers;
    std::vector<Elf64_Shdr> sections(header.e_shnum);
    memcpy(sections.data(), data + header.e_shoff, header.e_shnum * sizeof(Elf64_Shdr));
    const char* section_names = reinterpret_cast<const char*>(data + sections[header.e_shstrndx].sh_offset);

    const Elf64_Shdr* info = nullptr;
    const Elf64_Shdr* symtab = nullptr;
    for (const Elf64_Shdr& s : sections) {
        if (strcmp(section_names + s.sh_name, ".nv.info") == 0) info = &s;
        if (s.sh_type == SHT_SYMTAB) symtab = &s;
    }
    if (!info || !symtab || symtab->sh_link >= sections.size()) return registers;
    const char* symbol_names = reinterpret_cast<const char*>(data + sections[symtab->sh_link].sh_offset);
    const size_t symbols = symtab->sh_size / sizeof(Elf64_Sym);

    size_t p = info->sh_offset;
    const size_t end = info->sh_offset + info->sh_size;
    while (p + 2 <= end) {
        const uint8_t format = data[p], attribute = data[p + 1];
        if (format == EIFMT_SVAL) {
            uint16_t size;
            memcpy(&size, data + p + 2, 2);
            if (attribute == EIATTR_REGCOUNT && size == 8) {
                uint32_t symbol, count;
                memcpy(&symbol, data + p + 4, 4);
                memcpy(&count, data + p + 8, 4);
                if (symbol < symbols) {
                    Elf64_Sym sym;
                    memcpy(&sym, data + symtab->sh_offset + symbol * sizeof(Elf64_Sym), sizeof sym);
                    registers[symbol_names + sym.st_name] = static_cast<int>(count);
                }
            }
            p += 4 + size;
        } else {
            p += 4;
        }
    }
    return registers;
}

}  // namespace yoco_emu
