"""tools/edit_image.py, what the README's first command runs: its own headless host, one edit.

Checked on the chain workflow with the tiny model: each --instruction reaches its own edit, in
the order the edits run, and the saved picture is the one the session host makes of the same
graph.
"""
import numpy as np
import pytest
from conftest import IP2P_CKPT, SMALL_IMAGE
from PIL import Image

from harness.host_graphs import saved_images
from tools import edit_image
from tools.comfy_host import REPO_ROOT
from tools.workflow_inputs import load_workflow, with_inputs

pytestmark = pytest.mark.host
CHAIN = REPO_ROOT / "workflows" / "chain_edit.api.json"
FIRST, SECOND = "make it winter", "add a red barn"


def test_each_instruction_reaches_its_edit_in_order(host, tiny_ip2p, test_images, tmp_path):
    out = tmp_path / "edited"
    assert edit_image.main(["--workflow", str(CHAIN), "--image", str(test_images[SMALL_IMAGE]),
                            "--checkpoint", str(tiny_ip2p.checkpoint), "--instruction", FIRST,
                            "--instruction", SECOND, "--steps", "2", "--output", str(out)]) == 0
    (written,) = out.iterdir()
    assert written.name == "small_edited.png"
    image = np.asarray(Image.open(written).convert("RGB"))
    assert image.shape == (48, 64, 3) and image.std() > 1.0

    def session_edit(instructions):
        prompt = with_inputs(load_workflow(CHAIN), checkpoint=IP2P_CKPT, image=SMALL_IMAGE, steps=2,
                             instruction=instructions)
        (result,) = saved_images(host, prompt)
        return result
    assert np.array_equal(image, session_edit([FIRST, SECOND]))
    assert not np.array_equal(image, session_edit([SECOND, FIRST])), "the instructions went to the wrong edits"


def test_one_instruction_for_two_different_edits_stops_before_a_host_starts(test_images, tmp_path):
    with pytest.raises(SystemExit, match=r"--instruction for chain_edit.api.json: the workflow holds 2 instruction"):
        edit_image.main(["--workflow", str(CHAIN), "--image", str(test_images[SMALL_IMAGE]),
                         "--instruction", FIRST, "--output", str(tmp_path)])
