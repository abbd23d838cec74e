"""IP2P Checkpoint Loader: an LDM single-file IP2P checkpoint as MODEL, CLIP and VAE.

The file is inspected before loading so a wrong model is refused with a sentence instead
of a shape error deep inside sampling; loading itself is ComfyUI's, so the model is a
ModelPatcher under the host's model management (LoRAs, offloading, low-VRAM modes).
"""
import logging
from pathlib import Path

import comfy.sd
import folder_paths

from ..ip2p_core.checkpoint_info import require_ip2p_unet
from ..ip2p_core.errors import IP2PUserError
from . import host

log = logging.getLogger(__name__)


class IP2PCheckpointLoader:
    DESCRIPTION = ("Loads an InstructPix2Pix checkpoint (single file, LDM layout) from models/checkpoints. "
                   "Refuses ordinary 4-channel SD checkpoints with a message saying what to use instead.")
    CATEGORY = "InstructPix2Pix/loaders"
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    RETURN_NAMES = ("model", "clip", "vae")
    OUTPUT_TOOLTIPS = ("The IP2P diffusion model (8 input channels).",
                       "The text encoder, for the edit instruction.",
                       "The VAE: encodes the input image and decodes the result.")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "ckpt_name": (folder_paths.get_filename_list("checkpoints"), {
                "tooltip": "An InstructPix2Pix checkpoint in models/checkpoints "
                           "(e.g. instruct-pix2pix-00-22000.safetensors).",
            }),
        }}

    def load(self, ckpt_name):
        path = folder_paths.get_full_path("checkpoints", ckpt_name)
        if path is None or not Path(path).is_file():
            raise IP2PUserError(
                f"checkpoint '{ckpt_name}' was not found in models/checkpoints: "
                "put the file there (or fix the broken link) and refresh the node list"
            )
        shape = require_ip2p_unet(Path(path))
        model, clip, vae = comfy.sd.load_checkpoint_guess_config(
            path, output_vae=True, output_clip=True,
            embedding_directory=folder_paths.get_folder_paths("embeddings"))[:3]
        if not host.is_ip2p_model(model):
            raise IP2PUserError(
                f"{ckpt_name} has 8 input channels but ComfyUI loaded it as {type(model.model).__name__}, "
                "not as an InstructPix2Pix model: its base model is not one ComfyUI supports for IP2P "
                "(SD1.5 or SDXL)"
            )
        log.info("IP2P: loaded %s (%s, %s)", ckpt_name, type(model.model).__name__,
                 shape.family.name if shape.family else "unknown family")
        return model, clip, vae
