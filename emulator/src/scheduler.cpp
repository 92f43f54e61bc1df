#include "scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fiber.h"
#include "racecheck.h"

namespace yoco_emu {

namespace {

// Stacks hold the kernels' register arrays (a thread's accumulators and fragments).
constexpr size_t STACK_BYTES = 256 * 1024;
constexpr int WARP = 32;

enum class State { Runnable, AtBlockBarrier, AtWarpBarrier, Done };

struct Copy {
    void* dst;
    const void* src;
    size_t bytes;
    bool valid;
    long group;   // -1 until committed
    bool landed;  // already (at its issue); still in flight until the wait that covers it
};

struct Fiber {
    void* sp = nullptr;
    State state = State::Runnable;
    ThreadCoords coords{};
    std::vector<Copy> copies;
    long next_group = 0;
    std::vector<WgmmaOp> wgmma;
    long next_wgmma_group = 0;
    bool wgmma_fenced = false;
};

struct Warp {
    int live = 0;          // lanes not yet exited
    uint32_t present = 0;  // lanes that exist (a block's last warp may be partial)
    uint32_t exited = 0;   // lanes that have returned
    int arrived = 0;       // lanes waiting at the current meeting point
    WarpOp op = WarpOp::Shuffle;
    alignas(16) unsigned char slots[WARP * SLOT_BYTES];
};

// The block being run. One at a time: the emulator runs on the OS thread that launched.
struct Block {
    const Launch* launch = nullptr;
    uint3 idx{};
    std::vector<Fiber> fibers;
    std::vector<Warp> warps;
    int live = 0;
    int at_block_barrier = 0;
    long barrier_generation = 0;  // how many times the block barrier has released
    unsigned char* dynamic_shared = nullptr;
    uint32_t shared_window_offset = 0;  // shared_address(dynamic_shared)
    std::vector<std::vector<WgmmaIssue>> wgmma_issues;  // per warp
    uint64_t rng = 0;  // this block's draws outside the scheduler (cp.async landing)
    Fiber* current = nullptr;
    void* scheduler_sp = nullptr;
    std::string failure;
};

Block g_block;
std::vector<std::unique_ptr<FiberStack>> g_stacks;

// The dynamic shared memory of one block: ends at an inaccessible page, so a read or write past
// the launch's shared-memory size faults, and starts filled with 0xff bytes (NaN as f32, bf16
// and f16), so a read of memory no thread wrote shows in the results.
class SharedArena {
  public:
    unsigned char* reset(size_t bytes) {
        const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
        const size_t rounded = (bytes + 127) / 128 * 128;
        const size_t need = (rounded + page - 1) / page * page + page;
        if (need > mapping_bytes_) {
            if (mapping_) munmap(mapping_, mapping_bytes_);
            void* m = mmap(nullptr, need, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m == MAP_FAILED) {
                fprintf(stderr, "yoco emulator: cannot map %zu bytes of shared memory\n", need);
                abort();
            }
            mapping_ = static_cast<unsigned char*>(m);
            mapping_bytes_ = need;
            mprotect(mapping_ + need - page, page, PROT_NONE);
        }
        unsigned char* start = mapping_ + mapping_bytes_ - static_cast<size_t>(sysconf(_SC_PAGESIZE)) - rounded;
        memset(start, 0xff, rounded);
        return start;
    }

