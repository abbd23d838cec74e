import pytest

from tools.comfy_host import REPO_ROOT as REPO
from tools.workflow_inputs import InstructionCountError, load_workflow, with_inputs


def test_basic_workflow_takes_all_inputs():
    prompt = load_workflow(REPO / "workflows" / "basic_edit.api.json")
    out = with_inputs(prompt, checkpoint="m.safetensors", image="in.png", instruction="make it snow", seed=7, steps=3)
    kinds = {node["class_type"]: node["inputs"] for node in out.values()}
    assert kinds["IP2PCheckpointLoader"]["ckpt_name"] == "m.safetensors"
    assert kinds["LoadImage"]["image"] == "in.png"
    assert kinds["IP2PEncodeText"]["instruction"] == "make it snow"
    assert (kinds["IP2PSampler"]["seed"], kinds["IP2PSampler"]["steps"]) == (7, 3)
    assert prompt != out, "the input workflow must not be modified"


def test_instruction_reaches_the_text_node_wired_to_the_positive_input():
    prompt = load_workflow(REPO / "workflows" / "guider_custom_sampler.api.json")
    out = with_inputs(prompt, instruction="make it snow", seed=3, steps=2)
    texts = {node["_meta"]["title"]: node["inputs"]["text"] for node in out.values() if node["class_type"] == "CLIPTextEncode"}
    assert texts == {"Instruction": "make it snow", "Negative (empty)": ""}
    kinds = {node["class_type"]: node["inputs"] for node in out.values()}
    assert kinds["RandomNoise"]["noise_seed"] == 3 and kinds["BasicScheduler"]["steps"] == 2


def test_steps_reach_the_inversion_too():
    """IP2P Invert's noise belongs to its step count: both must change together."""
    out = with_inputs(load_workflow(REPO / "workflows" / "inversion_edit.api.json"), steps=5)
    kinds = {node["class_type"]: node["inputs"] for node in out.values()}
    assert kinds["IP2PInvert"]["steps"] == kinds["IP2PSampler"]["steps"] == 5


def test_ui_format_file_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "ui.json"
    path.write_text('{"nodes": [], "links": []}')
    with pytest.raises(ValueError, match="not an API-format workflow"):
        load_workflow(path)


def test_mask_and_resolution_reach_their_nodes():
    prompt = load_workflow(REPO / "workflows" / "masked_edit.api.json")
    out = with_inputs(prompt, mask="m.png", resolution=256)
    kinds = {node["class_type"]: node["inputs"] for node in out.values()}
    assert kinds["LoadImageMask"]["image"] == "m.png"
    assert kinds["IP2PEncodeText"]["resolution"] == 256


def test_upscale_model_reaches_the_upscale_model_loader():
    prompt = load_workflow(REPO / "workflows" / "edit_then_upscale_model.api.json")
    out = with_inputs(prompt, checkpoint="m.safetensors", upscale_model="2x.safetensors")
    kinds = {node["class_type"]: node["inputs"] for node in out.values()}
    assert kinds["UpscaleModelLoader"]["model_name"] == "2x.safetensors"
    assert kinds["IP2PCheckpointLoader"]["ckpt_name"] == "m.safetensors"


def _instructions(prompt):
    return {node_id: node["inputs"]["instruction"] for node_id, node in prompt.items()
            if node["class_type"] == "IP2PEncodeText"}


def test_chained_edits_take_one_instruction_each_in_the_order_they_run():
    prompt = load_workflow(REPO / "workflows" / "chain_edit.api.json")
    out = with_inputs(prompt, instruction=["make it winter", "add a red barn"])
    assert _instructions(out) == {"3": "make it winter", "7": "add a red barn"}
    # Ids say nothing about order: swap the two edits' ids and the first edit still gets the first text.
    swap = {"3": "7", "7": "3", "4": "8", "8": "4"}
    relabel = lambda v: [swap.get(v[0], v[0]), v[1]] if isinstance(v, list) else v  # noqa: E731
    swapped = {swap.get(i, i): {**n, "inputs": {k: relabel(v) for k, v in n["inputs"].items()}}
               for i, n in prompt.items()}
    out = with_inputs(swapped, instruction=["make it winter", "add a red barn"])
    assert _instructions(out) == {"7": "make it winter", "3": "add a red barn"}


def test_one_instruction_for_a_chain_is_refused_naming_its_edits():
    prompt = load_workflow(REPO / "workflows" / "chain_edit.api.json")
    with pytest.raises(InstructionCountError, match=r"the workflow holds 2 instruction\(s\) \('turn the sky into a "
                                                    r"sunset' \(node 3\); 'add fireworks in the sky' \(node 7\)\) "
                                                    r"but got 1: give one per instruction"):
        with_inputs(prompt, instruction="make it winter")


@pytest.mark.parametrize("workflow", sorted((REPO / "workflows").glob("*.api.json")), ids=lambda p: p.name)
def test_every_shipped_workflow_takes_one_instruction_per_different_edit(workflow):
    prompt = load_workflow(workflow)
    edits = 2 if workflow.name == "chain_edit.api.json" else 1
    out = with_inputs(prompt, instruction=[f"edit {i}" for i in range(edits)])
    changed = [v for i, n in out.items() for k, v in n["inputs"].items() if v != prompt[i]["inputs"][k]]
    assert set(changed) == {f"edit {i}" for i in range(edits)}


def test_two_passes_of_one_edit_take_one_instruction():
    out = with_inputs(load_workflow(REPO / "workflows" / "edit_then_upscale.api.json"), instruction="make it winter")
    assert list(_instructions(out).values()) == ["make it winter", "make it winter"]


def test_an_instruction_fed_by_another_node_is_replaced_by_the_given_text():
    prompt = load_workflow(REPO / "workflows" / "basic_edit.api.json")
    (encoder,) = [i for i, n in prompt.items() if n["class_type"] == "IP2PEncodeText"]
    prompt["99"] = {"class_type": "PrimitiveString", "inputs": {"value": "make it blue"}}
    prompt[encoder]["inputs"]["instruction"] = ["99", 0]
    assert _instructions(with_inputs(prompt, instruction="make it winter")) == {encoder: "make it winter"}
