"""The pack's attention kernel on the CPU (nodes/attention.py), in real hosts.

Started without an attention flag, both hosts run the UNet's attention on the CPU through
their sub-quadratic kernel; the pack's guider runs the host's PyTorch kernel instead, so its
UNet computes what it would in a host started with --use-pytorch-cross-attention. (That flag
also switches the host's CLIP and VAE kernels, so edits across the two hosts differ by
rounding, already in the encoded input image.) Started with a kernel
flag, the host's choice stands: there the pack and the native path run the same kernel and
give the same edit. The extra hosts run one at a time beside the session host.
"""
import pytest
from conftest import extra_host
from reference import relative_diff
from test_host_compose import SAME_HOST_RTOL, native_graph, pack_graph

from harness.host_graphs import saved_latent

pytestmark = pytest.mark.host
CHOICE_LOGGED = "IP2P: ComfyUI runs attention on the CPU with its sub-quadratic kernel"
FLAGS = {"pytorch": "--use-pytorch-cross-attention", "quad": "--use-quad-cross-attention"}


@pytest.fixture(scope="module", params=list(FLAGS))
def flag_host(request, tmp_path_factory, tiny_ip2p, demo, patch_files, test_images):
    with extra_host(tmp_path_factory.mktemp(request.param), [FLAGS[request.param]], tiny_ip2p, demo, patch_files,
                    test_images) as host:
        yield request.param, host


def test_without_a_flag_the_pack_picks_pytorch_attention_and_says_so_once(host):
    first = saved_latent(host, pack_graph())
    again = saved_latent(host, pack_graph(text_cfg=5.0))
    assert relative_diff(first, again) > 1e-3
    assert host.log_path.read_text().count(CHOICE_LOGGED) == 1


def test_with_a_kernel_flag_the_pack_runs_the_hosts_kernel_like_native(flag_host):
    _, flagged = flag_host
    pack = saved_latent(flagged, pack_graph())
    assert relative_diff(pack, saved_latent(flagged, native_graph(flagged))) < SAME_HOST_RTOL
    assert CHOICE_LOGGED not in flagged.log_path.read_text()

