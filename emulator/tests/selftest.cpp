// The emulator's own test, through the driver API as cudarc calls it: each mechanism gives the
// right answer, and each bug the emulator claims to catch is caught (a missing barrier, lanes of a
// warp at different operations, a deadlock, a write past an allocation, a read of cp.async data
// or wgmma accumulators before their wait, a misaligned swizzled tile, a warpgroup's warps
// disagreeing on a wgmma, a trap), and racecheck reports each kind of shared-memory hazard, those
// the results show and those they do not, and nothing in the correct kernels. Run by
// emulator/build.sh --test; exits non-zero on any failure.
#include <cuda.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

namespace {

struct SelftestParams {
    float* out;
    const float* in;
    int n;
    int mode;
};

int g_failures = 0;

extern "C" const char* yoco_emu_last_failure();  // driver.cpp

// Turns racecheck off (its hazards fail the launch, where these checks look for wrong results)
// or back on, for the launches that follow.
void set_racecheck(bool on) { setenv("YOCO_EMU_RACECHECK", on ? "1" : "0", 1); }

void expect(bool ok, const char* what) {
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) ++g_failures;
}

CUfunction function(const char* name) {
    static CUmodule module = [] {
        CUmodule m;
        static const char image[] = "the emulator does not read the image";
        cuModuleLoadData(&m, image);
        return m;
    }();
    CUfunction f = nullptr;
    if (cuModuleGetFunction(&f, module, name) != CUDA_SUCCESS) {
        fprintf(stderr, "selftest: no kernel %s\n", name);
        _exit(2);
    }
    return f;
}

struct Buffer {
    CUdeviceptr ptr = 0;
    size_t n;
    explicit Buffer(size_t n_) : n(n_) { cuMemAlloc(&ptr, n * sizeof(float)); }
    ~Buffer() { cuMemFree(ptr); }
    float* get() const { return reinterpret_cast<float*>(ptr); }
    void upload(const std::vector<float>& v) const { cuMemcpyHtoD(ptr, v.data(), v.size() * sizeof(float)); }
    std::vector<float> download() const {
        std::vector<float> v(n);
        cuMemcpyDtoH(v.data(), ptr, n * sizeof(float));
        return v;
    }
};

CUresult launch(const char* name, unsigned grid, unsigned block, unsigned shared, SelftestParams p) {
    void* args[] = {&p};
    return cuLaunchKernel(function(name), grid, 1, 1, block, 1, 1, shared, nullptr, args, nullptr);
}

std::vector<float> ramp(size_t n, float scale) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = scale * static_cast<float>((i * 7) % 13) - 3.0f * scale;
    return v;
}

// `kernel` (mode 1: with its barrier, mode 0: without) must give out[t] = in[(t + shift) % threads]
// in every one of 10 runs with the barrier, and not in every run without it.
void expect_barrier_needed(const char* kernel, int threads, int shift, const char* what) {
    Buffer in(threads), out(threads);
    const std::vector<float> x = ramp(threads, 1.0f);
    in.upload(x);
    auto right = [&](int mode) {
        if (launch(kernel, 1, threads, threads * 4, {out.get(), in.get(), threads, mode}) != CUDA_SUCCESS) return false;
        const std::vector<float> got = out.download();
        for (int t = 0; t < threads; ++t)
            if (!(got[t] == x[(t + shift) % threads])) return false;
        return true;
    };
    bool with_barrier = true, without_barrier = true;
    for (int run = 0; run < 10; ++run) {
        with_barrier = with_barrier && right(1);
        without_barrier = without_barrier && right(0);
    }
    expect(with_barrier, (std::string(what) + " with __syncthreads: right in every run").c_str());
    expect(!without_barrier, (std::string(what) + " without __syncthreads: caught").c_str());
}

