// The kernels the emulator can launch, by entry name. emulator/build.sh compiles every
// kernels/*.cu with a generated list of its extern "C" entries; each registers itself here before
// main, with a trampoline that calls it with its one parameter struct (every yoco kernel takes
// its params struct by value, so cuLaunchKernel's kernelParams[0] points at one).
#pragma once

#include <stddef.h>

#include <type_traits>

namespace yoco_emu {

struct KernelEntry {
    const char* name;
    void (*run)(const void* params);
    size_t params_bytes;
};

void register_kernel(const KernelEntry& entry);
const KernelEntry* find_kernel(const char* name);

// The bounds of a module's section of __shared__ variables (see build.sh), poisoned before each
// block; registering the same bounds twice keeps one.
void register_shared_section(unsigned char* start, unsigned char* stop);

template <typename F>
struct ParamOf;
template <typename P>
struct ParamOf<void (*)(P)> {
    using type = std::remove_cv_t<P>;
};

template <auto F>
void trampoline(const void* params) {
    using P = typename ParamOf<decltype(F)>::type;
    F(*static_cast<const P*>(params));
}

struct Registration {
    explicit Registration(const KernelEntry& entry) { register_kernel(entry); }
    Registration(unsigned char* start, unsigned char* stop) { register_shared_section(start, stop); }
};

template <auto F>
KernelEntry entry(const char* name) {
    return KernelEntry{name, &trampoline<F>, sizeof(typename ParamOf<decltype(F)>::type)};
}

}  // namespace yoco_emu

#define YOCO_EMU_REGISTER(fn) static const ::yoco_emu::Registration yoco_emu_registration_##fn(::yoco_emu::entry<&fn>(#fn));

// The linker's bounds of this module's yoco_shared section (hidden: each module's own).
extern "C" unsigned char __start_yoco_shared[] __attribute__((weak, visibility("hidden")));
extern "C" unsigned char __stop_yoco_shared[] __attribute__((weak, visibility("hidden")));
#define YOCO_EMU_REGISTER_SHARED() \
    static const ::yoco_emu::Registration yoco_emu_shared_section(__start_yoco_shared, __stop_yoco_shared);
