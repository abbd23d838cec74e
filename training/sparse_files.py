"""Model files whose layers are zero take little disk: their zero chunks become holes.

The demo model's text encoder is zero but for a few layers (each zero layer passes its input on),
and so are the generated SDXL test models' CLIP-G middle layers: written out in fp32 they are
hundreds of megabytes of zeros per copy. Where the file system can punch holes (Linux: ext4, xfs,
btrfs, tmpfs), those chunks are given back; the files read exactly as before.
"""
from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 0x01, 0x02
HOLE_CHUNK = 1 << 20


def dig_holes(path: Path) -> int:
    """Gives the file system back the file's all-zero 1 MiB chunks (they still read as zeros);
    the bytes freed, 0 where the system or file system cannot punch holes."""
    try:
        fallocate = ctypes.CDLL(None, use_errno=True).fallocate
    except (AttributeError, OSError, TypeError):  # not Linux: the file stays as it is
        return 0
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
    zero, freed, offset = bytes(HOLE_CHUNK), 0, 0
    with open(path, "r+b") as f:
        while chunk := f.read(HOLE_CHUNK):
            if chunk == zero:
                if fallocate(f.fileno(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, HOLE_CHUNK):
                    log.info("%s: no holes on this file system (%s)", path.name, os.strerror(ctypes.get_errno()))
                    return freed
                freed += HOLE_CHUNK
            offset += len(chunk)
    return freed


def dig_holes_in(folder: Path) -> int:
    """`dig_holes` on every safetensors file under `folder`; the bytes freed."""
    return sum(dig_holes(path) for path in sorted(Path(folder).rglob("*.safetensors")))
