"""ComfyUI's two workflow formats, converted into each other with the host's node definitions.

* API format, ``{id: {"class_type", "inputs", "_meta"}}``: what ``/prompt`` runs.
* UI format (LiteGraph serialisation, version 0.4): what the frontend saves, loads and
  embeds in PNGs: nodes with positions and sizes, links, widget values by position, groups.

The frontend's rules followed here (ComfyUI frontend 1.x; tests/test_frontend_workflows.py
checks them against the real frontend):

* INT, FLOAT, STRING, BOOLEAN and combo inputs are widgets (unless ``forceInput``), in input
  order, required before optional; every other input is a socket.
* ``widgets_values`` holds one value per widget, and one more for each widget the frontend
  adds: the ``control_after_generate`` mode right after an INT that asks for it (or, by the
  legacy convention, is named ``seed`` or ``noise_seed``) or a combo that asks for it, and,
  for a node with an upload combo (``image_upload``), an ``upload`` button whose value is
  ``"image"``, as one more required input after the node's own required inputs.
* A widget whose input is linked still keeps its value in ``widgets_values``; the link wins.
* Note nodes exist only in the frontend: they never reach ``/prompt``.

Only the standard library (and Pillow for the PNG chunks) is used, so tests and scripts can
convert without a browser.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
#: Node types that live only in the frontend.
FRONTEND_ONLY = ("Note", "MarkdownNote")
LEGACY_SEED_NAMES = ("seed", "noise_seed")
CONTROL_MODE = "fixed"  # keeps the workflow's seed, so a dragged-in file reproduces its result
UPLOAD_VALUE = "image"
UPLOAD_OPTIONS = ("image_upload", "video_upload", "animated_image_upload")
NOTE_COLOR, NOTE_BGCOLOR = "#432", "#653"

Prompt = dict[str, dict[str, Any]]


class WorkflowFormatError(ValueError):
    """A workflow file that does not fit the host's node definitions."""


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: str  # "COMBO" for choice lists
    options: Mapping[str, Any] = field(default_factory=dict)
    optional: bool = False
    choices: tuple = ()

    @property
    def is_widget(self) -> bool:
        return self.frontend_only or (self.type in WIDGET_TYPES and not self.options.get("forceInput", False))

    @property
    def frontend_only(self) -> bool:
        """The upload button: a widget with a value in the UI file, no input of the node."""
        return self.type == "IMAGEUPLOAD"

    @property
    def extra_values(self) -> tuple[str, ...]:
        """The values the frontend stores after this widget's own, by what they are."""
        extra = []
        if self.type == "INT":
            wants = self.options.get("control_after_generate")
            if wants if wants is not None else self.name in LEGACY_SEED_NAMES:
                extra.append("control_after_generate")
        elif self.type == "COMBO":
            if self.options.get("control_after_generate"):
                extra.append("control_after_generate")
        return tuple(extra)

    @property
    def default(self) -> Any:
        if "default" in self.options:
            return self.options["default"]
        if self.type == "COMBO":
            return self.choices[0] if self.choices else None
        if self.frontend_only:
            return UPLOAD_VALUE
        return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[self.type]


def input_specs(node_info: Mapping[str, Any], frontend: bool = False) -> list[InputSpec]:
    """A node's inputs in the frontend's order, from its /object_info entry.

    `frontend` adds the widgets that exist only in the frontend (the upload button).
    """
    specs = []
    order = node_info.get("input_order") or {}
    for section in ("required", "optional"):
        defs = node_info.get("input", {}).get(section) or {}
        for name in order.get(section) or list(defs):
            definition = defs[name]
            kind = definition[0]
            options = definition[1] if len(definition) > 1 and isinstance(definition[1], Mapping) else {}
            if isinstance(kind, list):
                specs.append(InputSpec(name, "COMBO", options, section == "optional", tuple(kind)))
            elif kind == "COMBO":
                specs.append(InputSpec(name, "COMBO", options, section == "optional", tuple(options.get("options", ()))))
            else:
                specs.append(InputSpec(name, str(kind), options, section == "optional"))
        if frontend and section == "required" and any(
                s.type == "COMBO" and any(s.options.get(o) for o in UPLOAD_OPTIONS) for s in specs):
            specs.append(InputSpec("upload", "IMAGEUPLOAD"))
    return specs


def node_info(object_info: Mapping[str, Any], class_type: str, where: str = "") -> Mapping[str, Any]:
    try:
        return object_info[class_type]
    except KeyError:
        raise WorkflowFormatError(f"{where}node type {class_type!r} is not known to this ComfyUI "
                                  "(a missing custom node pack?)") from None


