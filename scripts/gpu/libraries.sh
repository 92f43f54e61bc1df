# Sourced by the GPU scripts on the GPU machine: puts the libraries the yoco binary loads at run
# time on LD_LIBRARY_PATH.
#
# cudarc dlopens libcuda and libcublas at run time. It is built for CUDA 13 (cuda-13000) and
# tries "libcublas.so" before "libcublas.so.13", so a directory holding the CUDA 13 library (the
# toolkit's, or PyTorch's pip wheel: site-packages/nvidia/cu13/lib/libcublas.so.13) goes first;
# any other libcublas only when there is no 13. libcuda.so.1 normally resolves through the loader
# cache; the driver mount of some containers (/usr/local/nvidia/lib64) is added in case
# LD_LIBRARY_PATH does not name it. No CUDA compat/ or stubs/ directory is added: their libcuda
# does not drive this machine's GPU.
yoco_library_dirs=$(python3 - <<'PY' 2>/dev/null || true
import glob, importlib.util, os
found = []
for pattern in ["/usr/local/cuda*/lib64/libcublas.so*", "/usr/local/cuda*/targets/*/lib/libcublas.so*"]:
    found += glob.glob(pattern)
try:
    import nvidia  # namespace package of NVIDIA's pip wheels (nvidia/cu13/lib for CUDA 13)
    for base in nvidia.__path__:
        found += glob.glob(os.path.join(base, "*", "lib", "libcublas.so*"))
except Exception:
    pass
torch = importlib.util.find_spec("torch")  # wheels that bundle cuBLAS keep it in torch/lib
if torch is not None and torch.submodule_search_locations:
    for base in torch.submodule_search_locations:
        found += glob.glob(os.path.join(base, "lib", "libcublas.so*"))
cublas13 = sorted({os.path.dirname(p) for p in found if os.path.basename(p).startswith("libcublas.so.13")})
dirs = cublas13 or sorted({os.path.dirname(p) for p in found})
dirs += [d for d in ["/usr/local/nvidia/lib64"] if os.path.exists(os.path.join(d, "libcuda.so.1"))]
print(":".join(dirs))
PY
)
# Joined without empty entries: an empty one would put the working directory on the path.
export LD_LIBRARY_PATH="${yoco_library_dirs}${yoco_library_dirs:+${LD_LIBRARY_PATH:+:}}${LD_LIBRARY_PATH:-}"
