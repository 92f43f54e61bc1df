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
constexpr uint8_t EIATTR_MAX_THREADS = 0x05;  // payload: u32 x, y, z
constexpr uint8_t EIATTR_REGCOUNT = 0x2f;     // payload: u32 symbol index, u32 registers

// Calls visit(attribute, payload, size) for every SVAL record of the section at [begin, end).
template <typename Visit>
void for_each_record(const unsigned char* data, size_t begin, size_t end, Visit visit) {
    size_t p = begin;
    while (p + 4 <= end) {
        const uint8_t format = data[p], attribute = data[p + 1];
        if (format == EIFMT_SVAL) {
            uint16_t size;
            memcpy(&size, data + p + 2, 2);
            if (p + 4 + size > end) return;
            visit(attribute, data + p + 4, size);
            p += 4 + size;
        } else {
            p += 4;
        }
    }
}

uint32_t u32_at(const unsigned char* p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

}  // namespace

std::map<std::string, KernelLimits> cubin_kernel_limits(const void* image) {
    std::map<std::string, KernelLimits> limits;
    const unsigned char* data = static_cast<const unsigned char*>(image);
    if (memcmp(data, ELFMAG, SELFMAG) != 0 || data[EI_CLASS] != ELFCLASS64) return limits;
    Elf64_Ehdr header;
    memcpy(&header, data, sizeof header);
    if (header.e_shentsize != sizeof(Elf64_Shdr) || header.e_shstrndx >= header.e_shnum) return limits;
    std::vector<Elf64_Shdr> sections(header.e_shnum);
    memcpy(sections.data(), data + header.e_shoff, header.e_shnum * sizeof(Elf64_Shdr));
    const char* section_names = reinterpret_cast<const char*>(data + sections[header.e_shstrndx].sh_offset);

    const Elf64_Shdr* symtab = nullptr;
    for (const Elf64_Shdr& s : sections)
        if (s.sh_type == SHT_SYMTAB) symtab = &s;
    if (!symtab || symtab->sh_link >= sections.size()) return limits;
    const char* symbol_names = reinterpret_cast<const char*>(data + sections[symtab->sh_link].sh_offset);
    const size_t symbols = symtab->sh_size / sizeof(Elf64_Sym);

    static constexpr char PER_KERNEL[] = ".nv.info.";
    static constexpr char SHARED[] = ".nv.shared.";
    for (const Elf64_Shdr& s : sections) {
        const char* name = section_names + s.sh_name;
        const size_t begin = s.sh_offset, end = s.sh_offset + s.sh_size;
        if (strcmp(name, ".nv.info") == 0) {
            for_each_record(data, begin, end, [&](uint8_t attribute, const unsigned char* payload, uint16_t size) {
                if (attribute != EIATTR_REGCOUNT || size != 8 || u32_at(payload) >= symbols) return;
                Elf64_Sym sym;
                memcpy(&sym, data + symtab->sh_offset + u32_at(payload) * sizeof(Elf64_Sym), sizeof sym);
                limits[symbol_names + sym.st_name].registers = static_cast<int>(u32_at(payload + 4));
            });
        } else if (strncmp(name, SHARED, sizeof SHARED - 1) == 0) {
            limits[name + sizeof SHARED - 1].static_shared = s.sh_size;
        } else if (strncmp(name, PER_KERNEL, sizeof PER_KERNEL - 1) == 0) {
            const std::string kernel = name + sizeof PER_KERNEL - 1;
            for_each_record(data, begin, end, [&](uint8_t attribute, const unsigned char* payload, uint16_t size) {
                if (attribute == EIATTR_MAX_THREADS && size == 12)
                    limits[kernel].max_threads = static_cast<int>(u32_at(payload) * u32_at(payload + 4) * u32_at(payload + 8));
            });
        }
    }
    return limits;
}

}  // namespace yoco_emu
