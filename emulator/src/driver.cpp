// The CUDA driver API calls cudarc makes, carried out on the CPU: libcuda.so.1 for a machine
// without a GPU. One emulated device with an H100's limits (compute capability 9.0, 132 SMs,
// 227 KB of opt-in shared memory per block), so that host code takes the same branches it takes
// on the GPU machine and a launch the H100 would refuse is refused here too. Every stream runs
// synchronously on the calling thread, in order: the project puts all its work on one stream.
//
// Device memory is host memory mapped so that each allocation ends at an inaccessible page: a
// kernel reading or writing past the end of a buffer faults, and the fault is reported with the
// kernel, block and thread that made it.
#include <cuda.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <mutex>
#include <string>

#include "cubin.h"
#include "scheduler.h"

namespace {

using yoco_emu::KernelEntry;

constexpr int SM_COUNT = 132;
constexpr int SHARED_PER_BLOCK_DEFAULT = 48 * 1024;
constexpr int SHARED_PER_BLOCK_OPTIN = 232448;   // 227 KB
constexpr int SHARED_PER_SM = 233472;            // 228 KB
constexpr int SHARED_RESERVED_PER_BLOCK = 1024;  // what the driver keeps per block on sm_90
constexpr size_t TOTAL_MEMORY = 80ull << 30;
constexpr const char* DEVICE_NAME = "yoco CPU emulator of an sm_90 GPU (not a GPU: times are CPU times)";

std::mutex g_mutex;  // the API is callable from any thread; kernels run one launch at a time
std::string g_last_failure;  // the last launch's (yoco_emu_last_failure)

// ---- device memory -------------------------------------------------------------------------------
struct Mapping {
    void* base;
    size_t bytes;
    size_t requested;
};
std::map<CUdeviceptr, Mapping> g_allocations;
size_t g_allocated = 0;
size_t g_allocated_high = 0;  // the pool's high-water mark (CU_MEMPOOL_ATTR_USED_MEM_HIGH)

size_t page_size() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

CUresult allocate(CUdeviceptr* out, size_t bytes) {
    if (!out) return CUDA_ERROR_INVALID_VALUE;
    if (bytes == 0) return CUDA_ERROR_INVALID_VALUE;
    const size_t page = page_size();
    const size_t rounded = (bytes + 255) / 256 * 256;  // cudaMalloc's alignment
    const size_t mapped = (rounded + page - 1) / page * page + page;
    if (g_allocated + rounded > TOTAL_MEMORY) return CUDA_ERROR_OUT_OF_MEMORY;
    void* m = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
    unsigned char* guard = static_cast<unsigned char*>(m) + mapped - page;
    mprotect(guard, page, PROT_NONE);
    const CUdeviceptr ptr = reinterpret_cast<CUdeviceptr>(guard - rounded);
    // Fresh device memory holds whatever was there; 0xff bytes (NaN) make an unwritten read show.
    memset(reinterpret_cast<void*>(ptr), 0xff, rounded);
    g_allocations[ptr] = Mapping{m, mapped, rounded};
    g_allocated += rounded;
    if (g_allocated > g_allocated_high) g_allocated_high = g_allocated;
    *out = ptr;
    return CUDA_SUCCESS;
}

CUresult release(CUdeviceptr ptr) {
    if (ptr == 0) return CUDA_SUCCESS;
    auto it = g_allocations.find(ptr);
    if (it == g_allocations.end()) return CUDA_ERROR_INVALID_VALUE;
    munmap(it->second.base, it->second.bytes);
    g_allocated -= it->second.requested;
    g_allocations.erase(it);
    return CUDA_SUCCESS;
}

// ---- faults inside kernels --------------------------------------------------------------------
struct sigaction g_previous_segv, g_previous_bus;

void on_fault(int sig, siginfo_t* info, void* context) {
    const std::string where = yoco_emu::where_now();
    if (!where.empty()) {
        fprintf(stderr, "yoco emulator: %s: invalid memory access at %p (outside every allocation, or past its end)\n",
                where.c_str(), info->si_addr);
    }
    struct sigaction& previous = sig == SIGSEGV ? g_previous_segv : g_previous_bus;
    if (previous.sa_flags & SA_SIGINFO) {
        previous.sa_sigaction(sig, info, context);
        return;
    }
    if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        previous.sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

void install_fault_report() {
    static bool installed = false;
    if (installed) return;
    installed = true;
    struct sigaction action {};
    action.sa_sigaction = &on_fault;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &g_previous_segv);
    sigaction(SIGBUS, &action, &g_previous_bus);
}

// ---- modules, functions, events --------------------------------------------------------------------
struct Function {
    const KernelEntry* kernel;
    yoco_emu::KernelLimits limits;  // from the cubin; zeros when the module came from PTX
    int max_dynamic_shared = SHARED_PER_BLOCK_DEFAULT;
};
std::map<std::string, Function*> g_functions;                 // one per entry, for every module
std::map<std::string, yoco_emu::KernelLimits> g_kernel_limits;  // from every cubin loaded
struct Module {};
struct Event {
    double ms = 0;
};

double now_ms() {
    using namespace std::chrono;
    return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

uint64_t g_launches = 0;

uint64_t schedule_seed() {
    static const uint64_t base = [] {
        const char* s = getenv("YOCO_EMU_SEED");
        return s ? strtoull(s, nullptr, 0) : 0x5eedull;
    }();
    return base ^ (++g_launches * 0x9E3779B97F4A7C15ull);
}

int device_attribute(CUdevice_attribute a) {
    switch (a) {
        case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: return 9;
        case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: return 0;
        case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: return SM_COUNT;
        case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: return 1024;
        case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X: return 1024;
        case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y: return 1024;
        case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z: return 64;
        case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X: return 2147483647;
        case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y: return 65535;
        case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z: return 65535;
        case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK: return SHARED_PER_BLOCK_DEFAULT;
        case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: return SHARED_PER_BLOCK_OPTIN;
        case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR: return SHARED_PER_SM;
        case CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK: return SHARED_RESERVED_PER_BLOCK;
        case CU_DEVICE_ATTRIBUTE_WARP_SIZE: return 32;
        case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR: return 2048;
        case CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR: return 32;
        case CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK: return 65536;
        case CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR: return 65536;
        case CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE: return 50 * 1024 * 1024;
        case CU_DEVICE_ATTRIBUTE_CLOCK_RATE: return 1980000;
        case CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE: return 2619000;
        case CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH: return 5120;
        case CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED: return 1;
        case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING: return 1;
        case CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS: return 1;
        case CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY: return 65536;
        default: return 0;
    }
}

// Registers one warp is given: the thread's count times 32, in units of 256.
int registers_per_warp(int registers) { return (registers * 32 + 255) / 256 * 256; }

// Shared memory one block holds: static + dynamic + the driver's reserve, in units of 128 bytes.
size_t shared_per_block(const yoco_emu::KernelLimits& limits, size_t dynamic_shared) {
    return (limits.static_shared + dynamic_shared + SHARED_RESERVED_PER_BLOCK + 127) / 128 * 128;
}

// Blocks per SM that threads, shared memory and registers allow, as cuda_occupancy.h counts them
// for sm_90: registers per warp out of 16K per sub-partition (4 per SM), a block's warps rounded
// up to the 4 sub-partitions when checked against the 64K a block may hold.
int resident_blocks(int threads, size_t dynamic_shared, const yoco_emu::KernelLimits& limits) {
    const int warps = (threads + 31) / 32;
    if (limits.static_shared + dynamic_shared > static_cast<size_t>(SHARED_PER_BLOCK_OPTIN)) return 0;
    int blocks = 64 / warps;
    const int by_shared = static_cast<int>(SHARED_PER_SM / shared_per_block(limits, dynamic_shared));
    if (by_shared < blocks) blocks = by_shared;
    if (limits.registers > 0) {
        const int per_warp = registers_per_warp(limits.registers);
        if (limits.registers > 255 || per_warp * ((warps + 3) / 4 * 4) > 65536) return 0;
        const int by_registers = 16384 / per_warp * 4 / warps;
        if (by_registers < blocks) blocks = by_registers;
    }
    return blocks < 32 ? blocks : 32;
}

// The most threads a block of `fn` may have: its __launch_bounds__, and what its registers
// allow (whole groups of 4 warps within a block's 64K); the GPU refuses a launch over either.
int max_threads_per_block(const Function& fn) {
    int limit = 1024;
    if (fn.limits.max_threads > 0 && fn.limits.max_threads < limit) limit = fn.limits.max_threads;
    if (fn.limits.registers > 0) {
        const int by_registers = 65536 / registers_per_warp(fn.limits.registers) / 4 * 4 * 32;
        if (by_registers < limit) limit = by_registers;
    }
    return limit;
}

CUcontext g_context = reinterpret_cast<CUcontext>(0x1);  // the one primary context
thread_local CUcontext t_current = nullptr;

}  // namespace

extern "C" {

CUresult CUDAAPI cuInit(unsigned int) { return CUDA_SUCCESS; }
CUresult CUDAAPI cuDriverGetVersion(int* v) {
    *v = 13000;
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuDeviceGetCount(int* n) {
    *n = 1;
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuDeviceGet(CUdevice* d, int ordinal) {
    if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
    *d = 0;
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuDeviceGetName(char* name, int len, CUdevice) {
    if (len <= 0) return CUDA_ERROR_INVALID_VALUE;
    snprintf(name, static_cast<size_t>(len), "%s", DEVICE_NAME);
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuDeviceGetAttribute(int* value, CUdevice_attribute attrib, CUdevice) {
    *value = device_attribute(attrib);
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuDeviceTotalMem(size_t* bytes, CUdevice) {
    *bytes = TOTAL_MEMORY;
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuDeviceGetUuid(CUuuid* uuid, CUdevice) {
    memset(uuid, 0, sizeof *uuid);
    memcpy(uuid->bytes, "yoco-emulator", 13);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDevicePrimaryCtxRetain(CUcontext* ctx, CUdevice) {
    *ctx = g_context;
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuDevicePrimaryCtxRelease(CUdevice) { return CUDA_SUCCESS; }
CUresult CUDAAPI cuCtxSetCurrent(CUcontext ctx) {
    t_current = ctx;
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuCtxGetCurrent(CUcontext* ctx) {
    *ctx = t_current;
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuCtxGetDevice(CUdevice* d) {
    *d = 0;
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuCtxPushCurrent(CUcontext ctx) { return cuCtxSetCurrent(ctx); }
CUresult CUDAAPI cuCtxPopCurrent(CUcontext* ctx) {
    if (ctx) *ctx = t_current;
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuCtxSynchronize(void) { return CUDA_SUCCESS; }

CUresult CUDAAPI cuStreamCreate(CUstream* s, unsigned int) {
    *s = reinterpret_cast<CUstream>(new int(0));
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuStreamCreateWithPriority(CUstream* s, unsigned int flags, int) { return cuStreamCreate(s, flags); }
CUresult CUDAAPI cuStreamDestroy(CUstream s) {
    delete reinterpret_cast<int*>(s);
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuStreamSynchronize(CUstream) { return CUDA_SUCCESS; }
CUresult CUDAAPI cuStreamQuery(CUstream) { return CUDA_SUCCESS; }
CUresult CUDAAPI cuStreamWaitEvent(CUstream, CUevent, unsigned int) { return CUDA_SUCCESS; }

CUresult CUDAAPI cuEventCreate(CUevent* e, unsigned int) {
    *e = reinterpret_cast<CUevent>(new Event());
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuEventRecord(CUevent e, CUstream) {
    reinterpret_cast<Event*>(e)->ms = now_ms();
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuEventSynchronize(CUevent) { return CUDA_SUCCESS; }
CUresult CUDAAPI cuEventQuery(CUevent) { return CUDA_SUCCESS; }
CUresult CUDAAPI cuEventElapsedTime(float* ms, CUevent start, CUevent end) {
    *ms = static_cast<float>(reinterpret_cast<Event*>(end)->ms - reinterpret_cast<Event*>(start)->ms);
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuEventDestroy(CUevent e) {
    delete reinterpret_cast<Event*>(e);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemAlloc(CUdeviceptr* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(g_mutex);
    return allocate(p, bytes);
}
CUresult CUDAAPI cuMemAllocAsync(CUdeviceptr* p, size_t bytes, CUstream) { return cuMemAlloc(p, bytes); }
CUresult CUDAAPI cuMemFree(CUdeviceptr p) {
    std::lock_guard<std::mutex> lock(g_mutex);
    return release(p);
}
CUresult CUDAAPI cuMemFreeAsync(CUdeviceptr p, CUstream) { return cuMemFree(p); }
CUresult CUDAAPI cuMemGetInfo(size_t* free_bytes, size_t* total) {
    std::lock_guard<std::mutex> lock(g_mutex);
    *total = TOTAL_MEMORY;
    *free_bytes = TOTAL_MEMORY - g_allocated;
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuMemAllocHost(void** p, size_t bytes) {
    *p = malloc(bytes);
    return *p ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}
CUresult CUDAAPI cuMemFreeHost(void* p) {
    free(p);
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuMemHostAlloc(void** p, size_t bytes, unsigned int) { return cuMemAllocHost(p, bytes); }

// The stream-ordered pool: allocations are mapped and unmapped directly, so the release
// threshold changes nothing; its usage counters are the bytes allocated now and at most.
CUresult CUDAAPI cuDeviceGetDefaultMemPool(CUmemoryPool* pool, CUdevice) {
    *pool = reinterpret_cast<CUmemoryPool>(0x2);
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuMemPoolSetAttribute(CUmemoryPool, CUmemPool_attribute attr, void* value) {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (attr == CU_MEMPOOL_ATTR_USED_MEM_HIGH || attr == CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH) {
        if (*static_cast<cuuint64_t*>(value) != 0) return CUDA_ERROR_INVALID_VALUE;  // only a reset
        g_allocated_high = g_allocated;
    }
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuMemPoolGetAttribute(CUmemoryPool, CUmemPool_attribute attr, void* value) {
    std::lock_guard<std::mutex> lock(g_mutex);
    cuuint64_t* out = static_cast<cuuint64_t*>(value);
    switch (attr) {
        case CU_MEMPOOL_ATTR_USED_MEM_CURRENT:
        case CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT: *out = g_allocated; break;
        case CU_MEMPOOL_ATTR_USED_MEM_HIGH:
        case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH: *out = g_allocated_high; break;
        case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD: *out = ~0ull; break;
        default: return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemcpyHtoD(CUdeviceptr dst, const void* src, size_t bytes) {
    memcpy(reinterpret_cast<void*>(dst), src, bytes);
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuMemcpyHtoDAsync(CUdeviceptr dst, const void* src, size_t bytes, CUstream) { return cuMemcpyHtoD(dst, src, bytes); }
CUresult CUDAAPI cuMemcpyDtoH(void* dst, CUdeviceptr src, size_t bytes) {
    memcpy(dst, reinterpret_cast<const void*>(src), bytes);
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuMemcpyDtoHAsync(void* dst, CUdeviceptr src, size_t bytes, CUstream) { return cuMemcpyDtoH(dst, src, bytes); }
CUresult CUDAAPI cuMemcpyDtoD(CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
    memmove(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src), bytes);
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuMemcpyDtoDAsync(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream) { return cuMemcpyDtoD(dst, src, bytes); }
CUresult CUDAAPI cuMemsetD8(CUdeviceptr dst, unsigned char v, size_t n) {
    memset(reinterpret_cast<void*>(dst), v, n);
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuMemsetD8Async(CUdeviceptr dst, unsigned char v, size_t n, CUstream) { return cuMemsetD8(dst, v, n); }
CUresult CUDAAPI cuMemsetD32(CUdeviceptr dst, unsigned int v, size_t n) {
    unsigned int* p = reinterpret_cast<unsigned int*>(dst);
    for (size_t i = 0; i < n; ++i) p[i] = v;
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuMemsetD32Async(CUdeviceptr dst, unsigned int v, size_t n, CUstream) { return cuMemsetD32(dst, v, n); }

// The code in the image is not run: every kernel of kernels/*.cu is compiled into this library.
// A cubin's register counts are kept for the occupancy calculator.
CUresult CUDAAPI cuModuleLoadData(CUmodule* m, const void* image) {
    if (!image) return CUDA_ERROR_INVALID_VALUE;
    std::lock_guard<std::mutex> lock(g_mutex);
    for (const auto& [name, limits] : yoco_emu::cubin_kernel_limits(image)) g_kernel_limits[name] = limits;
    *m = reinterpret_cast<CUmodule>(new Module());
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuModuleUnload(CUmodule m) {
    delete reinterpret_cast<Module*>(m);
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuModuleGetFunction(CUfunction* f, CUmodule, const char* name) {
    std::lock_guard<std::mutex> lock(g_mutex);
    const KernelEntry* kernel = yoco_emu::find_kernel(name);
    if (!kernel) return CUDA_ERROR_NOT_FOUND;
    Function*& fn = g_functions[name];
    if (!fn) {
        const auto limits = g_kernel_limits.find(name);
        fn = new Function{kernel, limits == g_kernel_limits.end() ? yoco_emu::KernelLimits{} : limits->second};
    }
    *f = reinterpret_cast<CUfunction>(fn);
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuFuncSetAttribute(CUfunction f, CUfunction_attribute attrib, int value) {
    Function* fn = reinterpret_cast<Function*>(f);
    if (attrib == CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES) {
        if (value < 0 || value > SHARED_PER_BLOCK_OPTIN) return CUDA_ERROR_INVALID_VALUE;
        fn->max_dynamic_shared = value;
    }
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuFuncGetAttribute(int* value, CUfunction_attribute attrib, CUfunction f) {
    Function* fn = reinterpret_cast<Function*>(f);
    switch (attrib) {
        case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: *value = fn->max_dynamic_shared; break;
        case CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *value = max_threads_per_block(*fn); break;
        case CU_FUNC_ATTRIBUTE_NUM_REGS: *value = fn->limits.registers; break;
        case CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES: *value = static_cast<int>(fn->limits.static_shared); break;
        case CU_FUNC_ATTRIBUTE_PTX_VERSION:
        case CU_FUNC_ATTRIBUTE_BINARY_VERSION: *value = 90; break;
        default: *value = 0;
    }
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuFuncSetCacheConfig(CUfunction, CUfunc_cache) { return CUDA_SUCCESS; }

CUresult CUDAAPI cuOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, CUfunction f, int threads, size_t dynamic_shared) {
    if (threads <= 0 || threads > 1024) return CUDA_ERROR_INVALID_VALUE;
    *blocks = resident_blocks(threads, dynamic_shared, reinterpret_cast<Function*>(f)->limits);
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(int* blocks, CUfunction f, int threads, size_t shared, unsigned int) {
    return cuOccupancyMaxActiveBlocksPerMultiprocessor(blocks, f, threads, shared);
}

CUresult CUDAAPI cuLaunchKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by,
                                unsigned int bz, unsigned int shared, CUstream, void** params, void** extra) {
    Function* fn = reinterpret_cast<Function*>(f);
    if (!fn || !params || extra) return CUDA_ERROR_INVALID_VALUE;
    const unsigned long long threads = 1ull * bx * by * bz;
    if (bx == 0 || by == 0 || bz == 0 || bx > 1024 || by > 1024 || bz > 64 || threads > 1024) return CUDA_ERROR_INVALID_VALUE;
    if (gx == 0 || gy == 0 || gz == 0 || gx > 2147483647u || gy > 65535 || gz > 65535) return CUDA_ERROR_INVALID_VALUE;
    if (static_cast<int>(shared) > fn->max_dynamic_shared) return CUDA_ERROR_INVALID_VALUE;
    if (fn->limits.static_shared + shared > static_cast<size_t>(SHARED_PER_BLOCK_OPTIN)) return CUDA_ERROR_INVALID_VALUE;
    if (static_cast<int>(threads) > max_threads_per_block(*fn)) {
        fprintf(stderr, "yoco emulator: %s: %llu threads per block, over its limit of %d (__launch_bounds__ or registers)\n",
                fn->kernel->name, threads, max_threads_per_block(*fn));
        return CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES;
    }
    std::lock_guard<std::mutex> lock(g_mutex);
    install_fault_report();
    const yoco_emu::Launch launch{fn->kernel, dim3(gx, gy, gz), dim3(bx, by, bz), shared, params[0], schedule_seed()};
    const std::string failure = yoco_emu::run_grid(launch);
    g_last_failure = failure;
    if (!failure.empty()) {
        fprintf(stderr, "yoco emulator: %s\n", failure.c_str());
        return CUDA_ERROR_LAUNCH_FAILED;
    }
    return CUDA_SUCCESS;
}

// What the last launch's failure said ("" if it ran to the end), for the self-test to tell one
// failure from another. Not part of the driver API.
const char* yoco_emu_last_failure() {
    std::lock_guard<std::mutex> lock(g_mutex);
    return g_last_failure.c_str();
}

CUresult CUDAAPI cuGetErrorName(CUresult error, const char** name) {
    switch (error) {
        case CUDA_SUCCESS: *name = "CUDA_SUCCESS"; break;
        case CUDA_ERROR_INVALID_VALUE: *name = "CUDA_ERROR_INVALID_VALUE"; break;
        case CUDA_ERROR_OUT_OF_MEMORY: *name = "CUDA_ERROR_OUT_OF_MEMORY"; break;
        case CUDA_ERROR_NOT_FOUND: *name = "CUDA_ERROR_NOT_FOUND"; break;
        case CUDA_ERROR_LAUNCH_FAILED: *name = "CUDA_ERROR_LAUNCH_FAILED"; break;
        case CUDA_ERROR_INVALID_DEVICE: *name = "CUDA_ERROR_INVALID_DEVICE"; break;
        default: *name = "CUDA_ERROR_UNKNOWN";
    }
    return CUDA_SUCCESS;
}
CUresult CUDAAPI cuGetErrorString(CUresult error, const char** text) {
    if (error == CUDA_ERROR_LAUNCH_FAILED) {
        *text = "the emulated kernel failed (the emulator's message is on stderr)";
        return CUDA_SUCCESS;
    }
    return cuGetErrorName(error, text);
}

}  // extern "C"
