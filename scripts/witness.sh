#!/usr/bin/env bash
# yoco's models against a second implementation: scripts/witness/check.py (NumPy, f64, written
# from the spec alone) on fresh random prompts and weights, every backend and dtype.
#
#   scripts/witness.sh [YOCO] [ARGS...]   YOCO: the binary to check (default: target/debug/yoco,
#                                         built if missing); ARGS go to check.py (--seed N, --only TEXT)
#
# NumPy comes from PyPI into .venv-witness/ (git-ignored; a few seconds on the first run) unless
# the python3 on the PATH already has it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
yoco="${1:-target/debug/yoco}"
shift || true
if [ "$yoco" = target/debug/yoco ]; then
    cargo build --quiet --bin yoco
fi
python=python3
if ! python3 -c "import numpy" 2> /dev/null; then
    venv="$root/.venv-witness"
    if ! "$venv/bin/python" -c "import numpy" 2> /dev/null; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet numpy==2.3.5
    fi
    python="$venv/bin/python"
fi
"$python" scripts/witness/check.py --yoco "$yoco" "$@"
