"""Relevance masks: where the model itself says an instruction's edit belongs.

"Watch Your Steps" (Mirzaei et al. 2023, arXiv 2308.08947): at a fixed noise level, IP2P's noise
prediction with the instruction and the one without it (the image term alone) differ where the
instruction asks for a change and agree elsewhere. The channel-summed size of that difference,
averaged over a few noise draws and divided by its largest value, is the relevance map (0 = the
instruction changes nothing here, 1 = the most-changed place). The authors' code also clips
outliers above Q3 + 1.5 IQR and subtracts the smallest value; on the demo model's validation
pairs that gave masks of markedly lower IoU, since a small edited region is itself the
"outlier", and a global edit loses its least-changed part (benchmarks/RESULTS.md, "Relevance
masks on the demo model"). Thresholded, grown by a margin and feathered, the map is a mask for the pack's
masked-edit path, which keeps the rest of the picture.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import IP2PUserError
from .masks import feather

PAPER_NOISE_LEVEL = 0.8  # the authors' timestep 800 of 1000
# IP2P Relevance Mask's defaults, chosen on the demo model's validation pairs
# (benchmarks/RESULTS.md, "Relevance masks on the demo model").
DEFAULTS = {"noise_level": 0.6, "draws": 4, "threshold": 0.5, "margin": 4, "feather": 0, "while_sampling": True}
# Below this largest difference (noise-prediction units, summed over the latent channels) the
# instruction changes nothing: the two predictions then differ only by float rounding, which
# scaling to 0..1 would blow up into a mask of noise. An instruction that edits is orders above it.
NO_CHANGE = 1e-3


def noise_level_percent(noise_level: float) -> float:
    """ComfyUI's sampling percent (0 = the most noise, 1 = none) of a noise level given as the
    paper gives it (the fraction of the training timesteps: 0 = none, 1 = the most)."""
    if not 0.0 < noise_level <= 1.0:
        raise IP2PUserError(f"noise_level must be above 0 and at most 1 (the paper: {PAPER_NOISE_LEVEL}), "
                            f"got {noise_level}")
    return 1.0 - noise_level


def prediction_difference(full: Tensor, image_only: Tensor, sigma: Tensor) -> Tensor:
    """(B, h, w): the channel-summed |eps_full - eps_image| of two denoised predictions at the same
    noisy latent and noise level (eps = (x - denoised) / sigma, so x cancels)."""
    return (full - image_only).abs().sum(dim=1).float() / sigma.float().view(-1, 1, 1)


def relevance_map(differences: Sequence[Tensor]) -> Tensor:
    """(B, h, w) in 0..1: the draws' mean difference divided by its largest value, per image; all
    zero where the instruction changes nothing (largest difference under NO_CHANGE)."""
    if not differences:
        raise IP2PUserError("a relevance map needs at least one noise draw")
    mean = torch.stack(list(differences)).mean(dim=0).double()
    largest = mean.flatten(1).max(dim=1).values.view(-1, 1, 1)
    return torch.where(largest >= NO_CHANGE, mean / largest.clamp(min=NO_CHANGE), 0.0).float()


def to_pixels(relevance: Tensor, size: tuple[int, int]) -> Tensor:
    """A (B, h, w) relevance map of latent cells, bilinearly scaled to (B, H, W) pixels."""
    return F.interpolate(relevance.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)


def relevance_mask(relevance: Tensor, threshold: float, margin: int, feather_radius: int) -> Tensor:
    """(B, H, W) mask of a relevance map at pixel size (`to_pixels`): 1 where the map is at least
    `threshold`, grown by `margin` pixels, then feathered by `feather_radius` pixels."""
    if not 0.0 < threshold <= 1.0:
        raise IP2PUserError(f"threshold must be above 0 and at most 1, got {threshold}")
    if margin < 0 or feather_radius < 0:
        raise IP2PUserError(f"margin and feather are pixels, 0 or more: got {margin} and {feather_radius}")
    mask = (relevance.unsqueeze(1) >= threshold).float()
    if margin:
        mask = F.max_pool2d(mask, kernel_size=2 * margin + 1, stride=1, padding=margin)
    return feather(mask.squeeze(1), feather_radius)


def noise_draws(shape: tuple[int, ...], seed: int, draws: int) -> list[Tensor]:
    """`draws` standard normal noises of `shape`, from a generator of their own (the process's
    random state is not touched)."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator) for _ in range(draws)]
