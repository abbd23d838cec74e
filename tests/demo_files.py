"""The demo model in every file shape the shipped workflows load, for running them on it.

From the expanded demo checkpoint: a diffusers folder (its VAE an AutoencoderTiny), a
UNet-only file, its CLIP-L and TAESD VAE as separate files, an "SD" version of it (conv_in cut
to the four noisy-latent channels: what an SD fine-tune and its base look like to the merge
node), and LoRAs and a ControlNet of its shapes (tests/patch_factory.py). Written once per
demo model version, next to its expanded checkpoint.
"""
import json
from pathlib import Path

import pytest
from patch_factory import build_patch_files
from safetensors.torch import load_file, save_file

from harness.model_factory import TinyModel
from ip2p_core.formats.diffusers_to_ldm import (
    TEXT_ENCODER_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
)
from ip2p_core.training.demo_recipe import UNET_CONFIG
from ip2p_core.training.trainable_model import (
    comfy_tokenizer_dir,
    ip2p_pipeline,
    load_model,
)

DONE = "derived-files-complete"


def _write(root: Path, checkpoint: Path) -> None:
    state = load_file(str(checkpoint))
    part = lambda prefix: {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}  # noqa: E731
    ip2p_pipeline(load_model(checkpoint, comfy_tokenizer_dir())).save_pretrained(root / "diffusers")
    save_file(part(UNET_PREFIX), str(root / "demo_unet.safetensors"))
    save_file(part(TEXT_ENCODER_PREFIX), str(root / "demo_clip_l.safetensors"))
    save_file(part(VAE_PREFIX), str(root / "demo_taesd.safetensors"))
    conv_in = UNET_PREFIX + "input_blocks.0.0.weight"
    save_file({**state, conv_in: state[conv_in][:, :4].contiguous()}, str(root / "demo_as_sd.safetensors"))
    (root / DONE).write_text("")


@pytest.fixture(scope="session")
def demo_files(host, demo_file):
    """Names, as the session host lists them, of the demo model's files by with_inputs kind."""
    root = demo_file.parent
    if not (root / DONE).is_file():
        _write(root, demo_file)
    # The saved config names every setting (ControlNetModel needs them); the recipe's gives the
    # block counts as diffusers takes them (the saved one turns layers_per_block into a list).
    unet_config = {**json.loads((root / "diffusers" / "unet" / "config.json").read_text()), **UNET_CONFIG}
    model = TinyModel(name="demo", in_channels=8, root=root, checkpoint=demo_file, diffusers_dir=root / "diffusers",
                      unet_config=unet_config, vae_config={}, text_encoder_config={})
    patches = build_patch_files(model, root / "patches")
    names = {
        "diffusers": host.add_model("diffusers", root / "diffusers", "demo_shapes"),
        "unet": host.add_model("unet", root / "demo_unet.safetensors"),
        "clip": host.add_model("clip", root / "demo_clip_l.safetensors"),
        "vae": host.add_model("vae", root / "demo_taesd.safetensors"),
        "sd_checkpoint": host.add_model("checkpoints", root / "demo_as_sd.safetensors"),
        "lora": host.add_model("loras", patches.lora_ip2p, "demo_ip2p_lora.safetensors"),
        "controlnet": host.add_model("controlnet", patches.controlnet, "demo_controlnet.safetensors"),
    }
    host.object_info(refresh=True)
    return names
