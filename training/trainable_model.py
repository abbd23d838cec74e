"""The SD or IP2P model a training run starts from, and the two files it ends as.

A run starts from an SD model (its `conv_in` widened to 8 channels) or from an IP2P model
(trained further), given as a diffusers folder or an LDM single file. It ends as both a
diffusers folder and a single file in the layout ComfyUI's checkpoint loader detects, so
the result goes straight into the pack's loaders, ComfyUI's and diffusers'.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import save_file
from torch import Tensor

from ip2p_core.errors import IP2PUserError
from ip2p_core.formats.checkpoint_info import IP2P_IN_CHANNELS, read_state_dict
from ip2p_core.formats.conv_in import widen_conv_in
from ip2p_core.formats.diffusers_folder import find_parts
from ip2p_core.formats.latents import Family

from .ldm_checkpoint import ldm_checkpoint
from .ldm_to_diffusers import (
    has_tiny_vae,
    load_tiny_vae_from_ldm,
    load_unet_from_ldm,
    load_vae_from_ldm,
    text_encoder_config_from_ldm,
    text_encoder_state_from_ldm,
    tiny_vae_config_from_ldm,
    unet_config_from_ldm,
    vae_config_from_ldm,
)
from .sparse_files import dig_holes, dig_holes_in

SD_IN_CHANNELS = 4
# SD1.x's training noise schedule: what an SD1.5 folder's scheduler/scheduler_config.json holds, and
# what a single file (which carries no scheduler config) was trained with.
SD15_NOISE_SCHEDULE = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                       "beta_schedule": "scaled_linear", "prediction_type": "epsilon", "steps_offset": 1,
                       "clip_sample": False}


@dataclass
class TrainableModel:
    unet: "UNet2DConditionModel"  # noqa: F821 - diffusers types, imported lazily
    vae: "AutoencoderKL | AutoencoderTiny"  # noqa: F821
    text_encoder: "CLIPTextModel"  # noqa: F821
    tokenizer: "CLIPTokenizer"  # noqa: F821
    noise_scheduler: "DDPMScheduler"  # noqa: F821


def is_tiny_vae(vae) -> bool:
    return type(vae).__name__ == "AutoencoderTiny"


def vae_latent_scale(vae) -> float:
    """The factor from the VAE's (unscaled) latent to the space the UNet denoises.

    An AutoencoderKL says it in its config, as diffusers' pipelines read it. A TAESD-format
    AutoencoderTiny of this pack encodes into ComfyUI's unscaled space (the IP2P image latent)
    while its decoder takes the scaled latent: there the factor is the one ComfyUI applies to
    every SD1.x model, and the config's `scaling_factor` (usually 1) only tells the pipeline
    how to decode.
    """
    return Family.SD15.value.scaling_factor if is_tiny_vae(vae) else vae.config.scaling_factor


@torch.no_grad()
def vae_moments(vae, pixels: Tensor) -> Tensor:
    """What the VAE's encoder outputs: an AutoencoderKL's posterior parameters (mean, log-variance),
    an AutoencoderTiny's latent. Kept apart from drawing the latent so they can be cached."""
    output = vae.encode(pixels)
    return output.latents if is_tiny_vae(vae) else output.latent_dist.parameters


def latent_from_moments(vae, moments: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """The unscaled latent: a posterior sample drawn from `generator`, else the mode (a tiny VAE has one latent)."""
    if is_tiny_vae(vae):
        return moments
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    posterior = DiagonalGaussianDistribution(moments)
    return posterior.mode() if generator is None else posterior.sample(generator)


@torch.no_grad()
def vae_decode(vae, latent: Tensor) -> Tensor:
    """Pixels in [-1, 1] of an unscaled latent, decoded the way diffusers' pipelines do."""
    return vae.decode(latent * vae_latent_scale(vae) / vae.config.scaling_factor).sample


def load_model(source: Path, tokenizer: Optional[Path] = None) -> TrainableModel:
    """The model at `source` (diffusers folder or single file), its UNet widened to 8 channels if it has 4."""
    source = Path(source)
    model = _load_folder(source, tokenizer) if source.is_dir() else _load_single_file(source, tokenizer)
    model.unet = to_ip2p_unet(model.unet, source.name)
    return model


def to_ip2p_unet(unet, name: str):
    """An 8-channel UNet: a 4-channel SD UNet gets zero-initialised image channels, an IP2P one stays."""
    channels = unet.config.in_channels
    if channels == IP2P_IN_CHANNELS:
        return unet
    if channels != SD_IN_CHANNELS:
        raise IP2PUserError(f"{name}: its UNet takes {channels} input channels; training starts from an SD "
                            f"model ({SD_IN_CHANNELS}) or an InstructPix2Pix model ({IP2P_IN_CHANNELS})")
    old = unet.conv_in
    new = torch.nn.Conv2d(IP2P_IN_CHANNELS, old.out_channels, old.kernel_size, old.stride, old.padding,
                          dtype=old.weight.dtype, device=old.weight.device)
    with torch.no_grad():
        new.weight.copy_(widen_conv_in(old.weight))
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=IP2P_IN_CHANNELS)
    return unet


