"""The shipped workflows' behaviour in a real ComfyUI with the pack in custom_nodes: seeds, the
sampler node against the guider, the UI file against its API twin, any input size.

Every shipped workflow runs once, in test_frontend_workflows.py: as the prompt the real frontend
makes of its UI file, which that test checks is its API file's prompt (the API file itself where
no browser is installed); test_the_ui_file_gives_the_same_edit_as_its_api_twin keeps the pack's
own UI -> API conversion honest.
"""
import numpy as np
import pytest
from conftest import IP2P_CKPT, ODD_IMAGE, SD_CKPT, SMALL_IMAGE, SMALL_MASK

from harness.host_graphs import saved_images
from tools.comfy_host import REPO_ROOT
from tools.ui_workflow import load_any
from tools.workflow_inputs import with_inputs

pytestmark = pytest.mark.host


def edit(host, workflow="basic_edit.api.json", image=SMALL_IMAGE, seed=1, instruction=None, resolution=None,
         files=None):
    """Runs a shipped workflow on the test model; `files` names the other model files it loads."""
    return saved_images(host, prompt_for(host, workflow, image, seed, instruction, resolution, files))


def prompt_for(host, workflow, image=SMALL_IMAGE, seed=1, instruction=None, resolution=None, files=None):
    prompt = load_any(REPO_ROOT / "workflows" / workflow, host.object_info())
    return on_test_files(prompt, image, seed, instruction, resolution, files)


def on_test_files(prompt, image=SMALL_IMAGE, seed=1, instruction=None, resolution=None, files=None):
    """A workflow's prompt on the test models and images, 3 steps."""
    files = {"checkpoint": IP2P_CKPT, "sd_checkpoint": SD_CKPT, **(files or {})}
    return with_inputs(prompt, image=image, mask=SMALL_MASK, instruction=instruction, seed=seed, steps=3,
                       resolution=resolution, **files)


def test_same_seed_gives_the_same_image_another_seed_does_not(host):
    first, again, other = (edit(host, seed=s)[0] for s in (5, 5, 6))
    assert np.array_equal(first, again)
    assert np.abs(first.astype(int) - other.astype(int)).mean() > 1.0


def test_sampler_node_and_guider_with_custom_sampler_give_the_same_edit(host):
    (sampler,) = edit(host, "basic_edit.api.json", seed=9, instruction="make it winter")
    (guider,) = edit(host, "guider_custom_sampler.api.json", seed=9, instruction="make it winter")
    assert np.array_equal(sampler, guider)


def test_the_ui_file_gives_the_same_edit_as_its_api_twin(host):
    # The widget values, links and defaults of the dragged-in file are those of the API file.
    (api,) = edit(host, "basic_edit.api.json", seed=11)
    (ui,) = edit(host, "basic_edit.json", seed=11)
    assert np.array_equal(api, ui)


@pytest.mark.parametrize("resolution", [0, 96])
def test_any_size_comes_back_at_exactly_the_input_size(host, resolution):
    # 61x45 is padded to 64x48 (or scaled to 96 px, then padded) and IP2P Decode undoes it.
    (image,) = edit(host, image=ODD_IMAGE, resolution=resolution)
    assert image.shape == (45, 61, 3)
