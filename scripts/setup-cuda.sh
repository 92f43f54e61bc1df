#!/usr/bin/env bash
# Installs what `--features cuda` builds need, on a machine with no CUDA toolkit and no GPU:
#   * nvcc 13.0 (and ptxas, the CUDA runtime headers, CCCL) from PyPI into a git-ignored venv;
#   * libclang, which bindgen loads to read kernels/include/*.h.
#
# Idempotent: a second run checks and returns in a second or two.
#
# Why the exact pin with all five extras: the GPU machines run a 13.0 driver. The `cuda-toolkit`
# meta-package with fewer extras lets pip resolve the pieces independently, and nvcc/nvvm then
# come from a newer 13.x whose PTX ISA the 13.0 driver refuses to JIT ("unsupported PTX version").
#
# Usage: scripts/setup-cuda.sh            (venv at .venv-cuda in the repository root)
#        YOCO_CUDA_VENV=/path scripts/setup-cuda.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${YOCO_CUDA_VENV:-$root/.venv-cuda}"
pin='cuda-toolkit[nvcc,nvvm,crt,cudart,cccl]==13.0.2'

find_nvcc() { ls "$venv"/lib/python3.*/site-packages/nvidia/cu13/bin/nvcc 2>/dev/null | head -n 1; }

# --- nvcc -----------------------------------------------------------------------------------
if [ -z "$(find_nvcc)" ]; then
  echo "setup-cuda: installing $pin into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$pin"
fi
nvcc="$(find_nvcc)"
if [ -z "$nvcc" ]; then
  echo "setup-cuda: nvcc not found under $venv after install" >&2
  exit 1
fi
# pip does not keep the executable bits of every tool in the wheel on all versions.
chmod +x "$(dirname "$nvcc")"/* 2>/dev/null || true
nvvm_bin="$(dirname "$nvcc")/../nvvm/bin"
[ -d "$nvvm_bin" ] && chmod +x "$nvvm_bin"/* 2>/dev/null || true

# --- libclang for bindgen -------------------------------------------------------------------
# libclang-cpp (which some images ship) is not what bindgen loads: it needs libclang.so itself.
have_libclang() { ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/x86_64-linux-gnu/libclang-[0-9]*.so* >/dev/null 2>&1; }
if ! have_libclang; then
  echo "setup-cuda: installing libclang-dev (apt-get)"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq libclang-dev >/dev/null
fi

echo "setup-cuda: nvcc at $nvcc"
"$nvcc" --version | tail -n 2
