"""Writes the compact form `ip2p_core.formats.compact_weights` reads: which weights are stored, which
quantised to int8 rows, which only described (fills and hashed values any machine recomputes)."""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ip2p_core.formats.compact_weights import DTYPES, MANIFEST_KEY, Manifest


@dataclass(frozen=True)
class Compact:
    """What goes into the file: the stored tensors and, per expanded key, how to make it."""

    tensors: dict[str, Tensor]
    manifest: Manifest


def zeros(shape: Iterable[int], dtype: torch.dtype) -> dict[str, Any]:
    return {"form": "fill", "shape": list(shape), "dtype": _dtype_name(dtype), "value": 0.0}


def ones(shape: Iterable[int], dtype: torch.dtype) -> dict[str, Any]:
    return {"form": "fill", "shape": list(shape), "dtype": _dtype_name(dtype), "value": 1.0}


def hashed(shape: Iterable[int], dtype: torch.dtype, salt: int, std: float) -> dict[str, Any]:
    """Uniform values of standard deviation `std` from an integer hash of (salt, index)."""
    return {"form": "hashed", "shape": list(shape), "dtype": _dtype_name(dtype), "salt": salt, "std": std}


def compact(state: Mapping[str, Tensor], generated: Mapping[str, dict[str, Any]], quantized: set[str]) -> Compact:
    """The stored form of `state`: keys in `generated` are described, not stored; those in
    `quantized` become int8 rows (their expanded values are then what the model is); the rest
    are kept as they are."""
    tensors: dict[str, Tensor] = {}
    manifest: Manifest = {}
    for key, value in state.items():
        if key in generated:
            manifest[key] = dict(generated[key])
        elif key in quantized:
            q, scale = quantize_rows(value)
            tensors[f"{key}.q"], tensors[f"{key}.scale"] = q, scale
            manifest[key] = {"form": "int8", "dtype": "float32"}
        else:
            tensors[key] = value.contiguous()
            manifest[key] = {"form": "stored"}
    return Compact(tensors, manifest)


def quantize_rows(weight: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric int8 per output row (dim 0) and the fp32 scale of each row."""
    rows = weight.detach().float().reshape(weight.shape[0], -1)
    scale = rows.abs().amax(dim=1).clamp_min(1e-12) / 127.0
    q = torch.round(rows / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q.reshape(weight.shape), scale


def manifest_metadata(manifest: Manifest) -> dict[str, str]:
    return {MANIFEST_KEY: json.dumps(manifest, sort_keys=True)}


def _dtype_name(dtype: torch.dtype) -> str:
    return next(name for name, value in DTYPES.items() if value == dtype)
