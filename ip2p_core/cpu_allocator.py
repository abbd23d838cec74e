"""Keep freed memory in the process while a CPU sampling loop runs (glibc's malloc).

On the CPU, torch allocates every activation of a UNet call anew and frees it again. glibc
hands large freed blocks straight back to the kernel (mmap'd chunks, trimmed heap tops, whole
thread heaps), so the next call faults the same working set in again, page by page: about
500,000 page faults per SD1.5 step at 256 px in the thread a ComfyUI host samples on. Inside
`reuse_freed_memory` freed blocks stay in malloc's heaps for the next call (about 175,000
faults are left: blocks over a thread heap's 64 MiB, which glibc always maps anew) and a step
takes 5-10 % less (benchmarks/RESULTS.md). On leaving, glibc's settings are put back and
`malloc_trim` hands free memory back to the system, but for the top of a thread's heap (under
64 MiB), which glibc's own trim threshold keeps as well.

A user who tuned malloc (any MALLOC_* variable, glibc.malloc tunables) or replaced it
(LD_PRELOAD of jemalloc, tcmalloc, mimalloc) keeps their choice: nothing is changed then.
"""
import contextlib
import ctypes
import functools
import os
import threading
from typing import Iterator, Mapping, Optional

# mallopt(3) parameter numbers.
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
# Afterwards: glibc's defaults as mallopt(3) documents them, but for the two thresholds glibc
# adjusts by itself until anything calls mallopt: there, the values its adjustment reaches
# once a 32 MiB block was freed (as torch workloads free), not the static 128 KiB ones.
SET_BACK = {M_MMAP_MAX: 65536, M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 64 << 20,
            M_TOP_PAD: 128 * 1024}
# While sampling: no block is mmap'd (below a thread heap's 64 MiB size), a heap top of up to
# 1 GiB is kept, and the 64 MiB pad stops glibc from unmapping a thread's emptied heap.
KEEP_FREED = {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: 1 << 30, M_TOP_PAD: 64 << 20}

_lock = threading.Lock()
_depth = 0


def user_tuned_malloc(environ: Mapping[str, str]) -> bool:
    """Whether the environment tuned glibc's malloc or preloaded another allocator."""
    return (any(name.startswith("MALLOC_") for name in environ)
            or "glibc.malloc." in environ.get("GLIBC_TUNABLES", "")
            or "malloc" in environ.get("LD_PRELOAD", ""))


@functools.lru_cache(maxsize=None)
def glibc() -> Optional[ctypes.CDLL]:
    """The process's C library if it is glibc (which has mallopt and malloc_trim), else None."""
    try:
        libc = ctypes.CDLL(None)
    except (OSError, TypeError):  # Windows: no process-wide handle
        return None
    if all(hasattr(libc, name) for name in ("gnu_get_libc_version", "mallopt", "malloc_trim")):
        return libc
    return None


@contextlib.contextmanager
def reuse_freed_memory(environ: Mapping[str, str] = os.environ) -> Iterator[bool]:
    """Within: freed blocks are reused rather than returned to the kernel. Yields whether it
    applies (glibc, malloc untuned by the user). Nested uses restore once, at the outermost."""
    global _depth
    libc = glibc()
    if libc is None or user_tuned_malloc(environ):
        yield False
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            _set(libc, KEEP_FREED)
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _set(libc, SET_BACK)
                libc.malloc_trim(0)


def _set(libc: ctypes.CDLL, parameters: Mapping[int, int]) -> None:
    for parameter, value in parameters.items():
        libc.mallopt(parameter, value)
