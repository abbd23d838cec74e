"""The demo model in every file shape the tests, the benchmarks' quick runs and the shipped workflows load it in.

The shipped demo model is small (a one-level UNet, a TAESD-format VAE, a text encoder whose layers
are zero), fast on the CPU and a real editor: the workflows, behaviour, EMA, training, tool and
quick-benchmark tests run on it (the mechanics tests keep the generated tiny model: tests/conftest.py).

From the expanded demo checkpoint: a diffusers folder (its VAE an AutoencoderTiny), a UNet-only
file, its CLIP-L and TAESD VAE as separate files, an "SD" version of it (conv_in cut to the four
noisy-latent channels: what an SD fine-tune and its base look like to the merge node) with its
UNet alone. Written once per demo model version, next to its expanded checkpoint; the text
encoder's zero layers are holes in the files (`training.sparse_files`), not disk.
"""
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ip2p_core.formats.diffusers_to_ldm import (
    TEXT_ENCODER_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
)
from tools.demo_checkpoint import CACHE, checkpoint_file
from training.demo_recipe import UNET_CONFIG
from training.sparse_files import dig_holes_in
from training.trainable_model import (
    comfy_tokenizer_dir,
    ip2p_pipeline,
    load_model,
)

from .model_factory import TinyModel, file_lock

# Written last: a folder without it is rewritten (this file's hash: an edit here rewrites them too).
DONE = f"derived-files-{hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]}"
CONV_IN = UNET_PREFIX + "input_blocks.0.0.weight"
UNET_FILE, CLIP_FILE, VAE_FILE = "demo_unet.safetensors", "demo_clip_l.safetensors", "demo_taesd.safetensors"
SD_FILE, SD_UNET_FILE = "demo_as_sd.safetensors", "demo_as_sd_unet.safetensors"


@dataclass(frozen=True)
class DemoFiles:
    """The demo model's files on disk."""

    model: TinyModel  # the checkpoint and its diffusers folder, as the references and factories take a model
    unet: Path  # UNet alone, bare LDM keys
    clip: Path  # CLIP-L, Hugging Face layout
    vae: Path  # TAESD-format VAE
    sd_checkpoint: Path  # conv_in cut to 4 channels: an ordinary SD1.5 model
    sd_unet: Path  # its UNet alone, in fp16 (half the disk): the loaders' four-channel refusal reads it


def write_demo_files(checkpoint: Path) -> DemoFiles:
    """Every derived file of the demo `checkpoint`, written beside it once (test processes take turns)."""
    root = checkpoint.parent
    with file_lock(root / ".derived-files.lock"):
        if not (root / DONE).is_file():
            _write(root, checkpoint)
        # The saved config names every setting (ControlNetModel needs them); the recipe's gives the
        # block counts as diffusers takes them (the saved one turns layers_per_block into a list).
        unet_config = {**json.loads((root / "diffusers" / "unet" / "config.json").read_text()), **UNET_CONFIG}
    model = TinyModel(name="demo", in_channels=8, root=root, checkpoint=checkpoint, diffusers_dir=root / "diffusers",
                      unet_config=unet_config, vae_config={}, text_encoder_config={})
    return DemoFiles(model=model, unet=root / UNET_FILE, clip=root / CLIP_FILE, vae=root / VAE_FILE,
                     sd_checkpoint=root / SD_FILE, sd_unet=root / SD_UNET_FILE)


def cached_demo_files() -> DemoFiles:
    """The shipped demo model's files in the repository's cache (`tools.demo_checkpoint.CACHE`)."""
    return write_demo_files(checkpoint_file(CACHE))


def _write(root: Path, checkpoint: Path) -> None:
    state = load_file(str(checkpoint))
    part = lambda prefix, of=state: {k[len(prefix):]: v for k, v in of.items() if k.startswith(prefix)}  # noqa: E731
    model = load_model(checkpoint, comfy_tokenizer_dir())
    model.text_encoder.to(torch.float16)  # as the checkpoint stores it: nothing lost, half the disk
    ip2p_pipeline(model).save_pretrained(root / "diffusers")
    save_file(part(UNET_PREFIX), str(root / UNET_FILE))
    save_file(part(TEXT_ENCODER_PREFIX), str(root / CLIP_FILE))
    save_file(part(VAE_PREFIX), str(root / VAE_FILE))
    as_sd = {**state, CONV_IN: state[CONV_IN][:, :4].contiguous()}
    save_file(as_sd, str(root / SD_FILE))
    save_file({k: v.half() for k, v in part(UNET_PREFIX, as_sd).items()}, str(root / SD_UNET_FILE))
    dig_holes_in(root)
    for old in root.glob("derived-files-*"):
        old.unlink()
    (root / DONE).write_text("")
