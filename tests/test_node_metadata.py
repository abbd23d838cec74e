"""Every node of the pack looks at home in ComfyUI, as the host itself describes it (/object_info):
a display name, a description, a category under InstructPix2Pix/, a tooltip on every input,
numeric inputs with a range (and a step for floats) that holds the default, named outputs
with tooltips.

The 2024 PyPI host does not report output tooltips; there the classes' OUTPUT_TOOLTIPS are
read from the source instead.
"""
import ast

import pytest

from tools.comfy_host import REPO_ROOT

pytestmark = pytest.mark.host
NODES = REPO_ROOT / "nodes"


def pack_node_classes() -> dict[str, str]:
    """NODE_CLASS_MAPPINGS of nodes/__init__.py, id -> class name (read, not imported: it needs ComfyUI)."""
    tree = ast.parse((NODES / "__init__.py").read_text())
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and getattr(statement.targets[0], "id", "") == "NODE_CLASS_MAPPINGS":
            return {key.value: value.id for key, value in zip(statement.value.keys, statement.value.values)}
    raise AssertionError("nodes/__init__.py has no NODE_CLASS_MAPPINGS dict")


def class_attribute(class_name: str, attribute: str):
    """The value of a class attribute in nodes/*.py, looked up through base classes, worked out from
    the source: literals, names bound at module level, and slices of them (None if absent)."""
    classes = {node.name: (node, tree) for path in NODES.glob("*.py") for tree in [ast.parse(path.read_text())]
               for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    while class_name in classes:
        cls, tree = classes[class_name]
        for statement in cls.body:
            if isinstance(statement, ast.Assign) and any(getattr(t, "id", "") == attribute for t in statement.targets):
                return source_value(statement.value, tree)
        class_name = next((base.id for base in cls.bases if isinstance(base, ast.Name)), None)
    return None


def source_value(expression, tree):
    if isinstance(expression, ast.Name):
        for statement in tree.body:
            if isinstance(statement, ast.Assign) and any(getattr(t, "id", "") == expression.id
                                                         for t in statement.targets):
                return source_value(statement.value, tree)
        raise AssertionError(f"{expression.id} is not bound at module level")
    if isinstance(expression, ast.Subscript) and isinstance(expression.slice, ast.Slice):
        bounds = [ast.literal_eval(b) if b is not None else None
                  for b in (expression.slice.lower, expression.slice.upper, expression.slice.step)]
        return source_value(expression.value, tree)[slice(*bounds)]
    return ast.literal_eval(expression)


NODE_CLASSES = pack_node_classes()
NODE_IDS = list(NODE_CLASSES)


def test_the_mapping_is_read():
    assert {"IP2PCheckpointLoader", "IP2PEncode", "IP2PSampler", "IP2PDecode"} <= set(NODE_IDS)


@pytest.fixture(scope="module")
def object_info(host):
    return host.object_info()


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_node_has_a_name_description_and_category(object_info, node_id):
    info = object_info[node_id]
    assert info["display_name"] and info["display_name"] != node_id, "add it to NODE_DISPLAY_NAME_MAPPINGS"
    assert info["description"].strip(), "DESCRIPTION is missing"
    assert info["category"].startswith("InstructPix2Pix/"), info["category"]


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_every_input_has_a_tooltip_and_a_sensible_range(object_info, node_id):
    for section in ("required", "optional"):
        for name, definition in (object_info[node_id]["input"].get(section) or {}).items():
            options = definition[1] if len(definition) > 1 else {}
            assert options.get("tooltip", "").strip(), f"{node_id}.{name} has no tooltip"
            kind = definition[0]
            if kind in ("INT", "FLOAT"):
                assert "min" in options and "max" in options, f"{node_id}.{name} has no min/max"
                assert options["min"] < options["max"]
                assert options["min"] <= options["default"] <= options["max"], f"{node_id}.{name} default"
            if kind == "FLOAT":
                assert 0 < options.get("step", 0) <= (options["max"] - options["min"]), f"{node_id}.{name} step"


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_outputs_are_named_and_explained(object_info, node_id):
    info = object_info[node_id]
    outputs = info["output"]
    assert len(info["output_name"]) == len(outputs)
    for name, kind in zip(info["output_name"], outputs):
        assert name != kind, f"{node_id}: output {kind} has no RETURN_NAMES name"
    if not outputs:
        return
    if "output_tooltips" in info:
        tooltips = info["output_tooltips"] or []
    else:  # a host that does not report them
        tooltips = class_attribute(NODE_CLASSES[node_id], "OUTPUT_TOOLTIPS")
        assert tooltips is not None, f"{node_id}: no OUTPUT_TOOLTIPS"
    assert len(tooltips) == len(outputs) and all(t.strip() for t in tooltips), f"{node_id}: OUTPUT_TOOLTIPS"
