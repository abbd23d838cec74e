"""IP2P Relevance Mask in a real host, on the tiny test models: where it sits in a graph, what it
keeps, batches, sizes, families, and the mistakes it must name. What it does on the demo model's
scenes is tests/test_host_demo_relevance.py."""
import json

import numpy as np
import pytest
import torch
from conftest import IP2P_CKPT, ODD_IMAGE, SD_CKPT, SMALL_IMAGE, SMALL_MASK
from PIL import Image
from test_host_families import FAMILIES, family_files, family_graph  # noqa: F401 (fixture)

from harness.host_graphs import failure, instruction_lines, pack_edit

pytestmark = pytest.mark.host
RELEVANCE = "20"


def with_relevance(graph: dict, **inputs) -> dict:
    """IP2P Relevance Mask between the encode (node 5) and the sampler (node 6), its mask saved."""
    graph[RELEVANCE] = {"class_type": "IP2PRelevanceMask", "inputs": {
        "model": ["1", 0], "positive": ["5", 0], "negative": ["5", 1], "threshold": 0.5, "margin": 0, **inputs}}
    graph["6"]["inputs"].update(positive=[RELEVANCE, 0], negative=[RELEVANCE, 1])
    graph["21"] = {"class_type": "MaskToImage", "inputs": {"mask": [RELEVANCE, 3]}}
    graph["22"] = {"class_type": "SaveImage", "inputs": {"images": ["21", 0], "filename_prefix": "mask"}}
    return graph


def edit_graph(instruction="make it snowy", image=SMALL_IMAGE, **encode) -> dict:
    return pack_edit(IP2P_CKPT, image, instruction, seed=3, steps=3, text_cfg=7.5, image_cfg=1.5, decode=True,
                     encode=encode)


def run(host, graph) -> dict[str, list[np.ndarray]]:
    """The images each saving node wrote, by node id."""
    outputs = host.run(graph)
    return {node: [np.asarray(Image.open(p).convert("RGB")).astype(int)
                   for p in host.output_files({node: outputs[node]}, types=["output"])] for node in outputs}


def input_pixels(host, name: str) -> np.ndarray:
    return np.asarray(Image.open(host.input_dir / name).convert("RGB")).astype(int)


@pytest.mark.parametrize("preset", [None, "fast"])
def test_outside_the_relevance_mask_the_input_comes_back_exactly(host, preset):
    graph = with_relevance(edit_graph())
    if preset:
        graph["23"] = {"class_type": "IP2PFewerPasses", "inputs": {"preset": preset}}
        graph["6"]["inputs"]["fewer_passes"] = ["23", 0]
    saved = run(host, graph)
    (edit,), (mask,) = saved["8"], saved["22"]
    source = input_pixels(host, SMALL_IMAGE)
    outside, inside = mask[..., 0] == 0, mask[..., 0] == 255
    assert mask.shape == source.shape and outside.any() and inside.any()
    assert np.array_equal(edit[outside], source[outside])
    assert np.abs(edit[inside] - source[inside]).mean() > 1.0, "inside the mask the picture is edited"


def test_kept_at_decoding_only_the_inside_is_the_unmasked_edit(host):
    (unmasked,) = run(host, edit_graph())["8"]
    saved = run(host, with_relevance(edit_graph(), while_sampling=False))
    (edit,), (mask,) = saved["8"], saved["22"]
    inside, outside = mask[..., 0] == 255, mask[..., 0] == 0
    assert inside.any() and outside.any()
    assert np.array_equal(edit[inside], unmasked[inside])
    assert np.array_equal(edit[outside], input_pixels(host, SMALL_IMAGE)[outside])


def test_the_mask_comes_back_at_the_input_size_from_a_working_resolution(host):
    saved = run(host, with_relevance(edit_graph(image=ODD_IMAGE, resolution=96)))
    (edit,), (mask,) = saved["8"], saved["22"]
    assert mask.shape == edit.shape == input_pixels(host, ODD_IMAGE).shape  # 61x45


