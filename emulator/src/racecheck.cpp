#include "racecheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <string>
#include <vector>

#include "symbols.h"
#include "yoco_emu/runtime.h"

namespace yoco_emu::racecheck {

namespace {

constexpr int WARP = 32;
// The most dynamic shared memory a launch may have (an H100's opt-in limit, driver.cpp's).
constexpr size_t MAX_DYNAMIC = 227 * 1024;

// A thread of the block as the cells hold it: its linear index plus one, 0 for nobody, so that a
// cell of zeros is an untouched byte and the shadow can be fresh anonymous pages, committed only
// where a kernel touches shared memory. Blocks have at most 1024 threads (driver.cpp refuses more).
using Who = uint16_t;
constexpr Who NOBODY = 0;
Who who(int thread) { return static_cast<Who>(thread + 1); }
int warp_of(Who w) { return (w - 1) / WARP; }
int lane_of(Who w) { return (w - 1) % WARP; }

// One byte of shared memory: who wrote it and who read it in the barrier interval `*_interval`
// names (an interval long past is as good as none), and what is in flight on it.
struct Cell {
    uint64_t write_interval;
    uint64_t writer_warp_syncs;  // the writer's warp's __syncwarp count at the write
    uint64_t read_interval;
    uint64_t reader_warp_syncs;
    uint64_t other_reader_warp_syncs;
    uint32_t reader_warps;   // the warps that read it in read_interval, one bit each
    uint32_t writer_fences;  // the writer's fence.proxy.async count at the write
    uint32_t operand_reads;  // wgmma.mma_async reads of it in flight
    Who writer;
    Who reader;        // the last thread to read it
    Who other_reader;  // the last one before that, another thread
    Who copying;       // the thread whose cp.async to it is in flight
};

// Zeroed cells for `bytes` of shared memory, reserved, not committed.
Cell* fresh_cells(size_t bytes) {
    void* m = mmap(nullptr, bytes * sizeof(Cell), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        fprintf(stderr, "yoco emulator: racecheck cannot map the shadow of %zu bytes of shared memory\n", bytes);
        abort();
    }
    return static_cast<Cell*>(m);
}

struct Region {
    uintptr_t start;
    size_t bytes;  // checked now (the dynamic region: the running launch's; 0 between blocks)
    size_t capacity;
    bool dynamic;
    Cell* cells;  // null until the first checked block
};

std::vector<Region>& regions() {  // [0]: the dynamic shared memory; then each static section
    static std::vector<Region> all(1, Region{0, 0, MAX_DYNAMIC, true, nullptr});
    return all;
}

bool g_active = false;
uint64_t g_interval = 0;             // numbers every barrier interval of every block, from 1
uint64_t g_block_start = 0;          // the running block's first interval
uint64_t g_warp_sync_count = 0;      // numbers every __syncwarp release
std::vector<uint64_t> g_warp_syncs;  // each warp's last release
long g_in_flight = 0;                // copies' and operand reads' marks on cells
std::vector<std::vector<uint64_t>> g_fences;  // per thread, the interval of each fence.proxy.async

Who me() { return who(current().warp * WARP + current().lane); }

// Whether an access of `them` (with its warp's __syncwarp count then), before the running
// thread's access in the same barrier interval, is unordered with it: another warp's, or its own
// warp's with no __syncwarp since.
bool unordered(Who them, uint64_t their_warp_syncs, Who me) {
    return them != NOBODY && them != me && (warp_of(them) != warp_of(me) || their_warp_syncs == g_warp_syncs[warp_of(me)]);
}

// Where a byte is, for a report: its offset in the dynamic shared memory, or the static variable.
std::string place(const Region& r, size_t offset) {
    if (r.dynamic) return "byte " + std::to_string(offset) + " of the dynamic shared memory";
    const std::string name = variable_at(reinterpret_cast<const void*>(r.start + offset));
    return name.empty() ? "byte " + std::to_string(offset) + " of the __shared__ variables" : "__shared__ " + name;
}

// Ends the launch: `what`, then the other thread (if known) and, for two threads' accesses that
// nothing ordered (`say_missing_barrier`), the barrier that would have ordered them.
[[noreturn]] void report(const char* what, const Region& r, size_t offset, Who other, bool say_missing_barrier = true) {
    std::string text = std::string("racecheck: ") + what;
    if (other != NOBODY) {
        char thread[96];
        snprintf(thread, sizeof thread, " thread %d (warp %d, lane %d)", other - 1, warp_of(other), lane_of(other));
        text += thread;
        if (say_missing_barrier)
            text += warp_of(other) == warp_of(me()) ? ", one warp with no __syncwarp or __syncthreads between" : ", no __syncthreads between";
    }
    text += " (" + place(r, offset) + ")";
    trap(text.c_str());  // which copies it before the fiber stops for good
}

void check_read(Region& r, size_t offset, Who t) {
    Cell& c = r.cells[offset];
    if (c.copying != NOBODY) report("a read of shared memory that a cp.async is still writing, issued by", r, offset, c.copying, false);
    if (c.write_interval == g_interval && unordered(c.writer, c.writer_warp_syncs, t))
        report("read-after-write hazard: a read of what was written by", r, offset, c.writer);
    if (c.read_interval != g_interval) {
        c.read_interval = g_interval;
        c.reader_warps = 0;
        c.reader = c.other_reader = NOBODY;
    }
    c.reader_warps |= 1u << warp_of(t);
    if (c.reader != t) {
        c.other_reader = c.reader;
        c.other_reader_warp_syncs = c.reader_warp_syncs;
        c.reader = t;
    }
    c.reader_warp_syncs = g_warp_syncs[warp_of(t)];
}

void check_write(Region& r, size_t offset, Who t) {
    Cell& c = r.cells[offset];
    if (c.copying != NOBODY) report("a write to shared memory that a cp.async is still writing, issued by", r, offset, c.copying, false);
    if (c.operand_reads) report("a write to shared memory that a wgmma.mma_async still reads (before the wait that covers it)", r, offset, NOBODY);
    if (c.write_interval == g_interval && unordered(c.writer, c.writer_warp_syncs, t))
        report("write-after-write hazard: a write over what was written by", r, offset, c.writer);
    if (c.read_interval == g_interval) {
        if (c.reader_warps & ~(1u << warp_of(t))) {
            // Every reader of another warp is unordered with this write; name one if one is kept.
            for (const Who other : {c.reader, c.other_reader})
                if (other != NOBODY && warp_of(other) != warp_of(t)) report("write-after-read hazard: a write over what was read by", r, offset, other);
            report("write-after-read hazard: a write, with no __syncthreads between, over what a thread of another warp read", r, offset, NOBODY);
        }
        if (unordered(c.reader, c.reader_warp_syncs, t)) report("write-after-read hazard: a write over what was read by", r, offset, c.reader);
        if (unordered(c.other_reader, c.other_reader_warp_syncs, t))
            report("write-after-read hazard: a write over what was read by", r, offset, c.other_reader);
    }
    c.write_interval = g_interval;
    c.writer = t;
    c.writer_warp_syncs = g_warp_syncs[warp_of(t)];
    c.writer_fences = static_cast<uint32_t>(g_fences[t - 1].size());
}

// The async proxy (a wgmma operand read by thread t) reads the byte: its last write in this block
// must be visible to it. Either its writer fenced (fence.proxy.async) after the write and a barrier
// followed that fence, or the writer is t and fenced after the write, or t fenced after a barrier
// that followed the write (a proxy fence anywhere on the path from the write to the read).
void check_proxy_read(Region& r, size_t offset, Who t) {
    const Cell& c = r.cells[offset];
    if (c.writer == NOBODY || c.write_interval < g_block_start) return;  // unwritten in this block
    const std::vector<uint64_t>& writer_fences = g_fences[c.writer - 1];
    const std::vector<uint64_t>& my_fences = g_fences[t - 1];
    const bool writer_fenced = c.writer_fences < writer_fences.size() && (c.writer == t || writer_fences[c.writer_fences] < g_interval);
    const bool i_fenced_later = !my_fences.empty() && my_fences.back() > c.write_interval;
    if (!writer_fenced && !i_fenced_later)
        report("a wgmma.mma_async operand read of shared memory whose last write no fence.proxy.async (the writer's, then a barrier) made visible: written by",
               r, offset, c.writer, false);
}

// The region holding `p`, and its offset there; null outside shared memory.
Region* region_of(const void* p, size_t& offset) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    for (Region& r : regions()) {
        if (a - r.start < r.bytes) {
            offset = a - r.start;
            return &r;
        }
    }
    return nullptr;
}

// Calls `each(region, offset, thread)` for every byte of [p, p + bytes) in shared memory, the
// running thread's, while a block is checked.
template <typename F>
inline void for_shared_bytes(const void* p, size_t bytes, F each) {
    if (!g_active) return;
    size_t offset = 0;
    Region* r = region_of(p, offset);
    if (!r) return;
    const Who t = me();
    const size_t end = offset + bytes < r->bytes ? offset + bytes : r->bytes;
    for (size_t o = offset; o < end; ++o) each(*r, o, t);
}

}  // namespace

