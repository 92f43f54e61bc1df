#!/usr/bin/env bash
# yoco's CPU kernels beside the peers a user would pick instead, on this machine, in one run:
# yoco's CPU benches (criterion, short pace), then PyTorch on the same shapes (scripts/peers.py
# --device cpu: SDPA's flash backend, flex_attention, rms_norm, silu*mul, linear layers, and
# flash-linear-attention's naive_chunk_simple_gla, its chunkwise gated retention in PyTorch), in
# rounds that alternate the two, then the two side by side (scripts/side_by_side.py), each side's
# fastest round per shape: on a shared VM whose timings swing by half from minute to minute, one
# round each had let a busy minute decide a ratio (PyTorch's own bf16 512 x 2048 x 768 product
# read 0.97 ms in one run and 2.17 in the next).
#
#   scripts/cpu-peers.sh [OUT]    results in OUT (default reports/cpu-peers/): machine.txt,
#                                 yoco.N.txt and peers.N.txt for each round N, and summary.md
#                                 (the tables); only those files
#   YOCO_PEERS_ROUNDS=R           rounds (default 2)
#   scripts/cpu-peers.sh --summary [OUT]
#                                 summary.md again from OUT's rounds, nothing run
#
# PyTorch comes from PyPI into .venv-peers/ (git-ignored; made on the first run). PyPI's Linux
# wheel of PyTorch pulls its CUDA libraries too (about 5 GB with them; a few minutes), because it
# loads them at import, though nothing here runs on a GPU. A round takes about 10 minutes on 2
# cores. It is not part of CI (the download); CI checks, through scripts/gpu-check.sh --dry-run,
# that yoco's benches still print every label the peers stand beside.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
summary_only=false
if [ "${1:-}" = --summary ]; then
    summary_only=true
    shift
fi
out="${1:-$root/reports/cpu-peers}"
venv="${YOCO_PEERS_VENV:-$root/.venv-peers}"
# Pinned so that a rerun measures the same peers; fla-core's naive form needs einops.
# NumPy for the model-level peer's file reading (scripts/witness/torch_peer.py).
packages=(torch==2.15.0 fla-core==0.6.0 einops==0.8.2 packaging numpy==2.3.5)

# summary.md from OUT's rounds: each side's fastest round per shape (scripts/side_by_side.py).
write_summary() {
    local pairs=() rounds=0
    while [ -f "$out/yoco.$((rounds + 1)).txt" ] && [ -f "$out/peers.$((rounds + 1)).txt" ]; do
        rounds=$((rounds + 1))
        pairs+=("$out/yoco.$rounds.txt" "$out/peers.$rounds.txt")
    done
    if [ "$rounds" -eq 0 ]; then
        echo "cpu-peers: no rounds (yoco.1.txt, peers.1.txt) in $out" >&2
        exit 1
    fi
    {
        echo "# yoco's CPU kernels beside PyTorch on the same shapes"
        echo
        echo "Machine and versions (machine.txt):"
        echo
        sed 's/^/    /' "$out/machine.txt"
        echo
        echo "$rounds rounds, each yoco then the peers; each side's fastest round per shape. yoco: \`cargo"
        echo "bench\` at the short pace (criterion medians; yoco.N.txt, with the ceilings each bench measured"
        echo "in its own minutes). Peers: \`scripts/peers.py --device cpu\` (the median of 7 repetitions;"
        echo "peers.N.txt). The last column is the peer's time over yoco's: above 1, yoco is faster. f32"
        echo "unless the label says bf16 (yoco's gated-retention CPU path takes f32)."
        echo
        python3 scripts/side_by_side.py "${pairs[@]}"
        echo
        for round in $(seq 1 "$rounds"); do
            grep -h "other work took" "$out/yoco.$round.txt" "$out/peers.$round.txt" | sed "s/^/- round $round: /"
        done
        if [ -f "$out/models.md" ]; then
            echo
            echo "## The whole models beside the same models in PyTorch (models.md)"
            echo
            echo "\`scripts/witness/torch_peer.py\`: tiny-yoco and tiny-transformer in PyTorch, eager, with the"
            echo "caches inference needs (fla's chunkwise gated retention and a recurrent step, one K̂/V̂"
            echo "cache and early exit; SDPA), on the weights \`yoco generate\` used, its logits checked equal"
            echo "to yoco's before either side is timed. The ratio columns are the peer's time over yoco's."
            echo
            cat "$out/models.md"
        fi
    } > "$out/summary.md"
}

if $summary_only; then
    write_summary
    echo "cpu-peers: summary in $out/summary.md"
    exit 0
fi

if ! "$venv/bin/python" -c "import torch, fla, einops, numpy" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet "${packages[@]}"
fi

mkdir -p "$out"
rounds="${YOCO_PEERS_ROUNDS:-2}"
rm -f "$out"/{machine.txt,yoco.txt,peers.txt,summary.md,models.md,models.stderr.txt} "$out"/yoco.*.txt "$out"/peers.*.txt "$out"/peers.stderr.*.txt
cargo build --release --quiet
{
    date -u
    target/release/yoco --version
    echo "commit $(git rev-parse --short=12 HEAD)$(git diff --quiet HEAD -- . ':!reports' || echo ' (with uncommitted changes)')"
    lscpu | grep -E "^(Model name|CPU\(s\)|Thread|Core|Socket|L3|Flags)" | sed -E 's/^(Flags:\s+).*/\1(avx512: '"$(grep -o 'avx512[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' ')"')/'
    free -g | head -n 2
    "$venv/bin/python" -W ignore -c 'import torch, fla; print("torch", torch.__version__, "threads", torch.get_num_threads(), "ISA", torch.backends.cpu.get_cpu_capability(), "fla", fla.__version__)'
} > "$out/machine.txt" 2>&1

# A bench's summary: its ceilings, its fraction lines and its share of other work (not criterion's
# per-benchmark report).
summary_lines() {
    grep -E '^(== |cpu: |other work took|[a-z_]+/[^ ]+( \([^)]*\))*: )' || true
}

# yoco, then the peers, round after round: each run quotes itself against ceilings it measures in
# the same minutes.
for round in $(seq 1 "$rounds"); do
    yoco="$out/yoco.$round.txt" peers="$out/peers.$round.txt"
    for crate in yoco-gqa yoco-swa yoco-cross-attention yoco-gated-retention yoco-rmsnorm yoco-swiglu yoco-rope; do
        YOCO_BENCH_DEVICES=cpu YOCO_BENCH_PACE=short cargo bench --quiet -p "$crate" 2>&1 | summary_lines >> "$yoco"
    done
    YOCO_BENCH_PACE=short cargo bench --quiet -p yoco-core --bench matmul 2>&1 | summary_lines >> "$yoco"
    PYTHONUNBUFFERED=1 "$venv/bin/python" scripts/peers.py --device cpu > "$peers" 2> "$out/peers.stderr.$round.txt" || true
    # The stderr of a run is kept only where a peer failed (its traceback).
    grep -q "skipped" "$peers" || rm -f "$out/peers.stderr.$round.txt"
done

# The whole models beside the same models in PyTorch (same weights, their logits checked equal
# first): prefill and decode, YOCO and the Transformer.
PYTHONUNBUFFERED=1 "$venv/bin/python" -W ignore scripts/witness/torch_peer.py --yoco target/release/yoco > "$out/models.md" 2> "$out/models.stderr.txt" || true
[ -s "$out/models.stderr.txt" ] || rm -f "$out/models.stderr.txt"

write_summary
echo "cpu-peers: results in $out"
