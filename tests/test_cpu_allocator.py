"""ip2p_core.cpu_allocator: freed memory reused inside, handed back on leaving, user's malloc respected.

Measured by the page faults of this process: a 64 MiB block is above glibc's largest
dynamic mmap threshold (32 MiB), so with glibc's defaults every malloc of it is a fresh
mapping, faulted in page by page as it is written; reused from the heap it faults nothing
(tests/probe_pack/malloc_blocks.py).
"""
import multiprocessing

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


def in_fresh_process(scenario):
    """`scenario()`, run in a new interpreter. What glibc does with a freed block depends on what
    the process freed before: after a suite that built models in-process, the heap holds holes
    a 64 MiB block fits in, and glibc reuses them whatever its settings."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(scenario)


def outside_inside_outside() -> tuple[int, bool, int, int]:
    before = faults_of_second_allocation()
    with reuse_freed_memory({}) as applied:
        inside = faults_of_second_allocation()
    return before, applied, inside, faults_of_second_allocation()


def afterwards_16_mib() -> int:
    with reuse_freed_memory({}):
        pass
    return faults_of_second_allocation(BLOCK // 4)


def rss_before_inside_after() -> tuple[float, float, float]:
    with reuse_freed_memory({}):
        started = memory_mb()["rss"]
        written_block_faults(1, 4 * BLOCK)  # 256 MiB, freed again
        inside = memory_mb()["rss"]
    return started, inside, memory_mb()["rss"]


def nested() -> tuple[int, int]:
    with reuse_freed_memory({}):
        with reuse_freed_memory({}):
            pass
        inside = faults_of_second_allocation()
    return inside, faults_of_second_allocation()


def with_users_settings() -> tuple[bool, int]:
    with reuse_freed_memory({"MALLOC_MMAP_THRESHOLD_": "131072"}) as applied:
        return applied, faults_of_second_allocation()


@needs_glibc
def test_inside_freed_memory_is_reused_and_outside_glibc_behaves_as_before():
    before, applied, inside, after = in_fresh_process(outside_inside_outside)
    assert before > PAGES // 2
    assert applied and inside < PAGES // 50
    assert after > PAGES // 2


@needs_glibc
def test_afterwards_glibc_keeps_blocks_up_to_32_mib_as_its_own_adjustment_does():
    # glibc stops adjusting its thresholds once mallopt was called; the values set back are
    # the ones its adjustment reaches, so a 16 MiB block is still reused from the heap.
    assert in_fresh_process(afterwards_16_mib) < PAGES // 4 // 50


@needs_glibc
def test_leaving_hands_the_kept_memory_back_to_the_system():
    started, inside, after = in_fresh_process(rss_before_inside_after)
    assert inside - started > 200  # kept for the next allocation
    assert after - started < 50


@needs_glibc
def test_nested_uses_keep_memory_until_the_outermost_ends():
    inside, after = in_fresh_process(nested)
    assert inside < PAGES // 50
    assert after > PAGES // 2


@needs_glibc
def test_with_the_users_malloc_settings_nothing_changes():
    applied, faults = in_fresh_process(with_users_settings)
    assert not applied
    assert faults > PAGES // 2


def test_without_glibc_it_does_nothing(monkeypatch):
    monkeypatch.setattr("ip2p_core.cpu_allocator.glibc", lambda: None)
    with reuse_freed_memory({}) as applied:
        assert not applied
