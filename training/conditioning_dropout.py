"""Conditioning dropout: why an IP2P model can be guided by text and image separately.

Dual CFG needs the model's predictions with the instruction removed and with both inputs
removed, so training shows it those cases: one uniform draw p per sample with dropout
probability q replaces the text by the empty prompt's embedding when p < 2q and zeroes the
image latent when q <= p < 3q (both are dropped when q <= p < 2q). This is the recipe of
the InstructPix2Pix paper and of diffusers' train_instruct_pix2pix.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ip2p_core.errors import IP2PUserError


@dataclass(frozen=True)
class DropoutMasks:
    """Per sample: True where that input is dropped."""

    text: Tensor
    image: Tensor


def dropout_masks(draws: Tensor, probability: float) -> DropoutMasks:
    """Which samples lose their text and which their image, from one uniform draw each."""
    if not 0.0 <= probability <= 1.0 / 3.0:
        raise IP2PUserError(f"conditioning dropout probability must be between 0 and 1/3, got {probability}: "
                            "the three cases (text, both, image) take 3 q of the draws")
    q = probability
    return DropoutMasks(text=draws < 2 * q, image=(draws >= q) & (draws < 3 * q))


def apply_dropout(text: Tensor, empty_text: Tensor, image_latent: Tensor, masks: DropoutMasks) -> tuple[Tensor, Tensor]:
    """Text embeddings with dropped ones replaced by the empty prompt's, image latents zeroed where dropped."""
    text = torch.where(masks.text.view(-1, 1, 1), empty_text.expand_as(text).to(text.dtype), text)
    keep = (~masks.image).to(image_latent.dtype).view(-1, *([1] * (image_latent.ndim - 1)))
    return text, image_latent * keep
