"""SDXL-family IP2P as whole models, text encoders included, through the pack's loaders in a real host.

One generated SDXL-family model (harness/sdxl_model_factory.py: tiny UNet, full-size VAE,
CLIP-L and CLIP-G) is stored as an SDXL IP2P checkpoint, a CosXL Edit checkpoint and a
diffusers folder (as diffusers/sdxl-instructpix2pix-768 is laid out). The folder must load
through IP2P Diffusers Loader into exactly the model IP2P Checkpoint Loader makes of the
checkpoint: same detected model, same text encodings, same UNet and VAE, so the same edit
to the last bit. A probe node (tests/probe_pack) reports what the host built and records
what the UNet receives.
"""
import json

import numpy as np
import pytest
import torch
from conftest import SMALL_IMAGE
from model_files import sdxl_files  # noqa: F401 (fixture)
from PIL import Image
from safetensors.torch import load_file

from harness.host_graphs import pack_edit
from tools.comfy_host import HostError

pytestmark = pytest.mark.host
SDXL_SCALE = 0.13025
STEPS = 2


def edit_graph(loader: dict, record: str) -> dict:
    """The loader's model, recorded by the probe, edits the small image; the latent and the decoded image are saved."""
    graph = pack_edit("", SMALL_IMAGE, "make it snowy", seed=5, steps=STEPS, text_cfg=5.0, image_cfg=1.5,
                      decode=True, nodes={
                          "20": {"class_type": "IP2PTestRecordUNetInput", "inputs": {"model": ["1", 0], "path": record}},
                          "21": {"class_type": "SaveLatent", "inputs": {"samples": ["6", 0], "filename_prefix": "sdxl"}}})
    graph["1"] = loader
    graph["6"]["inputs"]["model"] = ["20", 0]
    return graph


def loaders(files: dict) -> dict:
    return {
        "sdxl_checkpoint": {"class_type": "IP2PCheckpointLoader", "inputs": {"ckpt_name": files["sdxl_checkpoint"]}},
        "cosxl_checkpoint": {"class_type": "IP2PCheckpointLoader", "inputs": {"ckpt_name": files["cosxl_checkpoint"]}},
        "diffusers": {"class_type": "IP2PDiffusersLoader", "inputs": {"model_path": files["diffusers"]}},
    }


@pytest.fixture(scope="module")
def runs(host, sdxl_files, tmp_path_factory):
    """Each loader's edit, run once: probe report, recorded UNet calls, latent, decoded image."""
    done = {}

    def run(kind):
        if kind not in done:
            record = str(tmp_path_factory.mktemp(f"sdxl_{kind}") / "unet")
            files = host.output_files(host.run(edit_graph(loaders(sdxl_files)[kind], record)))
            with open(record + ".json") as f:
                report = json.load(f)
            (latent,) = [load_file(str(p))["latent_tensor"] for p in files if p.suffix == ".latent"]
            (image,) = [np.asarray(Image.open(p).convert("RGB")) for p in files if p.suffix == ".png"]
            done[kind] = report, torch.load(record + ".calls.pt"), latent, image
        return done[kind]
    return run


def test_diffusers_folder_loads_as_the_checkpoint_model(runs):
    folder, checkpoint = runs("diffusers")[0], runs("sdxl_checkpoint")[0]
    assert (folder["model_class"], folder["model_type"], folder["latent_format"]) == (
        "SDXL_instructpix2pix", "EPS", "SDXL")
    assert folder == checkpoint  # detected config, sampling, dtype, every UNet weight name and shape


def test_diffusers_folder_gives_exactly_the_checkpoint_edit(runs):
    _, folder_calls, folder_latent, folder_image = runs("diffusers")
    _, checkpoint_calls, checkpoint_latent, checkpoint_image = runs("sdxl_checkpoint")
    assert len(folder_calls) == len(checkpoint_calls) == STEPS
    for ours, theirs in zip(folder_calls, checkpoint_calls):
        assert torch.equal(ours["unet_input"], theirs["unet_input"])  # same VAE encode, same noise
    assert torch.equal(folder_latent, checkpoint_latent)  # same text encodings and UNet
    assert np.array_equal(folder_image, checkpoint_image)  # same VAE decode


def test_diffusers_folder_edit_end_to_end(runs):
    report, calls, latent, image = runs("diffusers")
    assert all(call["output_finite"] for call in calls) and torch.isfinite(latent).all()
    assert image.shape == (48, 64, 3), "IP2P Decode returns the input's size"
    assert image.std() > 1.0, "the edited image is flat: the model did not run"


def test_cosxl_checkpoint_is_cosxl_edit_and_takes_the_scaled_image_latent(runs):
    report, calls, latent, _ = runs("cosxl_checkpoint")
    assert (report["model_class"], report["model_type"]) == ("SDXL_instructpix2pix", "V_PREDICTION_EDM")
    assert report["sigma_max"] == pytest.approx(120.0, rel=1e-4)
    assert torch.isfinite(latent).all()
    # The same image through the same VAE: CosXL's UNet gets SDXL IP2P's image latent x 0.13025.
    eps_image = runs("sdxl_checkpoint")[1][0]["c_concat"]
    torch.testing.assert_close(calls[0]["c_concat"], eps_image * SDXL_SCALE, rtol=1e-6, atol=0)


def test_sdxl_folder_without_text_encoder_2_is_named(host, sdxl_files, tmp_path):
    graph = edit_graph({"class_type": "IP2PDiffusersLoader", "inputs": {"model_path": sdxl_files["broken"]}},
                       str(tmp_path / "unet"))
    with pytest.raises(HostError) as info:
        host.run(graph)
    assert ("broken_sdxl_no_text_encoder_2 has no text_encoder_2/ subfolder: the diffusers folder is incomplete, "
            "download it again (an SDXL model needs unet/, vae/, text_encoder/ and text_encoder_2/)"
            in str(info.value))
