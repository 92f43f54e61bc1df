#!/usr/bin/env bash
# The GPU check in one call: correctness against the CPU reference at GPU-filling shapes,
# compute-sanitizer over every kernel, the kernel benches beside the ceilings, and the peers.
#
#   scripts/gpu-check.sh prepare   here (no GPU): build the release binaries with the kernels
#                                  embedded (--features cuda) and stage what travels in stage/
#                                  (git-ignored): the yoco binary, the bench executables, the
#                                  peers scripts, the witness (scripts/witness), and the
#                                  flash-linear-attention wheels
#   scripts/gpu-check.sh run       on the GPU machine (CUDA, PyTorch, Triton; no Rust), from the
#                                  repository root with `carry: ["stage"]`: every step under its
#                                  own time limit, results to $OUT (at most 8 files come back)
#   scripts/gpu-check.sh --dry-run here: prepare, then run with the CPU standing in for the GPU,
#                                  so the script itself is tested in CI; then the staged binary's
#                                  `yoco check --device cuda` and every staged bench's CUDA path
#                                  (tiny shapes, criterion's test mode) on the CPU emulator
#                                  (emulator/); a bench that fails there fails the dry run
#
# The device tool call, once prepared, is scripts/gpu-run.sh's (this check, then the comparison,
# in one call). On its own:  run(command="bash scripts/gpu-check.sh run", carry=["stage"],
#                                timeout_s=420)
# The run ends by itself by DEADLINE seconds (default 360; 320 under scripts/gpu-run.sh), the most
# important steps first. With scripts/gpu-compare.sh's call right after it (300 s) and a machine
# start (1–2 min), both fit the 15 minutes of device time a task is lent.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
stage="$root/stage"

