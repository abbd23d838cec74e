"""ip2p_core.cpu_allocator: freed memory reused inside, handed back on leaving, user's malloc respected.

Measured by the page faults of this process: a 64 MiB block is above glibc's largest
dynamic mmap threshold (32 MiB), so with glibc's defaults every malloc of it is a fresh
mapping, faulted in page by page as it is written; reused from the heap it faults nothing
(tests/probe_pack/malloc_blocks.py).
"""
import pytest

from benchmarks.proc_memory import memory_mb
from ip2p_core.cpu_allocator import glibc, reuse_freed_memory, user_tuned_malloc
from probe_pack.malloc_blocks import written_block_faults

BLOCK = 64 * 2 ** 20
PAGES = BLOCK // 4096
needs_glibc = pytest.mark.skipif(glibc() is None, reason="the process's C library is not glibc")


def faults_of_second_allocation(size: int = BLOCK) -> int:
    """Page faults of writing a new block after one of the same size was written and freed."""
    written_block_faults(1, size)
    return written_block_faults(1, size)


@pytest.mark.parametrize("environ", [
    {"MALLOC_TRIM_THRESHOLD_": "131072"},
    {"MALLOC_ARENA_MAX": "2"},
    {"GLIBC_TUNABLES": "glibc.malloc.mmap_max=0"},
    {"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"},
    {"LD_PRELOAD": "libtcmalloc_minimal.so.4"},
])
def test_a_tuned_or_replaced_malloc_counts_as_the_users_choice(environ):
    assert user_tuned_malloc(environ)


@pytest.mark.parametrize("environ", [{}, {"GLIBC_TUNABLES": "glibc.rtld.optional_static_tls=2048"},
                                     {"LD_PRELOAD": "libfakeroot.so"}, {"OMP_NUM_THREADS": "1"}])
def test_other_settings_leave_malloc_to_the_pack(environ):
    assert not user_tuned_malloc(environ)


@needs_glibc
def test_inside_freed_memory_is_reused_and_outside_glibc_behaves_as_before():
    assert faults_of_second_allocation() > PAGES // 2
    with reuse_freed_memory({}) as applied:
        assert applied
        assert faults_of_second_allocation() < PAGES // 50
    assert faults_of_second_allocation() > PAGES // 2


@needs_glibc
def test_afterwards_glibc_keeps_blocks_up_to_32_mib_as_its_own_adjustment_does():
    # glibc stops adjusting its thresholds once mallopt was called; the values set back are
    # the ones its adjustment reaches, so a 16 MiB block is still reused from the heap.
    with reuse_freed_memory({}):
        pass
    assert faults_of_second_allocation(BLOCK // 4) < PAGES // 4 // 50


@needs_glibc
def test_leaving_hands_the_kept_memory_back_to_the_system():
    with reuse_freed_memory({}):
        started = memory_mb()["rss"]
        written_block_faults(1, 4 * BLOCK)  # 256 MiB, freed again
        assert memory_mb()["rss"] - started > 200  # kept for the next allocation
    assert memory_mb()["rss"] - started < 50


@needs_glibc
def test_nested_uses_keep_memory_until_the_outermost_ends():
    with reuse_freed_memory({}):
        with reuse_freed_memory({}):
            pass
        assert faults_of_second_allocation() < PAGES // 50
    assert faults_of_second_allocation() > PAGES // 2


@needs_glibc
def test_with_the_users_malloc_settings_nothing_changes():
    with reuse_freed_memory({"MALLOC_MMAP_THRESHOLD_": "131072"}) as applied:
        assert not applied
        assert faults_of_second_allocation() > PAGES // 2


def test_without_glibc_it_does_nothing(monkeypatch):
    monkeypatch.setattr("ip2p_core.cpu_allocator.glibc", lambda: None)
    with reuse_freed_memory({}) as applied:
        assert not applied