def test_one_mask_per_instruction_line(host):
    graph = with_relevance(instruction_lines(edit_graph(), ["make it snowy", "turn the sky red"]))
    saved = run(host, graph)
    edits, masks = saved["8"], saved["22"]
    assert len(edits) == len(masks) == 2
    assert not np.array_equal(masks[0], masks[1]), "each instruction has its own place"
    for edit, mask in zip(edits, masks):
        outside = mask[..., 0] == 0
        assert np.array_equal(edit[outside], input_pixels(host, SMALL_IMAGE)[outside])


def test_a_drawn_mask_bounds_the_relevance_mask(host):
    saved = run(host, with_relevance(edit_graph(mask=["30", 0]) | {
        "30": {"class_type": "LoadImageMask", "inputs": {"image": SMALL_MASK, "channel": "red"}}}, threshold=0.01))
    drawn = np.asarray(Image.open(host.input_dir / SMALL_MASK).convert("RGB"))[..., 0]
    (mask,) = saved["22"]
    assert mask.any() and not mask[..., 0][drawn == 0].any()


def test_an_instruction_that_changes_nothing_edits_nothing(host):
    saved = run(host, with_relevance(edit_graph(instruction="")))
    (edit,), (mask,) = saved["8"], saved["22"]
    assert not mask.any()
    assert np.array_equal(edit, input_pixels(host, SMALL_IMAGE)), "an empty mask returns the input, not an edit"
    assert "no place is relevant enough" in host.log_path.read_text(errors="replace")


def test_a_model_that_is_not_ip2p_is_refused(host):
    graph = with_relevance(edit_graph())
    graph["9"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": SD_CKPT}}
    graph[RELEVANCE]["inputs"]["model"] = ["9", 0]
    message = failure(host, graph)
    assert "IP2PRelevanceMask" in message and "not an InstructPix2Pix model" in message


def test_instructions_and_images_that_do_not_pair_up_are_refused(host):
    graph = with_relevance(instruction_lines(edit_graph(), ["make it snowy", "turn the sky red", "add a boat"]))
    graph["31"] = {"class_type": "ImageBatch", "inputs": {"image1": ["2", 0], "image2": ["2", 0]}}
    graph["5"]["inputs"]["image"] = ["31", 0]
    message = failure(host, graph)
    assert "3 instructions for 2 images" in message


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_is_asked_at_one_noise_level_below_the_edit_s_first(host, family_files, tmp_path_factory,  # noqa: F811
                                                                        family):
    """The relevance's UNet calls (recorded by the probe model) carry the family's image latent on
    both rows, instruction and image only, at one noise level under the edit's first."""
    record = str(tmp_path_factory.mktemp(f"relevance_{family}") / "unet")
    graph = family_graph(host, family, record)
    graph[RELEVANCE] = {"class_type": "IP2PRelevanceMask", "inputs": {
        "model": ["6", 0], "positive": ["7", 0], "negative": ["7", 1], "threshold": 0.5, "margin": 0, "draws": 2}}
    graph["8"]["inputs"].update(positive=[RELEVANCE, 0], negative=[RELEVANCE, 1])
    host.run(graph)
    with open(record + ".json") as f:
        sigma_max = json.load(f)["sigma_max"]
    calls = torch.load(record + ".calls.pt")
    relevance_calls = calls[:2]  # two draws, then the edit's steps
    sigmas = {round(float(s), 4) for call in relevance_calls for s in call["sigma"]}
    assert len(sigmas) == 1 and 0 < sigmas.pop() < sigma_max
    for call in relevance_calls:
        assert call["unet_input"].shape[0] == 2 and all(row.any() for row in call["unet_input"][:, 4:])
        assert call["output_finite"]
    assert float(calls[2]["sigma"][0]) == pytest.approx(sigma_max, rel=1e-4), "then the edit starts"