prepare() {
    bash scripts/setup-cuda.sh >/dev/null
    YOCO_DENY_SPILLS=1 cargo build --release --features cuda
    # The bench executables: cargo prints their paths; each is a standalone criterion binary.
    cargo bench --workspace --features cuda --no-run --message-format=json 2>/dev/null \
        | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "bench" in m["target"]["kind"]:
        print(m["target"]["name"], m["executable"])' > "$root/target/bench-executables.txt"
    # Assembled in target/, then packed: the binaries embed every kernel's cubin and PTX (about
    # 60 MiB together) and compress about fourfold, under the 64 MiB the GPU call carries.
    local build="$root/target/gpu-stage"
    rm -rf "$build" "$stage"
    mkdir -p "$build/benches" "$build/wheels" "$stage"
    cp target/release/yoco "$build/yoco"
    while read -r name path; do cp "$path" "$build/benches/$name"; done < "$root/target/bench-executables.txt"
    strip "$build/yoco" "$build"/benches/* 2>/dev/null || true
    cp scripts/peers.py scripts/side_by_side.py "$build/"
    cp -r scripts/witness "$build/witness"
    rm -rf "$build/witness/__pycache__"
    # flash-linear-attention for the gated-retention peer (pure Python; Triton and PyTorch are
    # there), with the two pure-Python packages its import needs besides them: einops (imported by
    # fla.ops for every op) and packaging (fla.utils), which the image may lack.
    pip download --quiet --no-deps -d "$build/wheels" fla-core==0.6.0 einops==0.8.2 packaging==26.4 \
        || echo "gpu-check: could not download the fla wheels; the gated-retention peer will be skipped"
    tar -c -C "$build" . | xz -T0 -6 > "$stage/payload.tar.xz"
    du -sh "$build" "$stage"
    local bytes
    bytes=$(du -sb "$stage" | cut -f1)
    if [ "$bytes" -gt $((40 << 20)) ]; then
        echo "gpu-check: stage/ is $bytes bytes, over the 40 MiB this script allows itself (64 MiB travel limit)" >&2
        exit 1
    fi
}

# Unpacks the payload where the run reads it (a fresh folder each time).
unpack() {
    [ -f "$stage/payload.tar.xz" ] || { echo "gpu-check: $stage/payload.tar.xz missing: run 'scripts/gpu-check.sh prepare' first" >&2; exit 1; }
    bin="${TMPDIR:-/tmp}/yoco-stage-$$"
    rm -rf "$bin"
    mkdir -p "$bin"
    tar -xJf "$stage/payload.tar.xz" -C "$bin"
}

# Runs one step under its own time limit, cut to what is left of the call's DEADLINE (seconds
# since the script started, less a reserve for packing the results), appending its output to a
# file; a failure or a timeout is recorded and the next step still runs. A step with under 10 s
# left is skipped with a line that says so.
step() {
    local limit=$1 file=$2
    shift 2
    local left=$(( ${DEADLINE:-360} - 15 - SECONDS ))
    if [ "$left" -lt 10 ]; then
        echo "== skipped (call deadline reached): $*" >> "$file"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $* (limit ${limit}s, at ${SECONDS}s)" >> "$file"
    local rc=0 began=$SECONDS
    timeout --kill-after=5 "$limit" "$@" >> "$file" 2>&1 || rc=$?
    echo "== exit $rc after $(( SECONDS - began ))s" >> "$file"
}

# Nsight Compute on one launch of each kernel whose target is most at risk, the causal prefill
# attention (D 128, 16K tokens; the default shape and the wgmma one) and the gated-retention
# prefill (parallel schedule: gates, states, then outputs), at the benches' shapes: so that a miss comes back with its reason (speed of light
# against the tensor and shared-memory pipes, occupancy, stall reasons) in the same call. The
# clocks are left as the card has them (--clock-control none; ncu would otherwise lock them to
# base while it profiles), and the bench is stopped once its launches are profiled (--kill).
profile() {
    local file=$1 ncu
    ncu=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1 || true)
    if [ -z "$ncu" ]; then
        echo "Nsight Compute (ncu) not found" > "$file"
        return
    fi
    local options=(--clock-control none --kill yes --section SpeedOfLight --section ComputeWorkloadAnalysis
        --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats --section WarpStateStats)
    YOCO_BENCH_DEVICES=cuda YOCO_BENCH_PACE=short step 40 "$file" "$ncu" "${options[@]}" -k regex:attention_prefill_d128 --launch-count 1 \
        "$bin/benches/gqa" --bench --noplot "prefill-cuda:0-bf16/B1-Nq16384-Nk16384-H24/8-D128-causal"
    # The same launch on the wgmma shape (its first GPU run: where its time goes, whatever it wins).
    YOCO_ATTN_PREFILL=wgmma YOCO_BENCH_DEVICES=cuda YOCO_BENCH_PACE=short step 40 "$file" "$ncu" "${options[@]}" -k regex:attention_prefill_wgmma_d128 \
        --launch-count 1 "$bin/benches/gqa" --bench --noplot "prefill-cuda:0-bf16/B1-Nq16384-Nk16384-H24/8-D128-causal"
    YOCO_BENCH_DEVICES=cuda YOCO_BENCH_PACE=short step 40 "$file" "$ncu" "${options[@]}" -k "regex:gret_(gates|states|outputs)" --launch-count 3 \
        "$bin/benches/gated_retention" --bench --noplot "gated_retention_prefill/cuda:0-bf16-chunk64-parallel/16384"
}

run() {
    local out="${OUT:-$root/target/gpu-check-out}" device="${1:-cuda}"
    SECONDS=0  # DEADLINE counts from here (the dry run builds first)
    mkdir -p "$out"
    rm -f "$out"/*.txt  # steps append: start from empty files
    unpack
    # shellcheck source=scripts/gpu/libraries.sh
    source "$root/scripts/gpu/libraries.sh"
    # compute-sanitizer ships with the toolkit, whose bin/ is not always on PATH.
    local sanitizer
    sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -n 1 || true)
    export CRITERION_HOME="${TMPDIR:-/tmp}/yoco-criterion"
    {
        date -u
        "$bin/yoco" --version
        nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || echo "no nvidia-smi"
        nvcc --version 2>&1 | tail -n 1 || true
        echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
        echo "compute-sanitizer: ${sanitizer:-not found}"
        python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1 || true
    } > "$out/machine.txt"

    # In the order of what matters most, so that a call cut short still brings back the first
    # things: correctness and memcheck, the ceilings, the benches of the kernels with targets
    # (attention prefill and decode, gated retention, RMSNorm, SwiGLU, cross-attention), the
    # peers they are set beside, the profiles of the two riskiest targets, the other benches,
    # then racecheck and initcheck (slowest; the
    # sanitizers are refused on some runtimes). On the GPU: GPU-filling shapes, CUDA-only benches
    # at the short pace. In the dry run: the small shapes and criterion's test mode (each bench once).
    local large=--large bench_args="--bench --noplot" witness_python="${YOCO_WITNESS_PYTHON:-python3}"
    if [ "$device" != cuda ]; then large=""; bench_args=""; fi
    step 150 "$out/check.txt" "$bin/yoco" check --device "$device" $large
    # The models end to end against the second implementation (scripts/witness: NumPy, f64, from
    # the spec): the CUDA models in bf16 and f16 (the dry run: the CPU's every backend and dtype).
    if "$witness_python" -c "import numpy" 2>/dev/null; then
        step 40 "$out/check.txt" "$witness_python" "$bin/witness/check.py" --yoco "$bin/yoco" --device "$device"
    else
        echo "== witness not run: $witness_python has no NumPy" >> "$out/check.txt"
    fi
    # memcheck right after the check (at its small shapes): if the check failed, it names the line.
    local sanitize=no
    if [ "$device" = cuda ] && [ -n "$sanitizer" ]; then
        sanitize=yes
        step 90 "$out/sanitizer.txt" "$sanitizer" --tool memcheck --error-exitcode 9 "$bin/yoco" check --device cuda
    else
        echo "compute-sanitizer not run (device $device, or not installed)" > "$out/sanitizer.txt"
    fi
    step 40 "$out/check.txt" "$bin/yoco" ceilings --device "$device"
    local targeted=(gqa gated_retention rmsnorm swiglu cross_attention) name
    for name in "${targeted[@]}"; do
        if [ -x "$bin/benches/$name" ]; then
            # shellcheck disable=SC2086
            YOCO_BENCH_DEVICES="$device" YOCO_BENCH_PACE=short step 60 "$out/benches.txt" "$bin/benches/$name" $bench_args
        fi
    done
    if [ "$device" = cuda ]; then
        # flash-linear-attention travels as wheels, installed beside the image's packages, not over
        # them: packaging only where the image has none (a newer copy ahead on PYTHONPATH would
        # shadow the one PyTorch was installed with).
        # Only wheels that are there (nullglob): one missing must not fail the others' install.
        local wheels
        shopt -s nullglob
        wheels=("$bin"/wheels/fla_core-*.whl "$bin"/wheels/einops-*.whl)
        python3 -c "import packaging" 2>/dev/null || wheels+=("$bin"/wheels/packaging-*.whl)
        shopt -u nullglob
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$bin/site" "${wheels[@]}" >> "$out/peers.txt" 2>&1 \
            || echo "fla wheels not installed" >> "$out/peers.txt"
        PYTHONPATH="$bin/site" PYTHONUNBUFFERED=1 step 120 "$out/peers.txt" python3 "$bin/peers.py"
    else
        echo "peers not run on device $device" > "$out/peers.txt"
    fi
    # The prefill attention's other program shapes (YOCO_ATTN_PREFILL: wide, 8 warps of 16 queries;
    # tall, 4 warps of 32; wgmma, 2 warpgroups of 64 on Hopper's wgmma) beside the default the benches above measured: each one's correctness
    # on every attention group at the check's small shapes (the sweep, windows, overflowing scores
    # through exact_row, rising scores through the rescale), then on the GPU the prefill benches
    # again (on the CPU the variable changes nothing), so that the default is chosen from the
    # figures of one call. Their own file: with it, eight files, the most that come back.
    : > "$out/variants.txt"
    local variant variants=(wide tall wgmma)
    for variant in "${variants[@]}"; do
        echo "== the $variant prefill kernel (YOCO_ATTN_PREFILL=$variant): check, then the prefill benches" >> "$out/variants.txt"
        YOCO_ATTN_PREFILL=$variant step 45 "$out/variants.txt" "$bin/yoco" check --device "$device" --only attention --only "attention "
        if [ "$device" = cuda ] && [ -x "$bin/benches/gqa" ]; then
            # shellcheck disable=SC2086
            YOCO_ATTN_PREFILL=$variant YOCO_BENCH_DEVICES="$device" YOCO_BENCH_PACE=short step 45 "$out/variants.txt" "$bin/benches/gqa" $bench_args prefill-
        fi
    done
    if [ "$device" = cuda ]; then
        profile "$out/profile.txt"
    else
        echo "Nsight Compute not run on device $device" > "$out/profile.txt"
    fi
    local bench
    for bench in "$bin"/benches/*; do
        if [[ " ${targeted[*]} " == *" $(basename "$bench") "* ]]; then continue; fi
        # shellcheck disable=SC2086
        YOCO_BENCH_DEVICES="$device" YOCO_BENCH_PACE=short step 60 "$out/benches.txt" "$bench" $bench_args
    done
    if [ "$sanitize" = yes ]; then
        # memcheck of the other prefill shapes too (the attention groups only), before the slower
        # sanitizers: scripts/fastest_prefill.py refuses a shape whose memcheck failed, and a shape
        # becomes the default only once it has been through it. The header names the shape.
        for variant in "${variants[@]}"; do
            echo "== memcheck with the $variant prefill kernel (YOCO_ATTN_PREFILL=$variant)" >> "$out/sanitizer.txt"
            YOCO_ATTN_PREFILL=$variant step 45 "$out/sanitizer.txt" "$sanitizer" --tool memcheck --error-exitcode 9 "$bin/yoco" check --device cuda --only attention --only "attention "
        done
        step 90 "$out/sanitizer.txt" "$sanitizer" --tool racecheck --error-exitcode 9 "$bin/yoco" check --device cuda
        # initcheck: a read of device memory nothing wrote, which is how a kernel that does not
        # write all of a Tensor::for_overwrite output (no memset before it) would show.
        step 90 "$out/sanitizer.txt" "$sanitizer" --tool initcheck --error-exitcode 9 "$bin/yoco" check --device cuda
    fi
    # One summary: every bench fraction line and every peer line, for the commit under reports/gpu/.
    grep -hE "^(check|cuda|cpu|peer/|witness|(ok|FAIL) .*relative L2|[0-9]+ passed|[a-z_]+/.*(GB/s|GFLOP/s|TFLOP/s)|== )" "$out"/{check,benches,peers,sanitizer,variants}.txt > "$out/summary.txt" || true
    # ncu says why it profiled nothing (counters restricted to admins, no kernel matched) in its
    # ==WARNING== and ==ERROR== lines.
    grep -hE "^ *(attention_prefill|gret_)|^== |^==(WARNING|ERROR)==|Duration|Throughput|Achieved Occupancy|Registers Per Thread" "$out/profile.txt" >> "$out/summary.txt" || true
    # Each peer beside yoco's bench on its shape (scripts/side_by_side.py), at the summary's end.
    if [ "$device" = cuda ]; then
        { echo; echo "== peers beside yoco (peer time / yoco time; above 1: yoco is faster)"; python3 "$bin/side_by_side.py" "$out/benches.txt" "$out/peers.txt"; } >> "$out/summary.txt" 2>&1 || true
    else
        # No peers here, but the labels they will stand beside must still be printed by yoco's
        # benches (a renamed bench would lose its peer in the GPU run's table, and in
        # scripts/cpu-peers.sh's).
        python3 "$bin/peers.py" --labels --device cpu > "$out/peer-labels.txt"
        python3 "$bin/side_by_side.py" --require "$out/peer-labels.txt" "$out/benches.txt"
    fi
    rm -rf "$bin"
    echo "gpu-check: results in $out after ${SECONDS}s"
}

case "${1:-}" in
    prepare) prepare ;;
    run) run cuda ;;
    --dry-run)
        prepare
        # The same steps with the CPU standing in for the GPU, benches filtered to a quick subset;
        # the witness with scripts/witness.sh's NumPy where this machine's python3 has none.
        if ! python3 -c "import numpy" 2>/dev/null && [ -x "$root/.venv-witness/bin/python" ]; then
            export YOCO_WITNESS_PYTHON="$root/.venv-witness/bin/python"
        fi
        OUT="$root/target/gpu-check-dry-run" run cpu
        # A step the deadline skipped would pass unnoticed: the dry run must run every one.
        if grep -h "^== skipped" "$root/target/gpu-check-dry-run"/*.txt; then
            echo "gpu-check: the dry run skipped steps (deadline)" >&2
            exit 1
        fi
        # The GPU run's first step with the binary that travels, its kernels run by the CPU
        # emulator (emulator/, README): every CUDA case at the small shapes.
        bash emulator/build.sh >/dev/null
        LD_LIBRARY_PATH="$root/target/emulator" target/release/yoco check --device cuda | tee "$root/target/gpu-check-dry-run/check-emulated.txt"
        # And its witness step, the CUDA models' bf16 and f16 cases, on the emulator.
        LD_LIBRARY_PATH="$root/target/emulator" "${YOCO_WITNESS_PYTHON:-python3}" scripts/witness/check.py --yoco target/release/yoco --device cuda \
            | tee "$root/target/gpu-check-dry-run/witness-emulated.txt"
        # The GPU run's bench step with the bench executables that travel, on the emulator: each
        # benchmark once (criterion's test mode), at the tiny shapes and ceilings the benches take
        # there (yoco_core::bench::full_or_emulated), so that no bench's CUDA path meets the GPU
        # untried. Every one must exit 0; all run first, then any failure fails the dry run.
        emulated="$root/target/gpu-check-dry-run/benches-emulated.txt" failed=""
        : > "$emulated"
        for bench in "$root"/target/gpu-stage/benches/*; do
            began=$SECONDS rc=0
            echo "== $(basename "$bench") --test (emulated CUDA)" >> "$emulated"
            YOCO_BENCH_DEVICES=cuda LD_LIBRARY_PATH="$root/target/emulator" timeout --kill-after=5 300 "$bench" --test >> "$emulated" 2>&1 || rc=$?
            echo "gpu-check: bench $(basename "$bench") on the emulated CUDA device: exit $rc after $(( SECONDS - began ))s"
            if [ "$rc" != 0 ]; then
                tail -n 20 "$emulated" >&2
                failed="$failed $(basename "$bench")"
            fi
        done
        if [ -n "$failed" ]; then
            echo "gpu-check: benches failed on the emulated CUDA device:$failed (output in $emulated)" >&2
            exit 1
        fi
        ls -la "$root/target/gpu-check-dry-run"
        ;;
    *) echo "usage: scripts/gpu-check.sh prepare | run | --dry-run" >&2; exit 2 ;;
esac
