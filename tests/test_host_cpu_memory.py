"""Freed memory kept while the pack samples on the CPU (nodes/cpu_memory.py), in real hosts.

A probe hook (tests/probe_pack, IP2PTestStepFaults) mallocs, writes and frees eight 16 MiB
blocks at every step, in the host's sampling thread, and records the page faults the writing
cost. With glibc's own behaviour each step maps at least half of them in anew (mmap'd blocks,
or thread heaps that are unmapped once empty), as happens to a UNet call's large activations:
so it goes for native sampling in a fresh host. While the pack's guider samples, the blocks
freed at one step are reused at the next ones. A host
started with a MALLOC_* variable keeps glibc's behaviour under the pack too. (What glibc is
left with afterwards is tested in tests/test_cpu_allocator.py.)
"""
import os

import pytest

from conftest import extra_host
from host_graphs import saved_latent
from ip2p_core.cpu_allocator import glibc, user_tuned_malloc
from test_host_compose import native_graph, pack_graph, patched_model, relative_diff, SAME_HOST_RTOL, STEPS

pytestmark = [pytest.mark.host,
              pytest.mark.skipif(glibc() is None, reason="the hosts' C library is not glibc"),
              pytest.mark.skipif(user_tuned_malloc(os.environ), reason="this environment tunes malloc itself")]
CHOICE_LOGGED = "IP2P: while sampling on the CPU, freed memory is kept for the next step"
BLOCK_PAGES = 16 * 2 ** 20 // 4096
PAGES = 8 * BLOCK_PAGES


def step_faults(host, graph, log_path):
    """Runs `graph` with the fault probe on its model; the faults of the probe's block per step."""
    latent = saved_latent(host, patched_model(graph, "IP2PTestStepFaults", path=str(log_path), blocks=8, megabytes=16))
    faults = [int(line) for line in log_path.read_text().split()]
    assert len(faults) == STEPS
    return latent, faults


def test_native_faults_every_step_and_the_pack_reuses_freed_memory(tmp_path_factory, tiny_ip2p, tiny_sd,
                                                                   patch_files, test_images, tmp_path):
    with extra_host(tmp_path_factory.mktemp("fresh"), [], tiny_ip2p, tiny_sd, patch_files, test_images) as fresh:
        _, native_faults = step_faults(fresh, native_graph(fresh), tmp_path / "native.txt")
        assert all(faults > PAGES // 4 for faults in native_faults), native_faults
        pack, pack_faults = step_faults(fresh, pack_graph(), tmp_path / "pack.txt")
        # After the first step at most one block is mapped anew (where the loop's own allocations
        # took the place of one), against at least two (in practice five) per native step.
        assert all(faults <= BLOCK_PAGES + 64 for faults in pack_faults[1:]), pack_faults
        assert sum(pack_faults[1:]) < sum(native_faults[1:]) // 4, (pack_faults, native_faults)
        # The edit itself is untouched (the probe hook returns the guided prediction unchanged).
        assert relative_diff(pack, saved_latent(fresh, pack_graph())) < SAME_HOST_RTOL
        assert fresh.log_path.read_text().count(CHOICE_LOGGED) == 1


def test_a_host_started_with_malloc_settings_keeps_them(tmp_path_factory, tiny_ip2p, tiny_sd, patch_files,
                                                      test_images, tmp_path):
    with extra_host(tmp_path_factory.mktemp("malloc"), [], tiny_ip2p, tiny_sd, patch_files, test_images,
                    env={"MALLOC_TRIM_THRESHOLD_": "131072"}) as tuned:
        _, faults = step_faults(tuned, pack_graph(), tmp_path / "pack.txt")
        assert all(step > PAGES // 4 for step in faults), faults
        assert CHOICE_LOGGED not in tuned.log_path.read_text()
