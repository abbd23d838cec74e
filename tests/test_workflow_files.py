"""The shipped workflow files: API and UI twins describe the same graph, every node and input
exists in the host, every model file is explained in a note, and the PNGs carry the JSON.

The UI file is converted to API format here (tools/ui_workflow.py follows the frontend's
rules; tests/test_frontend_workflows.py checks those rules in the real frontend when it can).
"""
import json

import pytest

from harness.api_to_ui import FILE_INPUTS, LAYOUTS
from tools.comfy_host import REPO_ROOT
from tools.ui_workflow import FRONTEND_ONLY, input_specs, is_link, read_png, ui_to_api, with_defaults

FOLDER = REPO_ROOT / "workflows"
API_FILES = sorted(FOLDER.glob("*.api.json"))
STEMS = [p.name[:-len(".api.json")] for p in API_FILES]


def api(stem):
    return json.loads((FOLDER / f"{stem}.api.json").read_text())


def ui(stem):
    return json.loads((FOLDER / f"{stem}.json").read_text())


def test_every_file_in_workflows_has_its_twins():
    names = {p.name for p in FOLDER.iterdir()}
    for stem in STEMS:
        assert {f"{stem}.json", f"{stem}.png"} <= names, f"{stem}.api.json has no UI twin or PNG: run harness/api_to_ui.py"
    for name in names:
        stem = name.split(".")[0]
        assert stem in STEMS, f"workflows/{name} has no API-format twin {stem}.api.json"


def test_the_new_workflows_are_there():
    assert {"chain_edit", "edit_then_upscale", "edit_then_upscale_model"} <= set(STEMS)
    assert set(STEMS) <= set(LAYOUTS), "every workflow needs its notes and groups in harness/api_to_ui.py"


@pytest.mark.host
@pytest.mark.parametrize("stem", STEMS)
def test_ui_and_api_files_describe_the_same_graph(host, stem):
    object_info = host.object_info()
    expected = with_defaults(api(stem), object_info)  # the frontend sends every widget
    converted = ui_to_api(ui(stem), object_info)
    assert sorted(converted) == sorted(expected), "the two files have different nodes"
    for node_id, node in expected.items():
        got = converted[node_id]
        assert got["class_type"] == node["class_type"], f"node {node_id}"
        assert got["inputs"] == node["inputs"], f"node {node_id} ({node['class_type']}): widget values or links differ"
        title = (node.get("_meta") or {}).get("title")
        if title:
            assert got["_meta"]["title"] == title, f"node {node_id}"


@pytest.mark.parametrize("stem", STEMS)
def test_ui_file_is_consistent(stem):
    """Links agree at both ends and carry the type of the output they leave."""
    workflow = ui(stem)
    nodes = {n["id"]: n for n in workflow["nodes"]}
    assert workflow["last_node_id"] >= max(nodes)
    assert workflow["last_link_id"] >= max((link[0] for link in workflow["links"]), default=0)
    for link_id, source, slot, target, target_slot, kind in workflow["links"]:
        output = nodes[source]["outputs"][slot]
        assert link_id in output["links"] and output["type"] == kind
        assert nodes[target]["inputs"][target_slot]["link"] == link_id
        assert nodes[target]["inputs"][target_slot]["type"] in (kind, "*")
    for node in nodes.values():
        for slot, output in enumerate(node["outputs"]):
            for link_id in output["links"] or []:
                assert any(link[0] == link_id and link[1] == node["id"] and link[2] == slot
                           for link in workflow["links"])
    titles = {g["title"] for g in workflow["groups"]}
    assert len(titles) == len(workflow["groups"]) >= 1, "groups explain the graph"
    for group in workflow["groups"]:
        x, y, w, h = group["bounding"]
        assert w > 0 and h > 0


@pytest.mark.host
@pytest.mark.parametrize("stem", STEMS)
def test_every_node_type_and_input_exists_in_the_host(host, stem):
    object_info = host.object_info()
    prompt = api(stem)
    for node_id, node in prompt.items():
        where = f"{stem} node {node_id} ({node['class_type']})"
        assert node["class_type"] in object_info, f"{where}: unknown node type"
        specs = {s.name: s for s in input_specs(object_info[node["class_type"]])}
        assert set(node["inputs"]) <= set(specs), f"{where}: unknown inputs {set(node['inputs']) - set(specs)}"
        missing = {name for name, s in specs.items() if not s.optional and name not in node["inputs"]}
        assert not missing, f"{where}: required inputs missing: {missing}"
        for name, value in node["inputs"].items():
            spec = specs[name]
            if is_link(value):
                source = prompt[value[0]]["class_type"]
                kind = object_info[source]["output"][value[1]]
                assert kind == spec.type or spec.type == "*", f"{where}.{name}: {kind} linked into {spec.type}"
            elif spec.type in ("INT", "FLOAT"):
                low, high = spec.options.get("min", float("-inf")), spec.options.get("max", float("inf"))
                assert low <= value <= high, f"{where}.{name} = {value} outside [{low}, {high}]"
            elif spec.type == "COMBO" and (node["class_type"], name) not in FILE_INPUTS and spec.choices:
                assert value in spec.choices, f"{where}.{name} = {value!r} is not one of the host's choices"
    for node in ui(stem)["nodes"]:
        assert node["type"] in object_info or node["type"] in FRONTEND_ONLY


@pytest.mark.parametrize("stem", STEMS)
def test_notes_say_what_to_download_and_where(stem):
    notes = "\n".join(n["widgets_values"][0] for n in ui(stem)["nodes"] if n["type"] == "Note")
    for node in api(stem).values():
        for name, value in node["inputs"].items():
            folder = FILE_INPUTS.get((node["class_type"], name))
            if folder and isinstance(value, str):
                assert value in notes and f"ComfyUI/{folder}/" in notes, \
                    f"{stem}: the notes do not say where {value} comes from and goes ({folder})"


@pytest.mark.parametrize("stem", STEMS)
def test_png_carries_the_workflow_as_comfyui_writes_it(stem):
    chunks = read_png(FOLDER / f"{stem}.png")
    assert chunks == {"prompt": api(stem), "workflow": ui(stem)}
    # tEXt chunks in Save Image's order: prompt, then workflow.
    data = (FOLDER / f"{stem}.png").read_bytes()
    assert data.index(b"tEXtprompt\0") < data.index(b"tEXtworkflow\0")


def test_the_readme_picture_is_the_basic_workflow_and_droppable_too():
    assert read_png(REPO_ROOT / "docs" / "basic_workflow.png") == {"prompt": api("basic_edit"), "workflow": ui("basic_edit")}