def is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def with_defaults(prompt: Prompt, object_info: Mapping[str, Any]) -> Prompt:
    """A copy of `prompt` with every widget it leaves out at its default, as the frontend sends it."""
    out = {}
    for node_id, node in prompt.items():
        inputs = dict(node["inputs"])
        for spec in input_specs(node_info(object_info, node["class_type"], f"node {node_id}: ")):
            if spec.is_widget and spec.name not in inputs:
                inputs[spec.name] = spec.default
        out[node_id] = {**node, "inputs": inputs}
    return out


# --------------------------------------------------------------------------- API -> UI
@dataclass
class Box:
    """Where a node goes on the canvas: `pos` is the top-left of its body (the title bar is above)."""
    pos: tuple[float, float]
    size: tuple[float, float]


def api_to_ui(prompt: Prompt, object_info: Mapping[str, Any], boxes: Mapping[str, Box],
              notes: Iterable[tuple[str, str, Box]] = (), groups: Iterable[tuple[str, tuple, str]] = ()) -> dict:
    """The UI-format twin of an API-format workflow.

    `boxes` places every node (by API id, which must be an integer string), `notes` adds
    Note nodes (title, text, box), `groups` adds frames (title, (x, y, w, h), colour).
    """
    ids = {node_id: _int_id(node_id) for node_id in prompt}
    nodes, links = {}, []
    for node_id, node in prompt.items():
        info = node_info(object_info, node["class_type"], f"node {node_id}: ")
        specs = input_specs(info, frontend=True)
        unknown = set(node["inputs"]) - {s.name for s in specs if not s.frontend_only}
        if unknown:
            raise WorkflowFormatError(f"node {node_id} ({node['class_type']}): no input named {sorted(unknown)}")
        inputs, values = [], []
        for spec in specs:
            value = node["inputs"].get(spec.name)
            linked = is_link(value)
            if spec.is_widget:
                values.append(spec.default if linked or spec.name not in node["inputs"] else value)
                values.extend(CONTROL_MODE for _ in spec.extra_values)
                if linked:  # a widget fed by a link: the frontend shows it as a socket
                    inputs.append({"name": spec.name, "type": spec.type, "widget": {"name": spec.name},
                                   "link": None})
            else:
                inputs.append({"name": spec.name, "type": spec.type, "link": None,
                               **({"shape": 7} if spec.optional else {})})
            if linked:
                source, slot = value
                if source not in prompt:
                    raise WorkflowFormatError(f"node {node_id} input {spec.name!r} links to missing node {source}")
                link_id = len(links) + 1
                links.append([link_id, ids[source], slot, ids[node_id], len(inputs) - 1,
                              _output_type(object_info, prompt[source]["class_type"], slot)])
                inputs[-1]["link"] = link_id
        outputs = [{"name": name, "type": kind, "links": None, "slot_index": i}
                   for i, (name, kind) in enumerate(zip(info.get("output_name") or info["output"], info["output"]))]
        box = boxes[node_id]
        ui = {"id": ids[node_id], "type": node["class_type"], "pos": list(box.pos), "size": list(box.size),
              "flags": {}, "order": 0, "mode": 0, "inputs": inputs, "outputs": outputs}
        title = (node.get("_meta") or {}).get("title")
        if title and title != info.get("display_name", node["class_type"]):
            ui["title"] = title
        ui["properties"] = {"Node name for S&R": node["class_type"]}
        ui["widgets_values"] = values
        nodes[node_id] = ui
    for link_id, source, slot, *_ in links:
        output = nodes[str(source)]["outputs"][slot]
        output["links"] = (output["links"] or []) + [link_id]
    for order, node_id in enumerate(run_order(prompt)):
        nodes[node_id]["order"] = order
    ui_nodes = list(nodes.values())
    next_id = max(ids.values()) + 1
    for i, (title, text, box) in enumerate(notes):
        ui_nodes.append({"id": next_id + i, "type": "Note", "pos": list(box.pos), "size": list(box.size),
                         "flags": {}, "order": len(ui_nodes), "mode": 0, "inputs": [], "outputs": [],
                         "title": title, "properties": {}, "widgets_values": [text],
                         "color": NOTE_COLOR, "bgcolor": NOTE_BGCOLOR})
    return {
        "last_node_id": max(n["id"] for n in ui_nodes),
        "last_link_id": len(links),
        "nodes": ui_nodes,
        "links": links,
        "groups": [{"id": i + 1, "title": title, "bounding": list(bounding), "color": color, "font_size": 24,
                    "flags": {}} for i, (title, bounding, color) in enumerate(groups)],
        "config": {},
        "extra": {"ds": {"scale": 1, "offset": [0, 0]}},
        "version": 0.4,
    }


def _int_id(node_id: str) -> int:
    try:
        return int(node_id)
    except ValueError:
        raise WorkflowFormatError(f"node id {node_id!r}: the UI format needs integer node ids") from None


def _output_type(object_info, class_type: str, slot: int) -> str:
    outputs = node_info(object_info, class_type)["output"]
    if not 0 <= slot < len(outputs):
        raise WorkflowFormatError(f"{class_type} has no output {slot}")
    kind = outputs[slot]
    return "COMBO" if isinstance(kind, list) else kind


