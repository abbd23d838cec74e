"""UltraEdit (SD3 transformers trained the IP2P way) through the pack's nodes in a real host.

Generated models (harness/sd3_model_factory.py): a 48-channel mask transformer and its 32-channel
free-form cut, each as a single file, a diffusers folder and a transformer-only file. Every
layout must give the same edit to the last bit, and that edit must equal the authors' pipeline
written out over diffusers' models (harness/ultraedit_reference.py) on the same weights, noise and
text embeddings (those ComfyUI's text encoders made, read by the probe node), within the bound
the SD1.5 parity tests use.
"""
import numpy as np
import pytest
import torch
from conftest import ODD_IMAGE, SMALL_IMAGE, SMALL_MASK
from model_files import freeform_checkpoint, ultraedit_files  # noqa: F401 (fixture)
from PIL import Image
from reference import relative_diff
from test_host_parity import DIFFUSERS_RTOL

from harness.diffusers_reference import comfy_noise
from harness.host_graphs import failure, pack_edit, saved_images, saved_latent
from harness.ultraedit_reference import TextEmbeddings, ultraedit_latent

pytestmark = pytest.mark.host
INSTRUCTION = "make the sky red"
STEPS = 3
SEED = 3
TEXT_CFG, IMAGE_CFG = 7.0, 1.5  # the authors' pipeline defaults
MASK_NODE = {"30": {"class_type": "LoadImageMask", "inputs": {"image": SMALL_MASK, "channel": "red"}}}


def loader(names: dict, kind: str, layout: str) -> dict:
    """Nodes "1" (MODEL, CLIP, VAE) or, for a transformer-only file, "1" (MODEL) beside "31" (CLIP) and "32" (VAE)."""
    if layout == "checkpoint":
        return {"1": {"class_type": "IP2PCheckpointLoader", "inputs": {"ckpt_name": names[f"{kind}_checkpoint"]}}}
    if layout == "diffusers":
        return {"1": {"class_type": "IP2PDiffusersLoader", "inputs": {"model_path": names[f"{kind}_diffusers"]}}}
    return {"1": {"class_type": "IP2PUNetLoader", "inputs": {"unet_name": names[f"{kind}_transformer"]}},
            "31": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": names["clip_l"],
                                                               "clip_name2": names["clip_g"], "type": "sd3"}},
            "32": {"class_type": "VAELoader", "inputs": {"vae_name": names["vae"]}}}


def edit(names: dict, kind: str, layout: str = "diffusers", image: str = SMALL_IMAGE, mask: bool = False,
         record: str = "", decode: bool = False, **kwargs) -> dict:
    graph = pack_edit("", image, INSTRUCTION, seed=SEED, steps=STEPS, text_cfg=TEXT_CFG, image_cfg=IMAGE_CFG,
                      sampler="euler", scheduler="normal", decode=decode,
                      encode={"mask": ["30", 0]} if mask else None, nodes=MASK_NODE if mask else None, **kwargs)
    del graph["1"]
    graph.update(loader(names, kind, layout))
    if "31" in graph:  # a split loader: text encoder and VAE from their own nodes
        for node in graph.values():
            for key, value in node["inputs"].items():
                if value == ["1", 1]:
                    node["inputs"][key] = ["31", 0]
                elif value == ["1", 2]:
                    node["inputs"][key] = ["32", 0]
    if record:
        graph["20"] = {"class_type": "IP2PTestRecordUNetInput", "inputs": {"model": ["1", 0], "path": record}}
        graph["6"]["inputs"]["model"] = ["20", 0]
    return graph


def pixels(path) -> torch.Tensor:
    """An image file as the pipelines take it: (1, 3, H, W) in [-1, 1]."""
    array = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None] * 2 - 1


def recorded_text(record: str) -> TextEmbeddings:
    """The instruction's and the empty text's embeddings as the host's text encoders made them,
    from the first transformer call (labels: 0 from the positive conditioning, 1 from the negative)."""
    call = torch.load(record + ".calls.pt")[0]
    labels = call["cond_or_uncond"]
    context, pooled = call["c_crossattn"].chunk(len(labels)), call["y"].chunk(len(labels))
    positive, negative = labels.index(0), labels.index(1)
    return TextEmbeddings(context[positive], pooled[positive], context[negative], pooled[negative])


@pytest.fixture(scope="module")
def latents(host, ultraedit_files, tmp_path_factory):
    """Each (model, layout, mask) edit's latent, run once, and the text embeddings its run recorded."""
    _, names = ultraedit_files
    done = {}

    def run(kind, layout="diffusers", mask=False):
        if (kind, layout, mask) not in done:
            record = str(tmp_path_factory.mktemp(f"ultraedit_{kind}_{layout}") / "calls")
            latent = saved_latent(host, edit(names, kind, layout, mask=mask, record=record))
            done[kind, layout, mask] = latent, recorded_text(record)
        return done[kind, layout, mask]
    return run


@pytest.mark.parametrize("kind, layout", [("mask", "checkpoint"), ("freeform", "transformer")])
def test_every_layout_gives_the_diffusers_folders_edit(latents, kind, layout):
    assert torch.equal(latents(kind, layout)[0], latents(kind)[0])


def test_the_free_form_model_as_a_single_file_gives_its_folders_edit(host, ultraedit_files, latents, tmp_path):
    models, names = ultraedit_files
    name = host.add_model("checkpoints", freeform_checkpoint(models.mask_checkpoint, tmp_path / "freeform.safetensors"),
                          "tiny_ultraedit_freeform.safetensors")
    try:
        latent = saved_latent(host, edit({**names, "freeform_checkpoint": name}, "freeform", "checkpoint"))
    finally:
        host.remove_model("checkpoints", name, delete_target=True)
    assert torch.equal(latent, latents("freeform")[0])


