"""Dual classifier-free guidance of InstructPix2Pix (Brooks et al. 2023, eq. 3).

Three predictions per step: full (instruction + image), image (empty text + image) and
uncond (empty text + zero image). The image scale pulls towards the input picture, the
text scale towards the instruction.
"""
from torch import Tensor


def cfg(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
    """Plain two-term guidance: the image term of IP2P is exactly this on (image, uncond)."""
    return uncond + scale * (cond - uncond)


def add_text_guidance(image_guided: Tensor, full: Tensor, image: Tensor, text_cfg: float) -> Tensor:
    """Adds the instruction term to an already image-guided prediction.

    Kept apart from `cfg` so a host can compute the image term with its own two-term CFG
    (and its hooks) and still share this formula for the rest.
    """
    return image_guided + text_cfg * (full - image)


def dual_cfg(full: Tensor, image: Tensor, uncond: Tensor, text_cfg: float, image_cfg: float) -> Tensor:
    """`uncond + image_cfg * (image - uncond) + text_cfg * (full - image)`.

    Unlike diffusers, a scale below 1 is applied as written rather than disabling guidance.
    """
    return add_text_guidance(cfg(image, uncond, image_cfg), full, image, text_cfg)