bool enabled() {
    const char* v = getenv("YOCO_EMU_RACECHECK");
    return !(v && strcmp(v, "0") == 0);
}

void static_section(unsigned char* start, unsigned char* stop) {
    for (const Region& r : regions())
        if (r.start == reinterpret_cast<uintptr_t>(start)) return;
    const size_t bytes = static_cast<size_t>(stop - start);
    regions().push_back(Region{reinterpret_cast<uintptr_t>(start), bytes, bytes, false, nullptr});
}

void begin_block(const unsigned char* dynamic_start, size_t dynamic, int threads) {
    Region& d = regions()[0];
    d.start = reinterpret_cast<uintptr_t>(dynamic_start);
    d.bytes = dynamic < MAX_DYNAMIC ? dynamic : MAX_DYNAMIC;
    for (Region& r : regions()) {
        // A block that failed left copies or operand reads in flight: fresh shadows (the
        // intervals are numbered across blocks, so nothing else of the past is needed).
        if (r.cells && g_in_flight != 0) munmap(r.cells, r.capacity * sizeof(Cell)), r.cells = nullptr;
        if (!r.cells) r.cells = fresh_cells(r.capacity);
    }
    g_in_flight = 0;
    g_warp_syncs.assign(static_cast<size_t>((threads + WARP - 1) / WARP), 0);
    for (uint64_t& s : g_warp_syncs) s = ++g_warp_sync_count;
    g_fences.assign(static_cast<size_t>(threads), {});
    g_interval += 1;
    g_block_start = g_interval;
    g_active = true;
}

