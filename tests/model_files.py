"""The test model in every file shape users have, put into the session's host.

Imported as a fixture by the tests that load them and by the workflow tests, whose shipped
workflows name these files (see with_inputs in tools/workflow_inputs.py).
"""
import shutil

import pytest
import torch
from conftest import MODEL_CACHE
from safetensors.torch import load_file, save_file

from harness.sdxl_model_factory import build_sdxl_family


@pytest.fixture(scope="session")
def model_files(host, tiny_ip2p, demo, tmp_path_factory):
    """The tiny model's files under the names the tests load them by, broken ones, and the demo
    model's 4-channel UNet (an ordinary SD UNet, for the refusal)."""
    folder = tmp_path_factory.mktemp("model_files")
    unet_ldm = folder / "tiny_ip2p_unet_ldm.safetensors"
    prefix = "model.diffusion_model."
    save_file({k[len(prefix):]: v for k, v in load_file(str(tiny_ip2p.checkpoint)).items()
               if k.startswith(prefix)}, str(unet_ldm))
    broken = folder / "broken_no_vae"
    broken.mkdir()
    shutil.copy(tiny_ip2p.diffusers_dir / "model_index.json", broken)
    (broken / "unet").symlink_to(tiny_ip2p.diffusers_dir / "unet")
    (broken / "text_encoder").symlink_to(tiny_ip2p.diffusers_dir / "text_encoder")
    garbage = folder / "unknown_layout.safetensors"
    save_file({"input_blocks.0.0.weight": torch.zeros(32, 8, 3, 3), "mystery.weight": torch.zeros(4)}, str(garbage))
    names = {
        "diffusers": host.add_model("diffusers", tiny_ip2p.diffusers_dir, "tiny_ip2p"),
        "broken": host.add_model("diffusers", broken, "broken_no_vae"),
        "unet_ldm": host.add_model("unet", unet_ldm),
        "unet_diffusers": host.add_model("unet", tiny_ip2p.diffusers_dir / "unet" / "diffusion_pytorch_model.safetensors",
                                         "tiny_ip2p_unet_diffusers.safetensors"),
        "unet_sd": host.add_model("unet", demo.sd_unet),
        "unet_garbage": host.add_model("unet", garbage),
        "clip": host.add_model("clip", tiny_ip2p.diffusers_dir / "text_encoder" / "model.safetensors", "tiny_clip_l.safetensors"),
        "vae": host.add_model("vae", tiny_ip2p.diffusers_dir / "vae" / "diffusion_pytorch_model.safetensors",
                              "tiny_vae.safetensors"),
    }
    host.object_info(refresh=True)
    return names


@pytest.fixture(scope="session")
def sdxl_files(host, tmp_path_factory):
    """The generated SDXL-family model (harness/sdxl_model_factory.py) as an SDXL IP2P and a CosXL
    Edit checkpoint, a diffusers folder, and that folder without text_encoder_2/ (CLIP-G)."""
    family = build_sdxl_family(MODEL_CACHE)
    broken = tmp_path_factory.mktemp("sdxl_files") / "broken_sdxl_no_text_encoder_2"
    broken.mkdir()
    for part in family.diffusers_dir.iterdir():
        if part.name != "text_encoder_2":
            (broken / part.name).symlink_to(part)
    names = {
        "sdxl_checkpoint": host.add_model("checkpoints", family.sdxl_checkpoint, "tiny_sdxl_ip2p.safetensors"),
        "cosxl_checkpoint": host.add_model("checkpoints", family.cosxl_checkpoint, "tiny_cosxl_edit.safetensors"),
        "diffusers": host.add_model("diffusers", family.diffusers_dir, "tiny_sdxl_ip2p"),
        "broken": host.add_model("diffusers", broken),
    }
    host.object_info(refresh=True)
    return names


@pytest.fixture(scope="session")
def ultraedit_files(host, tmp_path_factory):
    """The generated UltraEdit models (harness/sd3_model_factory.py): both as diffusers folders, the mask
    model as a single file (`freeform_checkpoint` cuts the free-form one from it), the free-form
    transformer as a transformer-only file in ComfyUI's MMDiT layout, their CLIP-L, CLIP-G and VAE files
    for ComfyUI's own loaders, and an SD3 text-to-image transformer (16 input channels) for the refusal."""
    from harness.sd3_model_factory import FREE_FORM_CHANNELS, build_ultraedit_models
    from ip2p_core.formats.mmdit_layout import MMDIT_PATCH_KEY

    models = build_ultraedit_models(MODEL_CACHE)
    folder = tmp_path_factory.mktemp("ultraedit_files")
    prefix = "model.diffusion_model."
    transformer = {k[len(prefix):]: v for k, v in load_file(str(models.mask_checkpoint)).items()
                   if k.startswith(prefix)}
    cuts = {"ultraedit_freeform_mmdit.safetensors": FREE_FORM_CHANNELS, "sd3_text_to_image_transformer.safetensors": 16}
    for name, channels in cuts.items():
        save_file({**transformer, MMDIT_PATCH_KEY: transformer[MMDIT_PATCH_KEY][:, :channels].contiguous()},
                  str(folder / name))
    names = {"mask_checkpoint": host.add_model("checkpoints", models.mask_checkpoint,
                                               "tiny_ultraedit_mask.safetensors")}
    for mask in (False, True):
        kind = "mask" if mask else "freeform"
        names[f"{kind}_diffusers"] = host.add_model("diffusers", models.diffusers_dir(mask), f"tiny_ultraedit_{kind}")
    names["freeform_transformer"] = host.add_model("unet", folder / "ultraedit_freeform_mmdit.safetensors")
    names["text_to_image_transformer"] = host.add_model("unet", folder / "sd3_text_to_image_transformer.safetensors")
    names["clip_l"] = host.add_model("clip", models.mask_dir / "text_encoder" / "model.safetensors",
                                     "tiny_sd3_clip_l.safetensors")
    names["clip_g"] = host.add_model("clip", models.mask_dir / "text_encoder_2" / "model.safetensors",
                                     "tiny_sd3_clip_g.safetensors")
    names["vae"] = host.add_model("vae", models.mask_dir / "vae" / "diffusion_pytorch_model.safetensors",
                                  "tiny_sd3_vae.safetensors")
    host.object_info(refresh=True)
    return models, names


def freeform_checkpoint(mask_checkpoint, path):
    """The free-form UltraEdit model as a single file at `path`: the mask model's without its mask channels
    (0.2 GB: a test makes it and removes it)."""
    from harness.sd3_model_factory import FREE_FORM_CHANNELS
    from ip2p_core.formats.mmdit_layout import MMDIT_PATCH_KEY
    from training.sparse_files import dig_holes

    state = load_file(str(mask_checkpoint))
    patch = "model.diffusion_model." + MMDIT_PATCH_KEY
    save_file({**state, patch: state[patch][:, :FREE_FORM_CHANNELS].contiguous()}, str(path))
    dig_holes(path)
    return path
