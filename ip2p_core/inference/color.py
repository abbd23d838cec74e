"""Colour fidelity: IP2P edits drift in colour and contrast; this pulls them back.

Reinhard-style statistics transfer in CIELAB: each channel of the result gets the source's
mean and standard deviation. Lab separates lightness from colour, so matching does not
tint shadows the way per-RGB-channel matching does.
"""
import torch
from torch import Tensor

from ..errors import IP2PUserError

_RGB_TO_XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                            [0.2126729, 0.7151522, 0.0721750],
                            [0.0193339, 0.1191920, 0.9503041]])
_WHITE = torch.tensor([0.95047, 1.0, 1.08883])
_EPS, _KAPPA = 216 / 24389, 24389 / 27


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB in 0..1, channels last -> CIELAB (D65), channels last."""
    linear = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb.clamp(min=0) + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _RGB_TO_XYZ.to(rgb).T / _WHITE.to(rgb)
    f = torch.where(xyz > _EPS, xyz.clamp(min=_EPS).pow(1 / 3), (_KAPPA * xyz + 16) / 116)
    return torch.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def lab_to_rgb(lab: Tensor) -> Tensor:
    fy = (lab[..., 0] + 16) / 116
    f = torch.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], -1)
    xyz = torch.where(f ** 3 > _EPS, f ** 3, (116 * f - 16) / _KAPPA) * _WHITE.to(lab)
    linear = (xyz @ torch.linalg.inv(_RGB_TO_XYZ).to(lab).T).clamp(min=0)
    return torch.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear.pow(1 / 2.4) - 0.055).clamp(0, 1)


def match_color(image: Tensor, reference: Tensor, strength: float = 1.0) -> Tensor:
    """`image` (B, H, W, 3) with each item's Lab statistics moved towards `reference`'s.

    `reference` is one image or one per batch item; sizes may differ (only statistics are used).
    """
    if not 0.0 <= strength <= 1.0:
        raise IP2PUserError(f"colour match strength must be between 0 and 1, got {strength}")
    if reference.shape[0] not in (1, image.shape[0]):
        raise IP2PUserError(
            f"{reference.shape[0]} reference images for {image.shape[0]} images: give one reference, or one per image"
        )
    if strength == 0.0:
        return image
    source, target = rgb_to_lab(image[..., :3]), rgb_to_lab(reference[..., :3])
    mean, std = source.mean(dim=(1, 2), keepdim=True), source.std(dim=(1, 2), keepdim=True)
    ref_mean, ref_std = target.mean(dim=(1, 2), keepdim=True), target.std(dim=(1, 2), keepdim=True)
    matched = lab_to_rgb((source - mean) / std.clamp(min=1e-5) * ref_std + ref_mean)
    return torch.lerp(image[..., :3], matched, strength)
