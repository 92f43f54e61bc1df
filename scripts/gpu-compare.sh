#!/usr/bin/env bash
# YOCO-3B against Transformer-3B on a GPU machine, in one call (the paper's comparison).
#
#   scripts/gpu-compare.sh prepare    here: the same build and staging as scripts/gpu-check.sh
#   scripts/gpu-compare.sh run        on the GPU machine, with `carry: ["stage"]`: one
#                                     `yoco compare` over LENGTHS (default 32K … 512K), shortest
#                                     first, with GENERATE tokens (default 1024), BUDGET (default
#                                     70GiB, under an H100's 80 GB) and throughput batches up to
#                                     MAX_BATCH (default 16: YOCO fits far more, but its prefill
#                                     at batch 64 × 128K would take minutes). It plans itself: a
#                                     length whose time, predicted from the lengths before it,
#                                     would end past DEADLINE seconds (default 300) is skipped and
#                                     the report says so. The report is rewritten after every
#                                     length and comes back as $OUT/report.tgz with the log, even
#                                     when the call is cut short.
#   scripts/gpu-compare.sh --dry-run  here: prepare, then the same steps on the CPU with the tiny
#                                     config and small lengths, then on CUDA with the CPU emulator
#                                     (emulator/) standing in for the GPU, at one short length
#
# The device tool call, once prepared, is scripts/gpu-run.sh's (the check, then this comparison
# with the prefill shape the check found fastest, in one call). On its own, right after
# scripts/gpu-check.sh's while the machine is warm:
#   run(command="bash scripts/gpu-compare.sh run", carry=["stage"], timeout_s=360)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
stage="$root/stage"

run() {
    local device=$1 config=$2 lengths=$3 generate=$4 budget=$5 deadline=$6 max_batch=$7 out="${OUT:-$root/target/gpu-compare-out}"
    mkdir -p "$out"
    [ -f "$stage/payload.tar.xz" ] || { echo "gpu-compare: $stage/payload.tar.xz missing: run 'scripts/gpu-compare.sh prepare' first" >&2; exit 1; }
    local bin="${TMPDIR:-/tmp}/yoco-compare-$$"
    rm -rf "$bin" && mkdir -p "$bin" && tar -xJf "$stage/payload.tar.xz" -C "$bin" ./yoco
    # The same library lookup as the check (cuBLAS 13 first).
    # shellcheck source=scripts/gpu/libraries.sh
    source "$root/scripts/gpu/libraries.sh"
    local log="$out/compare.log"
    {
        date -u
        "$bin/yoco" --version
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "no nvidia-smi"
        echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
        echo "gated-retention prefill schedule: ${YOCO_GRET_SCHEDULE:-parallel (the default; YOCO_GRET_SCHEDULE=sequential for the one-pass kernel)}"
        echo "attention prefill program shape: ${YOCO_ATTN_PREFILL:-default (YOCO_ATTN_PREFILL=wide, tall or wgmma for the others)}"
        echo "== comparison at $lengths, $generate generated tokens, budget $budget, batches up to $max_batch, deadline ${deadline}s"
    } > "$log"
    # The harness stops starting lengths 30 s before the deadline (writing the plots takes a few
    # seconds); the timeout is the backstop if a length outruns its prediction.
    local rc=0
    timeout --kill-after=10 "$deadline" "$bin/yoco" compare --device "$device" --config "$config" --lengths "$lengths" \
        --generate "$generate" --repetitions 1 --max-batch "$max_batch" --budget "$budget" --deadline $((deadline - 30)) \
        --out "$out/report" >> "$log" 2>&1 || rc=$?
    echo "== exit $rc after ${SECONDS}s" >> "$log"
    if [ -d "$out/report" ]; then
        tar czf "$out/report.tgz" -C "$out/report" .
        rm -rf "$out/report"
    fi
    rm -rf "$bin"
    echo "gpu-compare: results in $out"
}

# A dry run fails when its comparison did not exit 0 (the GPU run keeps whatever came back).
exited_cleanly() {
    grep -q "^== exit 0 " "$1/compare.log" || { cat "$1/compare.log"; echo "gpu-compare: the run in $1 failed" >&2; exit 1; }
}

case "${1:-}" in
    prepare) bash scripts/gpu-check.sh prepare ;;
    run) run cuda yoco-3b "${LENGTHS:-32768,65536,131072,262144,524288}" "${GENERATE:-1024}" "${BUDGET:-70GiB}" "${DEADLINE:-300}" "${MAX_BATCH:-16}" ;;
    --dry-run)
        bash scripts/gpu-check.sh prepare
        OUT="$root/target/gpu-compare-dry-run" run cpu tiny-yoco 1024,2048,4096 16 256MiB 120 4
        ls -la "$root/target/gpu-compare-dry-run"
        exited_cleanly "$root/target/gpu-compare-dry-run"
        # The CUDA path of the same call (calibration, the models, the device pool's memory, the
        # report naming the card), its kernels run by the CPU emulator (emulator/): one short length.
        bash emulator/build.sh >/dev/null
        LD_LIBRARY_PATH="$root/target/emulator${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" OUT="$root/target/gpu-compare-dry-run-emulated" \
            run cuda tiny-yoco 1024 4 256MiB 240 1
        exited_cleanly "$root/target/gpu-compare-dry-run-emulated"
        # The report says which of the CUDA kernels' alternatives ran.
        tar xzf "$root/target/gpu-compare-dry-run-emulated/report.tgz" -O ./summary.md | grep -E "ran its .*(schedule|program shape)" \
            | grep -c . | grep -qx 2 || { echo "gpu-compare: the emulated report does not name the gated-retention schedule and the prefill shape" >&2; exit 1; }
        ;;
    *) echo "usage: scripts/gpu-compare.sh prepare | run | --dry-run" >&2; exit 2 ;;
esac