def run_order(prompt: Prompt) -> list[str]:
    """Node ids in an order the graph can run in: every node after the nodes it takes inputs
    from, otherwise by id (numeric ids by value)."""
    done, order = set(), []

    def visit(node_id, path=()):
        if node_id in done:
            return
        if node_id in path:
            raise WorkflowFormatError(f"the graph has a cycle through node {node_id}")
        for value in prompt[node_id]["inputs"].values():
            if is_link(value):
                visit(value[0], path + (node_id,))
        done.add(node_id)
        order.append(node_id)

    for node_id in sorted(prompt, key=lambda i: (0, int(i), "") if i.isdigit() else (1, 0, i)):
        visit(node_id)
    return order


# --------------------------------------------------------------------------- UI -> API
def ui_to_api(workflow: Mapping[str, Any], object_info: Mapping[str, Any]) -> Prompt:
    """The API-format prompt a UI-format workflow describes, as the frontend's graphToPrompt makes it.

    As in the frontend, optional widgets the file has no value for (an input added to the node
    after the file was saved) get their default, and values past the node's last widget (an
    input that an older ComfyUI does not have yet) are ignored. Muted or bypassed nodes, reroutes and
    primitive nodes are not supported: the pack's workflows do not use them.
    """
    if not isinstance(workflow, Mapping) or "nodes" not in workflow or "links" not in workflow:
        raise WorkflowFormatError("not a UI-format workflow (no 'nodes' and 'links')")
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in FRONTEND_ONLY:
            continue
        where = f"node {node['id']} ({node['type']}): "
        if node.get("mode", 0) != 0:
            raise WorkflowFormatError(where + "muted or bypassed nodes are not supported")
        info = node_info(object_info, node["type"], where)
        specs = input_specs(info, frontend=True)
        by_name = {spec.name: spec for spec in specs if not spec.frontend_only}
        linked = {}
        for slot, socket in enumerate(node.get("inputs") or []):
            if socket.get("link") is None:
                continue
            if socket["name"] not in by_name:
                raise WorkflowFormatError(where + f"no input named {socket['name']!r}")
            link = links.get(socket["link"])
            if link is None or link[3] != node["id"] or link[4] != slot:
                raise WorkflowFormatError(where + f"input {socket['name']!r} names link {socket['link']}, "
                                          "which does not end there")
            linked[socket["name"]] = [str(link[1]), link[2]]
        values = node.get("widgets_values") or []
        if not isinstance(values, list):
            raise WorkflowFormatError(where + "widgets_values must be a list")
        inputs, position = {}, 0
        for spec in specs:
            if spec.is_widget:
                if position < len(values):
                    value = values[position]
                elif spec.optional or spec.frontend_only:
                    value = spec.default
                else:
                    raise WorkflowFormatError(where + f"no widget value for {spec.name!r}")
                position += 1 + len(spec.extra_values)
                if not spec.frontend_only:
                    inputs[spec.name] = linked.get(spec.name, value)
            elif spec.name in linked:
                inputs[spec.name] = linked[spec.name]
        prompt[str(node["id"])] = {"inputs": inputs, "class_type": node["type"],
                                   "_meta": {"title": node.get("title") or info.get("display_name", node["type"])}}
    return prompt


def load_any(path: Path, object_info: Mapping[str, Any] | None = None) -> Prompt:
    """An API-format prompt from an API- or (with `object_info`) UI-format workflow file."""
    data = json.loads(Path(path).read_text())
    if isinstance(data, Mapping) and "nodes" in data and "links" in data:
        if object_info is None:
            raise WorkflowFormatError(f"{path} is a UI-format workflow: converting it needs the host's /object_info")
        return ui_to_api(data, object_info)
    if not isinstance(data, Mapping) or not all(isinstance(n, Mapping) and "class_type" in n for n in data.values()):
        raise WorkflowFormatError(f"{path} is neither an API-format nor a UI-format ComfyUI workflow")
    return dict(data)


# --------------------------------------------------------------------------- PNG
def write_png(image, path: Path, prompt: Prompt, workflow: Mapping[str, Any]) -> None:
    """Saves a PIL image with the workflow in tEXt chunks, as ComfyUI's Save Image writes them."""
    from PIL.PngImagePlugin import PngInfo

    metadata = PngInfo()
    metadata.add_text("prompt", json.dumps(prompt))
    metadata.add_text("workflow", json.dumps(workflow))
    image.save(path, pnginfo=metadata, compress_level=4)


def read_png(path: Path) -> dict[str, Any]:
    """The JSON text chunks of a PNG (``prompt``, ``workflow``), parsed."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return {key: json.loads(value) for key, value in image.text.items() if key in ("prompt", "workflow")}
