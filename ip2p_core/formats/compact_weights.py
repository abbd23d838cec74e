"""Weights stored in a form that expands exactly: how a checkpoint ships in a fraction of its size.

The demo model's checkpoint is an ordinary SD1.5-layout file, but most of it needs no bytes:
its text encoder's transformer layers are zero (they pass their input on), its embeddings are
drawn by an integer hash any machine recomputes bit for bit, and its UNet's large matrices are
int8 with one scale per output row (the model *is* those values: it is measured after
quantisation). `expand` turns the stored form back into the full state dict; `digest` is what
the expanded weights are checked against, so a damaged or altered file is refused instead of
becoming a silently different model. Writing that form is the training package's
(`training/compact_packing.py`): the pack itself only reads it.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor

from ..errors import IP2PUserError

MANIFEST_KEY = "ip2p_compact_manifest"
_MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B1
_HASH_CHUNK = 1 << 20

Manifest = dict[str, dict[str, Any]]


def dequantize_rows(q: Tensor, scale: Tensor) -> Tensor:
    return (q.float().reshape(q.shape[0], -1) * scale.float()[:, None]).reshape(q.shape)


def expand(tensors: Mapping[str, Tensor], manifest: Manifest) -> dict[str, Tensor]:
    """The full state dict the stored form describes."""
    out: dict[str, Tensor] = {}
    for key, entry in manifest.items():
        form = entry.get("form")
        try:
            if form == "stored":
                out[key] = tensors[key]
            elif form == "int8":
                out[key] = dequantize_rows(tensors[f"{key}.q"], tensors[f"{key}.scale"])
            elif form == "fill":
                out[key] = torch.full(entry["shape"], float(entry["value"]), dtype=_dtype(entry["dtype"]))
            elif form == "hashed":
                out[key] = hashed_uniform(entry["shape"], entry["salt"], entry["std"]).to(_dtype(entry["dtype"]))
            else:
                raise IP2PUserError(f"unknown stored form {form!r} for {key}")
        except KeyError as exc:
            raise IP2PUserError(f"the stored weights lack {exc.args[0]} (needed for {key})") from None
    return out


def hashed_uniform(shape: Iterable[int], salt: int, std: float) -> Tensor:
    """Deterministic uniform(-a, a) values (float64) with standard deviation `std`, from a 32-bit
    integer hash of each element's index; computed without integer overflow, so every machine
    gets the same bits. In place, a million at a time: the demo's 38 M embedding values take
    about a second."""
    shape = list(shape)
    count = math.prod(shape)
    out = torch.empty(count, dtype=torch.float64)
    offset = (salt * _GOLDEN) & _MASK32
    bits, scratch = torch.empty(_HASH_CHUNK, dtype=torch.int64), torch.empty(_HASH_CHUNK, dtype=torch.int64)
    for start in range(0, count, _HASH_CHUNK):
        n = min(_HASH_CHUNK, count - start)
        torch.arange(start + offset, start + offset + n, out=bits[:n])
        _mix32_(bits[:n].bitwise_and_(_MASK32), scratch[:n])
        out[start:start + n].copy_(bits[:n]).add_(0.5).div_(2.0**32)
    return out.mul_(2.0).sub_(1.0).mul_(math.sqrt(3.0) * std).reshape(shape)


def _mix32_(x: Tensor, scratch: Tensor) -> Tensor:
    """Chris Wellons' lowbias32 integer hash, in place, on int64 values below 2**32."""
    for shift, constant in ((16, 0x7FEB352D), (15, 0x846CA68B)):
        x.bitwise_xor_(torch.bitwise_right_shift(x, shift, out=scratch))
        # (x * constant) mod 2**32 as two 16-bit halves of the constant, so int64 never overflows.
        high = torch.mul(x, constant >> 16, out=scratch).bitwise_and_(0xFFFF).bitwise_left_shift_(16)
        x.mul_(constant & 0xFFFF).add_(high).bitwise_and_(_MASK32)
    return x.bitwise_xor_(torch.bitwise_right_shift(x, 16, out=scratch))


def digest(state: Mapping[str, Tensor]) -> str:
    """sha256 over every key, dtype, shape and value, in key order."""
    h = hashlib.sha256()
    for key in sorted(state):
        value = state[key].detach().contiguous().cpu()
        h.update(f"{key}|{value.dtype}|{tuple(value.shape)}|".encode())
        h.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def manifest_from_metadata(metadata: Mapping[str, str] | None, name: str) -> Manifest:
    if not metadata or MANIFEST_KEY not in metadata:
        raise IP2PUserError(f"{name} is not a compact weight file of this pack (no {MANIFEST_KEY} in its header)")
    return json.loads(metadata[MANIFEST_KEY])


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _dtype(name: str) -> torch.dtype:
    return DTYPES[name]
