"""A tiny 2x upscale model for the workflow tests, in the layout of Real-ESRGAN's Compact models.

SRVGGNetCompact (realesr-general-x4v3, realesr-animevideov3 and the like) is a chain of 3x3
convs with PReLUs ending in a pixel shuffle, plus the nearest-neighbour upscaled input; spandrel,
which both hosts' Load Upscale Model uses, detects it from the `body.N` keys and reads the scale
from the last conv's width. Few, small random weights keep the result close to the nearest
upscale, so the detail pass gets a picture, and deterministic.
"""
from pathlib import Path

import torch
from safetensors.torch import save_file

SCALE = 2
FEATURES = 8
CONVS = 2  # between the first and the last conv
SEED = 6789
GAIN = 0.5  # per conv, of a 1/sqrt(fan_in) init: changes the nearest upscale by about 1/255


def compact_state_dict(scale: int = SCALE, features: int = FEATURES, convs: int = CONVS) -> dict:
    """body.0 conv 3 -> features, then PReLU and conv per layer, the last conv to 3 * scale**2 channels."""
    gen = torch.Generator().manual_seed(SEED)
    widths = [3] + [features] * (convs + 1) + [3 * scale * scale]
    state = {}
    for layer, (fan_in, out) in enumerate(zip(widths, widths[1:])):
        conv = 2 * layer  # each conv but the last is followed by a PReLU at the next index
        state[f"body.{conv}.weight"] = torch.randn((out, fan_in, 3, 3), generator=gen) * GAIN / (9 * fan_in) ** 0.5
        state[f"body.{conv}.bias"] = torch.zeros(out)
        if layer < len(widths) - 2:
            state[f"body.{conv + 1}.weight"] = torch.full((out,), 0.25)  # PReLU's default slope
    return state


def write_upscale_model(path: Path) -> Path:
    save_file(compact_state_dict(), str(path))
    return path
