"""Dual classifier-free guidance of InstructPix2Pix (Brooks et al. 2023, eq. 3).

`uncond + image_cfg * (image - uncond) + text_cfg * (full - image)`, from three predictions per
step: full (instruction + image), image (empty text + image) and uncond (empty text + zero image). The image scale pulls towards the input picture, the
text scale towards the instruction.
"""
import math

from torch import Tensor


def add_text_guidance(image_guided: Tensor, full: Tensor, image: Tensor, text_cfg: float) -> Tensor:
    """Adds the instruction term to an already image-guided prediction.

    The image term `uncond + image_cfg * (image - uncond)` is plain two-term CFG, which the
    guider leaves to the host's own (and its hooks); this is the rest of the formula. A scale
    below 1 is applied as written (diffusers turns guidance off instead).
    """
    return image_guided + text_cfg * (full - image)


def needed_predictions(text_cfg: float, image_cfg: float) -> tuple[bool, bool, bool]:
    """Which of (uncond, image, full) carry weight in the formula at these scales.

    Expanded, the formula is `(1 - image_cfg)*uncond + (image_cfg - text_cfg)*image +
    text_cfg*full`: a prediction whose coefficient is zero need not be computed (image_cfg 1
    drops uncond, text_cfg 0 drops full), which saves a third of the model's work per step.
    """
    return (not math.isclose(image_cfg, 1.0), not math.isclose(image_cfg, text_cfg), not math.isclose(text_cfg, 0.0))


def rescale_guidance(guided: Tensor, reference: Tensor, phi: float) -> Tensor:
    """Guidance rescale (Lin et al. 2024, "Common Diffusion Noise Schedules are Flawed", eq. 15-16).

    Brings each sample's standard deviation back to that of the un-guided-by-scale
    prediction `reference`, blended by `phi`, against the over-saturation of high scales.
    """
    if phi == 0.0:
        return guided
    dims = tuple(range(1, guided.ndim))
    rescaled = guided * (reference.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True))
    return phi * rescaled + (1.0 - phi) * guided