// With racecheck on: `kernel` in mode `clean` runs, and in mode `racy` fails with a racecheck
// report that contains `kind`.
void expect_hazard(const char* kernel, unsigned threads, unsigned shared, int racy, int clean, const char* kind, const char* what) {
    Buffer in(threads), out(threads);
    in.upload(ramp(threads, 1.0f));
    const bool clean_runs = launch(kernel, 1, threads, shared, {out.get(), in.get(), static_cast<int>(threads), clean}) == CUDA_SUCCESS;
    const bool racy_fails = launch(kernel, 1, threads, shared, {out.get(), in.get(), static_cast<int>(threads), racy}) == CUDA_ERROR_LAUNCH_FAILED;
    const std::string said = yoco_emu_last_failure();
    const bool named = said.find("racecheck: ") != std::string::npos && said.find(kind) != std::string::npos;
    expect(clean_runs && racy_fails && named, (std::string("racecheck: ") + what).c_str());
}

// Runs `body` in a child process; its wait status.
int child_status(const std::function<void()>& body) {
    fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {
        body();
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

}  // namespace

int main() {
    cuInit(0);
    CUdevice dev;
    CUcontext ctx;
    cuDeviceGet(&dev, 0);
    cuDevicePrimaryCtxRetain(&ctx, dev);
    cuCtxSetCurrent(ctx);

    {  // shuffles and a block barrier
        const int n = 1000, threads = 256, blocks = (n + threads - 1) / threads;
        Buffer in(n), out(blocks);
        const std::vector<float> x = ramp(n, 0.5f);
        in.upload(x);
        const bool launched = launch("selftest_block_sum", blocks, threads, 0, {out.get(), in.get(), n, 0}) == CUDA_SUCCESS;
        const std::vector<float> got = out.download();
        bool ok = launched;
        for (int b = 0; b < blocks; ++b) {
            double want = 0;
            for (int i = b * threads; i < n && i < (b + 1) * threads; ++i) want += x[i];
            ok = ok && fabs(got[b] - want) <= 1e-4 * (1 + fabs(want));
        }
        expect(ok, "block_sum over shuffles and shared memory");
    }
    // The schedules alone, racecheck off: a missing __syncthreads shows under shuffled
    // schedules; a warp overwriting what another has yet to read shows when warps run at
    // different paces. With the barrier, every run is right.
    set_racecheck(false);
    expect_barrier_needed("selftest_neighbour", 64, 1, "neighbour exchange");
    expect_barrier_needed("selftest_overwrite", 128, 32, "a warp's overwrite of a slot other warps read");
    {  // static shared memory starts every block as NaN, not as the last block left it
        Buffer in(64), out(64);
        in.upload(ramp(64, 1.0f));
        launch("selftest_static_shared", 1, 64, 0, {out.get(), in.get(), 64, 1});
        const bool written = out.download()[5] == ramp(64, 1.0f)[5];
        launch("selftest_static_shared", 1, 64, 0, {out.get(), in.get(), 64, 0});
        expect(written && isnan(out.download()[5]), "static __shared__ memory no thread wrote: NaN, not the last block's");
    }
    {  // lanes at different warp-wide operations; a deadlock
        Buffer out(64);
        expect(launch("selftest_divergent", 1, 64, 0, {out.get(), nullptr, 64, 0}) == CUDA_ERROR_LAUNCH_FAILED,
               "lanes of one warp at a shuffle and at __syncwarp: refused");
        expect(launch("selftest_divergent", 1, 64, 0, {out.get(), nullptr, 64, 1}) == CUDA_ERROR_LAUNCH_FAILED,
               "half a warp at __syncthreads, half at a shuffle: deadlock reported");
    }
    {  // cp.async lands at its issue or at its wait: a read before the wait sees stale data in
       // some runs; a read after it, the data in every run
        Buffer in(4), out(4);
        in.upload({1.0f, 2.0f, 3.0f, 4.0f});
        bool stale_seen = false, waited_right = true;
        for (int run = 0; run < 10; ++run) {
            launch("selftest_cp_async", 1, 32, 16, {out.get(), in.get(), 4, 0});
            const std::vector<float> early = out.download();
            stale_seen = stale_seen || (isnan(early[0]) && isnan(early[3]));
            launch("selftest_cp_async", 1, 32, 16, {out.get(), in.get(), 4, 1});
            const std::vector<float> waited = out.download();
            waited_right = waited_right && waited[0] == 1.0f && waited[3] == 4.0f;
        }
        expect(stale_seen, "cp.async read before its wait: stale (poison) in some runs");
        expect(waited_right, "cp.async read after its wait: the copied data in every run");
    }
    set_racecheck(true);
    // racecheck: each kind of hazard fails the launch, whether or not the results show it.
    expect_hazard("selftest_neighbour", 64, 64 * 4, 0, 1, "hazard", "a read of another thread's write with no barrier between");
    expect_hazard("selftest_overwrite", 128, 128 * 4, 0, 1, "hazard", "a warp's overwrite of what other warps read, no barrier between");
    expect_hazard("selftest_hidden_race", 64, 16, 0, 1, "write-after-write", "every thread writing one flag (no result shows it)");
    expect_hazard("selftest_hidden_race", 64, 16, 2, 3, "one warp with no __syncwarp", "lanes reading a lane's write after a shuffle, not a __syncwarp");
    expect_hazard("selftest_cp_async", 32, 16, 0, 1, "a cp.async is still writing", "a read of cp.async data before its wait");
    expect_hazard("selftest_async_hazards", 32, 16, 0, 1, "a write to shared memory that a cp.async is still writing",
                  "a write over a cp.async destination before its wait");
    expect_hazard("selftest_async_hazards", 64, 512, 2, 3, "hazard", "an ldmatrix read of another warp's stores with no barrier between");
    {  // ldmatrix (plain and transposed) and mma.sync against a plain product
        Buffer in(256 + 128), out(128);
        std::vector<float> x = ramp(256 + 128, 0.25f);  // exact in bf16
        in.upload(x);
        const bool launched = launch("selftest_mma", 1, 32, 0, {out.get(), in.get(), 0, 0}) == CUDA_SUCCESS;
        const std::vector<float> got = out.download();
        bool ok = launched;
        for (int i = 0; i < 16; ++i)
            for (int j = 0; j < 8; ++j) {
                double want = 0;
                for (int k = 0; k < 16; ++k) want += static_cast<double>(x[i * 16 + k]) * x[256 + k * 8 + j];
                ok = ok && fabs(got[i * 8 + j] - want) <= 1e-5 * (1 + fabs(want));
            }
        expect(ok, "ldmatrix + ldmatrix.trans + mma.sync m16n8k16 = A·B");
    }
    {  // wgmma.mma_async: both operand forms against a plain product; read before its wait, stale
       // in some runs; tiles off the swizzle's 1024-byte boundary, wrong
        Buffer in(1024 + 2048), out(64 * 128);
        const std::vector<float> x = ramp(1024 + 2048, 0.25f);  // exact in bf16, sums exact in f32
        in.upload(x);
        const unsigned shared = 8192 + 8192 + 1024 + 128;  // 64 rows of 128 bytes each, aligned, then offset
        // mode 0/2/3: B given as [n][k]; mode 1: as [k][n], N = 128.
        const auto matches = [&](int mode) {
            const int n = mode == 1 ? 128 : 64;
            if (launch("selftest_wgmma", 1, 128, shared, {out.get(), in.get(), 0, mode}) != CUDA_SUCCESS) return false;
            const std::vector<float> got = out.download();
            for (int i = 0; i < 64; ++i)
                for (int j = 0; j < n; ++j) {
                    double want = 0;
                    for (int k = 0; k < 16; ++k) want += static_cast<double>(x[i * 16 + k]) * x[1024 + (mode == 1 ? k * 128 + j : j * 16 + k)];
                    if (got[i * n + j] != want) return false;
                }
            return true;
        };
        bool right = true, stale_seen = false, overwrite_seen = false, misaligned_caught = true;
        set_racecheck(false);  // mode 5's overwrite is a hazard: here its results are looked at
        for (int run = 0; run < 10; ++run) {
            right = right && matches(0) && matches(1);
            stale_seen = stale_seen || !matches(2);
            overwrite_seen = overwrite_seen || !matches(5);
            misaligned_caught = misaligned_caught && !matches(3);
        }
        expect(right, "wgmma.mma_async, A and B from swizzled shared memory (K-major), and A from registers with B MN-major = A·B");
        expect(stale_seen, "wgmma.mma_async accumulators read before the wait: stale in some runs");
        expect(overwrite_seen, "a wgmma.mma_async operand overwritten before the wait: wrong in some runs");
        expect(misaligned_caught, "wgmma operands swizzled from off a 1024-byte boundary: wrong in every run");
        set_racecheck(true);
        const bool racecheck_clean = matches(0) && matches(1);
        const bool overwrite_fails = launch("selftest_wgmma", 1, 128, shared, {out.get(), in.get(), 0, 5}) == CUDA_ERROR_LAUNCH_FAILED;
        // Caught as a write over an operand in flight, or, where a warp that has not yet issued
        // reads what another warp overwrote, as a read-after-write hazard.
        const char* said = yoco_emu_last_failure();
        expect(racecheck_clean && overwrite_fails && (strstr(said, "a wgmma.mma_async still reads") || strstr(said, "read-after-write hazard")),
               "racecheck: a wgmma.mma_async operand overwritten before the wait (and both operand forms clean)");
        const bool unfenced_fails = launch("selftest_wgmma", 1, 128, shared, {out.get(), in.get(), 0, 6}) == CUDA_ERROR_LAUNCH_FAILED;
        expect(unfenced_fails && strstr(yoco_emu_last_failure(), "no fence.proxy.async"),
               "racecheck: wgmma operands stored with no fence.proxy.async before the barrier");
        expect(matches(8), "racecheck: wgmma operands made visible by the issuing threads' fence after the barrier: clean");
        expect(launch("selftest_wgmma", 1, 128, shared, {out.get(), in.get(), 0, 4}) == CUDA_ERROR_LAUNCH_FAILED,
               "one warp of a warpgroup with another wgmma descriptor: the launch fails");
        expect(launch("selftest_wgmma", 1, 128, shared, {out.get(), in.get(), 0, 7}) == CUDA_ERROR_LAUNCH_FAILED &&
                   strstr(yoco_emu_last_failure(), "no wgmma.fence"),
               "a wgmma.mma_async with no wgmma.fence before it: the launch fails");
    }
    {  // the compiler keeps IEEE semantics: an f32 round trip of a double is not folded away
        Buffer in(2), out(64);
        in.upload({1.0f, 2.0f});
        launch("selftest_round_trip", 1, 32, 0, {out.get(), in.get(), 2, 0});
        const std::vector<float> got = out.download();
        bool ok = true;
        for (int i = 0; i < 2; ++i) {
            const double c = (i + 1) / 3.0;
            volatile float hi = static_cast<float>(c);  // volatile: this side is not vectorised either
            ok = ok && got[i] != 0.0f && got[i] == static_cast<float>(c - hi);
        }
        expect(ok, "a double minus its f32 rounding, two side by side: the remainder, not 0");
    }
    expect(launch("selftest_trap", 1, 32, 0, {nullptr, nullptr, 0, 0}) == CUDA_ERROR_LAUNCH_FAILED, "__trap(): the launch fails");
    const int out_of_bounds = child_status([] {
        Buffer out(100);
        launch("selftest_out_of_bounds", 1, 32, 0, {out.get(), nullptr, 128, 0});  // byte 512: the guard page
    });
    expect(WIFSIGNALED(out_of_bounds) && WTERMSIG(out_of_bounds) == SIGSEGV,
           "a write past the end of an allocation: faults, reported with the kernel and thread");
    const int misaligned = child_status([] {
        Buffer in(8), out(1);
        launch("selftest_misaligned", 1, 32, 0, {out.get(), in.get(), 8, 0});
    });
    expect(!(WIFEXITED(misaligned) && WEXITSTATUS(misaligned) == 0), "a 16-byte load off a 16-byte boundary: stops the process");
    {  // a launch the H100 refuses: more dynamic shared memory than the function allows
        Buffer out(1);
        expect(launch("selftest_neighbour", 1, 32, 64 * 1024, {out.get(), out.get(), 1, 1}) == CUDA_ERROR_INVALID_VALUE,
               "64 KB of dynamic shared memory without the opt-in attribute: refused");
    }

    printf("selftest: %d failure(s)\n", g_failures);
    return g_failures == 0 ? 0 : 1;
}