  private:
    unsigned char* mapping_ = nullptr;
    size_t mapping_bytes_ = 0;
};
SharedArena g_shared;

// Every module's section of __shared__ variables (registry.h), start -> stop.
std::map<unsigned char*, unsigned char*>& shared_sections() {
    static std::map<unsigned char*, unsigned char*> sections;
    return sections;
}

void poison_static_shared() {
    for (const auto& [start, stop] : shared_sections()) memset(start, 0xff, static_cast<size_t>(stop - start));
}

uint64_t next_random(uint64_t& state) {  // SplitMix64
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void yield_to_scheduler() { yoco_emu_switch(&g_block.current->sp, g_block.scheduler_sp); }

void land(const Copy& c) {
    if (c.valid)
        memcpy(c.dst, c.src, c.bytes);
    else
        memset(c.dst, 0, c.bytes);
}

// Lands the thread's committed copies of groups below `below_group`, in place (a wait runs for
// every tile a kernel loads), those that have not landed at their issue.
void complete_copies(Fiber& f, long below_group) {
    auto landed = [&](const Copy& c) {
        if (c.group < 0 || c.group >= below_group) return false;
        if (!c.landed) land(c);
        racecheck::copy_landed(c.dst, c.bytes);
        return true;
    };
    f.copies.erase(std::remove_if(f.copies.begin(), f.copies.end(), landed), f.copies.end());
}

void release_block_barrier_if_complete() {
    Block& b = g_block;
    if (b.at_block_barrier == 0 || b.at_block_barrier != b.live) return;
    for (Fiber& f : b.fibers)
        if (f.state == State::AtBlockBarrier) f.state = State::Runnable;
    b.at_block_barrier = 0;
    b.barrier_generation += 1;
    racecheck::block_barrier();
}

void release_warp_if_complete(int w) {
    Block& b = g_block;
    Warp& warp = b.warps[w];
    if (warp.arrived == 0 || warp.arrived != warp.live) return;
    const int first = w * WARP;
    const int end = std::min<int>(first + WARP, static_cast<int>(b.fibers.size()));
    for (int i = first; i < end; ++i)
        if (b.fibers[i].state == State::AtWarpBarrier) b.fibers[i].state = State::Runnable;
    warp.arrived = 0;
    // Of the warp-wide operations, only __syncwarp orders the lanes' memory accesses.
    if (warp.op == WarpOp::SyncWarp) racecheck::warp_barrier(w);
}

void fiber_main(void*) {
    Block& b = g_block;
    b.launch->kernel->run(b.launch->params);
    Fiber& f = *b.current;
    // A thread's copies still in flight land when it exits (the block's later readers have
    // waited for them at a barrier, or the kernel is wrong in a way a result shows).
    for (Copy& c : f.copies)
        if (c.group < 0) c.group = 0;
    complete_copies(f, f.next_group + 1);
    if (!f.wgmma.empty()) b.failure = "a thread exited with a wgmma.mma_async it never waited for (wgmma.wait_group)";
    f.state = State::Done;
    b.live -= 1;
    Warp& warp = b.warps[f.coords.warp];
    warp.live -= 1;
    warp.exited |= 1u << f.coords.lane;
    if (warp.arrived > 0) {
        b.failure = "a lane exited while the rest of its warp waited at " + std::string(warp_op_name(warp.op)) +
                    " with a mask naming it";
    }
    release_warp_if_complete(f.coords.warp);
    release_block_barrier_if_complete();
    yield_to_scheduler();
    abort();  // a finished fiber is never resumed
}

std::string coords_text(const Block& b, const Fiber* f) {
    char text[200];
    if (f) {
        snprintf(text, sizeof text, "block (%u,%u,%u) thread (%u,%u,%u)", b.idx.x, b.idx.y, b.idx.z, f->coords.thread_idx.x,
                 f->coords.thread_idx.y, f->coords.thread_idx.z);
    } else {
        snprintf(text, sizeof text, "block (%u,%u,%u)", b.idx.x, b.idx.y, b.idx.z);
    }
    return text;
}

std::string deadlock_text(const Block& b) {
    int at_block = 0, at_warp = 0, runnable = 0;
    for (const Fiber& f : b.fibers) {
        at_block += f.state == State::AtBlockBarrier;
        at_warp += f.state == State::AtWarpBarrier;
        runnable += f.state == State::Runnable;
    }
    char text[200];
    snprintf(text, sizeof text, "deadlock: %d threads at __syncthreads, %d at a warp-wide operation, %d live", at_block,
             at_warp, b.live);
    return text;
}

// Warps run at different paces between block barriers, as they may on a GPU. At the block's
// start and after every __syncthreads, one of two plans is drawn:
// - serial: the warps in a random order, each running until it waits at the barrier (or exits)
//   before the next starts, so any warp's writes can land before, or after, all of another's
//   reads;
// - paced: every warp runs in a round with a chance of 1, 1/2 or 1/8 drawn for it, so warps
//   interleave and drift apart.
// All lanes of a warp run or sit out together (they meet at every warp-wide operation).
class WarpPlan {
  public:
    explicit WarpPlan(size_t warps) : pace_(warps), priority_(warps) {}

    void draw(uint64_t& rng) {
        serial_ = next_random(rng) & 1;
        for (uint64_t& p : pace_) p = PACES[next_random(rng) % 3];
        for (size_t w = 0; w < priority_.size(); ++w) priority_[w] = static_cast<int>(w);
        for (size_t i = priority_.size(); i > 1; --i) std::swap(priority_[i - 1], priority_[next_random(rng) % i]);
    }

    // Keeps, of the runnable threads in `order` (ascending, so a warp's lanes are adjacent), those
    // of the warps that run this round; all of them if none was drawn. Runs every round: its
    // buffer is kept from one to the next.
    void select(std::vector<int>& order, const std::vector<Fiber>& fibers, uint64_t& rng) {
        if (priority_.size() < 2) return;
        std::vector<int>& running = running_;
        running.clear();
        if (serial_) {
            int first = static_cast<int>(priority_.size());
            for (int t : order) first = std::min(first, priority_[fibers[t].coords.warp]);
            for (int t : order)
                if (priority_[fibers[t].coords.warp] == first) running.push_back(t);
        } else {
            int last_warp = -1;
            bool runs = true;
            for (int t : order) {
                const int w = fibers[t].coords.warp;
                if (w != last_warp) {
                    runs = next_random(rng) % 8 < pace_[w];
                    last_warp = w;
                }
                if (runs) running.push_back(t);
            }
        }
        if (!running.empty()) order.swap(running);
    }

  private:
    static constexpr uint64_t PACES[3] = {8, 4, 1};  // rounds run, out of 8
    bool serial_ = false;
    std::vector<uint64_t> pace_;
    std::vector<int> priority_;  // serial plan: warp -> rank (0 runs first)
    std::vector<int> running_;
};

// Runs one block to completion (or to its first failure), its shared memory's accesses checked
// (racecheck.h) if `checked`.
std::string run_block(const Launch& launch, uint3 idx, uint64_t& rng, bool checked) {
    Block& b = g_block;
    const int threads = static_cast<int>(launch.block.x * launch.block.y * launch.block.z);
    b.launch = &launch;
    b.idx = idx;
    b.fibers.assign(threads, Fiber{});
    b.warps.assign((threads + WARP - 1) / WARP, Warp{});
    b.live = threads;
    b.at_block_barrier = 0;
    b.barrier_generation = 0;
    b.failure.clear();
    b.dynamic_shared = g_shared.reset(launch.dynamic_shared_bytes);
    b.rng = next_random(rng);
    b.shared_window_offset = 1024 + 128 * static_cast<uint32_t>(next_random(b.rng) % 8);
    b.wgmma_issues.assign(b.warps.size(), {});
    poison_static_shared();
    if (checked) racecheck::begin_block(b.dynamic_shared, launch.dynamic_shared_bytes, threads);
    struct EndChecks {
        ~EndChecks() { racecheck::end_block(); }
    } end_checks;
    while (static_cast<int>(g_stacks.size()) < threads) g_stacks.push_back(std::make_unique<FiberStack>(STACK_BYTES));
    for (int t = 0; t < threads; ++t) {
        Fiber& f = b.fibers[t];
        f.coords.thread_idx = {t % launch.block.x, (t / launch.block.x) % launch.block.y, t / (launch.block.x * launch.block.y)};
        f.coords.lane = t % WARP;
        f.coords.warp = t / WARP;
        b.warps[f.coords.warp].live += 1;
        b.warps[f.coords.warp].present |= 1u << f.coords.lane;
        f.sp = g_stacks[t]->prepare(&fiber_main, nullptr);
    }
    std::vector<int> order;
    order.reserve(threads);
    WarpPlan plan(b.warps.size());
    long planned_generation = -1;
    while (b.live > 0) {
        order.clear();
        for (int t = 0; t < threads; ++t)
            if (b.fibers[t].state == State::Runnable) order.push_back(t);
        if (order.empty()) return deadlock_text(b) + " in " + coords_text(b, nullptr);
        if (planned_generation != b.barrier_generation) {
            planned_generation = b.barrier_generation;
            plan.draw(rng);
        }
        plan.select(order, b.fibers, rng);
        for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[next_random(rng) % i]);
        for (int t : order) {
            b.current = &b.fibers[t];
            yoco_emu_switch(&b.scheduler_sp, b.current->sp);
            if (!b.failure.empty()) return b.failure + " in " + coords_text(b, b.current);
        }
    }
    b.current = nullptr;
    for (size_t w = 0; w < b.wgmma_issues.size(); ++w)
        if (b.wgmma_issues[w].size() != b.wgmma_issues[w - w % 4].size())
            return "warps of one warpgroup issued different numbers of wgmma.mma_async in " + coords_text(b, nullptr);
    return "";
}

}  // namespace

const char* warp_op_name(WarpOp op) {
    switch (op) {
        case WarpOp::Shuffle: return "a shuffle";
        case WarpOp::Vote: return "a vote";
        case WarpOp::SyncWarp: return "__syncwarp";
        case WarpOp::Mma: return "mma.sync";
        case WarpOp::LdMatrix: return "ldmatrix";
        case WarpOp::Wgmma: return "wgmma.mma_async";
        case WarpOp::WgmmaFence: return "wgmma.fence";
    }
    return "?";
}

const ThreadCoords& current() { return g_block.current->coords; }
const uint3& block_idx() { return g_block.idx; }
const dim3& block_dim() { return g_block.launch->block; }
const dim3& grid_dim() { return g_block.launch->grid; }

unsigned char* dynamic_shared(size_t align) {
    if (reinterpret_cast<uintptr_t>(g_block.dynamic_shared) % align != 0) trap("dynamic shared memory under-aligned");
    return g_block.dynamic_shared;
}

void sync_block() {
    Block& b = g_block;
    b.current->state = State::AtBlockBarrier;
    b.at_block_barrier += 1;
    release_block_barrier_if_complete();
    yield_to_scheduler();
}

void sync_warp(WarpOp op, uint32_t mask) {
    Block& b = g_block;
    Fiber& f = *b.current;
    Warp& warp = b.warps[f.coords.warp];
    // CUDA: every lane the mask names must be live and at this operation (a lane that has exited,
    // or does not exist, makes the result undefined); the emulator also runs only masks that
    // name every live lane.
    const uint32_t live = warp.present & ~warp.exited;
    if (mask & ~live) trap("a warp-wide operation's mask names a lane that has exited or does not exist");
    if (live & ~mask) trap("a warp-wide operation's mask leaves out a live lane (the emulator runs full-warp masks only)");
    if (warp.arrived == 0) {
        warp.op = op;
    } else if (warp.op != op) {
        b.failure = std::string("lanes of one warp met at different warp-wide operations: ") + warp_op_name(warp.op) +
                    " and " + warp_op_name(op);
        yield_to_scheduler();
        abort();
    }
    warp.arrived += 1;
    f.state = State::AtWarpBarrier;
    release_warp_if_complete(f.coords.warp);
    yield_to_scheduler();
}

bool is_shared(const void* p, size_t bytes) {
    const unsigned char* a = static_cast<const unsigned char*>(p);
    const Block& b = g_block;
    if (a >= b.dynamic_shared && a + bytes <= b.dynamic_shared + b.launch->dynamic_shared_bytes) return true;
    for (const auto& [start, stop] : shared_sections())
        if (a >= start && a + bytes <= stop) return true;
    return false;
}

uint32_t shared_address(const void* p) {
    const Block& b = g_block;
    const unsigned char* a = static_cast<const unsigned char*>(p);
    if (!(a >= b.dynamic_shared && a <= b.dynamic_shared + b.launch->dynamic_shared_bytes))
        trap("shared address of a pointer outside the dynamic shared memory (the emulator maps only that)");
    return b.shared_window_offset + static_cast<uint32_t>(a - b.dynamic_shared);
}

const unsigned char* shared_pointer(uint32_t address, size_t bytes) {
    const Block& b = g_block;
    if (address < b.shared_window_offset || address - b.shared_window_offset + bytes > b.launch->dynamic_shared_bytes)
        trap("a wgmma operand reaches outside the dynamic shared memory");
    return b.dynamic_shared + (address - b.shared_window_offset);
}

std::vector<WgmmaIssue>& wgmma_issues(int warp) { return g_block.wgmma_issues[static_cast<size_t>(warp)]; }
std::vector<WgmmaOp>& pending_wgmma() { return g_block.current->wgmma; }
long& next_wgmma_group() { return g_block.current->next_wgmma_group; }
bool& wgmma_fenced() { return g_block.current->wgmma_fenced; }
uint64_t draw_random() { return next_random(g_block.rng); }

unsigned char* warp_slots() { return g_block.warps[g_block.current->coords.warp].slots; }

// A copy lands at some time between its issue and the wait that covers it: here, at one of the
// two ends, drawn per copy, so that both a read before the wait (stale data) and an overwrite of
// a buffer other threads still read (data landing early) show.
void cp_async_issue(void* dst, const void* src, size_t bytes, bool valid) {
    if (reinterpret_cast<uintptr_t>(dst) % bytes != 0 || reinterpret_cast<uintptr_t>(src) % bytes != 0)
        trap("cp.async with an address not aligned to its copy size");
    if (!is_shared(dst, bytes)) trap("cp.async destination outside shared memory");
    racecheck::copy_issued(dst, bytes);
    Copy copy{dst, src, bytes, valid, -1, false};
    if (next_random(g_block.rng) & 1) {
        land(copy);
        copy.landed = true;
    }
    g_block.current->copies.push_back(copy);
}

void cp_async_commit() {
    Fiber& f = *g_block.current;
    for (Copy& c : f.copies)
        if (c.group < 0) c.group = f.next_group;
    f.next_group += 1;
}

void cp_async_wait(int groups_in_flight) {
    Fiber& f = *g_block.current;
    complete_copies(f, f.next_group - groups_in_flight);
}

void trap(const char* why) {
    Block& b = g_block;
    b.failure = why;
    yield_to_scheduler();
    abort();  // a trapped fiber is never resumed
}

// Blocks run in an order shuffled per launch: on a GPU they run in any order, or at once, so a
// block reading what another block of the same launch writes is a race this exposes.
std::string run_grid(const Launch& launch) {
    uint64_t rng = launch.schedule_seed;
    std::vector<uint3> blocks;
    blocks.reserve(static_cast<size_t>(launch.grid.x) * launch.grid.y * launch.grid.z);
    for (unsigned z = 0; z < launch.grid.z; ++z)
        for (unsigned y = 0; y < launch.grid.y; ++y)
            for (unsigned x = 0; x < launch.grid.x; ++x) blocks.push_back(uint3{x, y, z});
    for (size_t i = blocks.size(); i > 1; --i) std::swap(blocks[i - 1], blocks[next_random(rng) % i]);
    const bool checked = racecheck::enabled();
    for (const uint3& idx : blocks) {
        std::string failure = run_block(launch, idx, rng, checked);
        if (!failure.empty()) {
            g_block.current = nullptr;
            g_block.launch = nullptr;
            return std::string(launch.kernel->name) + ": " + failure;
        }
    }
    g_block.launch = nullptr;
    return "";
}

std::string where_now() {
    const Block& b = g_block;
    if (!b.launch) return "";
    return std::string(b.launch->kernel->name) + " " + coords_text(b, b.current);
}

namespace {
std::map<std::string, KernelEntry>& registry() {
    static std::map<std::string, KernelEntry> kernels;
    return kernels;
}
}  // namespace

void register_kernel(const KernelEntry& entry) { registry()[entry.name] = entry; }

void register_shared_section(unsigned char* start, unsigned char* stop) {
    if (start && stop > start) {
        shared_sections()[start] = stop;
        racecheck::static_section(start, stop);
    }
}

const KernelEntry* find_kernel(const char* name) {
    auto it = registry().find(name);
    return it == registry().end() ? nullptr : &it->second;
}

}  // namespace yoco_emu
