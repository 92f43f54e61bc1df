#include "racecheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "yoco_emu/runtime.h"

namespace yoco_emu::racecheck {

namespace {

constexpr uint16_t NOBODY = 0xffff;
constexpr int WARP = 32;

// One byte of shared memory: who wrote it and who read it in the barrier interval `*_interval`
// names (an interval long past is as good as none), and what is in flight on it.
struct Cell {
    uint64_t write_interval = 0;
    uint64_t write_warp_syncs = 0;  // the writer's warp's __syncwarp count at the write
    uint64_t read_interval = 0;
    uint64_t reader_warp_syncs = 0;
    uint64_t other_reader_warp_syncs = 0;
    uint32_t reader_warps = 0;  // the warps that read it in read_interval, one bit each
    uint16_t writer = NOBODY;
    uint16_t reader = NOBODY;        // the last thread to read it
    uint16_t other_reader = NOBODY;  // the last one before that, another thread
    uint16_t copying = NOBODY;       // the thread whose cp.async to it is in flight
    uint16_t operand_reads = 0;      // wgmma.mma_async reads of it in flight
    uint32_t writer_fences = 0;      // the writer's fence.proxy.async count at the write
};

struct Region {
    uintptr_t start = 0;
    size_t bytes = 0;  // 0: nothing checked (the dynamic region between blocks)
    bool dynamic = false;
    std::vector<Cell> cells;
};

std::vector<Region>& regions() {  // [0]: the dynamic shared memory; then each static section
    static std::vector<Region> all(1, Region{0, 0, true, {}});
    return all;
}

bool g_active = false;
uint64_t g_interval = 0;             // numbers every barrier interval of every block, from 1
uint64_t g_block_start = 0;          // the running block's first interval
uint64_t g_warp_sync_count = 0;      // numbers every __syncwarp release
std::vector<uint64_t> g_warp_syncs;  // each warp's last release
long g_in_flight = 0;                // cells with a copy or an operand read in flight
std::vector<std::vector<uint64_t>> g_fences;  // per thread, the interval of each fence.proxy.async
char g_message[512];

int warp_of(uint16_t thread) { return thread / WARP; }

// Two accesses of different threads, `theirs` before the running thread's: unordered if they are
// in one barrier interval and either in different warps or in one warp with no __syncwarp between.
bool unordered(uint16_t them, uint64_t their_warp_syncs, uint16_t me) {
    return them != NOBODY && them != me && (warp_of(them) != warp_of(me) || their_warp_syncs == g_warp_syncs[warp_of(me)]);
}

uint16_t me() { return static_cast<uint16_t>(current().warp * WARP + current().lane); }

// Ends the launch: `what`, then the other thread (if known) and, for a hazard between two
// threads' accesses (`hazard`), the barrier that would have ordered them.
[[noreturn]] void report(const char* what, const Region& r, size_t offset, uint16_t other, bool hazard = true) {
    const char* where = r.dynamic ? "dynamic shared memory" : "a __shared__ variable";
    if (other == NOBODY) {
        snprintf(g_message, sizeof g_message, "racecheck: %s (byte %zu of %s)", what, offset, where);
    } else {
        const bool one_warp = warp_of(other) == warp_of(me());
        const char* missing = !hazard ? "" : one_warp ? ", one warp with no __syncwarp or __syncthreads between" : ", no __syncthreads between";
        snprintf(g_message, sizeof g_message, "racecheck: %s thread %u (warp %d, lane %d)%s (byte %zu of %s)", what, other,
                 warp_of(other), other % WARP, missing, offset, where);
    }
    trap(g_message);
}

void check_read(Region& r, size_t offset, uint16_t t) {
    Cell& c = r.cells[offset];
    if (c.copying != NOBODY) report("a read of shared memory that a cp.async is still writing, issued by", r, offset, c.copying, false);
    if (c.write_interval < g_block_start) report("a read of shared memory that no thread of this block has written", r, offset, NOBODY, false);
    if (c.write_interval == g_interval && unordered(c.writer, c.write_warp_syncs, t))
        report("read-after-write hazard: a read of what was written by", r, offset, c.writer);
    const uint64_t syncs = g_warp_syncs[warp_of(t)];
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
    c.reader_warp_syncs = syncs;
}

void check_write(Region& r, size_t offset, uint16_t t) {
    Cell& c = r.cells[offset];
    if (c.copying != NOBODY) report("a write to shared memory that a cp.async is still writing, issued by", r, offset, c.copying, false);
    if (c.operand_reads) report("a write to shared memory that a wgmma.mma_async still reads (before the wait that covers it)", r, offset, NOBODY);
    if (c.write_interval == g_interval && unordered(c.writer, c.write_warp_syncs, t))
        report("write-after-write hazard: a write over what was written by", r, offset, c.writer);
    if (c.read_interval == g_interval) {
        const uint32_t other_warps = c.reader_warps & ~(1u << warp_of(t));
        if (other_warps) {
            for (const uint16_t other : {c.reader, c.other_reader})
                if (other != NOBODY && warp_of(other) != warp_of(t)) report("write-after-read hazard: a write over what was read by", r, offset, other);
            report("write-after-read hazard: a write, with no __syncthreads between, over what a thread of another warp read", r, offset, NOBODY);
        }
        if (unordered(c.reader, c.reader_warp_syncs, t))
            report("write-after-read hazard: a write over what was read by", r, offset, c.reader);
        if (unordered(c.other_reader, c.other_reader_warp_syncs, t))
            report("write-after-read hazard: a write over what was read by", r, offset, c.other_reader);
    }
    c.write_interval = g_interval;
    c.writer = t;
    c.write_warp_syncs = g_warp_syncs[warp_of(t)];
    c.writer_fences = static_cast<uint32_t>(g_fences[t].size());
}

// The async proxy (a wgmma operand) reads the byte: its last write in this block must be visible
// to it, by the writer's fence.proxy.async after the write and a barrier after that fence (or
// program order, where the writer itself issues the wgmma).
void check_proxy_read(Region& r, size_t offset, uint16_t t) {
    const Cell& c = r.cells[offset];
    if (c.writer == NOBODY || c.write_interval < g_block_start) return;
    const std::vector<uint64_t>& fences = g_fences[c.writer];
    const bool fenced = c.writer_fences < fences.size() && (c.writer == t || fences[c.writer_fences] < g_interval);
    if (!fenced)
        report("a wgmma.mma_async operand read of shared memory whose last write had no fence.proxy.async, then a barrier, after it: written by",
               r, offset, c.writer, false);
}

// Calls `each(region, offset)` for every byte of [p, p + bytes) in shared memory.
template <typename F>
inline void for_shared_bytes(const void* p, size_t bytes, F each) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    for (Region& r : regions()) {
        if (a - r.start < r.bytes) {
            const size_t offset = a - r.start;
            const size_t end = offset + bytes < r.bytes ? offset + bytes : r.bytes;
            for (size_t o = offset; o < end; ++o) each(r, o);
            return;
        }
    }
}

}  // namespace

