"""tools/batch_edit.py on a folder of three small images, one of them corrupt, with the tiny model."""
import json
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
    records = manifest(out)
    names = {r["input"]: r["outputs"] for r in records}
    assert sorted(p.name for p in out.iterdir()) == sorted([*names["a_small.png"], *names["c_other.png"],
                                                            "manifest.jsonl"])
    assert all(n.startswith(f"{stem}_edited_") for stem in ("a_small", "c_other") for n in names[f"{stem}.png"])
    log = caplog.text
    assert f"[1/3] a_small.png -> {names['a_small.png'][0]}" in log
    assert "[2/3] b_broken.png: FAILED" in log and "LoadImage" in log
    assert names["b_broken.png"] == [] and "LoadImage" in records[1]["error"]
    assert f"[3/3] c_other.png -> {names['c_other.png'][0]}" in log, "the batch goes on after a failure"
    assert records[0]["seed"] == [4] and records[0]["instruction"] == ["make it winter"]
    for name in (*names["a_small.png"], *names["c_other.png"]):
        image = np.asarray(Image.open(out / name))
        assert image.shape == (48, 64, 3) and image.std() > 1.0

    first = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix == ".png"}
    with pytest.raises(SystemExit, match="2 of the 3 image.* edited before .*pass --resume"):
        run(*common)
    assert run(*common, "--resume") == 1, "the broken image is tried again, and fails again"
    again = manifest(out)[len(records):]
    assert [r["input"] for r in again] == ["b_broken.png"], "the finished images are not redone"
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.suffix == ".png"} == first, "nothing overwritten"
    # Another seed is another edit: new names beside the earlier ones.
    assert run(*common[:-1], 5, "--resume") == 1
    assert len([p for p in out.iterdir() if p.suffix == ".png"]) == 4


def manifest(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_batch_starts_its_own_host_with_a_checkpoint_file_and_takes_ui_workflows(demo, photos, tmp_path):
    out = tmp_path / "edited"
    (photos / "b_broken.png").unlink()
    assert run("--workflow", REPO_ROOT / "workflows" / "basic_edit.json", "--input-dir", photos,
               "--output-dir", out, "--checkpoint", demo.model.checkpoint, "--steps", 2) == 0
    assert sorted(r["input"] for r in manifest(out)) == ["a_small.png", "c_other.png"]
    assert len([p for p in out.iterdir() if p.suffix == ".png"]) == 2


def test_usage_errors_stop_before_any_host_starts(tmp_path):
    with pytest.raises(SystemExit, match="no such folder"):
        run("--workflow", WORKFLOW, "--input-dir", tmp_path / "missing", "--output-dir", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no images"):
        run("--workflow", WORKFLOW, "--input-dir", tmp_path / "empty", "--output-dir", tmp_path / "out")
    (tmp_path / "empty" / "a.png").write_bytes(b"")
    folders = ("--workflow", WORKFLOW, "--input-dir", tmp_path / "empty", "--output-dir", tmp_path / "out")
    with pytest.raises(SystemExit, match="several servers take --ray"):
        run(*folders, "--url", "http://127.0.0.1:1", "--url", "http://127.0.0.1:2")
    with pytest.raises(SystemExit, match="--workers takes --ray"):
        run(*folders, "--workers", 2)
    with pytest.raises(SystemExit, match="--mask .*no such file"):
        run(*folders, "--mask", tmp_path / "missing.png")


def test_a_url_where_no_comfyui_answers_is_named(photos, tmp_path):
    with socket.socket() as unused:  # a port nothing listens on once this closes
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}"
    with pytest.raises(SystemExit, match=f"--url: no ComfyUI answers at {url} "):
        run("--workflow", WORKFLOW, "--input-dir", photos, "--output-dir", tmp_path / "out", "--url", url)