void end_block() {
    g_active = false;
    regions()[0].bytes = 0;
}

void block_barrier() {
    if (g_active) g_interval += 1;
}

void warp_barrier(int warp) {
    if (g_active) g_warp_syncs[static_cast<size_t>(warp)] = ++g_warp_sync_count;
}

void read(const void* p, size_t bytes) {
    for_shared_bytes(p, bytes, [](Region& r, size_t o, Who t) { check_read(r, o, t); });
}

void write(const void* p, size_t bytes) {
    for_shared_bytes(p, bytes, [](Region& r, size_t o, Who t) { check_write(r, o, t); });
}

void copy_issued(const void* p, size_t bytes) {
    for_shared_bytes(p, bytes, [](Region& r, size_t o, Who t) {
        check_write(r, o, t);
        r.cells[o].copying = t;
        g_in_flight += 1;
    });
}

void copy_landed(const void* p, size_t bytes) {
    for_shared_bytes(p, bytes, [](Region& r, size_t o, Who t) {
        r.cells[o].copying = NOBODY;
        g_in_flight -= 1;
        check_write(r, o, t);
    });
}

void operand_issued(const void* p, size_t bytes) {
    for_shared_bytes(p, bytes, [](Region& r, size_t o, Who t) {
        check_read(r, o, t);
        check_proxy_read(r, o, t);
        r.cells[o].operand_reads += 1;
        g_in_flight += 1;
    });
}

void operand_retired(const void* p, size_t bytes) {
    for_shared_bytes(p, bytes, [](Region& r, size_t o, Who) {
        r.cells[o].operand_reads -= 1;
        g_in_flight -= 1;
    });
}

void proxy_fence() {
    if (g_active) g_fences[me() - 1].push_back(g_interval);
}

}  // namespace yoco_emu::racecheck

// ---- the thread-sanitizer instrumentation's entry points (GCC, -fsanitize=thread) ------------
// build.sh compiles the kernel files with it and links no sanitizer runtime: these are the whole
// of what its calls do. Accesses outside shared memory, and any outside a checked block, return
// at once. Protected: a ThreadSanitizer runtime in the same process (a sanitized test binary)
// cannot take the kernels' calls from them.
#define YOCO_EMU_HOOK extern "C" __attribute__((visibility("protected")))
YOCO_EMU_HOOK void __tsan_init() {}
#define YOCO_EMU_TSAN_ACCESS(size)                                                                         \
    YOCO_EMU_HOOK void __tsan_read##size(void* p) { yoco_emu::racecheck::read(p, size); }                   \
    YOCO_EMU_HOOK void __tsan_write##size(void* p) { yoco_emu::racecheck::write(p, size); }                 \
    YOCO_EMU_HOOK void __tsan_unaligned_read##size(void* p) { yoco_emu::racecheck::read(p, size); }         \
    YOCO_EMU_HOOK void __tsan_unaligned_write##size(void* p) { yoco_emu::racecheck::write(p, size); }
YOCO_EMU_TSAN_ACCESS(1)
YOCO_EMU_TSAN_ACCESS(2)
YOCO_EMU_TSAN_ACCESS(4)
YOCO_EMU_TSAN_ACCESS(8)
YOCO_EMU_TSAN_ACCESS(16)
#undef YOCO_EMU_TSAN_ACCESS
YOCO_EMU_HOOK void __tsan_read_range(void* p, size_t bytes) { yoco_emu::racecheck::read(p, bytes); }
YOCO_EMU_HOOK void __tsan_write_range(void* p, size_t bytes) { yoco_emu::racecheck::write(p, bytes); }
#undef YOCO_EMU_HOOK
