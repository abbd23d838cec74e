"""IP2P Save Checkpoint's file name: inside output/checkpoints, whatever a prompt asks for.

A server reachable by others must not write where a prompt says; ComfyUI's own save nodes
refuse a path out of their folder, and so does the pack's.
"""
import pytest
from conftest import IP2P_CKPT

from harness.host_graphs import failure

pytestmark = pytest.mark.host


def save_graph(prefix):
    return {"1": {"class_type": "IP2PCheckpointLoader", "inputs": {"ckpt_name": IP2P_CKPT}},
            "2": {"class_type": "IP2PSaveCheckpoint", "inputs": {"model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2],
                                                                "filename_prefix": prefix}}}


def test_save_prefix_with_a_sub_folder_saves_under_output_checkpoints(host):
    (saved,) = host.output_files(host.run(save_graph("sub/named")))
    try:
        assert saved == host.output_dir / "checkpoints" / "sub" / "named_00001.safetensors"
    finally:
        saved.unlink()


@pytest.mark.parametrize("prefix, says", [
    ("../x", "leads out of output/checkpoints"),
    ("sub/../../x", "leads out of output/checkpoints"),
    ("{outside}/x", "is an absolute path"),
    ("", "names no file"),
])
def test_save_prefix_outside_output_checkpoints_is_refused(host, prefix, says):
    outside = host.work_dir.parent / "escaped"
    prefix = prefix.format(outside=outside)
    before = sorted(p for p in host.work_dir.parent.rglob("*") if host.output_dir not in p.parents)
    message = failure(host, save_graph(prefix))
    assert f"filename_prefix '{prefix}' {says}" in message
    assert not outside.exists() and not (host.output_dir / "x_00001.safetensors").exists()
    assert sorted(p for p in host.work_dir.parent.rglob("*") if host.output_dir not in p.parents) == before
