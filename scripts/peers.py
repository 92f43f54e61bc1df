#!/usr/bin/env python3
"""The peers a user would pick instead of yoco's kernels, timed on the same shapes as yoco's
benches: PyTorch's rms_norm, silu*mul, RoPE as users write it (Meta's LLaMA reference for interleaved
pairs, Hugging Face's rotate-half), linear layers and scaled_dot_product_attention (its flash
backend) for causal attention and decode, flex_attention for sliding windows, and
flash-linear-attention for gated retention (chunk_simple_gla, its Triton kernel, on a GPU; on a
CPU, where Triton has no backend, naive_chunk_simple_gla, its chunkwise form written in PyTorch).

  --device cuda   (the default; scripts/gpu-check.sh on the GPU machine) bf16 at the GPU benches'
                  shapes, CUDA events around `reps` calls after a warm-up, median of 7 rounds
  --device cpu    (scripts/cpu-peers.sh) f32 and bf16 at the CPU benches' shapes, the wall clock
                  around `reps` calls after a warm-up, median of 7 rounds, PyTorch on every core
  --smoke         the CPU with tiny shapes, one call each, to catch API and shape mistakes before
                  the one GPU run. A peer whose backend does not exist on a CPU (Triton kernels, a
                  CUDA-only SDPA backend) prints `skipped (unsupported on CPU):`; any other failure
                  prints `FAILED:` and the script exits 1. Put fla and its imports (einops,
                  packaging) on PYTHONPATH as the GPU run does, so that its import is checked.
  --labels        prints, without PyTorch, the yoco bench label each peer stands beside (one per
                  line), so that a dry run can check that yoco's benches still print them all

One line per measurement, in the format of yoco's bench lines, ending with the labels of the yoco
bench lines it stands beside: `peer/NAME: T ms, RATE [beside LABEL; LABEL]`. scripts/side_by_side.py
pairs them. Any peer that cannot run (a missing package, an old PyTorch) prints a `skipped:` line
with the reason; nothing here fails the whole script. Memory-bound peers rotate over enough operand
sets to cover 256 MiB, as yoco's benches do, so that each call reads from memory, not a cache.
"""
import argparse
import itertools
import os
import statistics
import sys
import time
import traceback

MODE = "cuda"  # "cuda", "cpu" or "smoke", set by main()


def device():
    return "cuda" if MODE == "cuda" else "cpu"


def yoco_device():
    """How yoco's bench labels name the device."""
    return "cuda:0" if MODE == "cuda" else "cpu"


def shapes(cuda, cpu, smoke):
    """This mode's shapes: the GPU benches', the CPU benches' or tiny ones."""
    return {"cuda": cuda, "cpu": cpu, "smoke": smoke}[MODE]


def dtypes():
    """The storage types yoco's benches measure on this device (bf16 only on the GPU)."""
    return ["bf16"] if MODE == "cuda" else ["f32", "bf16"] if MODE == "cpu" else ["f32"]


def torch_dtype(name):
    import torch

    return {"f32": torch.float32, "bf16": torch.bfloat16}[name]


def element_bytes(name):
    return {"f32": 4, "bf16": 2}[name]


def time_ms(fn, reps=20, rounds=7):
    """Median over `rounds` of the mean time of `reps` calls, in milliseconds."""
    import torch

    if MODE == "smoke":  # one warm-up (compiles), one timed call
        fn()
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3
    fn()
    times = []
    if MODE == "cuda":
        torch.cuda.synchronize()
        for _ in range(rounds):
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(reps):
                fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop) / reps)
    else:
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(reps):
                fn()
            times.append((time.perf_counter() - start) * 1e3 / reps)
    return statistics.median(times)


