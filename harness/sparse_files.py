"""Generated models whose layers are zero take little disk: their zero chunks become holes.

The SDXL family's middle CLIP-G layers and the demo model's text-encoder layers are zero (each
passes its input on); written out, they would be gigabytes of zeros on every machine that runs
the tests.
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
    the bytes freed, 0 where the file system cannot punch holes."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
    zero, freed, offset = bytes(HOLE_CHUNK), 0, 0
    with open(path, "r+b") as f:
        while chunk := f.read(HOLE_CHUNK):
            if chunk == zero:
                if libc.fallocate(f.fileno(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, HOLE_CHUNK):
                    log.info("%s: no holes on this file system (%s)", path.name, os.strerror(ctypes.get_errno()))
                    return freed
                freed += HOLE_CHUNK
            offset += len(chunk)
    return freed
