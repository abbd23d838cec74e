import pytest

from workflow_inputs import load_workflow, with_inputs
from comfy_host import REPO_ROOT as REPO


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
