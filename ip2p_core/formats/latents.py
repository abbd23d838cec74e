"""Where the conditioning image's latent goes, and in which scale, for each model family.

IP2P UNets take 8 channels: the noisy latent (model scale) then the image latent. SD1.5
IP2P and diffusers' SDXL IP2P were trained on the *unscaled* VAE latent (distribution
mode); CosXL Edit on the scaled one. Getting this wrong still produces an image, just a
worse edit, so it is spelled out once here.

UltraEdit (SD3 transformers trained the IP2P way) concatenates the unscaled latents of the image
and of a mask image, and its model space is the latent times SD3's scale with *no* shift
(ComfyUI's SD3 latent format also subtracts SD3's shift factor: `nodes/ultraedit.py` has one without).
"""
from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class LatentConvention:
    scaling_factor: float
    image_latent_scaled: bool


class Family(Enum):
    SD15 = LatentConvention(scaling_factor=0.18215, image_latent_scaled=False)
    SDXL = LatentConvention(scaling_factor=0.13025, image_latent_scaled=False)
    COSXL = LatentConvention(scaling_factor=0.13025, image_latent_scaled=True)
    ULTRAEDIT = LatentConvention(scaling_factor=1.5305, image_latent_scaled=False)
