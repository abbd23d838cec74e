"""tools/batch_edit.py on a folder of three small images, one of them corrupt, with the tiny model."""
import logging
import shutil
import socket

import numpy as np
import pytest
from conftest import IP2P_CKPT, OTHER_IMAGE, SMALL_IMAGE
from PIL import Image

from tools import batch_edit
from tools.comfy_host import REPO_ROOT

pytestmark = pytest.mark.host
WORKFLOW = REPO_ROOT / "workflows" / "basic_edit.api.json"


@pytest.fixture
def photos(tmp_path, test_images):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(test_images[SMALL_IMAGE], folder / "a_small.png")
    shutil.copy(test_images[OTHER_IMAGE], folder / "c_other.png")
    (folder / "b_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (folder / "notes.txt").write_text("not an image, skipped")
    return folder


def run(*args):
    return batch_edit.main([str(a) for a in args])


def test_batch_against_a_running_host_reports_the_broken_image_and_overwrites_nothing(host, photos, tmp_path,
                                                                                       caplog):
    out = tmp_path / "edited"
    common = ("--workflow", WORKFLOW, "--input-dir", photos, "--output-dir", out, "--url", host.url,
              "--checkpoint", IP2P_CKPT, "--instruction", "make it winter", "--steps", 2, "--seed", 4)
    with caplog.at_level(logging.INFO, logger="ip2p.batch"):
        assert run(*common) == 1, "an image failed: the exit code must say so"
    assert sorted(p.name for p in out.iterdir()) == ["a_small_edited.png", "c_other_edited.png"]
    log = caplog.text
    assert "[1/3] a_small.png -> a_small_edited.png" in log
    assert "[2/3] b_broken.png: FAILED" in log and "LoadImage" in log
    assert "[3/3] c_other.png -> c_other_edited.png" in log, "the batch goes on after a failure"
    for name in ("a_small_edited.png", "c_other_edited.png"):
        image = np.asarray(Image.open(out / name))
        assert image.shape == (48, 64, 3) and image.std() > 1.0

    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert run(*common) == 1
    names = sorted(p.name for p in out.iterdir())
    assert names == ["a_small_edited.png", "a_small_edited_1.png", "c_other_edited.png", "c_other_edited_1.png"]
    assert all((out / name).read_bytes() == data for name, data in first.items()), "an earlier result was overwritten"
    # Same seed, same settings: the second run made the same edit.
    assert np.array_equal(np.asarray(Image.open(out / "a_small_edited.png")),
                          np.asarray(Image.open(out / "a_small_edited_1.png")))


def test_batch_starts_its_own_host_with_a_checkpoint_file_and_takes_ui_workflows(demo, photos, tmp_path):
    out = tmp_path / "edited"
    (photos / "b_broken.png").unlink()
    assert run("--workflow", REPO_ROOT / "workflows" / "basic_edit.json", "--input-dir", photos,
               "--output-dir", out, "--checkpoint", demo.model.checkpoint, "--steps", 2) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_small_edited.png", "c_other_edited.png"]


def test_usage_errors_stop_before_any_host_starts(tmp_path):
    with pytest.raises(SystemExit, match="no such folder"):
        run("--workflow", WORKFLOW, "--input-dir", tmp_path / "missing", "--output-dir", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no images"):
        run("--workflow", WORKFLOW, "--input-dir", tmp_path / "empty", "--output-dir", tmp_path / "out")


def test_a_url_where_no_comfyui_answers_is_named(photos, tmp_path):
    with socket.socket() as unused:  # a port nothing listens on once this closes
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}"
    with pytest.raises(SystemExit, match=f"--url: no ComfyUI answers at {url} "):
        run("--workflow", WORKFLOW, "--input-dir", photos, "--output-dir", tmp_path / "out", "--url", url)
