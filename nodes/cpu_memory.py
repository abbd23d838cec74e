"""Freed memory kept for the next UNet call while the IP2P guider samples on the CPU.

On the CPU every UNet call otherwise faults its whole working set in from the kernel again;
keeping it makes a step 5-10 % faster (ip2p_core/cpu_allocator.py, benchmarks/RESULTS.md). On
a GPU the activations live in torch's CUDA caching allocator and nothing is changed.
"""
import contextlib
import functools
import logging

from ..ip2p_core.cpu_allocator import reuse_freed_memory


@contextlib.contextmanager
def while_sampling(device):
    """Around a sampling loop on `device`: glibc keeps freed blocks until the loop ends."""
    if device.type != "cpu":
        yield
        return
    with reuse_freed_memory() as applied:
        if applied:
            _log_choice()
        yield


@functools.lru_cache(maxsize=None)
def _log_choice():
    logging.info("IP2P: while sampling on the CPU, freed memory is kept for the next step instead of being "
                 "returned to the system after every UNet call (glibc malloc), and handed back when sampling "
                 "ends. Set any MALLOC_* environment variable (e.g. MALLOC_TRIM_THRESHOLD_=131072) before "
                 "starting ComfyUI to keep glibc's own behaviour.")
