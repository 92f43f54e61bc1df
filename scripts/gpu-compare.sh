#!/usr/bin/env bash
# YOCO-3B against Transformer-3B on a GPU machine, in one call (the paper's comparison).
#
#   scripts/gpu-compare.sh prepare    here: the same build and staging as scripts/gpu-check.sh
#   scripts/gpu-compare.sh run        on the GPU machine, with `carry: ["stage"]`: a short timing
#                                     run at 8K tokens first (its per-phase times are in the log),
#                                     then the comparison at LENGTHS (default 32K, 64K, 128K)
#                                     with GENERATE tokens (default 1024) and BUDGET (default
#                                     70GiB), each under its own time limit; the report comes
#                                     back as $OUT/report.tgz with the log
#   scripts/gpu-compare.sh --dry-run  here: prepare, then the same steps on the CPU with the tiny
#                                     config and small lengths
#
# The device tool call, once prepared:
#   run(command="bash scripts/gpu-compare.sh run", carry=["stage"], timeout_s=560)
# Shorter: run(command="LENGTHS=32768,65536 GENERATE=256 bash scripts/gpu-compare.sh run", ...)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
stage="$root/stage"

run() {
    local device=$1 config=$2 lengths=$3 generate=$4 budget=$5 out="${OUT:-$root/target/gpu-compare-out}"
    mkdir -p "$out"
    [ -f "$stage/payload.tar.xz" ] || { echo "gpu-compare: $stage/payload.tar.xz missing: run 'scripts/gpu-compare.sh prepare' first" >&2; exit 1; }
    local bin="${TMPDIR:-/tmp}/yoco-compare-$$"
    rm -rf "$bin" && mkdir -p "$bin" && tar -xJf "$stage/payload.tar.xz" -C "$bin" ./yoco
    local log="$out/compare.log"
    {
        date -u
        "$bin/yoco" --version
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "no nvidia-smi"
    } > "$log"
    # A short run to time the phases before the long one (its report is kept in the log only).
    echo "== timing run" >> "$log"
    timeout --kill-after=10 120 "$bin/yoco" compare --device "$device" --config "$config" --lengths 8192 \
        --generate 64 --repetitions 1 --max-batch 1 --budget "$budget" --out "$out/timing" >> "$log" 2>&1 || echo "== timing run exit $?" >> "$log"
    [ -f "$out/timing/summary.md" ] && sed -n '/## Measured/,/^The paper/p' "$out/timing/summary.md" >> "$log"
    rm -rf "$out/timing"
    echo "== comparison at $lengths, $generate generated tokens, budget $budget" >> "$log"
    local rc=0
    timeout --kill-after=10 "${LIMIT:-420}" "$bin/yoco" compare --device "$device" --config "$config" --lengths "$lengths" \
        --generate "$generate" --repetitions 1 --max-batch 64 --budget "$budget" --out "$out/report" >> "$log" 2>&1 || rc=$?
    echo "== exit $rc" >> "$log"
    if [ -d "$out/report" ]; then
        tar czf "$out/report.tgz" -C "$out/report" .
        rm -rf "$out/report"
    fi
    echo "gpu-compare: results in $out"
}

case "${1:-}" in
    prepare) bash scripts/gpu-check.sh prepare ;;
    run) run cuda yoco-3b "${LENGTHS:-32768,65536,131072}" "${GENERATE:-1024}" "${BUDGET:-70GiB}" ;;
    --dry-run)
        bash scripts/gpu-check.sh prepare
        OUT="$root/target/gpu-compare-dry-run" run cpu tiny-yoco 1024,2048 16 256MiB
        ls -la "$root/target/gpu-compare-dry-run"
        ;;
    *) echo "usage: scripts/gpu-compare.sh prepare | run | --dry-run" >&2; exit 2 ;;
esac
