"""Masks that limit an edit to a region.

The mask is applied in latent space while sampling (outside it every step is pulled back
to the input's latent), so the edit blends into its surroundings instead of being pasted.
Feathering softens the border before the mask is shrunk to the latent grid.
"""
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import IP2PUserError


def check_mask(mask: Tensor, image: Tensor) -> Tensor:
    """The mask as (B, H, W) in 0..1, or an error saying how it does not fit the image."""
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if tuple(mask.shape[-2:]) != tuple(image.shape[1:3]):
        raise IP2PUserError(
            f"the mask is {mask.shape[-1]}x{mask.shape[-2]} but the image is {image.shape[2]}x{image.shape[1]}: "
            "make the mask from the same image, or resize it to the image's size"
        )
    if mask.shape[0] not in (1, image.shape[0]):
        raise IP2PUserError(f"{mask.shape[0]} masks for {image.shape[0]} images: give one mask, or one per image")
    if not bool((mask > 0).any()):
        raise IP2PUserError("the mask is empty (all zero): nothing would be edited. Paint the region to change, "
                            "or disconnect the mask to edit the whole image")
    return mask.clamp(0.0, 1.0)


def feather(mask: Tensor, radius: int) -> Tensor:
    """Gaussian-softened (B, H, W) mask; `radius` in pixels is about two standard deviations."""
    if radius <= 0:
        return mask
    sigma = radius / 2
    size = 2 * math.ceil(2 * sigma) + 1
    x = torch.arange(size, dtype=mask.dtype, device=mask.device) - size // 2
    kernel = torch.exp(-x ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    m = mask.unsqueeze(1)
    m = F.conv2d(F.pad(m, (size // 2, size // 2, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    m = F.conv2d(F.pad(m, (0, 0, size // 2, size // 2), mode="replicate"), kernel.view(1, 1, -1, 1))
    return m.squeeze(1).clamp(0.0, 1.0)


def composite(edited: Tensor, source: Tensor, mask: Tensor) -> Tensor:
    """`edited` where the mask is 1, `source` where it is 0, blended in between.

    The decoder mixes neighbouring latents, so latent masking alone leaves faint changes
    outside the region; this makes the outside exactly the input. Batches of 1 broadcast.
    """
    batch = edited.shape[0]
    for name, t in (("source images", source), ("masks", mask)):
        if batch % t.shape[0]:
            raise IP2PUserError(f"{t.shape[0]} {name} for {batch} edited images: give one, or one per image")
    source = source.repeat(batch // source.shape[0], 1, 1, 1)
    weight = mask.repeat(batch // mask.shape[0], 1, 1).unsqueeze(-1).to(edited)
    return edited * weight + source.to(edited) * (1.0 - weight)
