#!/usr/bin/env python3
"""The peers a user would pick instead of yoco's kernels, timed on the same shapes as yoco's
benches, in the same GPU call: PyTorch's rms_norm and silu*mul, scaled_dot_product_attention
(flash backend) for causal GQA attention and decode, flex_attention for sliding windows, and
flash-linear-attention's chunk_simple_gla for gated retention.

Timing: CUDA events around `reps` calls after a warm-up, median of `rounds` rounds. One line per
measurement, in the format of yoco's bench lines. Any peer that cannot run (a missing package, an
old PyTorch) prints a `skipped:` line with the reason; nothing here fails the whole script.

`--smoke` (no GPU needed): runs the same peer functions on the CPU with tiny shapes, one call each
timed by the wall clock, to catch API and shape mistakes before the one GPU run. A peer whose
backend does not exist on a CPU (Triton kernels, a CUDA-only SDPA backend) prints
`skipped (unsupported on CPU):`; any other failure prints `FAILED:` and the script exits 1. Put fla
and its imports (einops, packaging) on PYTHONPATH as the GPU run does, so that its import is checked.
"""
import argparse
import statistics
import sys
import time
import traceback

import torch
import torch.nn.functional as F

SMOKE = False  # set by --smoke
DEVICE = "cuda"


def size(gpu, smoke):
    """The GPU run's shape, or the tiny one in --smoke mode."""
    return smoke if SMOKE else gpu


def time_ms(fn, reps=20, rounds=7):
    if SMOKE:  # one warm-up (compiles), one timed call
        fn()
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(rounds):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / reps)
    return statistics.median(times)


def line(name, ms, *, bytes_moved=None, flops=None):
    parts = [f"peer/{name}: {ms:.3f} ms"]
    if bytes_moved is not None:
        parts.append(f"{bytes_moved / ms / 1e6:.1f} GB/s")
    if flops is not None:
        parts.append(f"{flops / ms / 1e9:.1f} TFLOP/s")
    print(", ".join(parts), flush=True)


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
        bug = SMOKE and not any(m in str(e) for m in CPU_UNSUPPORTED)
        status = "FAILED" if bug else "skipped (unsupported on CPU)" if SMOKE else "skipped"
        print(f"peer/{name}: {status}: {type(e).__name__}: {e}", flush=True)
        traceback.print_exc(file=sys.stderr)
        return not bug
    return True


def rmsnorm():
    for rows, width in size([(32768, 3072), (131072, 768)], [(256, 64), (512, 32)]):
        x = torch.randn(rows, width, device=DEVICE, dtype=torch.bfloat16)
        w = torch.randn(width, device=DEVICE, dtype=torch.bfloat16)
        ms = time_ms(lambda: F.rms_norm(x, (width,), w, 1e-5))
        line(f"rms_norm/torch-bf16/{rows}x{width}", ms, bytes_moved=2 * rows * width * 2)


def silu_mul():
    rows, f = size((32768, 8192), (256, 128))
    a = torch.randn(rows, f, device=DEVICE, dtype=torch.bfloat16)
    b = torch.randn(rows, f, device=DEVICE, dtype=torch.bfloat16)
    ms = time_ms(lambda: F.silu(a) * b)
    line(f"silu_mul/torch-bf16/{rows}x{f}", ms, bytes_moved=3 * rows * f * 2)


def sdpa_causal():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    b, h, hkv, n, d = size((1, 24, 8, 16384, 128), (1, 6, 2, 256, 64))
    q = torch.randn(b, h, n, d, device=DEVICE, dtype=torch.bfloat16)
    k = torch.randn(b, hkv, n, d, device=DEVICE, dtype=torch.bfloat16)
    v = torch.randn(b, hkv, n, d, device=DEVICE, dtype=torch.bfloat16)
    # The flash backend takes no GQA: K/V are expanded to H heads (as a user would), outside the timing.
    ke, ve = k.repeat_interleave(h // hkv, dim=1), v.repeat_interleave(h // hkv, dim=1)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        ms = time_ms(lambda: F.scaled_dot_product_attention(q, ke, ve, is_causal=True), reps=5)
    line(f"attention/sdpa-flash-bf16/causal/B{b}xH{h}xN{n}xD{d}", ms, flops=4 * b * h * n * n * d / 2)


def sdpa_decode():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    b, h, hkv, n, d = size((1, 24, 8, 131072, 128), (1, 6, 2, 512, 64))
    q = torch.randn(b, h, 1, d, device=DEVICE, dtype=torch.bfloat16)
    k = torch.randn(b, hkv, n, d, device=DEVICE, dtype=torch.bfloat16)
    v = torch.randn(b, hkv, n, d, device=DEVICE, dtype=torch.bfloat16)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
        ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))
    line(f"decode/sdpa-bf16/B{b}xH{h}xHkv{hkv}xN{n}xD{d}", ms, bytes_moved=2 * b * hkv * n * d * 2)


def flex_sliding_window():
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    b, h, n, d, w = size((1, 24, 16384, 128, 1024), (1, 4, 512, 64, 128))
    q, k, v = (torch.randn(b, h, n, d, device=DEVICE, dtype=torch.bfloat16) for _ in range(3))

    def window(b_, h_, qi, kj):
        return (kj <= qi) & (qi - kj < w)

    mask = create_block_mask(window, b, h, n, n, device=DEVICE)
    attn = torch.compile(flex_attention)
    ms = time_ms(lambda: attn(q, k, v, block_mask=mask), reps=5)
    unmasked = sum(min(i + 1, w) for i in range(n))
    line(f"swa/flex-bf16/W{w}/B{b}xH{h}xN{n}xD{d}", ms, flops=4 * b * h * unmasked * d)


def chunk_simple_gla():
    from fla.ops.simple_gla import chunk_simple_gla as gla

    heads, d = size((8, 128), (2, 64))
    for n in size([2048, 4096, 8192, 16384, 32768], [256]):
        q, k, v = (torch.randn(1, n, heads, d, device=DEVICE, dtype=torch.bfloat16) for _ in range(3))
        g = F.logsigmoid(2 * torch.randn(1, n, heads, device=DEVICE, dtype=torch.float32)) / 16
        ms = time_ms(lambda: gla(q, k, v, g=g, scale=d ** -0.5, output_final_state=True), reps=5)
        c = 64
        flops = heads * (n // c) * (4 * c * c * d + 4 * c * d * d)
        line(f"gated_retention/fla-chunk_simple_gla-bf16/H{heads}xD{d}/N={n} ({n / ms * 1e3:.0f} tokens/s)", ms, flops=flops)


def main():
    global SMOKE, DEVICE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU, to check the code")
    SMOKE = parser.parse_args().smoke
    DEVICE = "cpu" if SMOKE else "cuda"
    where = "cpu (smoke: tiny shapes, wall clock, timings meaningless)" if SMOKE else torch.cuda.get_device_name()
    print(f"torch {torch.__version__}, {where}", flush=True)
    torch.manual_seed(0)
    ok = True
    # The peers with targets first (prefill attention vs SDPA, gated retention vs
    # chunk_simple_gla), then decode and the memory-bound ones, and flex_attention (the longest
    # compile) last: a step cut short by its time limit still brings back what matters most.
    for name, fn in [
        ("attention", sdpa_causal),
        ("gated_retention", chunk_simple_gla),
        ("decode", sdpa_decode),
        ("rms_norm", rmsnorm),
        ("silu_mul", silu_mul),
        ("swa", flex_sliding_window),
    ]:
        ok &= guarded(name, fn)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
