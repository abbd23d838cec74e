"""The shipped workflows, executed by a real ComfyUI with the pack in custom_nodes."""
import numpy as np
import pytest

from comfy_host import REPO_ROOT
from conftest import IP2P_CKPT, ODD_IMAGE, SD_CKPT, SMALL_IMAGE, SMALL_MASK
from host_graphs import saved_images
from model_files import model_files  # noqa: F401 (fixture)
from workflow_inputs import load_workflow, with_inputs

pytestmark = pytest.mark.host
WORKFLOWS = sorted((REPO_ROOT / "workflows").glob("*.json"))


def edit(host, workflow="basic_edit.api.json", image=SMALL_IMAGE, seed=1, instruction=None, resolution=None,
         files=None):
    """Runs a shipped workflow on the test model; `files` names the other model files it loads."""
    prompt = with_inputs(load_workflow(REPO_ROOT / "workflows" / workflow), checkpoint=IP2P_CKPT, image=image,
                         mask=SMALL_MASK, instruction=instruction, seed=seed, steps=3, resolution=resolution,
                         sd_checkpoint=SD_CKPT, **(files or {}))
    return saved_images(host, prompt)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.name for w in WORKFLOWS])
def test_every_workflow_runs_and_returns_the_input_size(host, model_files, workflow):
    # The working-resolution workflow edits at 512 px and scales back; 128 keeps the test quick.
    files = {"diffusers": model_files["diffusers"], "unet": model_files["unet_ldm"], "clip": model_files["clip"],
             "vae": model_files["vae"]}
    images = edit(host, workflow.name, resolution=128 if "resolution" in workflow.name else None, files=files)
    for image in images:
        assert image.shape == (48, 64, 3)
        assert image.std() > 1.0, "the edited image is flat: the model did not run"


def test_same_seed_gives_the_same_image_another_seed_does_not(host):
    first, again, other = (edit(host, seed=s)[0] for s in (5, 5, 6))
    assert np.array_equal(first, again)
    assert np.abs(first.astype(int) - other.astype(int)).mean() > 1.0


def test_sampler_node_and_guider_with_custom_sampler_give_the_same_edit(host):
    (sampler,) = edit(host, "basic_edit.api.json", seed=9, instruction="make it winter")
    (guider,) = edit(host, "guider_custom_sampler.api.json", seed=9, instruction="make it winter")
    assert np.array_equal(sampler, guider)


@pytest.mark.parametrize("resolution", [0, 96])
def test_any_size_comes_back_at_exactly_the_input_size(host, resolution):
    # 61x45 is padded to 64x48 (or scaled to 96 px, then padded) and IP2P Decode undoes it.
    (image,) = edit(host, image=ODD_IMAGE, resolution=resolution)
    assert image.shape == (45, 61, 3)
