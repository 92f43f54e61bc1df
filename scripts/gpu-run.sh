#!/usr/bin/env bash
# The whole GPU run in one device call: scripts/gpu-check.sh's check, then scripts/gpu-compare.sh's
# comparison with the prefill attention's program shape that the check found fastest
# (scripts/fastest_prefill.py). One call rather than two: no start between them, no warm window
# to catch, and the shape the comparison runs is measured minutes before, not chosen by hand.
#
#   scripts/gpu-run.sh             on the GPU machine, from the repository root, with
#                                  `carry: ["stage"]` (scripts/gpu-check.sh prepare made it): the
#                                  check with DEADLINE CHECK_DEADLINE (default 320 s), its files
#                                  packed into check.tgz the moment it ends (its summary.txt beside
#                                  it), then the comparison with YOCO_ATTN_PREFILL set to the shape
#                                  chosen and the rest of RUN_DEADLINE (default 560 s, from this
#                                  script's start, less 20 s for packing: a check that ends early
#                                  leaves the comparison more). Five files come back (of the eight a
#                                  call may return): run.log (the choice and why), summary.txt,
#                                  check.tgz, compare.log, report.tgz.
#   scripts/gpu-run.sh --dry-run   here: the choice's self-test, then the choice on the files of
#                                  scripts/gpu-check.sh's dry run (CPU benches: no CUDA prefill
#                                  lines, so the default must stay)
#
# The device tool call, once prepared (1–2 minutes of start, then under 10 minutes: about 12 of the
# 15 minutes of device time a task is lent):
#   run(command="bash scripts/gpu-run.sh", carry=["stage"], timeout_s=600)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# The shape for the comparison, from a check's benches.txt, variants.txt and sanitizer.txt: two
# lines, the shape and the reason; the default where the files say nothing better. Only the
# benches of the comparison's attention count: YOCO-3B's Transformer twin prefills causal
# attention with head dim 128 (its YOCO, gated retention and cross-attention decode: no prefill
# attention kernel). Errors go to stderr, not into the two lines.
fastest_prefill() {
    python3 scripts/fastest_prefill.py --match D128-causal "$1/benches.txt" "$1/variants.txt" "$1/sanitizer.txt"
}

# fastest_prefill, or the default where it fails.
choose() {
    fastest_prefill "$1" || printf 'default\nthe choice failed (its error is above): the default stays\n'
}

run() {
    local out="${OUT:-$root/target/gpu-run-out}"
    mkdir -p "$out"
    local log="$out/run.log" checked="$out/check"
    mkdir -p "$checked"  # packed below even if the check could not start
    SECONDS=0
    local run_deadline=${RUN_DEADLINE:-560}
    echo "gpu-run: $(date -u), check deadline ${CHECK_DEADLINE:-320}s, the whole run's ${run_deadline}s" > "$log"
    local rc=0 check_deadline=${CHECK_DEADLINE:-320}
    # The check ends by its deadline (each step is cut to it); the timeout is the backstop for
    # what runs outside its steps (the unpacking, nvidia-smi, the wheels' install).
    OUT="$checked" DEADLINE="$check_deadline" timeout --kill-after=10 $((check_deadline + 15)) bash scripts/gpu-check.sh run >> "$log" 2>&1 || rc=$?
    echo "== check: exit $rc after ${SECONDS}s" >> "$log"
    local choice shape
    choice=$(choose "$checked" 2>> "$log")
    shape=$(head -n 1 <<< "$choice")
    case "$shape" in default|wide|tall|wgmma) ;; *) shape=default ;; esac
    { echo "== prefill shape for the comparison: $shape"; tail -n +2 <<< "$choice"; } >> "$log"
    # Eight files are the most a call brings back, and the check alone writes eight.
    if [ -f "$checked/summary.txt" ]; then cp "$checked/summary.txt" "$out/summary.txt" || true; fi
    # Packed or dropped (summary.txt stays): loose, its eight files would crowd out the rest.
    if ! tar czf "$out/check.tgz" -C "$checked" .; then
        rm -f "$out/check.tgz"
        echo "== packing the check failed: only its summary.txt comes back" >> "$log"
    fi
    rm -rf "$checked"
    # The comparison's own deadline is what is left: gpu-compare.sh's timeout adds 10 s of grace
    # to it and packing its report a few more, within the 20 s kept back.
    local left=$(( run_deadline - 20 - SECONDS ))
    if [ "$left" -lt 60 ]; then
        echo "== comparison not run: ${left}s left of the run's deadline" >> "$log"
    else
        rc=0
        OUT="$out" YOCO_ATTN_PREFILL="$shape" DEADLINE="$left" bash scripts/gpu-compare.sh run >> "$log" 2>&1 || rc=$?
        echo "== comparison (deadline ${left}s): exit $rc after ${SECONDS}s" >> "$log"
    fi
    cat "$log"
}

case "${1:-run}" in
    run) run ;;
    --dry-run)
        python3 scripts/fastest_prefill.py --self-test
        dry="$root/target/gpu-check-dry-run"
        [ -f "$dry/benches-emulated.txt" ] || { echo "gpu-run: $dry/benches-emulated.txt missing: run 'scripts/gpu-check.sh --dry-run' first" >&2; exit 1; }
        # Without choose()'s fallback: a crash must fail the dry run, not read as the default.
        choice=$(fastest_prefill "$dry")
        echo "gpu-run: the choice on the CPU dry run's files: $choice"
        [ "$(head -n 1 <<< "$choice")" = default ] || { echo "gpu-run: chose a shape from CPU benches" >&2; exit 1; }
        # The parsing against what the scripts really print: the emulated CUDA benches' prefill
        # lines (five shapes), and the variants' sections with their checks passed.
        described=$(python3 scripts/fastest_prefill.py --describe "$dry/benches-emulated.txt" "$dry/variants.txt" "$dry/sanitizer.txt")
        echo "$described"
        grep -qx "5 CUDA prefill benches" <<< "$described" && grep -q "^wide: check passed" <<< "$described" \
            && grep -q "^tall: check passed" <<< "$described" && grep -q "^wgmma: check passed" <<< "$described" || { echo "gpu-run: the choice no longer reads the scripts' output" >&2; exit 1; }
        ;;
    *) echo "usage: scripts/gpu-run.sh [run] | --dry-run" >&2; exit 2 ;;
esac