@pytest.mark.parametrize("kind, mask", [("freeform", False), ("mask", False), ("mask", True)])
def test_matches_the_authors_pipeline(latents, ultraedit_files, test_images, kind, mask):
    """The mask model takes the mask as an image (white = edit; all white without one); with a mask
    the sampler leaves the latent unmasked, as the authors sample, and IP2P Decode keeps the outside."""
    models, _ = ultraedit_files
    latent, text = latents(kind, mask=mask)
    image = pixels(test_images[SMALL_IMAGE])
    mask_image = None
    if kind == "mask":
        # LoadImageMask's red channel, as the RGB image IP2P Encode makes of a MASK
        mask_image = pixels(test_images[SMALL_MASK])[:, :1].expand(-1, 3, -1, -1) if mask else torch.ones_like(image)
    reference = ultraedit_latent(models.diffusers_dir(kind == "mask"), image, mask_image, text,
                                 comfy_noise(latent.shape, SEED), STEPS, TEXT_CFG, IMAGE_CFG)
    assert relative_diff(latent, reference) < DIFFUSERS_RTOL


def test_the_mask_changes_the_mask_models_edit(latents):
    with_mask, without = latents("mask", mask=True)[0], latents("mask")[0]
    assert relative_diff(with_mask, without) > 1e-2


def test_masked_edit_keeps_the_outside_pixels_and_odd_sizes_come_back_whole(host, ultraedit_files, test_images):
    _, names = ultraedit_files
    (edited,) = saved_images(host, edit(names, "mask", mask=True, decode=True))
    source = np.asarray(Image.open(test_images[SMALL_IMAGE]).convert("RGB"))
    outside = np.asarray(Image.open(test_images[SMALL_MASK]).convert("L")) < 128
    assert np.array_equal(edited[outside], source[outside]) and not np.array_equal(edited, source)
    (odd,) = saved_images(host, edit(names, "freeform", image=ODD_IMAGE, decode=True))
    assert odd.shape == (45, 61, 3)  # framed to 64 x 48 (multiples of 16) and cropped back


def test_ultraedit_of_two_instructions_is_a_batch_of_both_edits(host, ultraedit_files):
    _, names = ultraedit_files
    graph = edit(names, "freeform")
    graph["3"] = {"class_type": "IP2PEncodeText", "inputs": {
        "clip": ["1", 1], "vae": ["1", 2], "image": ["2", 0], "instruction": f"{INSTRUCTION}\nmake it night",
        "negative": "", "one_instruction_per_line": True}}
    graph["6"]["inputs"].update(positive=["3", 0], negative=["3", 1])
    del graph["5"]
    batch = saved_latent(host, graph)
    assert batch.shape[0] == 2
    assert relative_diff(batch[:1], saved_latent(host, edit(names, "freeform"))) < DIFFUSERS_RTOL


def test_sd3_text_to_image_transformer_is_refused_with_a_sentence(host, ultraedit_files):
    _, names = ultraedit_files
    graph = edit(names, "freeform", layout="transformer")
    graph["1"]["inputs"]["unet_name"] = names["text_to_image_transformer"]
    assert "is not an instruction-editing model: it is an ordinary SD3 text-to-image model (16 input channels)" \
        in failure(host, graph)


def test_mask_model_from_comfyuis_own_ip2p_conditioning_names_the_missing_mask(host, ultraedit_files):
    _, names = ultraedit_files
    graph = edit(names, "mask")
    graph["5"] = {"class_type": "InstructPixToPixConditioning", "inputs": {
        "positive": ["3", 0], "negative": ["4", 0], "vae": ["1", 2], "pixels": ["2", 0]}}
    assert "takes a mask (48 input channels) but the conditioning has no mask latent" in failure(host, graph)


def test_relevance_mask_and_pass_saving_apply_and_step_caching_says_it_does_not(host, ultraedit_files, test_images):
    # The random transformer's relevance is spread over the little picture: a high threshold keeps part of it.
    _, names = ultraedit_files
    graph = edit(names, "freeform", decode=True)
    graph["20"] = {"class_type": "IP2PRelevanceMask", "inputs": {
        "model": ["1", 0], "positive": ["5", 0], "negative": ["5", 1], "threshold": 0.9, "margin": 0}}
    graph["21"] = {"class_type": "IP2PFewerPasses", "inputs": {"preset": "balanced"}}
    graph["22"] = {"class_type": "MaskToImage", "inputs": {"mask": ["20", 3]}}
    graph["23"] = {"class_type": "SaveImage", "inputs": {"images": ["22", 0], "filename_prefix": "mask"}}
    graph["6"]["inputs"].update(positive=["20", 0], negative=["20", 1], fewer_passes=["21", 0])
    outputs = host.run(graph)
    (edited,), (mask,) = ([np.asarray(Image.open(p).convert("RGB")).astype(int)
                           for p in host.output_files({node: outputs[node]}, types=["output"])] for node in ("8", "23"))
    source = np.asarray(Image.open(test_images[SMALL_IMAGE]).convert("RGB")).astype(int)
    outside, inside = mask[..., 0] == 0, mask[..., 0] == 255
    assert outside.any() and inside.any() and np.array_equal(edited[outside], source[outside])
    graph["21"]["inputs"]["preset"] = "fast"
    assert "step caching needs a UNet" in (message := failure(host, graph)) and "'balanced' preset" in message