bool enabled() {
    const char* v = getenv("YOCO_EMU_RACECHECK");
    return !(v && strcmp(v, "0") == 0);
}

void static_section(unsigned char* start, unsigned char* stop) {
    for (const Region& r : regions())
        if (r.start == reinterpret_cast<uintptr_t>(start)) return;
    // Its cells come with the first checked block: a process that checks nothing spends nothing.
    regions().push_back(Region{reinterpret_cast<uintptr_t>(start), static_cast<size_t>(stop - start), false, {}});
}

void begin_block(const unsigned char* dynamic_start, size_t dynamic, int threads) {
    Region& d = regions()[0];
    d.start = reinterpret_cast<uintptr_t>(dynamic_start);
    d.bytes = dynamic;
    for (Region& r : regions())
        if (r.cells.size() < r.bytes) r.cells.resize(r.bytes);
    if (g_in_flight != 0) {  // a block that failed with copies or operand reads in flight
        for (Region& r : regions())
            for (Cell& c : r.cells) c.copying = NOBODY, c.operand_reads = 0;
        g_in_flight = 0;
    }
    g_warp_syncs.assign(static_cast<size_t>((threads + WARP - 1) / WARP), 0);
    g_fences.assign(static_cast<size_t>(threads), {});
    for (uint64_t& s : g_warp_syncs) s = ++g_warp_sync_count;
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
    if (!g_active) return;
    const uint16_t t = me();
    for_shared_bytes(p, bytes, [&](Region& r, size_t o) { check_read(r, o, t); });
}

void write(const void* p, size_t bytes) {
    if (!g_active) return;
    const uint16_t t = me();
    for_shared_bytes(p, bytes, [&](Region& r, size_t o) { check_write(r, o, t); });
}

void copy_issued(const void* p, size_t bytes) {
    if (!g_active) return;
    const uint16_t t = me();
    for_shared_bytes(p, bytes, [&](Region& r, size_t o) {
        check_write(r, o, t);
        r.cells[o].copying = t;
        g_in_flight += 1;
    });
}

void copy_landed(const void* p, size_t bytes) {
    if (!g_active) return;
    const uint16_t t = me();
    for_shared_bytes(p, bytes, [&](Region& r, size_t o) {
        r.cells[o].copying = NOBODY;
        g_in_flight -= 1;
        check_write(r, o, t);
    });
}

void operand_issued(const void* p, size_t bytes) {
    if (!g_active) return;
    const uint16_t t = me();
    for_shared_bytes(p, bytes, [&](Region& r, size_t o) {
        check_read(r, o, t);
        check_proxy_read(r, o, t);
        r.cells[o].operand_reads += 1;
        g_in_flight += 1;
    });
}

void proxy_fence() {
    if (g_active) g_fences[me()].push_back(g_interval);
}

void operand_retired(const void* p, size_t bytes) {
    if (!g_active) return;
    for_shared_bytes(p, bytes, [&](Region& r, size_t o) {
        r.cells[o].operand_reads -= 1;
        g_in_flight -= 1;
    });
}

}  // namespace yoco_emu::racecheck

// ---- the thread-sanitizer instrumentation's entry points (GCC, -fsanitize=thread) ------------
// build.sh compiles the kernel files with it and links no sanitizer runtime: these are the whole
// of what its calls do. Accesses outside shared memory, and any outside a checked block, return
// at once.
extern "C" {
void __tsan_init() {}
#define YOCO_EMU_TSAN_ACCESS(size)                                                                  \
    void __tsan_read##size(void* p) { yoco_emu::racecheck::read(p, size); }                          \
    void __tsan_write##size(void* p) { yoco_emu::racecheck::write(p, size); }                        \
    void __tsan_unaligned_read##size(void* p) { yoco_emu::racecheck::read(p, size); }                \
    void __tsan_unaligned_write##size(void* p) { yoco_emu::racecheck::write(p, size); }
YOCO_EMU_TSAN_ACCESS(1)
YOCO_EMU_TSAN_ACCESS(2)
YOCO_EMU_TSAN_ACCESS(4)
YOCO_EMU_TSAN_ACCESS(8)
YOCO_EMU_TSAN_ACCESS(16)
#undef YOCO_EMU_TSAN_ACCESS
void __tsan_read_range(void* p, size_t bytes) { yoco_emu::racecheck::read(p, bytes); }
void __tsan_write_range(void* p, size_t bytes) { yoco_emu::racecheck::write(p, bytes); }
}