def rotating(make_set, set_bytes):
    """Operand sets covering 256 MiB (at most 16), and a function that returns the next one."""
    count = max(1, min(16, -(-(256 << 20) // set_bytes)))
    sets = itertools.cycle([make_set() for _ in range(count)])
    return lambda: next(sets)


def line(name, ms, *, beside, bytes_moved=None, flops=None):
    parts = [f"peer/{name}: {ms:.3f} ms"]
    if bytes_moved is not None:
        parts.append(f"{bytes_moved / ms / 1e6:.1f} GB/s")
    if flops is not None:
        unit, scale = ("TFLOP/s", 1e9) if MODE == "cuda" else ("GFLOP/s", 1e6)
        parts.append(f"{flops / ms / scale:.1f} {unit}")
    print(", ".join(parts) + f" [beside {'; '.join(beside)}]", flush=True)


# How PyTorch and Triton say that a kernel does not exist on a CPU: in --smoke mode such a failure is
# expected, any other is a bug in this script.
CPU_UNSUPPORTED = (
    "active drivers",  # Triton: no GPU driver, so no kernel launches (fla)
    "No available kernel",  # SDPA: none of the allowed backends supports these inputs on CPU
    "No viable backend",  # SDPA: none of the allowed backends is built for CPU
)


def guarded(name, fn):
    """Runs one peer; returns False where --smoke found a bug in it."""
    try:
        fn()
    except Exception as e:  # a peer that cannot run is reported, not fatal
        bug = MODE == "smoke" and not any(m in str(e) for m in CPU_UNSUPPORTED)
        status = "FAILED" if bug else "skipped (unsupported on CPU)" if MODE == "smoke" else "skipped"
        print(f"peer/{name}: {status}: {type(e).__name__}: {e}", flush=True)
        traceback.print_exc(file=sys.stderr)
        return not bug
    return True


# ---- the peers: each yields (shape, dtype) cases with the yoco labels they stand beside, so that
# --labels can list them without running anything ----------------------------------------------


def rmsnorm_cases():
    for rows, width in shapes([(32768, 3072), (131072, 768)], [(2048, 3072), (16384, 768)], [(256, 64)]):
        for dt in dtypes():
            yield (rows, width, dt), [f"rmsnorm/{yoco_device()}-{dt}/{rows}x{width}"]


def rmsnorm(case):
    import torch
    import torch.nn.functional as F

    rows, width, dt = case
    w = torch.randn(width, device=device(), dtype=torch_dtype(dt))
    x = rotating(lambda: torch.randn(rows, width, device=device(), dtype=torch_dtype(dt)), 2 * rows * width * element_bytes(dt))
    ms = time_ms(lambda: F.rms_norm(x(), (width,), w, 1e-5))
    return f"rms_norm/torch-{dt}/{rows}x{width}", ms, dict(bytes_moved=2 * rows * width * element_bytes(dt))


def silu_mul_cases():
    rows, f = shapes((32768, 8192), (2048, 8192), (256, 128))
    for dt in dtypes():
        yield (rows, f, dt), [f"silu_mul/{yoco_device()}-{dt}/{rows}x{f}"]


def silu_mul(case):
    import torch
    import torch.nn.functional as F

    rows, f, dt = case
    make = lambda: [torch.randn(rows, f, device=device(), dtype=torch_dtype(dt)) for _ in range(2)]  # noqa: E731
    ab = rotating(make, 3 * rows * f * element_bytes(dt))

    def call():
        a, b = ab()
        return F.silu(a) * b

    return f"silu_mul/torch-{dt}/{rows}x{f}", time_ms(call), dict(bytes_moved=3 * rows * f * element_bytes(dt))


def rope_cases():
    seq = shapes(32768, 4096, 16)
    for dt in dtypes():
        for variant in ("yoco", "llama"):
            yield (seq, dt, variant), [f"rope/{yoco_device()}-{dt}-{variant}/1x{seq}x24x128"]


def rope(case):
    """RoPE as users write it in PyTorch, on yoco's bench shape (YOCO-3B's 24 heads of 128, positions
    from 1000): interleaved pairs (YOCO's layout) as Meta's LLaMA reference rotates them, a complex
    product in f32 (`view_as_complex(x.float()) * freqs_cis`, back to x's dtype); rotate-half pairs as
    Hugging Face's `apply_rotary_pos_emb` does (`x * cos + rotate_half(x) * sin`, the tables in x's
    dtype). Their tables are made once, outside the timing, as a model makes them once a forward
    pass; yoco's computes its angles in every call."""
    import torch

    seq, dt, variant = case
    heads, d, offset, theta = 24, 128, 1000, 1e4
    dtype = torch_dtype(dt)
    # The angles as Meta's and Hugging Face's code takes them: an f32 position times an f32 frequency.
    exponents = torch.arange(d // 2).float() / (d // 2 - 1) if variant == "yoco" else torch.arange(0, d, 2).float() / d
    angles = torch.outer(torch.arange(offset, offset + seq).float(), 1.0 / theta**exponents).to(device())
    elements = seq * heads * d
    x = rotating(lambda: torch.randn(1, seq, heads, d, device=device(), dtype=dtype), 2 * elements * element_bytes(dt))
    if variant == "yoco":
        freqs_cis = torch.polar(torch.ones_like(angles), angles)[None, :, None, :]

        def call():
            xv = x()
            pairs = torch.view_as_complex(xv.float().reshape(*xv.shape[:-1], -1, 2))
            return torch.view_as_real(pairs * freqs_cis).flatten(3).type_as(xv)

    else:
        both = torch.cat((angles, angles), dim=-1)[None, :, None, :]
        cos, sin = both.cos().to(dtype), both.sin().to(dtype)

        def call():
            xv = x()
            return xv * cos + torch.cat((-xv[..., d // 2 :], xv[..., : d // 2]), dim=-1) * sin

    return f"rope/torch-{dt}-{variant}/1x{seq}x{heads}x{d}", time_ms(call), dict(bytes_moved=2 * elements * element_bytes(dt))


def ffn_cases():
    rows, d, f = shapes((8192, 3072, 8192), (512, 768, 2048), (64, 64, 128))
    for dt in dtypes():
        yield (rows, d, f, dt), [f"ffn/{yoco_device()}-{dt}/{rows}x{d}x{f}"]


def ffn(case):
    """The SwiGLU FFN as a user writes it in PyTorch: three linear layers and silu*mul."""
    import torch
    import torch.nn.functional as F

    rows, d, f, dt = case
    x = torch.randn(rows, d, device=device(), dtype=torch_dtype(dt))
    gate, up = (torch.randn(f, d, device=device(), dtype=torch_dtype(dt)) / d**0.5 for _ in range(2))
    down = torch.randn(d, f, device=device(), dtype=torch_dtype(dt)) / f**0.5
    ms = time_ms(lambda: F.linear(F.silu(F.linear(x, gate)) * F.linear(x, up), down), reps=5)
    return f"ffn/torch-{dt}/{rows}x{d}x{f}", ms, dict(flops=6 * rows * d * f)


def matmul_cases():
    # yoco's matmul bench is CPU-only (on a GPU the GEMM is cuBLAS, the ceiling itself).
    cases = shapes([], [(512, 2048, 768), (512, 768, 2048), (2048, 704, 256), (128, 2048, 768), (32, 2048, 768), (8, 2048, 768), (1, 8192, 3072)], [(8, 64, 32)])
    for m, n, k in cases:
        for dt in dtypes():
            yield (m, n, k, dt), [f"matmul_nt/yoco-{dt}/{m}x{n}x{k}"]


def matmul(case):
    """x Wᵀ for W stored [n, k], as yoco's matmul_nt: F.linear (oneDNN or MKL on a CPU)."""
    import torch
    import torch.nn.functional as F

    m, n, k, dt = case
    a = torch.randn(m, k, device=device(), dtype=torch_dtype(dt))
    make = lambda: torch.randn(n, k, device=device(), dtype=torch_dtype(dt))  # noqa: E731
    # One row is memory-bound: copies of the weights in turn, as yoco's bench reads them.
    b = rotating(make, n * k * element_bytes(dt)) if m == 1 else (lambda w: lambda: w)(make())
    return f"matmul_nt/torch-{dt}/{m}x{n}x{k}", time_ms(lambda: F.linear(a, b())), dict(flops=2 * m * n * k)


def attention_dtype():
    """yoco's attention and gated-retention benches measure bf16 on the GPU and f32 on the CPU."""
    return "bf16" if MODE == "cuda" else "f32"


def sdpa_causal_cases():
    """At every dtype of yoco's prefill bench: bf16 on the GPU; f32 and bf16 on the CPU, where
    yoco's bf16 prefill runs on the AMX tile unit if the CPU has one."""
    for dt in dtypes():
        for b, h, hkv, n, d, causal in shapes(
            [(1, 24, 8, 16384, 128, True), (2, 32, 8, 8192, 64, True), (1, 24, 8, 8192, 128, False)],
            [(1, 8, 8, 4096, 64, True), (1, 4, 4, 4096, 128, True)],
            [(1, 6, 2, 256, 64, True)],
        ):
            mask = "causal" if causal else "none"
            yield (b, h, hkv, n, d, causal, dt), [f"attention/prefill-{yoco_device()}-{dt}/B{b}-Nq{n}-Nk{n}-H{h}/{hkv}-D{d}-{mask}"]


def sdpa_causal(case):
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    b, h, hkv, n, d, causal, dt = case
    q = torch.randn(b, h, n, d, device=device(), dtype=torch_dtype(dt))
    k = torch.randn(b, hkv, n, d, device=device(), dtype=torch_dtype(dt))
    v = torch.randn(b, hkv, n, d, device=device(), dtype=torch_dtype(dt))
    # The flash backend takes no GQA: K/V are expanded to H heads (as a user would), outside the timing.
    ke, ve = k.repeat_interleave(h // hkv, dim=1), v.repeat_interleave(h // hkv, dim=1)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        ms = time_ms(lambda: F.scaled_dot_product_attention(q, ke, ve, is_causal=causal), reps=5 if MODE == "cuda" else 1)
    pairs = n * (n + 1) // 2 if causal else n * n
    mask = "causal" if causal else "full"
    return f"attention/sdpa-flash-{dt}/{mask}/B{b}xH{h}xN{n}xD{d}", ms, dict(flops=4 * b * h * pairs * d)


def sdpa_decode_cases():
    dt = attention_dtype()
    for b, h, hkv, n, d in shapes([(1, 24, 8, 131072, 128), (8, 24, 8, 32768, 128)], [(1, 24, 8, 32768, 128), (5, 4, 2, 16384, 64)], [(1, 6, 2, 512, 64)]):
        beside = [f"attention/decode-{yoco_device()}-{dt}/B{b}-Nq1-Nk{n}-H{h}/{hkv}-D{d}-causal"]
        # yoco's cross-attention decode bench: one sequence over YOCO-3B's 24/8 heads of 128.
        if (b, h, hkv, d) == (1, 24, 8, 128):
            beside.append(f"cross_attention/decode-{yoco_device()}-{dt}/N{n}-H{h}/{hkv}-D{d}")
        yield (b, h, hkv, n, d), beside


def sdpa_decode(case):
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    b, h, hkv, n, d = case
    dt = attention_dtype()
    q = torch.randn(b, h, 1, d, device=device(), dtype=torch_dtype(dt))
    k = torch.randn(b, hkv, n, d, device=device(), dtype=torch_dtype(dt))
    v = torch.randn(b, hkv, n, d, device=device(), dtype=torch_dtype(dt))
    backends = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH] if MODE == "cuda" else [SDPBackend.FLASH_ATTENTION, SDPBackend.MATH]
    with sdpa_kernel(backends):
        ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))
    return f"decode/sdpa-{dt}/B{b}xH{h}xHkv{hkv}xN{n}xD{d}", ms, dict(bytes_moved=2 * b * hkv * n * d * element_bytes(dt))


def flex_window_cases():
    dt = attention_dtype()
    for b, h, hkv, n, d, w in shapes(
        [(1, 24, 8, 8192, 128, 1024), (1, 24, 8, 16384, 128, 1024)],
        [(1, 4, 2, 8192, 64, 1024), (1, 4, 2, 16384, 64, 1024)],
        [(1, 4, 2, 512, 64, 128)],
    ):
        beside = [f"attention/prefill-{yoco_device()}-{dt}/B{b}-Nq{n}-Nk{n}-H{h}/{hkv}-D{d}-window={w}"]
        if MODE != "smoke":  # the SWA crate's bench measures the same shapes through its own API
            beside.append(f"swa/prefill-{yoco_device()}-{dt}/N{n}-H{h}/{hkv}-D{d}-W{w}")
        yield (b, h, hkv, n, d, w), beside


def flex_window(case):
    import torch
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    b, h, hkv, n, d, w = case
    dt = attention_dtype()
    q = torch.randn(b, h, n, d, device=device(), dtype=torch_dtype(dt))
    k, v = (torch.randn(b, hkv, n, d, device=device(), dtype=torch_dtype(dt)) for _ in range(2))

    def window(b_, h_, qi, kj):  # yoco's Mask::Window(w): the key itself and the w − 1 before it
        return (kj <= qi) & (qi - kj < w)

    mask = create_block_mask(window, None, None, n, n, device=device())
    attn = torch.compile(flex_attention)
    ms = time_ms(lambda: attn(q, k, v, block_mask=mask, enable_gqa=True), reps=5 if MODE == "cuda" else 1)
    unmasked = sum(min(i + 1, w) for i in range(n))
    return f"swa/flex-{dt}/W{w}/B{b}xH{h}/{hkv}xN{n}xD{d}", ms, dict(flops=4 * b * h * unmasked * d)


GRET_HEADS, GRET_DIM, GRET_CHUNK = 8, 128, 64  # yoco's gated-retention bench


def gated_retention_cases():
    """fla's Triton kernel on a GPU, its PyTorch chunkwise form on a CPU; --smoke tries both (the
    Triton one to check its import and its call up to the missing driver)."""
    heads, d = shapes((GRET_HEADS, GRET_DIM), (GRET_HEADS, GRET_DIM), (2, 64))
    implementations = shapes(["chunk_simple_gla"], ["naive_chunk_simple_gla"], ["chunk_simple_gla", "naive_chunk_simple_gla"])
    for n in shapes([2048, 4096, 8192, 16384, 32768], [4096, 16384], [256]):
        if MODE == "cuda":
            beside = [f"gated_retention/prefill/cuda:0-bf16-chunk{GRET_CHUNK}-{s}/H{heads}xD{d}/N={n}" for s in ("parallel", "sequential")]
        else:
            beside = [f"gated_retention/prefill/cpu-f32-chunk{GRET_CHUNK}/H{heads}xD{d}/N={n}"]
        for implementation in implementations:
            yield (heads, d, n, implementation), beside


def gated_retention(case):
    import torch
    import torch.nn.functional as F

    heads, d, n, implementation = case
    if implementation == "chunk_simple_gla":
        from fla.ops.simple_gla import chunk_simple_gla as gla
    else:
        from fla.ops.simple_gla.naive import naive_chunk_simple_gla as gla
    dt = attention_dtype()  # as yoco's gated-retention bench: bf16 on the GPU, f32 on the CPU
    q, k, v = (torch.randn(1, n, heads, d, device=device(), dtype=torch_dtype(dt)) for _ in range(3))
    g = F.logsigmoid(2 * torch.randn(1, n, heads, device=device(), dtype=torch.float32)) / 16
    ms = time_ms(lambda: gla(q, k, v, g=g, scale=d**-0.5, output_final_state=True), reps=5 if MODE == "cuda" else 1)
    c = GRET_CHUNK
    flops = heads * (n // c) * (4 * c * c * d + 4 * c * d * d)
    return f"gated_retention/fla-{implementation}-{dt}/H{heads}xD{d}/N={n} ({n / ms * 1e3:.0f} tokens/s)", ms, dict(flops=flops)


# The peers with targets first (prefill attention vs SDPA, gated retention vs chunk_simple_gla), then
# decode and the memory-bound ones, and flex_attention (the longest compile) last: a step cut short
# by its time limit still brings back what matters most.
PEERS = [
    ("attention", sdpa_causal_cases, sdpa_causal),
    ("gated_retention", gated_retention_cases, gated_retention),
    ("decode", sdpa_decode_cases, sdpa_decode),
    ("rms_norm", rmsnorm_cases, rmsnorm),
    ("silu_mul", silu_mul_cases, silu_mul),
    ("rope", rope_cases, rope),
    ("ffn", ffn_cases, ffn),
    ("matmul", matmul_cases, matmul),
    ("swa", flex_window_cases, flex_window),
]


class OtherWork:
    """The share of the CPUs that other processes and the hypervisor took while the peers ran
    (/proc/stat's busy and steal time less this process's own), as yoco's benches report it."""

    def __init__(self):
        self.start = self.sample()

    @staticmethod
    def sample():
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
        mine = sum(os.times()[:4]) * os.sysconf("SC_CLK_TCK")
        return sum(fields), busy, mine

    def share(self):
        (total0, busy0, mine0), (total1, busy1, mine1) = self.start, self.sample()
        return max(0.0, (busy1 - busy0) - (mine1 - mine0)) / max(1, total1 - total0)


def main():
    global MODE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU, to check the code")
    parser.add_argument("--labels", action="store_true", help="print the yoco bench labels the peers stand beside, and exit")
    args = parser.parse_args()
    MODE = "smoke" if args.smoke else args.device
    if args.labels:
        for _, cases, _ in PEERS:
            for _, beside in cases():
                print("\n".join(beside))
        return
    import torch

    where = torch.cuda.get_device_name() if MODE == "cuda" else f"cpu, {torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}"
    if MODE == "smoke":
        where += " (smoke: tiny shapes, wall clock, timings meaningless)"
    print(f"torch {torch.__version__}, {where}", flush=True)
    torch.manual_seed(0)
    other = OtherWork() if MODE == "cpu" else None
    ok = True
    for name, cases, run in PEERS:
        for case, beside in cases():
            ok &= guarded(name, lambda: emit(run, case, beside))
    if other is not None:
        share = other.share()
        flag = ": ⚠ over 10%: these rates read low" if share > 0.10 else ""
        print(f"other work took {100 * share:.1f}% of the CPUs while the peers ran (/proc/stat){flag}", flush=True)
    if not ok:
        sys.exit(1)


def emit(run, case, beside):
    name, ms, rates = run(case)
    line(name, ms, beside=beside, **rates)


if __name__ == "__main__":
    main()
