"""How an image of any size is brought to what the model needs, and back again.

The VAE needs sides in multiples of 8, and IP2P models edit best near the resolution they
were trained at (longest side 512 for the paper's model). Framing optionally scales the
image to a working resolution, then pads it with its own edge pixels up to the next
multiple of 8 (16 for SD3-family transformers, which patch the latent 2 x 2), centred.
Unframing crops the padding off and scales back, so the edit comes
back at exactly the input's size and aspect ratio, and with no working resolution set the
pixels are never resampled at all.
"""
from dataclasses import asdict, dataclass

import torch.nn.functional as F
from torch import Tensor

from ..errors import IP2PUserError

LATENT_STRIDE = 8
SD3_MULTIPLE = 16  # the VAE's 8, times the transformer's 2 x 2 patches


@dataclass(frozen=True)
class Framing:
    source: tuple[int, int]  # (height, width) of the input image
    scaled: tuple[int, int]  # after scaling to the working resolution
    padded: tuple[int, int]  # after padding to multiples of 8 (or 16)
    offset: tuple[int, int]  # (top, left) of the scaled image inside the padded one

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Framing":
        return cls(**{k: tuple(v) for k, v in data.items()})


def plan_framing(height: int, width: int, longest_side: int = 0, multiple: int = LATENT_STRIDE) -> Framing:
    """The framing of an image, its sides padded to `multiple`; `longest_side` 0 keeps the input's resolution."""
    if height < 1 or width < 1:
        raise IP2PUserError(f"image size {width}x{height} is empty")
    if longest_side < 0:
        raise IP2PUserError(f"working resolution must be 0 (keep the input size) or positive, got {longest_side}")
    scaled = (height, width)
    if longest_side:
        factor = longest_side / max(height, width)
        scaled = (max(1, round(height * factor)), max(1, round(width * factor)))
    padded = tuple(-(-side // multiple) * multiple for side in scaled)
    offset = tuple((p - s) // 2 for p, s in zip(padded, scaled))
    return Framing(source=(height, width), scaled=scaled, padded=padded, offset=offset)


def frame(pixels: Tensor, framing: Framing) -> Tensor:
    """ComfyUI IMAGE or MASK batch (B, H, W[, C]) at the source size -> padded working size."""
    x = _channels_first(pixels)
    if tuple(x.shape[-2:]) != framing.scaled:
        x = F.interpolate(x, size=framing.scaled, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    top, left = framing.offset
    bottom = framing.padded[0] - framing.scaled[0] - top
    right = framing.padded[1] - framing.scaled[1] - left
    if top or left or bottom or right:
        x = F.pad(x, (left, right, top, bottom), mode="replicate")
    return _channels_last(x, pixels)


def unframe(pixels: Tensor, framing: Framing) -> Tensor:
    """The inverse of `frame`: crops the padding and scales back to the source size."""
    x = _channels_first(pixels)
    if tuple(x.shape[-2:]) != framing.padded:
        raise IP2PUserError(
            f"the image is {x.shape[-1]}x{x.shape[-2]} but was encoded at "
            f"{framing.padded[1]}x{framing.padded[0]}: decode the latent the IP2P Sampler returned"
        )
    top, left = framing.offset
    x = x[..., top:top + framing.scaled[0], left:left + framing.scaled[1]]
    if framing.scaled != framing.source:
        x = F.interpolate(x, size=framing.source, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    return _channels_last(x, pixels)


def _channels_first(pixels: Tensor) -> Tensor:
    if pixels.ndim not in (3, 4) or pixels.shape[0] == 0:
        raise IP2PUserError(
            "expected an IMAGE (batch, height, width, channels) or MASK (batch, height, width) with at least "
            f"one image, got shape {tuple(pixels.shape)}: connect a Load Image node or a non-empty batch"
        )
    return pixels.movedim(-1, 1) if pixels.ndim == 4 else pixels.unsqueeze(1)


def _channels_last(x: Tensor, like: Tensor) -> Tensor:
    return x.movedim(1, -1) if like.ndim == 4 else x.squeeze(1)
