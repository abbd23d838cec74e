"""Page faults of writing freshly malloc'd blocks, the measure of whether glibc reused freed memory.

Shared by the unit tests of ip2p_core.cpu_allocator and the probe node that measures the same
inside a host's sampling thread. malloc itself, through ctypes: torch's CPU tensors come from it.
"""
import ctypes
import resource


def written_block_faults(blocks: int, size: int) -> int:
    """mallocs `blocks` blocks of `size` bytes, writes them all, frees them; the minor page faults
    of this process during the writing (pages the kernel had to map in)."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    taken = [libc.malloc(ctypes.c_size_t(size)) for _ in range(blocks)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for block in taken:
        ctypes.memset(block, 1, size)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    for block in taken:
        libc.free(ctypes.c_void_p(block))
    return faults
