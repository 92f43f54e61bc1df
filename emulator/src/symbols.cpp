#include "symbols.h"

#include <cxxabi.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace yoco_emu {

namespace {

// The loaded object that maps an address: its file and load bias.
struct Owner {
    uintptr_t address;
    std::string file;
    uintptr_t bias = 0;
    bool found = false;
};

int find_owner(struct dl_phdr_info* info, size_t, void* data) {
    Owner& o = *static_cast<Owner*>(data);
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const ElfW(Phdr)& ph = info->dlpi_phdr[i];
        const uintptr_t start = info->dlpi_addr + ph.p_vaddr;
        if (ph.p_type == PT_LOAD && o.address - start < ph.p_memsz) {
            o.file = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : "/proc/self/exe";
            o.bias = info->dlpi_addr;
            o.found = true;
            return 1;
        }
    }
    return 0;
}

std::string demangled(const char* name) {
    int status = 0;
    char* plain = abi::__cxa_demangle(name, nullptr, nullptr, &status);
    std::string text = status == 0 && plain ? plain : name;
    free(plain);
    return text;
}

}  // namespace

std::string variable_at(const void* p) {
    Owner owner{reinterpret_cast<uintptr_t>(p)};
    dl_iterate_phdr(find_owner, &owner);
    if (!owner.found) return "";
    const int fd = open(owner.file.c_str(), O_RDONLY);
    if (fd < 0) return "";
    struct stat st;
    void* map = fstat(fd, &st) == 0 ? mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    close(fd);
    if (map == MAP_FAILED) return "";
    const auto* file = static_cast<const unsigned char*>(map);
    const auto* header = reinterpret_cast<const ElfW(Ehdr)*>(file);
    const auto* sections = reinterpret_cast<const ElfW(Shdr)*>(file + header->e_shoff);
    const uintptr_t wanted = owner.address - owner.bias;
    std::string name;
    for (int s = 0; s < header->e_shnum && name.empty(); ++s) {
        if (sections[s].sh_type != SHT_SYMTAB) continue;
        const auto* symbols = reinterpret_cast<const ElfW(Sym)*>(file + sections[s].sh_offset);
        const char* strings = reinterpret_cast<const char*>(file + sections[sections[s].sh_link].sh_offset);
        const size_t count = sections[s].sh_size / sizeof(ElfW(Sym));
        for (size_t i = 0; i < count; ++i) {
            const ElfW(Sym)& sym = symbols[i];
            if (ELF64_ST_TYPE(sym.st_info) == STT_OBJECT && wanted - sym.st_value < sym.st_size) {
                name = demangled(strings + sym.st_name);
                const uintptr_t into = wanted - sym.st_value;
                if (into) name += " + " + std::to_string(into);
                break;
            }
        }
    }
    munmap(map, static_cast<size_t>(st.st_size));
    return name;
}

}  // namespace yoco_emu
