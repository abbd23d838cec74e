"""The shipped workflows, executed by a real ComfyUI with the pack in custom_nodes.

Every API-format file in workflows/ runs here as it is. Its UI-format twin (what users drag onto
the canvas) runs in test_frontend_workflows.py, as the prompt the real frontend makes of it, which
that test also checks is this file's prompt; test_the_ui_file_gives_the_same_edit_as_its_api_twin
keeps the pack's own UI -> API conversion honest where no browser is installed.
"""
import numpy as np
import pytest
from conftest import IP2P_CKPT, ODD_IMAGE, SD_CKPT, SMALL_IMAGE, SMALL_MASK
from model_files import sdxl_files  # noqa: F401 (fixture)
from PIL import Image
from upscale_factory import SCALE as UPSCALE_MODEL_SCALE

from harness.host_graphs import saved_images
from ip2p_core import demo_model
from tools.comfy_host import REPO_ROOT
from tools.ui_workflow import load_any
from tools.workflow_inputs import PACK_ENCODERS, with_inputs

pytestmark = pytest.mark.host
API_WORKFLOWS = sorted((REPO_ROOT / "workflows").glob("*.api.json"))
# Input names followed from a saved image back to the picture it was made from.
IMAGE_PATH = ("images", "image", "samples", "positive", "latent_image")


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


def scale_of(prompt, node_id):
    """How much the image saved by `node_id` is scaled against the input picture (Upscale Image By,
    or the test's upscale model)."""
    node = prompt[node_id]
    scale = {"ImageScaleBy": node["inputs"].get("scale_by"),
             "ImageUpscaleWithModel": UPSCALE_MODEL_SCALE}.get(node["class_type"], 1.0)
    for name in IMAGE_PATH:
        if isinstance(node["inputs"].get(name), list):
            return scale * scale_of(prompt, node["inputs"][name][0])
    return scale


@pytest.fixture
def shipped_files(upscale_model, request):
    """The model files a shipped workflow loads, by kind, for the workflow named: SD1.5 workflows
    run on the shipped demo model, in whatever file shape they load it."""
    def files_for(name: str) -> dict:
        if name.startswith("cosxl_"):  # SDXL family: the generated CosXL Edit checkpoint
            files = {"checkpoint": request.getfixturevalue("sdxl_files")["cosxl_checkpoint"]}
        else:
            files = {**request.getfixturevalue("demo_files"), "checkpoint": demo_model.CHECKPOINT_NAME}
        return {**files, "upscale_model": upscale_model}
    return files_for


def runs_and_keeps_the_input_size(host, prompt) -> None:
    """Runs a shipped workflow's prompt: every saved picture is the input's size (times the
    workflow's upscale) and not flat."""
    # Workflows that edit at a working resolution (512 px, 1024 px for SDXL) run at 128 to keep the test quick.
    if any(node["class_type"] in PACK_ENCODERS and node["inputs"].get("resolution") for node in prompt.values()):
        prompt = with_inputs(prompt, resolution=128)
    outputs = host.run(prompt)
    saved = 0
    for node_id in outputs:
        scale = scale_of(prompt, node_id)
        for path in host.output_files({node_id: outputs[node_id]}, types=["output"]):
            if path.suffix != ".png":
                continue
            image = np.asarray(Image.open(path).convert("RGB"))
            assert image.shape == (round(48 * scale), round(64 * scale), 3)
            assert image.std() > 1.0, "the edited image is flat: the model did not run"
            saved += 1
    assert saved, "the workflow saved no image"
    for path in host.output_files(outputs, types=["output"]):  # saved checkpoints are gigabytes
        path.unlink()


@pytest.mark.parametrize("workflow", API_WORKFLOWS, ids=[w.name for w in API_WORKFLOWS])
def test_every_api_workflow_runs_and_returns_the_input_size(host, shipped_files, workflow):
    runs_and_keeps_the_input_size(host, prompt_for(host, workflow.name, files=shipped_files(workflow.name)))


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
