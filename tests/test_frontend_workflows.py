"""The UI workflows in ComfyUI's real frontend (headless Chromium), where it is available.

Optional: skipped unless the host is upstream ComfyUI (it serves the frontend package) and
Node.js, playwright-core and Chromium are installed (see harness/frontend_check.py):

    apt-get install chromium
    npm install --prefix .cache/frontend playwright-core
    IP2P_COMFYUI_DIR=~/ComfyUI IP2P_COMFYUI_PYTHON=~/ComfyUI/venv/bin/python \\
        .venv/bin/python -m pytest tests/test_frontend_workflows.py

Each file is loaded with app.loadGraphData; app.graphToPrompt() must give the API twin (with
the defaults the frontend fills in) and our own UI -> API conversion, the frontend's own
re-serialisation must keep our widget values and links, and no node may be smaller than the
frontend needs to draw it.
"""
import json

import pytest

from harness import frontend_check
from tools.comfy_host import REPO_ROOT
from tools.ui_workflow import ui_to_api, with_defaults

pytestmark = pytest.mark.host
FOLDER = REPO_ROOT / "workflows"
STEMS = sorted(p.name[:-len(".api.json")] for p in FOLDER.glob("*.api.json"))


@pytest.fixture(scope="module")
def rendered(host):
    if host.kind != "upstream":
        pytest.skip("the frontend check needs upstream ComfyUI (IP2P_COMFYUI_DIR), which serves the frontend")
    reason = frontend_check.missing()
    if reason:
        pytest.skip(f"frontend check unavailable: {reason}")
    results = frontend_check.render(host, [FOLDER / f"{stem}.json" for stem in STEMS])
    return {stem: results[str((FOLDER / f"{stem}.json").resolve())] for stem in STEMS}


def inputs_of(prompt):
    return {node_id: (node["class_type"], node["inputs"]) for node_id, node in prompt.items()}


@pytest.mark.parametrize("stem", STEMS)
def test_the_frontend_sends_the_api_workflow(host, rendered, stem):
    result = rendered[stem]
    assert not result["errors"], result["errors"]
    api = json.loads((FOLDER / f"{stem}.api.json").read_text())
    ui = json.loads((FOLDER / f"{stem}.json").read_text())
    sent = inputs_of(result["prompt"])
    assert sent == inputs_of(with_defaults(api, host.object_info()))
    assert sent == inputs_of(ui_to_api(ui, host.object_info()))


@pytest.mark.parametrize("stem", STEMS)
def test_the_frontend_keeps_widget_values_links_and_groups(rendered, stem):
    ours = json.loads((FOLDER / f"{stem}.json").read_text())
    theirs = rendered[stem]["workflow"]
    assert {n["id"]: n["widgets_values"] for n in theirs["nodes"]} == \
        {n["id"]: n["widgets_values"] for n in ours["nodes"]}
    assert sorted(map(tuple, theirs["links"])) == sorted(map(tuple, ours["links"]))
    assert [g["title"] for g in theirs["groups"]] == [g["title"] for g in ours["groups"]]


@pytest.mark.parametrize("stem", STEMS)
def test_every_node_is_big_enough_to_draw(rendered, stem):
    for node in rendered[stem]["sizes"]:
        assert node["size"][0] >= node["min"][0] and node["size"][1] >= node["min"][1], node
