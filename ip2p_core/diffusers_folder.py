"""Finds the parts of a diffusers model folder (what `save_pretrained` writes).

IP2P models are often shared this way (MagicBrush, timbrooks/instruct-pix2pix,
diffusers/sdxl-instructpix2pix-768). A folder missing a part, or holding only `.bin`
shards ComfyUI cannot read, should fail with the folder and the part named.
"""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .errors import IP2PUserError

# Preference order: full precision safetensors first, then the fp16 variant, then pickles.
WEIGHT_NAMES = {
    "unet": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
             "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin"),
    "vae": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
            "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin"),
    "text_encoder": ("model.safetensors", "model.fp16.safetensors", "pytorch_model.bin", "pytorch_model.fp16.bin"),
}


@dataclass(frozen=True)
class DiffusersParts:
    unet: Path
    unet_config: dict[str, Any]
    vae: Path
    text_encoders: tuple[Path, ...]  # text_encoder, then text_encoder_2 for SDXL

    @property
    def is_sdxl(self) -> bool:
        return self.unet_config.get("addition_embed_type") == "text_time"


def find_parts(folder: Path) -> DiffusersParts:
    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise IP2PUserError(
            f"{folder.name} is not a diffusers model folder: it has no model_index.json (expected the layout "
            "save_pretrained writes: model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)"
        )
    unet = _weights(folder, "unet")
    config_path = folder / "unet" / "config.json"
    if not config_path.is_file():
        raise IP2PUserError(f"{folder.name}/unet has no config.json: the folder is incomplete, download it again")
    encoders = [_weights(folder, "text_encoder")]
    if (folder / "text_encoder_2").is_dir():
        encoders.append(_weights(folder, "text_encoder_2", kind="text_encoder"))
    return DiffusersParts(unet=unet, unet_config=json.loads(config_path.read_text()), vae=_weights(folder, "vae"),
                          text_encoders=tuple(encoders))


def _weights(folder: Path, part: str, kind: Optional[str] = None) -> Path:
    sub = folder / part
    if not sub.is_dir():
        raise IP2PUserError(f"{folder.name} has no {part}/ subfolder: the diffusers folder is incomplete, "
                            "download it again (all of unet/, vae/ and text_encoder/ are needed)")
    for name in WEIGHT_NAMES[kind or part]:
        if (sub / name).is_file():
            return sub / name
    if any(sub.glob("*.index.json")):
        raise IP2PUserError(f"{folder.name}/{part} holds sharded weights: merge the shards into one file "
                            "(diffusers: load and save_pretrained with max_shard_size='100GB')")
    raise IP2PUserError(f"{folder.name}/{part} has no weights file (looked for {', '.join(WEIGHT_NAMES[kind or part])})")
