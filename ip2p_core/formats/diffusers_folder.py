"""Finds the parts of a diffusers model folder (what `save_pretrained` writes).

IP2P models are often shared this way (MagicBrush, timbrooks/instruct-pix2pix,
diffusers/sdxl-instructpix2pix-768, UltraEdit's SD3 models). A folder missing a part (for SDXL also
text_encoder_2/, CLIP-G; for SD3 transformer/ instead of unet/ and both CLIPs), or holding only
`.bin` shards ComfyUI cannot read, should fail with the folder and the part named.
"""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import IP2PUserError

# Preference order: full precision safetensors first, then the fp16 variant, then pickles.
WEIGHT_NAMES = {
    "unet": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
             "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin"),
    "text_encoder": ("model.safetensors", "model.fp16.safetensors", "pytorch_model.bin", "pytorch_model.fp16.bin"),
}
WEIGHT_NAMES["vae"] = WEIGHT_NAMES["transformer"] = WEIGHT_NAMES["unet"]
# The weighted parts a folder needs, in this order: the denoiser (UNet or SD3 transformer), VAE,
# then the text encoders. SD3's T5 (text_encoder_3/) is used when present: ComfyUI runs SD3 without it.
SD15_PARTS = ("unet", "vae", "text_encoder")
SDXL_PARTS = SD15_PARTS + ("text_encoder_2",)
SD3_PARTS = ("transformer", "vae", "text_encoder", "text_encoder_2")
SD3_OPTIONAL_PART = "text_encoder_3"


@dataclass(frozen=True)
class DiffusersParts:
    denoiser: Path  # unet/ or, for SD3, transformer/
    denoiser_config: dict[str, Any]
    vae: Path
    vae_config: dict[str, Any]
    text_encoders: tuple[Path, ...]  # text_encoder, then text_encoder_2 for SDXL and SD3, text_encoder_3 if SD3 has it

    @property
    def is_sdxl(self) -> bool:
        return _is_sdxl(self.denoiser_config)

    @property
    def is_sd3(self) -> bool:
        return self.denoiser.parent.name == "transformer"


def _is_sdxl(unet_config: dict[str, Any]) -> bool:
    return unet_config.get("addition_embed_type") == "text_time"


def find_parts(folder: Path) -> DiffusersParts:
    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise IP2PUserError(
            f"{folder.name} is not a diffusers model folder: it has no model_index.json (expected the layout "
            "save_pretrained writes: model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)"
        )
    kind = "transformer" if (folder / "transformer").is_dir() and not (folder / "unet").is_dir() else "unet"
    denoiser = _weights(folder, kind, SD3_PARTS if kind == "transformer" else SD15_PARTS)
    config_path = folder / kind / "config.json"
    if not config_path.is_file():
        raise IP2PUserError(f"{folder.name}/{kind} has no config.json: the folder is incomplete, download it again")
    denoiser_config = json.loads(config_path.read_text())
    # An SDXL UNet without CLIP-G would load with an SD1.5 text encoder and fail only when sampling.
    needed = SD3_PARTS if kind == "transformer" else SDXL_PARTS if _is_sdxl(denoiser_config) else SD15_PARTS
    vae = _weights(folder, "vae", needed)
    vae_config_path = vae.parent / "config.json"
    vae_config = json.loads(vae_config_path.read_text()) if vae_config_path.is_file() else {}
    text_encoders = [_weights(folder, part, needed) for part in needed[2:]]
    if kind == "transformer" and (folder / SD3_OPTIONAL_PART).is_dir():
        text_encoders.append(_weights(folder, SD3_OPTIONAL_PART, needed + (SD3_OPTIONAL_PART,)))
    return DiffusersParts(denoiser=denoiser, denoiser_config=denoiser_config, vae=vae, vae_config=vae_config,
                          text_encoders=tuple(text_encoders))


def _weights(folder: Path, part: str, needed: tuple[str, ...]) -> Path:
    sub = folder / part
    kind = "text_encoder" if part.startswith("text_encoder") else part
    if not sub.is_dir():
        model = {SDXL_PARTS: "an SDXL model", SD3_PARTS: "an SD3 model"}.get(needed, "the model")
        names = [p + "/" for p in needed]
        raise IP2PUserError(f"{folder.name} has no {part}/ subfolder: the diffusers folder is incomplete, download "
                            f"it again ({model} needs {', '.join(names[:-1])} and {names[-1]})")
    for name in WEIGHT_NAMES[kind]:
        if (sub / name).is_file():
            return sub / name
    if any(sub.glob("*.index.json")):
        raise IP2PUserError(f"{folder.name}/{part} holds sharded weights: merge the shards into one file "
                            "(diffusers: load and save_pretrained with max_shard_size='100GB')")
    raise IP2PUserError(f"{folder.name}/{part} has no weights file (looked for {', '.join(WEIGHT_NAMES[kind])})")
