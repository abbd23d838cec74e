"""The UNet's 8-channel input while training: the noisy latent, then the image latent in the family's scale."""
import torch
from torch import Tensor

from ip2p_core.errors import IP2PUserError
from ip2p_core.formats.latents import Family


def image_latent_for(family: Family, vae_latent: Tensor) -> Tensor:
    """The conditioning latent the family's UNet expects, from the raw VAE latent (mode)."""
    convention = family.value
    return vae_latent * convention.scaling_factor if convention.image_latent_scaled else vae_latent


def concat_image_latent(noisy: Tensor, image_latent: Tensor) -> Tensor:
    """Channel-concatenates the image latent after the noisy latent, as the UNet was trained.

    A single image latent is broadcast over the batch; any other batch mismatch is an error
    rather than a silent repeat, because it means images and noise were paired wrongly.
    """
    if noisy.shape[-2:] != image_latent.shape[-2:]:
        raise IP2PUserError(
            f"image latent is {tuple(image_latent.shape[-2:])} but the noisy latent is "
            f"{tuple(noisy.shape[-2:])}: encode the image at the size you sample at"
        )
    if image_latent.shape[0] == 1 and noisy.shape[0] > 1:
        image_latent = image_latent.expand(noisy.shape[0], *image_latent.shape[1:])
    elif image_latent.shape[0] != noisy.shape[0]:
        raise IP2PUserError(
            f"{image_latent.shape[0]} image latents for a batch of {noisy.shape[0]} noisy latents: "
            "give one image, or one per batch item"
        )
    return torch.cat([noisy, image_latent.to(noisy)], dim=1)
