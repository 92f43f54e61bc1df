"""Reads a safetensors file into f64 (or integer) NumPy arrays: an 8-byte little-endian header
length, a JSON header (dtype, shape, byte offsets per tensor), then the raw little-endian data.
Written here rather than taken from the safetensors package so that the witness needs NumPy only."""

import json
import struct

import numpy as np

_FLOAT_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2"}
_INT_DTYPES = {"U32": "<u4", "I32": "<i4", "I64": "<i8", "U8": "u1"}


def _decode(dtype, raw):
    if dtype in _FLOAT_DTYPES:
        return np.frombuffer(raw, dtype=_FLOAT_DTYPES[dtype]).astype(np.float64)
    if dtype == "BF16":
        # bf16 is the high half of an f32: widen the bits, then reinterpret.
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).astype(np.float64)
    if dtype in _INT_DTYPES:
        return np.frombuffer(raw, dtype=_INT_DTYPES[dtype]).astype(np.int64)
    raise ValueError(f"unsupported safetensors dtype {dtype}")


def load(path):
    """(tensors by name, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    metadata = header.pop("__metadata__", {})
    body = data[8 + header_len :]
    tensors = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        tensors[name] = _decode(info["dtype"], body[start:end]).reshape(info["shape"])
    return tensors, metadata