def ip2p_pipeline(model: TrainableModel):
    """diffusers' InstructPix2Pix pipeline on the model, sampling with Euler ancestral (the paper's sampler)."""
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline

    return StableDiffusionInstructPix2PixPipeline(
        vae=model.vae, text_encoder=model.text_encoder, tokenizer=model.tokenizer, unet=model.unet,
        scheduler=EulerAncestralDiscreteScheduler.from_config(model.noise_scheduler.config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


def save_model(model: TrainableModel, folder: Path, single_file: Optional[Path]) -> None:
    """The model as a diffusers InstructPix2Pix folder and, unless `single_file` is None, an LDM
    single file (fp32); zero chunks become holes (`sparse_files`: the demo model's text encoder is
    mostly zero layers)."""
    ip2p_pipeline(model).save_pretrained(folder, safe_serialization=True)
    dig_holes_in(folder)
    if single_file is None:
        return
    cpu = lambda module: {k: v.detach().float().cpu().contiguous() for k, v in module.state_dict().items()}  # noqa: E731
    state = ldm_checkpoint(cpu(model.unet), dict(model.unet.config), cpu(model.vae), dict(model.vae.config),
                           cpu(model.text_encoder))
    save_file(state, str(single_file), metadata={"format": "pt"})
    dig_holes(single_file)


def _load_folder(folder: Path, tokenizer: Optional[Path]) -> TrainableModel:
    from diffusers import AutoencoderKL, AutoencoderTiny, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    parts = find_parts(folder)
    if parts.is_sdxl or parts.is_sd3:
        raise IP2PUserError(f"{folder.name} is an {'SD3' if parts.is_sd3 else 'SDXL'} model: training supports "
                            "SD1.x-family models")
    scheduler_config = folder / "scheduler" / "scheduler_config.json"
    return TrainableModel(
        unet=UNet2DConditionModel.from_pretrained(folder, subfolder="unet"),
        vae=(AutoencoderTiny if _vae_class(folder) == "AutoencoderTiny" else AutoencoderKL).from_pretrained(
            folder, subfolder="vae"),
        text_encoder=CLIPTextModel.from_pretrained(folder, subfolder="text_encoder"),
        tokenizer=_tokenizer(tokenizer or folder / "tokenizer", folder.name),
        noise_scheduler=DDPMScheduler.from_config(
            json.loads(scheduler_config.read_text()) if scheduler_config.is_file() else SD15_NOISE_SCHEDULE),
    )


def _load_single_file(path: Path, tokenizer: Optional[Path]) -> TrainableModel:
    from diffusers import AutoencoderKL, AutoencoderTiny, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    if tokenizer is None:
        raise IP2PUserError(f"{path.name} is a single file, which holds no tokenizer: pass --tokenizer with the "
                            "tokenizer/ folder of any SD1.5 diffusers model (or ComfyUI's comfy/sd1_tokenizer)")
    state = read_state_dict(path)
    unet_config = unet_config_from_ldm(state, path.name)
    unet = UNet2DConditionModel(**unet_config)
    load_unet_from_ldm(unet, state, unet_config, path.name)
    if has_tiny_vae(state):
        vae = AutoencoderTiny(**tiny_vae_config_from_ldm(state))
        load_tiny_vae_from_ldm(vae, state, path.name)
    else:
        vae_config = vae_config_from_ldm(state)
        vae = AutoencoderKL(**vae_config)
        load_vae_from_ldm(vae, state, vae_config, path.name)
    text_state = text_encoder_state_from_ldm(state)
    text_encoder = CLIPTextModel(CLIPTextConfig(**text_encoder_config_from_ldm(text_state)))
    text_encoder.load_state_dict(text_state)
    return TrainableModel(unet=unet, vae=vae, text_encoder=text_encoder,
                          tokenizer=_tokenizer(tokenizer, path.name), noise_scheduler=DDPMScheduler(**SD15_NOISE_SCHEDULE))


def comfy_tokenizer_dir() -> Path:
    """ComfyUI's bundled CLIP tokenizer files (SD1.x's), found without importing (and initialising) comfy."""
    spec = importlib.util.find_spec("comfy")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package 'comfy' not found: install comfyui to get its sd1_tokenizer files")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "sd1_tokenizer"
        if (candidate / "vocab.json").is_file() and (candidate / "merges.txt").is_file():
            return candidate
    raise FileNotFoundError(f"no sd1_tokenizer/vocab.json and merges.txt under {list(spec.submodule_search_locations)}")


def _vae_class(folder: Path) -> str:
    config = folder / "vae" / "config.json"
    return json.loads(config.read_text()).get("_class_name", "") if config.is_file() else ""


def _tokenizer(folder: Path, model_name: str):
    from transformers import CLIPTokenizer

    if not (Path(folder) / "vocab.json").is_file() or not (Path(folder) / "merges.txt").is_file():
        raise IP2PUserError(f"no CLIP tokenizer for {model_name}: {folder} needs vocab.json and merges.txt")
    return CLIPTokenizer.from_pretrained(str(folder))
